// The shared API against Tenants provisioned by the real operator: sign-in,
// tokens, users and roles, tenant isolation and error handling.
import { expect } from 'chai';
import type { Role } from '../../lib/tenant/index.js';
import { platformAdminClient, startTestApi, type TestApi } from '../harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../harness/platform.js';
import {
  seededPassword as password,
  readyTenants,
  seedTenants,
  seedUser as seedUserAs,
  type SeededUser,
} from '../harness/seeded-tenants.js';

describe('shared API (real operator, PostgreSQL and control plane)', function () {
  this.timeout(180_000);
  let platform: TestPlatform;
  let api: TestApi;
  let tenantA: string;
  let tenantB: string;
  let tokens: Record<string, SeededUser>;

  const profile = (_tenant: string, role: Role) => ({ department: role === 'member' ? 'sales' : 'it' });
  const seedUser = (tenant: string, email: string, role: Role) =>
    seedUserAs(api, tenant, role, email, profile(tenant, role));

  async function login(tenant: string, email: string) {
    const res = await api.call('POST', '/api/auth/login', { body: { tenant, email, password } });
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    return res.body as {
      access_token: string;
      refresh_token: string;
      expires_in: number;
      user: { role: string };
    };
  }

  before(async () => {
    platform = await startTestPlatform('api');
    [tenantA, tenantB] = await readyTenants(platform, ['a', 'b']);
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace);
    await new Promise((ok) => setTimeout(ok, 500));
    ({ users: tokens } = await seedTenants(api, [tenantA, tenantB], { profile }));
  });

  after(async () => {
    await api?.close();
    await platform?.cleanup();
  });

  const token = (tenant: string, role: string) => tokens[`${tenant}/${role}`]!.access;

  describe('sign-in', () => {
    it('logs in with a password and returns the documented shape', async () => {
      const session = await login(tenantA, `owner@${tenantA}.example`);
      expect(session).to.include.keys('access_token', 'refresh_token', 'token_type', 'expires_in', 'user');
      expect(session.user.role).to.equal('owner');
      expect(session.expires_in).to.equal(900);
    });

    it('answers a wrong password and an unknown email alike, as problem+json', async () => {
      const wrong = await api.call('POST', '/api/auth/login', {
        body: { tenant: tenantA, email: `owner@${tenantA}.example`, password: 'nope' },
      });
      const unknown = await api.call('POST', '/api/auth/login', {
        body: { tenant: tenantA, email: `ghost@${tenantA}.example`, password: 'nope' },
      });
      for (const res of [wrong, unknown]) {
        expect(res.status).to.equal(401);
        expect(res.headers.get('content-type')).to.contain('application/problem+json');
        expect(res.body.detail).to.equal('the email or password is wrong');
      }
    });

    it('names the fields of a bad login body and rejects unknown fields', async () => {
      const res = await api.call('POST', '/api/auth/login', {
        body: { tenant: 'Bad_Name', email: 'x', password: '', extra: 1 },
      });
      expect(res.status).to.equal(400);
      const fields = (res.body.errors as { field: string }[]).map((e) => e.field);
      expect(fields).to.include.members(['tenant', 'email', 'password', 'body']);
    });

    it('refuses a tenant that does not exist with 404', async () => {
      const res = await api.call('POST', '/api/auth/login', {
        body: { tenant: 'no-such-tenant', email: 'a@b.example', password },
      });
      expect(res.status).to.equal(404);
    });

    it('issues tokens through the token endpoint with form encoding too', async () => {
      const form = new URLSearchParams({
        grant_type: 'password',
        tenant: tenantA,
        username: `admin@${tenantA}.example`,
        password,
      });
      const res = await api.call('POST', '/api/auth/token/', {
        body: form.toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(res.status).to.equal(200);
      expect(res.headers.get('cache-control')).to.equal('no-store');
      expect(res.body.user.role).to.equal('admin');
    });

    it('rotates refresh tokens and revokes the family when one is reused', async () => {
      const session = await login(tenantA, `member@${tenantA}.example`);
      const first = await api.call('POST', '/api/auth/token', {
        body: { grant_type: 'refresh_token', refresh_token: session.refresh_token },
      });
      expect(first.status).to.equal(200);
      expect(first.body.refresh_token).not.to.equal(session.refresh_token);
      const reuse = await api.call('POST', '/api/auth/token', {
        body: { grant_type: 'refresh_token', refresh_token: session.refresh_token },
      });
      // RFC 6749 §5.2: an unusable refresh token is invalid_grant, 400.
      expect(reuse.status).to.equal(400);
      expect(reuse.body.error).to.equal('invalid_grant');
      // The whole family is gone: the newest token no longer works either.
      const next = await api.call('POST', '/api/auth/token', {
        body: { grant_type: 'refresh_token', refresh_token: first.body.refresh_token },
      });
      expect(next.status).to.equal(400);
    });

    it('logs out by revoking the refresh token', async () => {
      const session = await login(tenantA, `member@${tenantA}.example`);
      expect(
        (await api.call('POST', '/api/auth/logout', { body: { refresh_token: session.refresh_token } }))
          .status,
      ).to.equal(204);
      const res = await api.call('POST', '/api/auth/token', {
        body: { grant_type: 'refresh_token', refresh_token: session.refresh_token },
      });
      expect(res.status).to.equal(400);
    });

    it('reads and updates the profile, and changes the password', async () => {
      const email = `changer@${tenantA}.example`;
      await seedUser(tenantA, email, 'member');
      const session = await login(tenantA, email);
      const profile = await api.call('PATCH', '/api/auth/profile/', {
        token: session.access_token,
        body: { first_name: 'Ada' },
      });
      expect(profile.status).to.equal(200);
      expect(profile.body.first_name).to.equal('Ada');
      const weak = await api.call('POST', '/api/auth/password/change', {
        token: session.access_token,
        body: { current_password: password, new_password: 'short' },
      });
      expect(weak.status).to.equal(400);
      expect(weak.body.errors[0].field).to.equal('new_password');
      const changed = await api.call('POST', '/api/auth/password/change', {
        token: session.access_token,
        body: { current_password: password, new_password: 'a much better passphrase 2026' },
      });
      expect(changed.status).to.equal(204);
      // Every refresh token of the user is revoked by a password change.
      const refresh = await api.call('POST', '/api/auth/token', {
        body: { grant_type: 'refresh_token', refresh_token: session.refresh_token },
      });
      expect(refresh.status).to.equal(400);
    });

    it('publishes the signing keys at /.well-known/jwks.json', async () => {
      const res = await api.call('GET', '/.well-known/jwks.json');
      expect(res.status).to.equal(200);
      expect(res.body.keys[0]).to.include({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
      expect(res.body.keys[0]).not.to.have.property('d');
    });

    it('gives the platform admin a token by client credentials, which no tenant route accepts', async () => {
      const res = await api.call('POST', '/api/auth/token', {
        body: {
          grant_type: 'client_credentials',
          client_id: platformAdminClient.clientId,
          client_secret: platformAdminClient.clientSecret,
        },
      });
      expect(res.status).to.equal(200);
      expect((await api.call('GET', '/api/users', { token: res.body.access_token })).status).to.equal(403);
      const bad = await api.call('POST', '/api/auth/token', {
        body: {
          grant_type: 'client_credentials',
          client_id: platformAdminClient.clientId,
          client_secret: 'wrong',
        },
      });
      expect(bad.status).to.equal(401);
    });
  });

  describe('tokens', () => {
    it('rejects a missing, malformed, tampered or alg:none token with 401', async () => {
      const good = token(tenantA, 'owner');
      const [h, p] = good.split('.');
      const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${p}.`;
      const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
      const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, tid: tenantB })).toString('base64url')}.${good.split('.')[2]}`;
      for (const bad of [undefined, 'garbage', none, tampered]) {
        const res = await api.call('GET', '/api/users', bad === undefined ? {} : { token: bad });
        expect(res.status, String(bad)).to.equal(401);
        expect(res.headers.get('www-authenticate')).to.equal('Bearer');
      }
    });
  });

  describe('users and roles', () => {
    it('lists with pagination, filters, search and ordering in the prototype shape', async () => {
      const res = await api.call('GET', '/api/users/?page_size=2&ordering=-email', {
        token: token(tenantA, 'member'),
      });
      expect(res.status).to.equal(200);
      expect(res.body).to.have.keys('count', 'next', 'previous', 'results');
      expect(res.body.results).to.have.length(2);
      expect(res.body.previous).to.equal(null);
      expect(res.body.next).to.contain('page=2');
      const emails = (res.body.results as { email: string }[]).map((u) => u.email);
      expect(emails).to.deep.equal([...emails].sort().reverse());
      const filtered = await api.call('GET', '/api/users?role=admin', { token: token(tenantA, 'member') });
      expect((filtered.body.results as { role: string }[]).every((u) => u.role === 'admin')).to.be.true;
      const search = await api.call('GET', `/api/users?search=member@${tenantA}`, {
        token: token(tenantA, 'member'),
      });
      expect(search.body.count).to.equal(1);
      const dept = await api.call('GET', '/api/users?department=sales&is_active=true', {
        token: token(tenantA, 'member'),
      });
      expect((dept.body.results as { department: string }[]).every((u) => u.department === 'sales')).to.be
        .true;
      // Filters bound the count and the page alike, on every page.
      const filter = `is_active=true&search=${tenantA}&ordering=-email`;
      const members = await api.call('GET', `/api/users?${filter}&page_size=100`, {
        token: token(tenantA, 'member'),
      });
      const second = await api.call('GET', `/api/users?${filter}&page_size=1&page=2`, {
        token: token(tenantA, 'member'),
      });
      expect(members.body.results).to.have.length.at.least(2);
      expect(second.body.count).to.equal(members.body.count).and.equal(members.body.results.length);
      expect(second.body.results).to.deep.equal([members.body.results[1]]);
    });

    it('lists each user exactly as GET /api/users/:id shows it, and counts past the last page', async () => {
      const member = token(tenantA, 'member');
      const all = await api.call('GET', '/api/users?page_size=100&ordering=created_at', { token: member });
      expect(all.status).to.equal(200);
      const listed = all.body.results as { id: string; created_at: string }[];
      expect(listed.length).to.be.at.least(2);
      for (const user of listed) {
        const one = await api.call('GET', `/api/users/${user.id}`, { token: member });
        expect(user).to.deep.equal(one.body);
      }
      const times = listed.map((u) => Date.parse(u.created_at));
      expect(times).to.deep.equal([...times].sort((a, b) => a - b));
      const past = await api.call('GET', '/api/users?page=50&page_size=100', { token: member });
      expect(past.body).to.deep.include({ count: all.body.count, results: [], next: null });
      expect(past.body.previous).to.contain('page=49');
      // LIKE wildcards in a search are literal characters.
      const wild = await api.call('GET', '/api/users?search=%25_%25', { token: member });
      expect(wild.body).to.deep.include({ count: 0, results: [] });
    });

    it('caps the page size and names bad query parameters', async () => {
      const res = await api.call('GET', '/api/users?page_size=1000&ordering=password_hash', {
        token: token(tenantA, 'member'),
      });
      expect(res.status).to.equal(400);
      expect((res.body.errors as { field: string }[]).map((e) => e.field).sort()).to.deep.equal([
        'ordering',
        'page_size',
      ]);
    });

    it('lets owners and admins create users, with 201 and the documented fields', async () => {
      const res = await api.call('POST', '/api/users', {
        token: token(tenantA, 'admin'),
        body: { email: `new@${tenantA}.example`, first_name: 'New', last_name: 'User', role: 'member' },
      });
      expect(res.status).to.equal(201);
      expect(res.body).to.include.keys('id', 'email', 'role', 'is_active', 'external_id');
      const duplicate = await api.call('POST', '/api/users', {
        token: token(tenantA, 'admin'),
        body: { email: `NEW@${tenantA}.example`, role: 'member' },
      });
      expect(duplicate.status).to.equal(409);
    });

    it('enforces the role matrix', async () => {
      const create = (role: string, newRole: string) =>
        api.call('POST', '/api/users', {
          token: token(tenantA, role),
          body: { email: `${role}-makes-${newRole}-${Date.now()}@${tenantA}.example`, role: newRole },
        });
      expect((await create('member', 'member')).status).to.equal(403);
      expect((await create('admin', 'owner')).status).to.equal(403);
      expect((await create('admin', 'admin')).status).to.equal(201);
      expect((await create('owner', 'owner')).status).to.equal(201);
      const owners = await api.call('GET', '/api/users?role=owner', { token: token(tenantA, 'admin') });
      const ownerId = (owners.body.results as { id: string }[])[0]!.id;
      expect(
        (
          await api.call('PATCH', `/api/users/${ownerId}`, {
            token: token(tenantA, 'admin'),
            body: { first_name: 'x' },
          })
        ).status,
      ).to.equal(403);
      expect(
        (await api.call('DELETE', `/api/users/${ownerId}`, { token: token(tenantA, 'admin') })).status,
      ).to.equal(403);
      expect(
        (await api.call('GET', `/api/users/${ownerId}`, { token: token(tenantA, 'member') })).status,
      ).to.equal(200);
      expect(
        (await api.call('GET', '/api/tenants/current', { token: token(tenantA, 'member') })).body.name,
      ).to.equal(tenantA);
    });

    it('updates, deactivates, activates and deletes users', async () => {
      const created = await api.call('POST', '/api/users', {
        token: token(tenantA, 'owner'),
        body: { email: `cycle@${tenantA}.example`, role: 'member' },
      });
      const id = created.body.id as string;
      const patched = await api.call('PATCH', `/api/users/${id}/`, {
        token: token(tenantA, 'owner'),
        body: { department: 'ops' },
      });
      expect(patched.body.department).to.equal('ops');
      expect(
        (await api.call('POST', `/api/users/${id}/deactivate`, { token: token(tenantA, 'owner') })).body
          .is_active,
      ).to.equal(false);
      expect(
        (await api.call('POST', `/api/users/${id}/activate`, { token: token(tenantA, 'owner') })).body
          .is_active,
      ).to.equal(true);
      expect(
        (await api.call('DELETE', `/api/users/${id}`, { token: token(tenantA, 'owner') })).status,
      ).to.equal(204);
      expect((await api.call('GET', `/api/users/${id}`, { token: token(tenantA, 'owner') })).status).to.equal(
        404,
      );
    });

    it('creates in bulk with a result per item', async () => {
      const res = await api.call('POST', '/api/users/bulk', {
        token: token(tenantA, 'admin'),
        body: {
          users: [
            { email: `bulk1@${tenantA}.example` },
            { email: 'not-an-email' },
            { email: `bulk1@${tenantA}.example` },
          ],
        },
      });
      expect(res.status).to.equal(200);
      expect((res.body.results as { status: number }[]).map((r) => r.status)).to.deep.equal([201, 400, 409]);
    });
  });

  describe('audit log', () => {
    it('records every mutation and sign-in, with secrets redacted, and verifies the chain', async () => {
      const owner = token(tenantA, 'owner');
      const created = await api.call('POST', '/api/users', {
        token: owner,
        body: {
          email: `audited@${tenantA}.example`,
          role: 'member',
          password: 'an entirely decent passphrase 7',
        },
      });
      const id = created.body.id as string;
      await api.call('PATCH', `/api/users/${id}`, { token: owner, body: { department: 'audit' } });
      await api.call('DELETE', `/api/users/${id}`, { token: owner });
      await api.call('POST', '/api/auth/login', {
        body: { tenant: tenantA, email: `audited@${tenantA}.example`, password: 'wrong' },
      });
      const log = await api.call('GET', `/api/audit-logs?resource_id=${id}&page_size=10`, { token: owner });
      expect(log.status).to.equal(200);
      const actions = (log.body.results as { action: string }[]).map((r) => r.action).sort();
      expect(actions).to.deep.equal(['create', 'delete', 'update']);
      expect(JSON.stringify(log.body.results)).not.to.contain('passphrase');
      const failed = await api.call('GET', '/api/audit-logs?action=login_failed', { token: owner });
      expect(failed.body.count).to.be.greaterThan(0);
      const logins = await api.call('GET', '/api/audit-logs?action=login', { token: owner });
      expect(logins.body.count).to.be.greaterThan(0);
      const verify = await api.call('GET', '/api/audit-logs/verify', { token: owner });
      expect(verify.body).to.include({ intact: true, first_bad_id: null });
      expect(verify.body.checked).to.be.greaterThan(3);
      expect((await api.call('GET', '/api/audit-logs', { token: token(tenantA, 'member') })).status).to.equal(
        403,
      );
    });
  });

  describe('rate limits', () => {
    it('sends RateLimit headers on tenant routes and sign-in', async () => {
      const res = await api.call('GET', '/api/users', { token: token(tenantA, 'member') });
      expect(res.headers.get('ratelimit')).to.be.a('string');
      expect(res.headers.get('ratelimit-policy')).to.be.a('string');
      const signIn = await api.call('POST', '/api/auth/login', {
        body: { tenant: tenantA, email: `owner@${tenantA}.example`, password },
      });
      expect(signIn.headers.get('ratelimit')).to.be.a('string');
    });
  });

  describe('tenant isolation', () => {
    it('never reads, writes or counts the other tenant by id, list, filter, header or body', async () => {
      const bUsers = await api.call('GET', '/api/users?page_size=100', { token: token(tenantB, 'owner') });
      const bId = (bUsers.body.results as { id: string }[])[0]!.id;
      const a = token(tenantA, 'owner');
      expect((await api.call('GET', `/api/users/${bId}`, { token: a })).status).to.equal(404);
      expect(
        (await api.call('PATCH', `/api/users/${bId}`, { token: a, body: { first_name: 'pwned' } })).status,
      ).to.equal(404);
      expect((await api.call('DELETE', `/api/users/${bId}`, { token: a })).status).to.equal(404);
      const withHeader = await api.call('GET', `/api/users?search=${tenantB}`, {
        token: a,
        headers: { 'x-tenant-id': tenantB, 'x-tenant': tenantB },
      });
      expect(withHeader.body.count).to.equal(0);
      const withBody = await api.call('POST', '/api/users', {
        token: a,
        body: { email: `x@${tenantB}.example`, tenant: tenantB },
      });
      expect(withBody.status).to.equal(400);
      const aList = await api.call('GET', '/api/users?page_size=100', { token: a });
      expect((aList.body.results as { email: string }[]).every((u) => u.email.endsWith(`${tenantA}.example`)))
        .to.be.true;
    });

    it('keeps concurrent requests for different tenants in their own databases', async () => {
      const requests = Array.from({ length: 40 }, (_, i) => {
        const tenant = i % 2 === 0 ? tenantA : tenantB;
        return api
          .call('GET', '/api/users?page_size=100', { token: token(tenant, 'member') })
          .then((res) => ({ tenant, res }));
      });
      for (const { tenant, res } of await Promise.all(requests)) {
        expect(res.status).to.equal(200);
        expect((res.body.results as { email: string }[]).every((u) => u.email.endsWith(`${tenant}.example`)))
          .to.be.true;
      }
    });
  });

  describe('errors', () => {
    it('answers 413 for an oversized body and 400 for malformed JSON, as problem+json', async () => {
      const big = await api.call('POST', '/api/auth/login', {
        body: JSON.stringify({ tenant: tenantA, email: 'a@b.example', password: 'x'.repeat(100_000) }),
      });
      expect(big.status).to.equal(413);
      const bad = await api.call('POST', '/api/auth/login', { body: '{"tenant":' });
      expect(bad.status).to.equal(400);
      for (const res of [big, bad]) {
        expect(res.headers.get('content-type')).to.contain('application/problem+json');
        expect(res.body).to.include.keys('type', 'title', 'status', 'detail');
      }
    });

    it('answers an unknown route with a problem and carries a request id', async () => {
      const res = await api.call('GET', '/api/nothing-here', { headers: { 'x-request-id': 'trace-123' } });
      expect(res.status).to.equal(404);
      expect(res.headers.get('x-request-id')).to.equal('trace-123');
      expect(res.body.request_id).to.equal('trace-123');
    });

    it('refuses a suspended tenant with 403', async () => {
      await platform.cp.kubectl([
        'patch',
        'tenant',
        tenantB,
        '--type=merge',
        '-p',
        '{"spec":{"suspended":true}}',
      ]);
      try {
        let status = 0;
        for (let i = 0; i < 50 && status !== 403; i++) {
          status = (await api.call('GET', '/api/users', { token: token(tenantB, 'member') })).status;
          if (status !== 403) await new Promise((ok) => setTimeout(ok, 200));
        }
        expect(status).to.equal(403);
      } finally {
        await platform.cp.kubectl([
          'patch',
          'tenant',
          tenantB,
          '--type=merge',
          '-p',
          '{"spec":{"suspended":false}}',
        ]);
      }
    });
  });
});
