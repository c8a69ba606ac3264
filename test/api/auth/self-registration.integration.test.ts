// Self-registration against Tenants provisioned by the real operator, real
// PostgreSQL and Redis: registering only mails the address, answers the same
// whether or not the address has an account, and never returns tokens; the
// account exists, verified, once the mailed token is presented with the
// registrant's password, and a token works once.
import { expect } from 'chai';
import { hashPassword } from '../../../api/src/auth/passwords.js';
import { emailVerifiedAt } from '../../../api/src/users/email-verification.js';
import { startTestApi, type TestApi } from '../../harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../../harness/platform.js';
import { serviceUrls, withPostgresAdmin } from '../../harness/services.js';

const password = 'correct horse battery staple 42';
const floorMs = 300;

const fieldsOf = (res: { body: any }): string[] =>
  (res.body.errors as { field: string }[]).map((e) => e.field);

describe('self-registration (real operator, PostgreSQL, Redis)', function () {
  this.timeout(180_000);
  let platform: TestPlatform;
  let api: TestApi;
  let open: string;
  let closed: string;
  let seq = 0;

  const dbOf = (tenant: string) => api.databases.for(tenant, api.directory.servable(tenant).credentials);
  const nextEmail = (label: string) => `${label}-${++seq}@${open}.example`;
  const register = (email: string, tenant = open, extra: Record<string, unknown> = {}) =>
    api.call('POST', '/api/auth/register', { body: { tenant, email, password, ...extra } });
  const verify = (token: string, pass = password, tenant = open) =>
    api.call('POST', '/api/auth/register/verify', { body: { tenant, token, password: pass } });
  const login = (email: string, pass = password, tenant = open) =>
    api.call('POST', '/api/auth/login', { body: { tenant, email, password: pass } });

  before(async () => {
    platform = await startTestPlatform('selfreg');
    open = platform.tenantName('open');
    closed = platform.tenantName('closed');
    await Promise.all([
      platform.applyTenant(open, '  selfRegistration: true\n'),
      platform.applyTenant(closed),
    ]);
    await Promise.all([platform.waitReady(open), platform.waitReady(closed)]);
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace, {
      registrationMinResponseMs: floorMs,
    });
  });

  after(async () => {
    await api?.close();
    await platform?.cleanup();
  });

  it('answers a new and an existing address identically (202, no tokens) and creates nothing', async () => {
    const existing = nextEmail('known');
    await dbOf(open).models.User.create({
      email: existing,
      role: 'member',
      first_name: null,
      last_name: null,
      department: null,
      external_id: null,
      password_hash: await hashPassword('the holder has another passw0rd'),
    });
    const fresh = nextEmail('fresh');
    const timed = async (email: string) => {
      const started = performance.now();
      const res = await register(email);
      return { res, ms: performance.now() - started };
    };
    const known = await timed(existing);
    const unknown = await timed(fresh);
    for (const { res, ms } of [known, unknown]) {
      expect(res.status, JSON.stringify(res.body)).to.equal(202);
      expect(res.body).to.deep.equal(known.res.body);
      expect(res.headers.get('content-length')).to.equal(known.res.headers.get('content-length'));
      expect(res.headers.get('cache-control')).to.equal('no-store');
      expect(res.body).not.to.have.any.keys('access_token', 'refresh_token', 'user');
      expect(JSON.stringify(res.body)).not.to.match(/rg_|pr_/);
      expect(ms).to.be.at.least(floorMs - 5);
    }
    expect(Math.abs(known.ms - unknown.ms)).to.be.below(200);

    // Nothing is written for the new address, so nothing can be pre-claimed, and it cannot sign in.
    expect(await dbOf(open).models.User.count({ where: { email: fresh } })).to.equal(0);
    expect((await login(fresh)).status).to.equal(401);
    // The existing holder hears that someone tried, with nothing in the mail that changes anything.
    const [notice] = api.mailer.to(existing);
    expect(notice?.kind).to.equal('registration-existing');
    expect(notice?.text).not.to.match(/\b(?:rg|pr)_[A-Za-z0-9_-]{43}\b/);
    expect(api.mailer.to(existing, 'registration')).to.have.length(0);
    expect((await login(existing)).status).to.equal(401);
    expect((await login(existing, 'the holder has another passw0rd')).status).to.equal(200);
  });

  it('creates the member, verified, from the mailed token once; then it signs in', async () => {
    const email = nextEmail('reg');
    expect((await register(email, open, { first_name: 'Reggie' })).status).to.equal(202);
    const token = await api.mailer.tokenFor(email, 'registration');
    expect((await login(email)).status).to.equal(401);

    const verified = await verify(token);
    expect(verified.status, JSON.stringify(verified.body)).to.equal(201);
    expect(verified.body).to.include({ email, role: 'member', first_name: 'Reggie', is_active: true });
    expect(verified.body).not.to.have.any.keys('access_token', 'password_hash');
    const row = await dbOf(open).models.User.findOne({ where: { email } });
    expect(await emailVerifiedAt(dbOf(open), row!.id)).to.be.instanceOf(Date);
    expect(row?.password_hash).to.match(/^\$argon2id\$/);

    const session = await login(email);
    expect(session.status).to.equal(200);
    expect(session.body.user.id).to.equal(verified.body.id);

    const again = await verify(token);
    expect(again.status).to.equal(400);
    expect(again.headers.get('content-type')).to.contain('application/problem+json');
    expect(again.body.errors).to.deep.equal([
      { field: 'token', message: 'is not valid: it is wrong, used or expired' },
    ]);
  });

  it('forgets the proof when an admin changes the address', async () => {
    const email = nextEmail('moving');
    expect((await register(email)).status).to.equal(202);
    const verified = await verify(await api.mailer.tokenFor(email, 'registration'));
    expect(verified.status).to.equal(201);
    const id = verified.body.id as string;
    expect(await emailVerifiedAt(dbOf(open), id)).to.be.instanceOf(Date);

    const adminEmail = nextEmail('admin');
    await dbOf(open).models.User.create({
      email: adminEmail,
      role: 'admin',
      first_name: null,
      last_name: null,
      department: null,
      external_id: null,
      password_hash: await hashPassword(password),
    });
    const token = (await login(adminEmail)).body.access_token as string;
    const renamed = await api.call('PATCH', `/api/users/${id}`, { token, body: { first_name: 'Same' } });
    expect(renamed.status).to.equal(200);
    expect(await emailVerifiedAt(dbOf(open), id)).to.be.instanceOf(Date);
    const moved = await api.call('PATCH', `/api/users/${id}`, { token, body: { email: nextEmail('moved') } });
    expect(moved.status, JSON.stringify(moved.body)).to.equal(200);
    expect(await emailVerifiedAt(dbOf(open), id)).to.equal(null);
  });

  it("needs the registrant's password with the token, and refuses wrong tokens with problem+json", async () => {
    const email = nextEmail('pw');
    expect((await register(email)).status).to.equal(202);
    const token = await api.mailer.tokenFor(email, 'registration');
    // Whoever reads the mailbox but did not register cannot confirm a stranger's password.
    const wrong = await verify(token, 'a guess that is not it 99');
    expect(wrong.status).to.equal(400);
    expect(fieldsOf(wrong)).to.deep.equal(['password']);
    expect(await dbOf(open).models.User.count({ where: { email } })).to.equal(0);

    for (const bad of ['rg_short', `rg_${'A'.repeat(43)}`, `pr_${token.slice(3)}`]) {
      const res = await verify(bad);
      expect(res.status, bad).to.equal(400);
      expect(res.headers.get('content-type')).to.contain('application/problem+json');
      expect(fieldsOf(res)).to.deep.equal(['token']);
    }
    // Tokens are kept per tenant; one without self-registration refuses before looking.
    expect((await verify(token, password, closed)).status).to.equal(403);
    // The wrong password did not use it up.
    expect((await verify(token)).status).to.equal(201);
  });

  it('leaves an address that got an account meanwhile alone', async () => {
    const email = nextEmail('race');
    expect((await register(email)).status).to.equal(202);
    const token = await api.mailer.tokenFor(email, 'registration');
    const holder = await dbOf(open).models.User.create({
      email,
      role: 'member',
      first_name: 'Holder',
      last_name: null,
      department: null,
      external_id: null,
      password_hash: await hashPassword('the holder has another passw0rd'),
    });
    const res = await verify(token);
    expect(res.status, JSON.stringify(res.body)).to.equal(409);
    expect(res.headers.get('content-type')).to.contain('application/problem+json');
    const after = await dbOf(open).models.User.findByPk(holder.id);
    expect(after?.first_name).to.equal('Holder');
    expect(await emailVerifiedAt(dbOf(open), holder.id)).to.equal(null);
    expect((await login(email)).status).to.equal(401);
  });

  it('keeps password sign-in and user management working on a tenant not yet migrated to v7', async () => {
    // As right after an upgrade, before the operator's Schema step reaches this tenant.
    const database = new URL(api.directory.servable(closed).credentials.uri).pathname.slice(1);
    const adminUrl = new URL(serviceUrls.postgres);
    adminUrl.pathname = `/${database}`;
    const alter = (sql: string) => withPostgresAdmin((c) => c.query(sql), adminUrl.toString());
    await alter('ALTER TABLE app.users DROP COLUMN email_verified_at');
    try {
      const email = `owner-${++seq}@${closed}.example`;
      await dbOf(closed).models.User.create({
        email,
        role: 'owner',
        first_name: null,
        last_name: null,
        department: null,
        external_id: null,
        password_hash: await hashPassword(password),
      });
      const session = await login(email, password, closed);
      expect(session.status, JSON.stringify(session.body)).to.equal(200);
      const token = session.body.access_token as string;
      expect((await api.call('GET', '/api/auth/profile', { token })).status).to.equal(200);
      const made = await api.call('POST', '/api/users', {
        token,
        body: { email: `made-${seq}@${closed}.example`, role: 'member' },
      });
      expect(made.status, JSON.stringify(made.body)).to.equal(201);
      expect((await api.call('GET', '/api/users', { token })).status).to.equal(200);
    } finally {
      await alter('ALTER TABLE app.users ADD COLUMN IF NOT EXISTS email_verified_at timestamptz');
    }
  });

  it('refuses where the tenant does not allow it, and weak passwords, before mailing anything', async () => {
    const email = `nobody-${++seq}@${closed}.example`;
    const res = await register(email, closed);
    expect(res.status).to.equal(403);
    expect(res.headers.get('content-type')).to.contain('application/problem+json');
    const weak = await api.call('POST', '/api/auth/register', {
      body: { tenant: open, email: nextEmail('weak'), password: 'short' },
    });
    expect(weak.status).to.equal(400);
    expect(fieldsOf(weak)).to.include('password');
    expect(api.mailer.to(email)).to.have.length(0);
  });
});
