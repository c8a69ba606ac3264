// Derived names and ownership against the real operator, control plane,
// PostgreSQL, RabbitMQ and Redis: signing up `<victim>-a` and `<victim>-app`
// must not touch the victim; a name another owner holds is reported as
// NameConflict and left alone; a retained database comes back only through the
// restore annotation; and a tenant provisioned under the old role names keeps
// working while the operator moves it onto the current ones.
import { randomBytes, randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import { latestSchemaVersion, migrateTenantSchema } from '../../lib/tenant-schema/migrate.js';
import {
  conditionTypes,
  ownershipMarker,
  restoreFromUidAnnotation,
  legacyRoleNames,
  tenantNames,
} from '../../lib/tenant/index.js';
import { RabbitMqAdmin, tenantPermissionPattern } from '../../operator/src/messaging/rabbitmq-admin.js';
import { jdbcUri, pgpassLine, postgresUri } from '../../operator/src/sql/connection-info.js';
import { TenantDatabaseAdmin } from '../../operator/src/sql/tenant-database.js';
import { startTestApi, type TestApi } from '../harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../harness/platform.js';
import { seededPassword as password, seedUser } from '../harness/seeded-tenants.js';
import { rabbitManagement, serviceUrls, withPostgresAdmin } from '../harness/services.js';
import { eventually } from '../harness/wait.js';

interface TenantJson {
  metadata: { name: string; uid: string; generation: number };
  status?: {
    observedGeneration?: number;
    conditions?: { type: string; status: string; reason: string; message: string }[];
    database?: { username?: string; retiringUsername?: string };
  };
}

interface EventJson {
  type: string;
  reason: string;
  message: string;
  involvedObject: { name: string; uid?: string };
}

describe('derived names and ownership (real operator, control plane, PostgreSQL, RabbitMQ, Redis)', function () {
  this.timeout(600_000);
  let platform: TestPlatform;
  let api: TestApi;
  const mine = new Set<string>();
  const name = (label: string): string => {
    const n = platform.tenantName(label);
    mine.add(n);
    return n;
  };

  const kubectl = (args: string[], stdin?: string): Promise<string> => platform.cp.kubectl(args, stdin);
  const getTenant = async (tenant: string): Promise<TenantJson | undefined> => {
    const out = await kubectl(['get', 'tenant', tenant, '--ignore-not-found', '-o', 'json']);
    return out.trim() === '' ? undefined : (JSON.parse(out) as TenantJson);
  };
  const condition = (t: TenantJson | undefined, type: string) =>
    t?.status?.conditions?.find((c) => c.type === type);
  const isReady = (t: TenantJson | undefined): boolean =>
    condition(t, 'Ready')?.status === 'True' && t?.status?.observedGeneration === t?.metadata.generation;
  const waitReady = (tenant: string, timeoutMs = 150_000) =>
    eventually(
      `tenant ${tenant} to be Ready`,
      async () => {
        const t = await getTenant(tenant);
        return isReady(t) ? t : undefined;
      },
      { timeoutMs, intervalMs: 500 },
    );
  const waitGone = (tenant: string) =>
    eventually(`tenant ${tenant} to be gone`, async () => ((await getTenant(tenant)) ? undefined : true), {
      timeoutMs: 120_000,
      intervalMs: 500,
    });
  const eventsOf = async (tenant: string, uid?: string): Promise<EventJson[]> => {
    const out = await kubectl([
      'get',
      'events',
      '-n',
      'default',
      '--field-selector',
      `involvedObject.name=${tenant}`,
      '-o',
      'json',
    ]);
    const items = (JSON.parse(out) as { items: EventJson[] }).items;
    return uid === undefined ? items : items.filter((e) => e.involvedObject.uid === uid);
  };
  /** The condition and the Warning Event of a NameConflict naming `object`. */
  const waitNameConflict = (tenant: string, step: string, object: string) =>
    eventually(
      `tenant ${tenant} to report NameConflict on ${step}`,
      async () => {
        const t = await getTenant(tenant);
        const c = condition(t, step);
        if (c?.status !== 'False' || c.reason !== 'NameConflict' || !c.message.includes(object))
          return undefined;
        const warning = (await eventsOf(tenant, t?.metadata.uid)).find(
          (e) => e.type === 'Warning' && e.reason === 'NameConflict' && e.message.includes(object),
        );
        return warning ? { tenant: t!, condition: c, warning } : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );

  const secretData = async (namespace: string, secret: string): Promise<Record<string, string>> => {
    const parsed = JSON.parse(await kubectl(['get', 'secret', '-n', namespace, secret, '-o', 'json'])) as {
      data: Record<string, string>;
    };
    return Object.fromEntries(
      Object.entries(parsed.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
    );
  };
  /** Opens a session with the URI and reads the users table as the tenant's login role. */
  const connectAndRead = async (uri: string): Promise<number> => {
    const client = new pg.Client({ connectionString: uri, connectionTimeoutMillis: 3000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM users');
      return rows[0]!.n;
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  const sql = <T extends pg.QueryResultRow>(text: string, values: unknown[] = []) =>
    withPostgresAdmin((c) => c.query<T>(text, values));
  const roleComment = async (role: string): Promise<string | null | undefined> =>
    (
      await sql<{ comment: string | null }>(
        `SELECT shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname = $1`,
        [role],
      )
    ).rows[0]?.comment;
  const databaseRow = async (database: string) =>
    (
      await sql<{ oid: number; owner: string; comment: string | null }>(
        `SELECT oid::int, pg_get_userbyid(datdba) AS owner, shobj_description(oid, 'pg_database') AS comment
           FROM pg_database WHERE datname = $1`,
        [database],
      )
    ).rows[0];

  const signup = async (tenant: string): Promise<void> => {
    const res = await api.call('POST', '/api/signup', {
      body: { tenant, display_name: tenant, email: `owner@${tenant}.example`, password },
    });
    expect(res.status, JSON.stringify(res.body)).to.equal(202);
  };
  const waitSignupReady = (tenant: string) =>
    eventually(
      `signup ${tenant} to be ready`,
      async () => {
        const res = await api.call('GET', `/api/signup/${tenant}`);
        return (res.body as { ready?: boolean }).ready ? true : undefined;
      },
      { timeoutMs: 150_000, intervalMs: 500 },
    );
  const login = async (tenant: string, email = `owner@${tenant}.example`): Promise<string> => {
    const res = await api.call('POST', '/api/auth/login', { body: { tenant, email, password } });
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    return res.body.access_token as string;
  };

  /**
   * Every second until `done` resolves (and at least `minMs`): the tenant's
   * users through the API with `token`, and a fresh database session with the
   * credentials its Secret holds at that moment. Returns every failure.
   */
  const watchTenant = async (
    tenant: string,
    token: string,
    done: Promise<unknown>,
    minMs: number,
  ): Promise<{ checks: number; failures: string[] }> => {
    let finished = false;
    // Stops the loop either way; the rejection itself surfaces from the `await done` below.
    void done.then(
      () => (finished = true),
      () => (finished = true),
    );
    const started = Date.now();
    const failures: string[] = [];
    let checks = 0;
    const namespace = tenantNames(tenant).namespace;
    while (!finished || Date.now() - started < minMs) {
      const tick = Date.now();
      checks += 1;
      const at = `${Math.round((tick - started) / 1000)}s`;
      try {
        const res = await api.call('GET', '/api/users', { token });
        if (res.status !== 200) failures.push(`${at}: GET /api/users answered ${res.status}`);
      } catch (error) {
        failures.push(`${at}: GET /api/users failed: ${String(error)}`);
      }
      try {
        const { uri } = await secretData(namespace, tenantNames(tenant).dbSecret);
        await connectAndRead(uri!);
      } catch (error) {
        failures.push(`${at}: database session with the Secret's credentials failed: ${String(error)}`);
      }
      await new Promise((ok) => setTimeout(ok, Math.max(0, 1000 - (Date.now() - tick))));
      if (Date.now() - started > 300_000)
        throw new Error('the watched operation did not finish in 5 minutes');
    }
    await done;
    return { checks, failures };
  };

  before(async () => {
    platform = await startTestPlatform('names');
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace, {
      signupEnabled: true,
      ownerProvisioning: { select: (tenant) => mine.has(tenant) },
    });
  });

  /** Old-scheme roles a test made, dropped once the platform has dropped the databases. */
  const legacyRoles: string[] = [];

  after(async () => {
    await api?.close();
    await platform?.cleanup();
    for (const role of legacyRoles) await sql(`DROP ROLE IF EXISTS "${role}"`).catch(() => undefined);
  });

  it('keeps <victim> serving while <victim>-a and <victim>-app are signed up, reconciled and deleted', async () => {
    const victim = name('v');
    await signup(victim);
    await waitSignupReady(victim);
    const token = await login(victim);
    const victimUid = (await getTenant(victim))!.metadata.uid;
    const v = tenantNames(victim);
    const attackers = [name('v-a'), name('v-app')];
    expect(attackers).to.deep.equal([`${victim}-a`, `${victim}-app`]);

    // What the attackers' reconciles left, read while they were Ready; checked after the victim's watch.
    const snapshots: { uid: string; database: unknown; roles: Record<string, unknown> }[] = [];
    const attack = (async () => {
      for (const attacker of attackers) await signup(attacker);
      for (const attacker of attackers) await waitSignupReady(attacker);
      for (const attacker of attackers) {
        const { uid } = (await waitReady(attacker)).metadata;
        const a = tenantNames(attacker);
        const roles: Record<string, unknown> = {};
        for (const role of [a.ownerRole, a.appRole, ...a.loginRoles]) roles[role] = await roleComment(role);
        snapshots.push({ uid, database: await databaseRow(a.database), roles });
      }
      // The platform engineer deletes them under Delete.
      for (const attacker of attackers) {
        await kubectl([
          'patch',
          'tenant',
          attacker,
          '--type=merge',
          '-p',
          '{"spec":{"database":{"deletionPolicy":"Delete"}}}',
        ]);
        await kubectl(['delete', 'tenant', attacker, '--wait=false']);
      }
      for (const attacker of attackers) await waitGone(attacker);
    })();
    const attackFailure = attack.then(
      () => undefined,
      (error: unknown) => error,
    );

    const watched = await watchTenant(victim, token, attackFailure, 60_000);
    expect(watched.failures).to.deep.equal([]);
    expect(watched.checks).to.be.at.least(55);
    expect(await attackFailure).to.equal(undefined);
    // Each attacker was Ready with its own database and roles, marked with its own uid, and they are gone.
    for (const [i, attacker] of attackers.entries()) {
      const a = tenantNames(attacker);
      const mark = ownershipMarker(snapshots[i]!.uid);
      expect(snapshots[i]!.database).to.deep.include({ owner: a.ownerRole, comment: mark });
      expect(snapshots[i]!.roles).to.deep.equal(
        Object.fromEntries([a.ownerRole, a.appRole, ...a.loginRoles].map((role) => [role, mark])),
      );
      expect(await databaseRow(a.database)).to.equal(undefined);
    }
    // The victim is untouched: still Ready, same login, its roles still its own.
    const after = await getTenant(victim);
    expect(isReady(after)).to.equal(true);
    expect(after?.status?.database?.username).to.equal(v.loginRoles[0]);
    for (const role of [v.ownerRole, v.appRole, ...v.loginRoles])
      expect(await roleComment(role), role).to.equal(ownershipMarker(victimUid));
    expect((await databaseRow(v.database))?.comment).to.equal(ownershipMarker(victimUid));
  });

  it('reports NameConflict for a role, RabbitMQ user or namespace it does not own, and never alters or drops it', async () => {
    const otherUid = randomUUID();
    const squatted = name('sq');
    const squattedRole = tenantNames(squatted).loginRoles[0];
    await sql(`CREATE ROLE "${squattedRole}" LOGIN`);
    await sql(`COMMENT ON ROLE "${squattedRole}" IS '${ownershipMarker(otherUid)}'`);
    const squattedMq = name('sqmq');
    const mqUser = tenantNames(squattedMq).amqpUser;
    const userPath = `/users/${encodeURIComponent(mqUser)}`;
    const put = await rabbitManagement('PUT', userPath, {
      password: randomBytes(12).toString('hex'),
      tags: ownershipMarker(otherUid),
    });
    expect(put.status).to.be.oneOf([201, 204]);
    const mqBefore = (await (await rabbitManagement('GET', userPath)).json()) as Record<string, unknown>;
    const squattedNs = name('sqns');
    const ns = tenantNames(squattedNs).namespace;
    await kubectl(['create', 'namespace', ns]);
    try {
      await platform.applyTenant(squatted);
      await platform.applyTenant(squattedMq);
      await platform.applyTenant(squattedNs);
      const db = await waitNameConflict(squatted, 'Database', `role "${squattedRole}"`);
      expect(db.condition.message).not.to.contain(otherUid);
      expect(condition(db.tenant, 'Ready')).to.include({ status: 'False', reason: 'NameConflict' });
      await waitNameConflict(squattedMq, 'Messaging', `RabbitMQ user "${mqUser}"`);
      await waitNameConflict(squattedNs, 'Namespace', `namespace "${ns}"`);

      // Nothing under the squatted tenant's names was created or changed.
      const untouched = async () => {
        const role = await sql<{ rolcanlogin: boolean; member_of: number }>(
          `SELECT rolcanlogin, (SELECT count(*)::int FROM pg_auth_members WHERE member = r.oid) AS member_of
             FROM pg_roles r WHERE rolname = $1`,
          [squattedRole],
        );
        expect(role.rows).to.deep.equal([{ rolcanlogin: true, member_of: 0 }]);
        expect(await roleComment(squattedRole)).to.equal(ownershipMarker(otherUid));
        const mq = (await (await rabbitManagement('GET', userPath)).json()) as Record<string, unknown>;
        expect(mq).to.deep.include({ password_hash: mqBefore.password_hash, tags: mqBefore.tags });
        const permissions = await rabbitManagement(
          'GET',
          `/permissions/${encodeURIComponent(platform.vhost)}/${encodeURIComponent(mqUser)}`,
        );
        expect(permissions.status).to.equal(404);
      };
      await untouched();
      expect(await databaseRow(tenantNames(squatted).database)).to.equal(undefined);
      expect(await roleComment(tenantNames(squatted).ownerRole)).to.equal(undefined);

      // Deleting the Tenants under Delete finishes and still leaves them alone.
      const uid = (await getTenant(squatted))!.metadata.uid;
      await kubectl(['delete', 'tenant', squatted, squattedMq, squattedNs, '--wait=false']);
      await waitGone(squatted);
      await waitGone(squattedMq);
      await waitGone(squattedNs);
      await untouched();
      const namespace = JSON.parse(await kubectl(['get', 'namespace', ns, '-o', 'json'])) as {
        metadata: {
          labels?: Record<string, string>;
          ownerReferences?: unknown[];
          deletionTimestamp?: string;
        };
      };
      expect(namespace.metadata.ownerReferences).to.equal(undefined);
      expect(namespace.metadata.deletionTimestamp).to.equal(undefined);
      expect(namespace.metadata.labels).not.to.have.property('tenantry.io/tenant-uid');
      const warnings = (await eventsOf(squatted, uid)).filter(
        (e) => e.type === 'Warning' && e.reason === 'NameConflict' && e.message.includes('untouched'),
      );
      expect(warnings.map((e) => e.message).join('\n')).to.contain(`role "${squattedRole}"`);
      // What the squatted Tenant did own (its RabbitMQ side, the other tenant's database) is gone.
      expect(await databaseRow(tenantNames(squattedMq).database)).to.equal(undefined);
    } finally {
      await sql(`DROP ROLE IF EXISTS "${squattedRole}"`);
      await rabbitManagement('DELETE', userPath);
      await kubectl(['delete', 'namespace', ns, '--wait=false']).catch(() => undefined);
    }
  });

  it('meets a retained database with NameConflict, and takes it over only through the restore annotation', async () => {
    // Not one of `mine`: no owner provisioning writes into it meanwhile.
    const kept = platform.tenantName('kept');
    const manifest = `apiVersion: tenantry.io/v1alpha1
kind: Tenant
metadata: {name: ${kept}}
spec:
  plan: starter
  owner: {email: owner@${kept}.example}
  database: {deletionPolicy: Retain}
`;
    const n = tenantNames(kept);
    await kubectl(['apply', '-f', '-'], manifest);
    const first = await waitReady(kept);
    const retained = await databaseRow(n.database);
    expect(retained?.comment).to.equal(ownershipMarker(first.metadata.uid));
    const seed = new pg.Client({ connectionString: (await secretData(n.namespace, n.dbSecret)).uri });
    await seed.connect();
    await seed.query("INSERT INTO users (email, role) VALUES ('kept@x.example', 'owner')");
    await seed.end();
    await kubectl(['delete', 'tenant', kept, '--wait=false']);
    await waitGone(kept);
    expect(await databaseRow(n.database)).to.deep.equal(retained);

    // The same name again is a new Tenant: the retained database is not its own.
    await kubectl(['apply', '-f', '-'], manifest);
    const conflict = await waitNameConflict(kept, 'Database', `database "${n.database}"`);
    expect(conflict.tenant.metadata.uid).not.to.equal(first.metadata.uid);
    expect(await databaseRow(n.database)).to.deep.equal(retained);

    // A platform engineer restores it explicitly.
    await kubectl(['annotate', 'tenant', kept, `${restoreFromUidAnnotation}=${first.metadata.uid}`]);
    const restored = await waitReady(kept);
    const row = await databaseRow(n.database);
    expect(row).to.deep.include({ oid: retained!.oid, comment: ownershipMarker(restored.metadata.uid) });
    for (const role of [n.ownerRole, n.appRole, ...n.loginRoles])
      expect(await roleComment(role), role).to.equal(ownershipMarker(restored.metadata.uid));
    const { uri } = await secretData(n.namespace, n.dbSecret);
    expect(await connectAndRead(uri!)).to.equal(1);
    await kubectl([
      'patch',
      'tenant',
      kept,
      '--type=merge',
      '-p',
      '{"spec":{"database":{"deletionPolicy":"Delete"}}}',
    ]);
  });

  it('keeps a tenant provisioned under the old role names Ready and serving while it moves onto the new ones', async () => {
    // Not one of `mine`: the owner provisioner leaves it alone, the test seeds its owner.
    const old = platform.tenantName('old');
    const n = tenantNames(old);
    const legacy = legacyRoleNames(n);
    legacyRoles.push(...legacy.loginRoles, legacy.appRole);
    const oldPassword = randomBytes(24).toString('base64url');
    const amqpPassword = randomBytes(24).toString('base64url');
    let token = '';
    // What today's operator leaves behind: roles tenant_<name>_app, _a, _b; the
    // Secret on _a; the status recording them; nothing marked.
    await platform.restartOperator(async () => {
      const admin = new TenantDatabaseAdmin(serviceUrls.postgres);
      try {
        const oldNames = { ...n, appRole: legacy.appRole, loginRoles: legacy.loginRoles };
        await admin.ensureDatabase(oldNames);
        const migrated = await admin.withTenantDatabase(n.database, (c) =>
          migrateTenantSchema(c, { ownerRole: n.ownerRole, appRole: legacy.appRole }),
        );
        expect(migrated.to).to.equal(latestSchemaVersion);
        await admin.setLoginPassword(legacy.loginRoles[0], oldPassword);
      } finally {
        await admin.close();
      }
      await new RabbitMqAdmin(serviceUrls.rabbitmqManagement, platform.vhost).ensureTenantUser(
        n,
        amqpPassword,
      );
      const url = new URL(serviceUrls.postgres);
      const info = {
        host: url.hostname,
        port: Number(url.port || 5432),
        database: n.database,
        user: legacy.loginRoles[0],
        password: oldPassword,
      };
      const data = {
        host: info.host,
        port: String(info.port),
        dbname: n.database,
        username: info.user,
        password: oldPassword,
        uri: postgresUri(info),
        'jdbc-uri': jdbcUri(info),
        pgpass: pgpassLine(info),
      };
      const secret = (namespace: string, secretName: string) => ({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: secretName,
          namespace,
          labels: { 'tenantry.io/tenant': old, 'tenantry.io/secret-kind': 'database' },
        },
        data: Object.fromEntries(
          Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
        ),
      });
      await kubectl(
        ['apply', '-f', '-'],
        JSON.stringify({
          apiVersion: 'tenantry.io/v1alpha1',
          kind: 'Tenant',
          metadata: { name: old, finalizers: ['tenantry.io/finalizer'] },
          spec: {
            plan: 'starter',
            owner: { email: `owner@${old}.example` },
            database: { deletionPolicy: 'Delete' },
          },
        }),
      );
      await kubectl(
        ['apply', '-f', '-'],
        JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n.namespace } }),
      );
      await kubectl(
        ['apply', '-f', '-'],
        JSON.stringify(secret(platform.platformNamespace, n.platformDbSecret)),
      );
      await kubectl(['apply', '-f', '-'], JSON.stringify(secret(n.namespace, n.dbSecret)));
      await kubectl(
        ['apply', '-f', '-'],
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: n.amqpSecret, namespace: n.namespace, labels: { 'tenantry.io/tenant': old } },
          stringData: { username: n.amqpUser, password: amqpPassword },
        }),
      );
      const now = new Date().toISOString();
      const status = {
        observedGeneration: 1,
        phase: 'Ready',
        namespace: n.namespace,
        database: {
          name: n.database,
          ownerRole: n.ownerRole,
          username: legacy.loginRoles[0],
          secretName: n.dbSecret,
          schemaVersion: latestSchemaVersion,
          passwordRotatedAt: now,
          lastRotationTrigger: '|',
        },
        messaging: {
          username: n.amqpUser,
          secretName: n.amqpSecret,
          vhost: platform.vhost,
          queuePrefix: n.queuePrefix,
        },
        conditions: [...conditionTypes, 'Ready'].map((type) => ({
          type,
          status: 'True',
          reason: 'Ready',
          message: 'ready',
          observedGeneration: 1,
          lastTransitionTime: now,
        })),
      };
      await kubectl([
        'patch',
        'tenant',
        old,
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({ status }),
      ]);
      // Its owner, and a session as it, before the upgrade.
      await eventually('the API to serve the old tenant', () =>
        Promise.resolve(api.directory.get(old)?.ready ? true : undefined),
      );
      await seedUser(api, old, 'owner', `owner@${old}.example`, { first_name: 'Old', last_name: 'Owner' });
      token = await login(old);
    });

    const uid = (await getTenant(old))!.metadata.uid;
    const migrated = eventually(
      'the old tenant to be on the new roles',
      async () => {
        const t = await getTenant(old);
        const gone = await sql(`SELECT 1 FROM pg_roles WHERE rolname = ANY ($1)`, [
          [legacy.appRole, ...legacy.loginRoles],
        ]);
        return isReady(t) &&
          t?.status?.database?.username === n.loginRoles[0] &&
          t.status.database.retiringUsername === undefined &&
          gone.rowCount === 0
          ? t
          : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 1000 },
    );
    const watched = await watchTenant(old, token, migrated, 20_000);
    expect(watched.failures).to.deep.equal([]);

    // Same database, its data, every object marked; the old names are free for tenants <name>-a/-b/-app.
    for (const role of [n.ownerRole, n.appRole, ...n.loginRoles])
      expect(await roleComment(role), role).to.equal(ownershipMarker(uid));
    expect((await databaseRow(n.database))?.comment).to.equal(ownershipMarker(uid));
    const users = await api.call('GET', '/api/users', { token: await login(old) });
    expect(users.status).to.equal(200);
    expect(JSON.stringify(users.body)).to.contain(`owner@${old}.example`);
    const user = (await (
      await rabbitManagement('GET', `/users/${encodeURIComponent(n.amqpUser)}`)
    ).json()) as {
      tags: string[] | string;
    };
    expect([user.tags].flat().join(',')).to.equal(ownershipMarker(uid));
    const permissions = (await (
      await rabbitManagement('GET', `/users/${encodeURIComponent(n.amqpUser)}/permissions`)
    ).json()) as { configure: string }[];
    expect(permissions.map((p) => p.configure)).to.deep.equal([tenantPermissionPattern(n.queuePrefix)]);
    // The old password is gone with its role; the Secret's new one works.
    const { uri, username } = await secretData(n.namespace, n.dbSecret);
    expect(username).to.equal(n.loginRoles[0]);
    expect(await connectAndRead(uri!)).to.equal(1);
  });
});
