// The platform admin's /api/tenants against real Tenant resources on the
// control plane with the operator: CRUD with a client-credentials token,
// 403 for tenant users, 400 naming the field for bad bodies.
import { expect } from 'chai';
import { planPolicies } from '../../../lib/tenant/index.js';
import { startTestApi, type TestApi } from '../../harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../../harness/platform.js';
import { platformAdminToken, seedUser, signIn } from '../../harness/seeded-tenants.js';
import { eventually } from '../../harness/wait.js';

describe('platform admin /api/tenants (real operator and control plane)', function () {
  this.timeout(180_000);
  let platform: TestPlatform;
  let api: TestApi;
  let home: string;
  let admin: string;
  let owner: string;

  const kubectlTenant = async (name: string) =>
    JSON.parse(await platform.cp.kubectl(['get', 'tenant', name, '-o', 'json'])) as {
      spec: Record<string, unknown>;
    };

  before(async () => {
    platform = await startTestPlatform('tenadmin');
    home = platform.tenantName('home');
    await platform.applyTenant(home);
    await platform.waitReady(home);
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace);
    admin = await platformAdminToken(api);
    await eventually('the directory to serve the tenant', () =>
      Promise.resolve(api.directory.get(home)?.ready ? true : undefined),
    );
    await seedUser(api, home, 'owner', `boss@${home}.example`, { first_name: null, last_name: null });
    owner = (await signIn(api, home, `boss@${home}.example`)).access;
  });

  after(async () => {
    await api?.close();
    await platform?.cleanup();
  });

  describe('as the platform admin', () => {
    let created: string;

    it('creates a Tenant resource (201) and reads it back', async () => {
      created = platform.tenantName('made');
      const res = await api.call('POST', '/api/tenants/', {
        token: admin,
        body: {
          name: created,
          display_name: 'Made By Admin',
          plan: 'starter',
          owner_email: 'Owner@Made.example',
          domains: ['made.example'],
        },
      });
      expect(res.status, JSON.stringify(res.body)).to.equal(201);
      expect(res.headers.get('location')).to.equal(`/api/tenants/${created}`);
      expect(res.body).to.include({
        name: created,
        display_name: 'Made By Admin',
        plan: 'starter',
        owner_email: 'owner@made.example',
        suspended: false,
        ready: false,
        rate_limit_override: false,
      });
      expect(res.body.domains).to.deep.equal(['made.example']);
      const spec = (await kubectlTenant(created)).spec;
      expect(spec).to.deep.include({ plan: 'starter', displayName: 'Made By Admin' });
      expect(spec.owner).to.deep.equal({ email: 'owner@made.example' });

      for (const path of [`/api/tenants/${created}`, `/api/tenants/${created}/`]) {
        const got = await api.call('GET', path, { token: admin });
        expect(got.status).to.equal(200);
        expect(got.body.name).to.equal(created);
      }
    });

    it('lists tenants with the paged shape', async () => {
      const all = await eventually('the new tenant in the list', async () => {
        const res = await api.call('GET', '/api/tenants?page_size=100', { token: admin });
        const names = (res.body.results as { name: string }[]).map((t) => t.name);
        return names.includes(created) && names.includes(home) ? res : undefined;
      });
      expect(all.status).to.equal(200);
      expect(all.body).to.have.keys('count', 'next', 'previous', 'results');
      expect(all.body.count).to.be.at.least(2);

      const first = await api.call('GET', '/api/tenants/?page=1&page_size=1', { token: admin });
      expect(first.body.results).to.have.length(1);
      expect(first.body.previous).to.equal(null);
      expect(first.body.next).to.contain('page=2');
      const second = await api.call('GET', '/api/tenants?page=2&page_size=1', { token: admin });
      expect(second.body.results[0].name).not.to.equal(first.body.results[0].name);
      expect(second.body.previous).to.contain('page=1');

      const search = await api.call('GET', `/api/tenants?search=${created}&plan=starter`, { token: admin });
      expect((search.body.results as { name: string }[]).map((t) => t.name)).to.deep.equal([created]);
      const bad = await api.call('GET', '/api/tenants?page_size=1000&sort=name', { token: admin });
      expect(bad.status).to.equal(400);
      expect((bad.body.errors as { field: string }[]).map((e) => e.field)).to.include.members([
        'page_size',
        'body',
      ]);
    });

    it('patches only the allowed fields', async () => {
      const res = await api.call('PATCH', `/api/tenants/${created}`, {
        token: admin,
        body: {
          display_name: 'Renamed',
          plan: 'professional',
          suspended: true,
          rate_limit_per_minute: 77,
          domains: ['made.example', 'other.example'],
        },
      });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.body).to.include({
        display_name: 'Renamed',
        plan: 'professional',
        suspended: true,
        rate_limit_per_minute: 77,
        rate_limit_override: true,
      });
      const spec = (await kubectlTenant(created)).spec;
      expect(spec).to.deep.include({
        displayName: 'Renamed',
        plan: 'professional',
        suspended: true,
        rateLimit: { requestsPerMinute: 77 },
        domains: ['made.example', 'other.example'],
      });

      const cleared = await api.call('PATCH', `/api/tenants/${created}/`, {
        token: admin,
        body: { rate_limit_per_minute: null, suspended: false },
      });
      expect(cleared.status).to.equal(200);
      expect(cleared.body).to.include({
        rate_limit_per_minute: planPolicies.professional.requestsPerMinute,
        rate_limit_override: false,
      });
      expect((await kubectlTenant(created)).spec).not.to.have.property('rateLimit');
    });

    it('turns self-registration on and off', async () => {
      for (const enabled of [true, false, true, false]) {
        const res = await api.call('PATCH', `/api/tenants/${created}`, {
          token: admin,
          body: { self_registration: enabled },
        });
        expect(res.status, JSON.stringify(res.body)).to.equal(200);
        expect(res.body.self_registration).to.equal(enabled);
        expect((await kubectlTenant(created)).spec.selfRegistration).to.equal(enabled);
        const read = await api.call('GET', `/api/tenants/${created}`, { token: admin });
        expect(read.body.self_registration).to.equal(enabled);
        // The API's own copy follows, so registration opens and closes with it.
        await eventually(`the directory to see selfRegistration ${enabled}`, () =>
          Promise.resolve(
            api.directory.get(created)?.tenant.spec.selfRegistration === enabled ? true : undefined,
          ),
        );
      }
      const bad = await api.call('PATCH', `/api/tenants/${created}`, {
        token: admin,
        body: { self_registration: 'no' },
      });
      expect(bad.status).to.equal(400);
      expect((bad.body.errors as { field: string }[]).map((e) => e.field)).to.deep.equal([
        'self_registration',
      ]);
    });

    it('refuses bad create and patch bodies with 400 naming the field', async () => {
      const creates: [Record<string, unknown>, string][] = [
        [{ name: 'Bad_Name', plan: 'free', owner_email: 'a@b.example' }, 'name'],
        [{ name: 'current', plan: 'free', owner_email: 'a@b.example' }, 'name'],
        [{ name: 'ok-name', plan: 'gold', owner_email: 'a@b.example' }, 'plan'],
        [{ name: 'ok-name', plan: 'free' }, 'owner_email'],
        [
          { name: 'ok-name', plan: 'free', owner_email: 'a@b.example', domains: ['not a domain'] },
          'domains.0',
        ],
        [{ name: 'ok-name', plan: 'free', owner_email: 'a@b.example', worker: { replicas: 3 } }, 'body'],
        [
          { name: 'ok-name', plan: 'free', owner_email: 'a@b.example', rate_limit_per_minute: 0 },
          'rate_limit_per_minute',
        ],
      ];
      for (const [body, field] of creates) {
        const res = await api.call('POST', '/api/tenants', { token: admin, body });
        expect(res.status, JSON.stringify(body)).to.equal(400);
        expect(res.headers.get('content-type')).to.contain('application/problem+json');
        expect((res.body.errors as { field: string }[]).map((e) => e.field)).to.include(field);
      }
      const patches: [unknown, string][] = [
        [{ owner_email: 'new@b.example' }, 'body'],
        [{ name: 'renamed' }, 'body'],
        [{ plan: 'gold' }, 'plan'],
        [{ suspended: 'yes' }, 'suspended'],
        [{}, 'body'],
        [{ domains: ['a.example', 'a.example'] }, 'domains'],
      ];
      for (const [body, field] of patches) {
        const res = await api.call('PATCH', `/api/tenants/${created}`, { token: admin, body });
        expect(res.status, JSON.stringify(body)).to.equal(400);
        expect((res.body.errors as { field: string }[]).map((e) => e.field)).to.include(field);
      }
      expect((await kubectlTenant(created)).spec.owner).to.deep.equal({ email: 'owner@made.example' });
    });

    it('answers 409 for a taken name and 404 for a missing tenant', async () => {
      const taken = await api.call('POST', '/api/tenants', {
        token: admin,
        body: { name: home, plan: 'free', owner_email: 'x@y.example' },
      });
      expect(taken.status).to.equal(409);
      for (const [method, body] of [
        ['GET', undefined],
        ['PATCH', { plan: 'free' }],
        ['DELETE', undefined],
      ] as const) {
        const res = await api.call(method, '/api/tenants/no-such-tenant', { token: admin, body });
        expect(res.status, method).to.equal(404);
        expect(res.headers.get('content-type')).to.contain('application/problem+json');
      }
    });

    it('deletes a tenant (202) and the operator finishes it', async () => {
      const res = await api.call('DELETE', `/api/tenants/${created}/`, { token: admin });
      expect(res.status).to.equal(202);
      expect(res.body).to.deep.equal({ name: created, phase: 'Deleting' });
      await eventually(
        'the Tenant to be gone',
        async () =>
          (await api.call('GET', `/api/tenants/${created}`, { token: admin })).status === 404
            ? true
            : undefined,
        { timeoutMs: 90_000, intervalMs: 500 },
      );
    });
  });

  describe('as anyone else', () => {
    it('refuses tenant users with 403, while /api/tenants/current keeps working for them', async () => {
      const calls: [string, string, unknown][] = [
        ['GET', '/api/tenants', undefined],
        ['GET', '/api/tenants/', undefined],
        ['POST', '/api/tenants', { name: 'sneaky', plan: 'free', owner_email: 'a@b.example' }],
        ['GET', `/api/tenants/${home}`, undefined],
        ['PATCH', `/api/tenants/${home}`, { plan: 'enterprise' }],
        ['DELETE', `/api/tenants/${home}`, undefined],
      ];
      for (const [method, path, body] of calls) {
        const res = await api.call(method, path, { token: owner, body });
        expect(res.status, `${method} ${path}`).to.equal(403);
        expect(res.headers.get('content-type')).to.contain('application/problem+json');
      }
      expect(await platform.cp.kubectl(['get', 'tenant', 'sneaky', '--ignore-not-found'])).to.equal('');
      expect((await kubectlTenant(home)).spec.plan).to.equal('starter');

      for (const path of ['/api/tenants/current', '/api/tenants/current/']) {
        const current = await api.call('GET', path, { token: owner });
        expect(current.status).to.equal(200);
        expect(current.body.name).to.equal(home);
      }
      const adminCurrent = await api.call('GET', '/api/tenants/current', { token: admin });
      expect(adminCurrent.status).to.equal(403);
    });

    it('refuses callers without a token with 401', async () => {
      expect((await api.call('GET', '/api/tenants')).status).to.equal(401);
      expect((await api.call('POST', '/api/tenants', { body: { name: 'x' } })).status).to.equal(401);
    });
  });
});
