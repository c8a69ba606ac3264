// Password reset through the mail port, against Tenants provisioned by the
// real operator, real PostgreSQL and Redis: the request never tells whether
// an account exists, the token travels only by mail, works once, at its own
// tenant, before it expires, and a reset ends every session.
import { expect } from 'chai';
import { QueryTypes } from 'sequelize';
import { hashPassword } from '../../../api/src/auth/passwords.js';
import { emailVerifiedAt } from '../../../api/src/users/email-verification.js';
import { startTestApi, type TestApi } from '../../harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../../harness/platform.js';
import { readyTenants } from '../../harness/seeded-tenants.js';

const oldPassword = 'correct horse battery staple 42';
const newPassword = 'Tr0ubadour & a new lamp';
const floorMs = 200;

describe('password reset (real operator, PostgreSQL, Redis)', function () {
  this.timeout(180_000);
  let platform: TestPlatform;
  let api: TestApi;
  let tenantA: string;
  let tenantB: string;
  let seq = 0;

  async function seedUser(tenant: string, label: string): Promise<{ id: string; email: string }> {
    seq += 1;
    const email = `${label}-${seq}@${tenant}.example`;
    const entry = api.directory.servable(tenant);
    const db = api.databases.for(tenant, entry.credentials);
    const user = await db.models.User.create({
      email,
      role: 'member',
      first_name: null,
      last_name: null,
      department: null,
      external_id: null,
      password_hash: await hashPassword(oldPassword),
    });
    return { id: user.id, email };
  }

  const requestReset = (tenant: string, email: string, path = '/api/auth/password/reset') =>
    api.call('POST', path, { body: { tenant, email } });
  const confirm = (tenant: string, token: string, password = newPassword) =>
    api.call('POST', '/api/auth/password/reset/confirm', { body: { tenant, token, password } });
  const login = (tenant: string, email: string, password: string) =>
    api.call('POST', '/api/auth/login', { body: { tenant, email, password } });

  before(async () => {
    platform = await startTestPlatform('pwreset');
    [tenantA, tenantB] = await readyTenants(platform, ['a', 'b']);
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace, {
      passwordResetMinResponseMs: floorMs,
    });
  });

  after(async () => {
    await api?.close();
    await platform?.cleanup();
  });

  it('answers an existing and an unknown email identically, and mails only the existing one', async () => {
    const user = await seedUser(tenantA, 'known');
    const unknown = `ghost-${Date.now()}@${tenantA}.example`;
    const timed = async (email: string, tenant = tenantA) => {
      const started = performance.now();
      const res = await requestReset(tenant, email);
      return { res, ms: performance.now() - started };
    };
    const known = await timed(user.email);
    const ghost = await timed(unknown);
    const noTenant = await timed(user.email, 'no-such-tenant');
    for (const { res, ms } of [known, ghost, noTenant]) {
      expect(res.status).to.equal(202);
      expect(res.body).to.deep.equal(known.res.body);
      expect(res.headers.get('content-type')).to.equal(known.res.headers.get('content-type'));
      expect(res.headers.get('content-length')).to.equal(known.res.headers.get('content-length'));
      expect(JSON.stringify(res.body)).not.to.match(/pr_/);
      // Every answer waits for the floor; the work behind a known account fits inside it.
      expect(ms).to.be.at.least(floorMs - 5);
    }
    expect(Math.abs(known.ms - ghost.ms)).to.be.below(150);
    expect(api.mailer.to(user.email)).to.have.length(1);
    expect(api.mailer.to(unknown)).to.have.length(0);
    const [mail] = api.mailer.to(user.email);
    expect(mail!.kind).to.equal('password-reset');
    expect(mail!.text).to.match(/pr_[A-Za-z0-9_-]{43}/);
  });

  it('sets the password once with the mailed token, ends every session and audits it', async () => {
    const user = await seedUser(tenantA, 'reset');
    const session = await login(tenantA, user.email, oldPassword);
    expect(session.status).to.equal(200);

    expect((await requestReset(tenantA, user.email, '/api/auth/password/reset/')).status).to.equal(202);
    const token = await api.mailer.tokenFor(user.email, 'password-reset');
    const confirmed = await api.call('POST', '/api/auth/password/reset/confirm/', {
      body: { tenant: tenantA, token, password: newPassword },
    });
    expect(confirmed.status, JSON.stringify(confirmed.body)).to.equal(204);

    expect((await login(tenantA, user.email, oldPassword)).status).to.equal(401);
    expect((await login(tenantA, user.email, newPassword)).status).to.equal(200);
    const refresh = await api.call('POST', '/api/auth/token', {
      body: { grant_type: 'refresh_token', refresh_token: session.body.refresh_token },
    });
    // RFC 6749 §5.2: a revoked refresh token is invalid_grant, 400.
    expect(refresh.status).to.equal(400);
    expect(refresh.body.error).to.equal('invalid_grant');

    const again = await confirm(tenantA, token, 'Another fine passw0rd!');
    expect(again.status).to.equal(400);
    expect(again.headers.get('content-type')).to.contain('application/problem+json');
    expect(again.body.errors).to.deep.equal([
      { field: 'token', message: 'is not valid: it is wrong, used or expired' },
    ]);
    expect((await login(tenantA, user.email, newPassword)).status).to.equal(200);

    const db = api.databases.for(tenantA, api.directory.servable(tenantA).credentials);
    const rows = await db.sequelize.query<{ action: string; diff: unknown }>(
      `SELECT action, diff FROM app.audit_log WHERE resource_id = $1 ORDER BY id`,
      { bind: [user.id], type: QueryTypes.SELECT },
    );
    const actions = rows.map((r) => r.action);
    expect(actions).to.include.members(['password_reset_requested', 'password_reset']);
    const diff = JSON.stringify(rows.find((r) => r.action === 'password_reset')!.diff);
    expect(diff).to.contain('[redacted]');
    expect(diff).not.to.contain('$argon2');
    // The token reached the address, so the address is proven (SSO then links rather than takes over).
    expect(await emailVerifiedAt(db, user.id)).to.be.instanceOf(Date);
  });

  it('refuses a weak password without using up the token', async () => {
    const user = await seedUser(tenantA, 'weak');
    await requestReset(tenantA, user.email);
    const token = await api.mailer.tokenFor(user.email, 'password-reset');
    for (const weak of ['short', 'password123456', user.email]) {
      const res = await confirm(tenantA, token, weak);
      expect(res.status).to.equal(400);
      expect((res.body.errors as { field: string }[]).every((e) => e.field === 'password')).to.equal(true);
    }
    // The user's address changed after the mail went out: the token still sets the password, but
    // proves only the old address, so the new one is not marked verified.
    const db = api.databases.for(tenantA, api.directory.servable(tenantA).credentials);
    await db.models.User.update({ email: `moved-${user.email}` }, { where: { id: user.id } });
    expect((await confirm(tenantA, token)).status).to.equal(204);
    expect(await emailVerifiedAt(db, user.id)).to.equal(null);
  });

  it('does not accept a token at another tenant', async () => {
    const user = await seedUser(tenantA, 'cross');
    await requestReset(tenantA, user.email);
    const token = await api.mailer.tokenFor(user.email, 'password-reset');
    const elsewhere = await confirm(tenantB, token);
    expect(elsewhere.status).to.equal(400);
    expect(elsewhere.body.errors[0].field).to.equal('token');
    // Still good at its own tenant.
    expect((await confirm(tenantA, token)).status).to.equal(204);
  });

  it('replaces an earlier token when another reset is requested', async () => {
    const user = await seedUser(tenantA, 'twice');
    await requestReset(tenantA, user.email);
    await requestReset(tenantA, user.email);
    const first = await api.mailer.tokenFor(user.email, 'password-reset', 0);
    const second = await api.mailer.tokenFor(user.email, 'password-reset', 1);
    expect(first).not.to.equal(second);
    expect((await confirm(tenantA, first)).status).to.equal(400);
    expect((await confirm(tenantA, second)).status).to.equal(204);
  });

  it('refuses an expired token', async () => {
    const shortLived = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace, {
      passwordResetTtlMs: 1000,
    });
    try {
      const user = await seedUser(tenantA, 'expired');
      await shortLived.call('POST', '/api/auth/password/reset', {
        body: { tenant: tenantA, email: user.email },
      });
      const token = await shortLived.mailer.tokenFor(user.email, 'password-reset');
      await new Promise((ok) => setTimeout(ok, 1500));
      const res = await shortLived.call('POST', '/api/auth/password/reset/confirm', {
        body: { tenant: tenantA, token, password: newPassword },
      });
      expect(res.status).to.equal(400);
      expect(res.body.errors[0].field).to.equal('token');
      expect((await login(tenantA, user.email, oldPassword)).status).to.equal(200);
    } finally {
      await shortLived.close();
    }
  });

  it('sends nothing for a deactivated account', async () => {
    const user = await seedUser(tenantA, 'inactive');
    const db = api.databases.for(tenantA, api.directory.servable(tenantA).credentials);
    await db.models.User.update({ is_active: false }, { where: { id: user.id } });
    expect((await requestReset(tenantA, user.email)).status).to.equal(202);
    expect(api.mailer.to(user.email)).to.have.length(0);
  });

  it('names the fields of bad bodies and refuses made-up tokens', async () => {
    const bad = await api.call('POST', '/api/auth/password/reset', {
      body: { tenant: 'Bad_Name', email: 'not-an-email', extra: true },
    });
    expect(bad.status).to.equal(400);
    expect(bad.headers.get('content-type')).to.contain('application/problem+json');
    expect((bad.body.errors as { field: string }[]).map((e) => e.field)).to.include.members([
      'tenant',
      'email',
      'body',
    ]);

    const missing = await api.call('POST', '/api/auth/password/reset/confirm', { body: { tenant: tenantA } });
    expect(missing.status).to.equal(400);
    expect((missing.body.errors as { field: string }[]).map((e) => e.field)).to.include.members([
      'token',
      'password',
    ]);

    for (const token of ['nope', `pr_${'A'.repeat(43)}`]) {
      const res = await confirm(tenantA, token);
      expect(res.status).to.equal(400);
      expect(res.body.errors[0].field).to.equal('token');
    }
    expect((await confirm('no-such-tenant', `pr_${'A'.repeat(43)}`)).status).to.equal(404);
  });

  it('limits reset requests per account like the other sign-in endpoints', async () => {
    const email = `flood-${Date.now()}@${tenantB}.example`;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i += 1) statuses.push((await requestReset(tenantB, email)).status);
    expect(statuses.slice(0, 5)).to.deep.equal([202, 202, 202, 202, 202]);
    expect(statuses[5]).to.equal(429);
  });
});
