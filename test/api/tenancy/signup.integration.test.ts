// Self-service signup and owner bootstrap against the real operator, control
// plane, PostgreSQL and Redis: signup writes a Tenant, the operator makes it
// Ready, and the owner provisioner creates the owner, who then logs in. A
// Tenant applied with kubectl gets its owner with a set-password mail instead.
import { expect } from 'chai';
import { ownerProvisionedAnnotation, signupAnnotation } from '../../../api/src/tenancy/tenant-resources.js';
import { startTestApi, type TestApi } from '../../harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../../harness/platform.js';
import { eventually } from '../../harness/wait.js';

const password = 'correct horse battery staple 42';

describe('signup and owner bootstrap (real operator, control plane, PostgreSQL, Redis)', function () {
  this.timeout(240_000);
  let platform: TestPlatform;
  let api: TestApi;
  const mine = new Set<string>();
  const name = (label: string) => {
    const n = platform.tenantName(label);
    mine.add(n);
    return n;
  };
  const getTenant = async (tenant: string) =>
    JSON.parse(await platform.cp.kubectl(['get', 'tenant', tenant, '-o', 'json'])) as {
      metadata: { annotations?: Record<string, string> };
      spec: { plan: string; displayName: string; owner: { email: string } };
    };

  before(async () => {
    platform = await startTestPlatform('signup');
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace, {
      signupEnabled: true,
      ownerProvisioning: { select: (tenant) => mine.has(tenant) },
    });
  });

  after(async () => {
    await api?.close();
    await platform?.cleanup();
  });

  describe('self-service signup', () => {
    let tenant: string;
    const email = 'Founder@Example.com';

    it('answers 202 with a status URL and writes the Tenant without the password', async () => {
      tenant = name('new');
      const res = await api.call('POST', '/api/signup', {
        body: {
          tenant,
          display_name: 'New Co',
          email,
          password,
          first_name: 'Ada',
          last_name: 'Lovelace',
        },
      });
      expect(res.status, JSON.stringify(res.body)).to.equal(202);
      expect(res.body).to.deep.equal({ tenant, status_url: `${api.url}/api/signup/${tenant}` });
      expect(res.headers.get('location')).to.equal(`/api/signup/${tenant}`);

      const created = await getTenant(tenant);
      expect(created.spec.owner.email).to.equal('founder@example.com');
      expect(created.spec.plan).to.equal('free');
      expect(created.spec.displayName).to.equal('New Co');
      expect(created.metadata.annotations?.[signupAnnotation]).to.match(/^[0-9a-f-]{36}$/);
      expect(JSON.stringify(created)).not.to.contain(password);
      expect(JSON.stringify(created)).not.to.contain('argon2');
    });

    it('reports progress at the status URL until the owner can log in', async () => {
      const first = await api.call('GET', `/api/signup/${tenant}`);
      expect(first.status).to.equal(200);
      expect(first.body).to.have.keys('tenant', 'phase', 'ready');
      expect(first.body.tenant).to.equal(tenant);
      const done = await eventually(
        `signup ${tenant} to be ready`,
        async () => {
          const res = await api.call('GET', `/api/signup/${tenant}/`);
          const body = res.body as { tenant: string; phase: string; ready: boolean };
          return body.ready ? body : undefined;
        },
        { timeoutMs: 150_000, intervalMs: 500 },
      );
      expect(done).to.deep.equal({ tenant, phase: 'Ready', ready: true });

      const login = await api.call('POST', '/api/auth/login', { body: { tenant, email, password } });
      expect(login.status, JSON.stringify(login.body)).to.equal(200);
      expect(login.body.user).to.include({ email: 'founder@example.com', role: 'owner' });
      expect(login.body.user).to.include({ first_name: 'Ada', last_name: 'Lovelace' });
      const wrong = await api.call('POST', '/api/auth/login', {
        body: { tenant, email, password: 'not the password 1' },
      });
      expect(wrong.status).to.equal(401);
      // A signup owner already has a password: no set-password mail.
      expect(api.mailer.to('founder@example.com')).to.have.length(0);
    });

    it('refuses a taken name with 409', async () => {
      const again = await api.call('POST', '/api/signup', {
        body: { tenant, display_name: 'Copycat', email: 'other@example.com', password },
      });
      expect(again.status).to.equal(409);
      expect(again.headers.get('content-type')).to.contain('application/problem+json');
      // The first signup's owner is untouched.
      const login = await api.call('POST', '/api/auth/login', { body: { tenant, email, password } });
      expect(login.status).to.equal(200);
    });
  });

  it('refuses the name of a Tenant applied with kubectl with 409, and shows no status for it', async () => {
    const existing = name('kubectl');
    await platform.applyTenant(existing);
    const res = await api.call('POST', '/api/signup/', {
      body: { tenant: existing, display_name: 'Taken', email: 'x@example.com', password },
    });
    expect(res.status).to.equal(409);
    const status = await eventually('the directory to see the Tenant', async () => {
      const r = await api.call('GET', `/api/signup/${existing}`);
      return api.directory.get(existing) ? r : undefined;
    });
    expect(status.status).to.equal(404);
  });

  it('names the field of an invalid, reserved or weak signup with 400', async () => {
    const base = { tenant: 'fine-name', display_name: 'Fine', email: 'a@example.com', password };
    const cases: [Record<string, unknown>, string][] = [
      [{ ...base, tenant: 'Bad_Name' }, 'tenant'],
      [{ ...base, tenant: '-leading' }, 'tenant'],
      [{ ...base, tenant: 'current' }, 'tenant'],
      [{ ...base, password: 'short' }, 'password'],
      [{ ...base, password: 'password1234' }, 'password'],
      [{ ...base, email: 'nope' }, 'email'],
      [{ ...base, display_name: '' }, 'display_name'],
      [{ ...base, plan: 'enterprise' }, 'body'],
    ];
    for (const [body, field] of cases) {
      const res = await api.call('POST', '/api/signup', { body });
      expect(res.status, JSON.stringify(body)).to.equal(400);
      expect(res.headers.get('content-type')).to.contain('application/problem+json');
      expect((res.body.errors as { field: string }[]).map((e) => e.field)).to.include(field);
    }
    const none = await api.call('GET', '/api/signup/fine-name');
    expect(none.status).to.equal(404);
  });

  it('answers 404 problems when signup is disabled', async () => {
    const disabled = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace);
    try {
      const res = await disabled.call('POST', '/api/signup', {
        body: { tenant: 'whatever', display_name: 'W', email: 'w@example.com', password },
      });
      expect(res.status).to.equal(404);
      expect(res.headers.get('content-type')).to.contain('application/problem+json');
      expect(res.body.detail).to.contain('signup is not enabled');
      expect((await disabled.call('GET', '/api/signup/whatever')).status).to.equal(404);
      expect(await platform.cp.kubectl(['get', 'tenant', 'whatever', '--ignore-not-found'])).to.equal('');
    } finally {
      await disabled.close();
    }
  });

  describe('owner bootstrap for a Tenant applied with kubectl', () => {
    let tenant: string;
    let ownerEmail: string;

    it('creates the owner without a password and mails a set-password token once', async () => {
      tenant = name('boot');
      ownerEmail = `owner@${tenant}.example`;
      await platform.applyTenant(tenant);
      await platform.waitReady(tenant);
      const token = await api.mailer.tokenFor(ownerEmail, 'owner-invite', 0, 60_000);
      const login = await api.call('POST', '/api/auth/login', {
        body: { tenant, email: ownerEmail, password },
      });
      expect(login.status).to.equal(401);

      const set = await api.call('POST', '/api/auth/password/reset/confirm', {
        body: { tenant, token, password },
      });
      expect(set.status, JSON.stringify(set.body)).to.equal(204);
      const after = await api.call('POST', '/api/auth/login', {
        body: { tenant, email: ownerEmail, password },
      });
      expect(after.status).to.equal(200);
      expect(after.body.user.role).to.equal('owner');

      await eventually('the owner-provisioned annotation', async () =>
        (await getTenant(tenant)).metadata.annotations?.[ownerProvisionedAnnotation] === 'true'
          ? true
          : undefined,
      );
      await new Promise((ok) => setTimeout(ok, 1500));
      expect(api.mailer.to(ownerEmail)).to.have.length(1);
    });

    it('is idempotent across replicas: another replica finds the owner and sends nothing', async () => {
      await platform.cp.kubectl(['annotate', 'tenant', tenant, `${ownerProvisionedAnnotation}-`]);
      const replica = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace, {
        ownerProvisioning: { select: (t) => t === tenant },
      });
      try {
        await eventually('the other replica to annotate the Tenant again', async () =>
          (await getTenant(tenant)).metadata.annotations?.[ownerProvisionedAnnotation] === 'true'
            ? true
            : undefined,
        );
        expect(replica.mailer.messages).to.have.length(0);
        expect(api.mailer.to(ownerEmail)).to.have.length(1);
        const db = replica.databases.for(tenant, replica.directory.servable(tenant).credentials);
        expect(await db.models.User.count({ where: { role: 'owner' } })).to.equal(1);
      } finally {
        await replica.close();
      }
    });
  });
});
