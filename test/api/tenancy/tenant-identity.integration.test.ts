// A tenant's identity is its Tenant's uid, not its name, against the real
// operator, control plane (kube-controller-manager included, so garbage
// collection runs), PostgreSQL and Redis:
// - a name whose database and credentials are retained under deletionPolicy
//   Retain stays taken: signup and the platform admin get 409 saying why;
// - what a Tenant issued (access token, refresh token, API client, reset
//   token) is refused by a Tenant of the same name created again;
// - rows issued before uids were recorded keep working for the Tenant that
//   owns the database once the operator has migrated it, and stay refused
//   when the database is restored under a Tenant created again.
import { expect } from 'chai';
import { QueryTypes, type Sequelize } from 'sequelize';
import { startTestApi, type TestApi } from '../../harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../../harness/platform.js';
import { platformAdminToken, seededPassword as password, seedUser } from '../../harness/seeded-tenants.js';
import { serviceUrls, withPostgresAdmin } from '../../harness/services.js';
import { eventually } from '../../harness/wait.js';
import { tenantNames } from '../../../lib/tenant/index.js';

const restoreAnnotation = 'tenantry.io/restore-from-uid';

describe('tenant identity is the uid (real operator, control plane, PostgreSQL, Redis)', function () {
  this.timeout(300_000);
  let platform: TestPlatform;
  let api: TestApi;
  let admin: string;

  const kubectl = (args: string[], input?: string) => platform.cp.kubectl(args, input);
  const uidOf = async (name: string) => kubectl(['get', 'tenant', name, '-o', 'jsonpath={.metadata.uid}']);

  /** Applies a Tenant as a platform engineer would, with kubectl (the Kubernetes API directly). */
  const applyTenant = (name: string, policy: 'Retain' | 'Delete', annotations: Record<string, string> = {}) =>
    kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'tenantry.io/v1alpha1',
        kind: 'Tenant',
        metadata: { name, annotations },
        spec: {
          plan: 'starter',
          owner: { email: `owner@${name}.example` },
          database: { deletionPolicy: policy },
        },
      }),
    );

  /** Deletes the Tenant and waits until its finalizer ran and the API's directory saw it go. */
  const deleteTenant = async (name: string) => {
    await kubectl(['delete', 'tenant', name, '--timeout=90s']);
    await eventually(`the directory to drop ${name}`, () =>
      Promise.resolve(api.directory.get(name) ? undefined : true),
    );
  };

  /** Creates the tenant's owner in its database and signs in. */
  const seedOwner = (tenant: string) =>
    seedUser(api, tenant, 'owner', `owner@${tenant}.example`, { first_name: 'Olga', last_name: null });
  const login = async (tenant: string) => {
    const res = await api.call('POST', '/api/auth/login', {
      body: { tenant, email: `owner@${tenant}.example`, password },
    });
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    return res.body as { access_token: string; refresh_token: string };
  };
  const refresh = (token: string) =>
    api.call('POST', '/api/auth/token', { body: { grant_type: 'refresh_token', refresh_token: token } });
  const clientToken = (client: { client_id: string; client_secret: string }) =>
    api.call('POST', '/api/auth/token', {
      body: {
        grant_type: 'client_credentials',
        client_id: client.client_id,
        client_secret: client.client_secret,
      },
    });
  const expectProblem = (res: { status: number; headers: Headers }, status: number) => {
    expect(res.status).to.equal(status);
    expect(res.headers.get('content-type')).to.contain('application/problem+json');
  };

  /**
   * Puts the tenant database back to what the release before migration 8 left: no tenant_uid
   * anywhere, and none of the later migrations (an operator does not fill a gap below its newest).
   */
  const toPreUpgradeSchema = async (name: string) => {
    const databaseUrl = new URL(serviceUrls.postgres);
    databaseUrl.pathname = `/${tenantNames(name).database}`;
    await withPostgresAdmin(async (c) => {
      await c.query('ALTER TABLE app.refresh_tokens DROP COLUMN tenant_uid');
      await c.query('ALTER TABLE app.api_clients DROP COLUMN tenant_uid');
      await c.query('ALTER TABLE app.outbox DROP COLUMN trace_context');
      await c.query('DELETE FROM app.schema_migrations WHERE version >= 8');
    }, databaseUrl.toString());
  };
  /** The tenant_uid of every refresh token and API client; throws while the column does not exist. */
  const tenantUids = async (db: Sequelize) =>
    (
      await db.query<{ uid: string | null }>(
        `SELECT tenant_uid AS uid FROM app.refresh_tokens UNION ALL SELECT tenant_uid FROM app.api_clients`,
        { type: QueryTypes.SELECT },
      )
    ).map((r) => r.uid);

  before(async () => {
    platform = await startTestPlatform('identity');
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace, { signupEnabled: true });
    admin = await platformAdminToken(api);
  });

  after(async () => {
    await api?.close();
    await platform?.cleanup();
  });

  /** A Ready Tenant served by the API, its owner signed in, and an API client it created. */
  const servedWithClient = async (name: string, policy: 'Retain' | 'Delete') => {
    await applyTenant(name, policy);
    await platform.waitReady(name);
    await eventually('the API to serve the tenant', () =>
      Promise.resolve(api.directory.get(name)?.ready ? true : undefined),
    );
    const firstUid = await uidOf(name);
    await seedOwner(name);
    const session = await login(name);
    const created = await api.call('POST', '/api/clients', {
      token: session.access_token,
      body: { name: 'ci', role: 'member' },
    });
    expect(created.status, JSON.stringify(created.body)).to.equal(201);
    return { firstUid, session, client: created.body as { client_id: string; client_secret: string } };
  };

  it('keeps a name taken while an earlier Tenant’s database and credentials are retained', async () => {
    const name = platform.tenantName('kept');
    await applyTenant(name, 'Retain');
    await platform.waitReady(name);
    const copy = ['secret', '-n', platform.platformNamespace, `tenant-${name}-db`];
    // The platform copy is what the API checks: nothing that garbage collection follows may own it.
    expect(await kubectl(['get', ...copy, '-o', 'jsonpath={.metadata.ownerReferences}'])).to.equal('');

    await deleteTenant(name);
    // The namespace goes through its ownerReference: garbage collection has run.
    await eventually(
      'the tenant namespace to go',
      async () => {
        const left = await kubectl([
          'get',
          'namespace',
          '--ignore-not-found',
          '-o',
          'name',
          tenantNames(name).namespace,
        ]);
        return left.trim() === '' ? true : undefined;
      },
      { timeoutMs: 90_000 },
    );
    expect(await kubectl(['get', ...copy, '-o', 'name'])).to.contain(`tenant-${name}-db`);

    const signup = await api.call('POST', '/api/signup', {
      body: { tenant: name, display_name: 'Stranger', email: 'stranger@example.com', password },
    });
    expectProblem(signup, 409);
    expect(signup.body.type).to.equal('https://tenantry.io/problems/tenant-name-retained');
    expect(signup.body.detail).to.include('retained (deletionPolicy Retain)');
    expect(signup.body.detail).to.include('restore');
    expect(signup.body.detail).to.include('kubectl');

    const created = await api.call('POST', '/api/tenants', {
      token: admin,
      body: { name, plan: 'free', owner_email: 'stranger@example.com' },
    });
    expectProblem(created, 409);
    expect(created.body.detail).to.equal(signup.body.detail);
    // Neither wrote a Tenant.
    expect(await kubectl(['get', 'tenant', name, '--ignore-not-found', '-o', 'name'])).to.equal('');
  });

  it('refuses with 401 what an earlier Tenant of the same name issued', async () => {
    const name = platform.tenantName('again');
    const { firstUid, session, client } = await servedWithClient(name, 'Retain');
    // All of it works for the Tenant that issued it.
    expect((await api.call('GET', '/api/auth/profile', { token: session.access_token })).status).to.equal(
      200,
    );
    const rotated = await refresh(session.refresh_token);
    expect(rotated.status, JSON.stringify(rotated.body)).to.equal(200);
    const refreshToken = (rotated.body as { refresh_token: string }).refresh_token;
    expect((await clientToken(client)).status).to.equal(200);
    const reset = await api.call('POST', '/api/auth/password/reset', {
      body: { tenant: name, email: `owner@${name}.example` },
    });
    expect(reset.status).to.equal(202);
    const resetToken = await api.mailer.tokenFor(`owner@${name}.example`, 'password-reset');

    await deleteTenant(name);
    // Re-created directly through the Kubernetes API, as a restore by a platform engineer.
    await applyTenant(name, 'Retain', { [restoreAnnotation]: firstUid });
    await platform.waitReady(name);
    const secondUid = await uidOf(name);
    expect(secondUid).to.not.equal(firstUid);
    await eventually('the API to serve the new Tenant', () =>
      Promise.resolve(
        api.directory.get(name)?.ready && api.directory.get(name)?.tenant.metadata.uid === secondUid
          ? true
          : undefined,
      ),
    );

    const profile = await api.call('GET', '/api/auth/profile', { token: session.access_token });
    const users = await api.call('GET', '/api/users', { token: session.access_token });
    const again = await refresh(refreshToken);
    const byClient = await clientToken(client);
    const confirm = await api.call('POST', '/api/auth/password/reset/confirm', {
      body: { tenant: name, token: resetToken, password: 'a brand new passphrase 77' },
    });
    // All at once, so a failure shows every one that got through.
    expect({
      profile: profile.status,
      users: users.status,
      refresh: again.status,
      client: byClient.status,
      reset: confirm.status,
    }).to.deep.equal({ profile: 401, users: 401, refresh: 400, client: 401, reset: 400 });
    for (const res of [profile, users, again, byClient, confirm]) {
      // The token endpoint answers in the RFC 6749 §5.2 shape, the rest as problem+json.
      expect(res.headers.get('content-type')).to.contain(
        res === again || res === byClient ? 'application/json' : 'application/problem+json',
      );
      expect(JSON.stringify(res.body)).to.not.include(firstUid).and.not.include(secondUid);
    }
    expect(profile.body.detail).to.equal(
      `the access token was issued to an earlier tenant named ${name}; sign in again`,
    );
    expect(again.body).to.include({ error: 'invalid_grant' });
    expect(again.body.error_description).to.include('issued_to_earlier_tenant');
    expect(byClient.body.error).to.equal('invalid_client');
    expect(byClient.body.error_description).to.equal(
      `this API client was issued to an earlier tenant named ${name}`,
    );

    // The restored data is there: its users sign in again and get tokens of the new Tenant.
    const fresh = await login(name);
    expect((await api.call('GET', '/api/auth/profile', { token: fresh.access_token })).status).to.equal(200);
    expect((await refresh(fresh.refresh_token)).status).to.equal(200);
  });

  it('keeps refresh tokens and API clients from before the upgrade working for the Tenant that owns them', async () => {
    const name = platform.tenantName('upgrade');
    const { session, client } = await servedWithClient(name, 'Delete');

    await toPreUpgradeSchema(name);
    const db = api.databases.for(name, api.directory.servable(name).credentials).sequelize;
    // A spec change makes the operator run the schema step, which applies migration 8 again.
    await kubectl(['patch', 'tenant', name, '--type=merge', '-p', '{"spec":{"displayName":"Upgraded"}}']);
    const uids = await eventually('migration 8 to be applied again', () => tenantUids(db), {
      timeoutMs: 60_000,
    });
    const uid = await uidOf(name);
    expect(uids).to.have.length.of.at.least(2);
    expect(uids).to.deep.equal(uids.map(() => uid));
    // The API serves the tenant again once the operator reports the reconcile of that spec done.
    await platform.waitReady(name);
    await eventually('the API to serve the upgraded tenant', () =>
      Promise.resolve(api.directory.servable(name).ready ? true : undefined),
    );
    expect((await refresh(session.refresh_token)).status).to.equal(200);
    expect((await clientToken(client)).status).to.equal(200);
  });

  it('leaves them without a uid, refused, when a Tenant is created again over the retained database', async () => {
    const name = platform.tenantName('restored');
    const { firstUid, session, client } = await servedWithClient(name, 'Retain');
    // Deleted under Retain before the upgrade, restored after it.
    await toPreUpgradeSchema(name);
    await deleteTenant(name);
    await applyTenant(name, 'Retain', { [restoreAnnotation]: firstUid });
    await platform.waitReady(name);
    await eventually('the API to serve the new Tenant', () =>
      Promise.resolve(
        api.directory.get(name)?.ready &&
          (api.directory.get(name)?.tenant.metadata.uid ?? firstUid) !== firstUid
          ? true
          : undefined,
      ),
    );
    const db = api.databases.for(name, api.directory.servable(name).credentials).sequelize;
    const uids = await tenantUids(db);
    expect(uids).to.have.length.of.at.least(2);
    expect(uids).to.deep.equal(uids.map(() => null));
    expect({
      refresh: (await refresh(session.refresh_token)).status,
      client: (await clientToken(client)).status,
    }).to.deep.equal({ refresh: 400, client: 401 });
  });
});
