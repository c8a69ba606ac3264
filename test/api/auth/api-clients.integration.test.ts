// Per-tenant API clients and the client_credentials grant, against Tenants
// provisioned by the real operator, their PostgreSQL databases and the control plane.
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { QueryTypes } from 'sequelize';
import { startTestApi, type TestApi } from '../../harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../../harness/platform.js';
import { readyTenants, seedTenants } from '../../harness/seeded-tenants.js';

interface CreatedClient {
  id: string;
  client_id: string;
  client_secret: string;
  name: string;
  role: string;
}

describe('API clients and the client_credentials grant', function () {
  this.timeout(180_000);
  let platform: TestPlatform;
  let api: TestApi;
  let tenantA: string;
  let tenantB: string;
  let access: Record<string, string>;

  async function createClient(tenant: string, role: 'admin' | 'member', name = `${role} bot`) {
    const res = await api.call('POST', '/api/clients', {
      token: access[`${tenant}/owner`]!,
      body: { name, role },
    });
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    return res.body as CreatedClient;
  }

  function clientToken(clientId: string, clientSecret: string) {
    return api.call('POST', '/api/auth/token', {
      body: { grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret },
    });
  }

  function tenantDb(tenant: string) {
    return api.databases.for(tenant, api.directory.servable(tenant).credentials).sequelize;
  }

  before(async () => {
    platform = await startTestPlatform('apiclients');
    [tenantA, tenantB] = await readyTenants(platform, ['a', 'b']);
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace);
    ({ access } = await seedTenants(api, [tenantA, tenantB]));
  });

  after(async () => {
    await api?.close();
    await platform?.cleanup();
  });

  it('creates a member client, shows its secret once, and its token calls /api/users as a member', async () => {
    const created = await createClient(tenantA, 'member', 'reporting');
    expect(created.client_id).to.match(new RegExp(`^${tenantA}\\.cl_[A-Za-z0-9_-]{22}$`));
    expect(created.client_secret).to.match(/^cs_[A-Za-z0-9_-]{43}$/);
    expect(created).to.include({ name: 'reporting', role: 'member' });

    const res = await clientToken(created.client_id, created.client_secret);
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    expect(res.headers.get('cache-control')).to.equal('no-store');
    expect(res.body).to.have.keys('access_token', 'token_type', 'expires_in');
    expect(res.body.token_type).to.equal('Bearer');
    const claims = await api.tokens.verifyAccessToken(res.body.access_token as string);
    expect(claims).to.include({ sub: created.id, tid: tenantA, role: 'member', clientId: created.client_id });

    const users = await api.call('GET', '/api/users/', { token: res.body.access_token as string });
    expect(users.status).to.equal(200);
    expect((users.body.results as { email: string }[]).map((u) => u.email)).to.include(
      `member@${tenantA}.example`,
    );
    // A member client reads; it does not manage users.
    const create = await api.call('POST', '/api/users', {
      token: res.body.access_token as string,
      body: { email: `x@${tenantA}.example`, role: 'member' },
    });
    expect(create.status).to.equal(403);

    const [row] = await tenantDb(tenantA).query<{ last_used_at: Date | null }>(
      'SELECT last_used_at FROM app.api_clients WHERE id = $1',
      { bind: [created.id], type: QueryTypes.SELECT },
    );
    expect(row?.last_used_at).to.be.instanceOf(Date);
  });

  it('accepts the form-encoded grant with a trailing slash', async () => {
    const created = await createClient(tenantA, 'member');
    const res = await api.call('POST', '/api/auth/token/', {
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: created.client_id,
        client_secret: created.client_secret,
      }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
  });

  it('gives an admin client an admin token that still cannot act as a user', async () => {
    const created = await createClient(tenantA, 'admin');
    const res = await clientToken(created.client_id, created.client_secret);
    expect(res.status).to.equal(200);
    const token = res.body.access_token as string;
    expect((await api.tokens.verifyAccessToken(token)).role).to.equal('admin');
    // It manages users like an admin...
    const user = await api.call('POST', '/api/users', {
      token,
      body: { email: `made-by-client@${tenantA}.example`, role: 'member' },
    });
    expect(user.status, JSON.stringify(user.body)).to.equal(201);
    // ...but never API clients, a profile or a password.
    for (const [method, path, body] of [
      ['GET', '/api/clients', undefined],
      ['POST', '/api/clients', { name: 'x', role: 'member' }],
      ['POST', '/api/clients', { bad: true }],
      ['DELETE', `/api/clients/${created.id}`, undefined],
      ['GET', '/api/auth/profile', undefined],
      ['PATCH', '/api/auth/profile', { first_name: 'x' }],
      ['POST', '/api/auth/password/change', { current_password: 'x', new_password: 'y' }],
    ] as const) {
      const answer = await api.call(method, path, { token, ...(body ? { body } : {}) });
      expect(answer.status, `${method} ${path}`).to.equal(403);
      expect(answer.headers.get('content-type')).to.contain('application/problem+json');
    }
  });

  it('rejects a revoked client with invalid_client', async () => {
    const created = await createClient(tenantA, 'member');
    expect((await clientToken(created.client_id, created.client_secret)).status).to.equal(200);
    const revoke = await api.call('DELETE', `/api/clients/${created.id}/`, {
      token: access[`${tenantA}/admin`]!,
    });
    expect(revoke.status).to.equal(204);
    const res = await clientToken(created.client_id, created.client_secret);
    expect(res.status).to.equal(401);
    expect(res.headers.get('content-type')).to.contain('application/json');
    expect(res.body.error).to.equal('invalid_client');
    expect(res.body.error_description).to.equal('this API client has been revoked');

    const list = await api.call('GET', '/api/clients?page_size=100', { token: access[`${tenantA}/owner`]! });
    const listed = (list.body.results as { id: string; revoked_at: string | null }[]).find(
      (c) => c.id === created.id,
    );
    expect(listed?.revoked_at).to.be.a('string');
  });

  it('answers a wrong secret, an unknown client and an unknown tenant prefix the same way', async () => {
    const created = await createClient(tenantA, 'member');
    const answers = await Promise.all([
      clientToken(created.client_id, `${created.client_secret.slice(0, -2)}xx`),
      clientToken(`${tenantA}.cl_AAAAAAAAAAAAAAAAAAAAAA`, created.client_secret),
      clientToken(`nosuchtenant.cl_AAAAAAAAAAAAAAAAAAAAAA`, created.client_secret),
    ]);
    for (const res of answers) {
      expect(res.status).to.equal(401);
      expect(res.body.error).to.equal('invalid_client');
      expect(res.body.error_description).to.equal('unknown client or wrong secret');
      expect(JSON.stringify(res.body)).not.to.contain(created.client_secret);
    }
    const failed = await api.call(
      'GET',
      `/api/audit-logs?action=login_failed&resource_type=api_client&resource_id=${encodeURIComponent(created.client_id)}`,
      { token: access[`${tenantA}/owner`]! },
    );
    expect(failed.body.count).to.equal(1);
  });

  it("rejects a client id rewritten with another tenant's prefix", async () => {
    const created = await createClient(tenantA, 'admin');
    const forged = created.client_id.replace(`${tenantA}.`, `${tenantB}.`);
    const res = await clientToken(forged, created.client_secret);
    expect(res.status).to.equal(401);
    expect(res.body.error_description).to.equal('unknown client or wrong secret');
    // And a real token of tenant A's client never reaches tenant B's data.
    const token = (await clientToken(created.client_id, created.client_secret)).body.access_token as string;
    const users = await api.call('GET', '/api/users?page_size=100', { token });
    const emails = (users.body.results as { email: string }[]).map((u) => u.email);
    expect(emails).to.include(`owner@${tenantA}.example`);
    expect(emails.some((e) => e.endsWith(`@${tenantB}.example`))).to.equal(false);
  });

  it('lets only owners and admins manage clients, and only owners admin clients', async () => {
    const member = await api.call('POST', '/api/clients', {
      token: access[`${tenantA}/member`]!,
      body: { name: 'nope', role: 'member' },
    });
    expect(member.status).to.equal(403);
    expect((await api.call('GET', '/api/clients', { token: access[`${tenantA}/member`]! })).status).to.equal(
      403,
    );

    const adminMakesAdmin = await api.call('POST', '/api/clients/', {
      token: access[`${tenantA}/admin`]!,
      body: { name: 'escalate', role: 'admin' },
    });
    expect(adminMakesAdmin.status).to.equal(403);
    expect(adminMakesAdmin.body.detail).to.contain('only owners');

    const adminMakesMember = await api.call('POST', '/api/clients/', {
      token: access[`${tenantA}/admin`]!,
      body: { name: 'fine', role: 'member' },
    });
    expect(adminMakesMember.status).to.equal(201);

    const ownersAdminClient = await createClient(tenantA, 'admin');
    const adminRevokes = await api.call('DELETE', `/api/clients/${ownersAdminClient.id}`, {
      token: access[`${tenantA}/admin`]!,
    });
    expect(adminRevokes.status).to.equal(403);
    // Tenant B's owner cannot see or revoke tenant A's clients.
    const crossRevoke = await api.call('DELETE', `/api/clients/${ownersAdminClient.id}`, {
      token: access[`${tenantB}/owner`]!,
    });
    expect(crossRevoke.status).to.equal(404);
  });

  it('rejects bad bodies with 400 naming the field', async () => {
    const cases: [unknown, string][] = [
      [{ role: 'member' }, 'name'],
      [{ name: '', role: 'member' }, 'name'],
      [{ name: 'x'.repeat(151), role: 'member' }, 'name'],
      [{ name: 'x' }, 'role'],
      [{ name: 'x', role: 'owner' }, 'role'],
      [{ name: 'x', role: 'member', client_secret: 'mine' }, 'body'],
      [[], 'body'],
    ];
    for (const [body, field] of cases) {
      const res = await api.call('POST', '/api/clients', { token: access[`${tenantA}/owner`]!, body });
      expect(res.status, JSON.stringify(body)).to.equal(400);
      expect(res.headers.get('content-type')).to.contain('application/problem+json');
      expect((res.body.errors as { field: string }[]).map((e) => e.field)).to.include(field);
    }
    const badPage = await api.call('GET', '/api/clients?page_size=1000', {
      token: access[`${tenantA}/owner`]!,
    });
    expect(badPage.status).to.equal(400);
    expect((badPage.body.errors as { field: string }[]).map((e) => e.field)).to.include('page_size');
    const badGrant = await api.call('POST', '/api/auth/token', {
      body: { grant_type: 'client_credentials', client_id: `${tenantA}.cl_x` },
    });
    // A client_id without a secret is no client authentication (RFC 6749 §5.2 invalid_client).
    expect(badGrant.status).to.equal(401);
    expect(badGrant.body.error).to.equal('invalid_client');
    const notFound = await api.call('DELETE', '/api/clients/not-a-uuid', {
      token: access[`${tenantA}/owner`]!,
    });
    expect(notFound.status).to.equal(404);
  });

  it('pages the list and never shows the secret or its hash there or in the audit log', async () => {
    const created = await createClient(tenantB, 'member', 'paged-1');
    await createClient(tenantB, 'member', 'paged-2');
    await createClient(tenantB, 'admin', 'paged-3');
    await clientToken(created.client_id, created.client_secret);
    const revoke = await api.call('DELETE', `/api/clients/${created.id}`, {
      token: access[`${tenantB}/owner`]!,
    });
    expect(revoke.status).to.equal(204);

    const first = await api.call('GET', '/api/clients?page=1&page_size=2', {
      token: access[`${tenantB}/admin`]!,
    });
    expect(first.status).to.equal(200);
    expect(first.body).to.have.keys('count', 'next', 'previous', 'results');
    expect(first.body.count).to.equal(3);
    expect(first.body.results).to.have.length(2);
    expect(first.body.next).to.contain('page=2');
    expect(first.body.previous).to.equal(null);
    const second = await api.call('GET', '/api/clients/?page=2&page_size=2', {
      token: access[`${tenantB}/admin`]!,
    });
    expect(second.body.results).to.have.length(1);
    for (const client of [...first.body.results, ...second.body.results] as Record<string, unknown>[]) {
      expect(client).to.have.keys(
        'id',
        'client_id',
        'name',
        'role',
        'created_by',
        'created_at',
        'last_used_at',
        'revoked_at',
      );
    }

    const hash = createHash('sha256').update(created.client_secret).digest();
    const forbidden = [created.client_secret, hash.toString('hex'), hash.toString('base64')];
    const lists = JSON.stringify([first.body, second.body]);
    const audit = await api.call('GET', '/api/audit-logs?resource_type=api_client&page_size=100', {
      token: access[`${tenantB}/owner`]!,
    });
    expect(audit.status).to.equal(200);
    const actions = (audit.body.results as { action: string }[]).map((r) => r.action);
    expect(actions).to.include.members(['create', 'login', 'revoke']);
    const rows = await tenantDb(tenantB).query<{ diff: unknown }>('SELECT diff FROM app.audit_log', {
      type: QueryTypes.SELECT,
    });
    for (const text of [lists, JSON.stringify(audit.body), JSON.stringify(rows)]) {
      for (const secret of forbidden) expect(text).not.to.contain(secret);
    }
    // The audit trail names who created the client.
    const creation = (audit.body.results as { action: string; actor: string; resourceId: string }[]).find(
      (r) => r.action === 'create' && r.resourceId === created.id,
    );
    expect(creation).to.not.equal(undefined);
  });
});
