// The operator's SQL layer against the real PostgreSQL, run as an admin role
// with only CREATEDB and CREATEROLE. Trust auth is on, so isolation is shown
// through privileges: a connection is refused for lack of CONNECT, not for a
// wrong password.
import { expect } from 'chai';
import pg from 'pg';
import { tenantNames, type TenantNames } from '../../../lib/tenant/index.js';
import {
  appRoleName,
  DatabaseUnavailableError,
  TenantDatabaseAdmin,
  TenantSqlError,
} from '../../../operator/src/sql/tenant-database.js';
import { postgresUri, scramSha256Verifier } from '../../../operator/src/sql/connection-info.js';
import { runTenantMigrations, Semaphore } from '../../../operator/src/sql/schema-runner.js';
import {
  latestSchemaVersion,
  migrationChecksum,
  readSchemaVersion,
  SchemaMigrationError,
} from '../../../lib/tenant-schema/migrate.js';
import { migrations } from '../../../lib/tenant-schema/migrations.js';
import { grantAdminConnect, preparePostgresServer } from '../../harness/postgres-server.js';
import { serviceUrls, uniqueSuffix, withPostgresAdmin } from '../../harness/services.js';

const suffix = uniqueSuffix();
const adminRole = `tenantry_admin_${suffix}`;
const tenantPrefix = `sqlt-${suffix}`;

function urlFor(user: string, database: string, password?: string): string {
  const url = new URL(serviceUrls.postgres);
  url.username = encodeURIComponent(user);
  url.password = password ? encodeURIComponent(password) : '';
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

const openClients: pg.Client[] = [];

/** Connects as `user` (no password: trust auth); the connection is closed after each test. */
async function connectAs(user: string, database: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: urlFor(user, database), connectionTimeoutMillis: 5000 });
  // Tests terminate these sessions on purpose; the failure shows up on the next query.
  client.on('error', () => undefined);
  await client.connect();
  openClients.push(client);
  return client;
}

/** The SQLSTATE a promise rejects with, or 'resolved'. */
async function sqlStateOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'resolved';
  } catch (error) {
    return error instanceof pg.DatabaseError ? (error.code ?? 'no code') : String(error);
  }
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.fail('expected a rejection'),
    (error: unknown) => error,
  );
}

function superuser<T>(fn: (client: pg.Client) => Promise<T>, database = 'postgres'): Promise<T> {
  return withPostgresAdmin(fn, urlFor(new URL(serviceUrls.postgres).username || 'postgres', database));
}

describe('operator SQL layer (non-superuser admin)', function () {
  this.timeout(60_000);

  let admin: TenantDatabaseAdmin;
  const tenantA = tenantNames(`${tenantPrefix}-a`);
  const tenantB = tenantNames(`${tenantPrefix}-b`);

  before(async () => {
    await preparePostgresServer();
    await superuser(async (c) => {
      await c.query(`CREATE ROLE "${adminRole}" LOGIN CREATEDB CREATEROLE`);
      await grantAdminConnect(c, adminRole);
      // Were a plain password sent, the server would store it as MD5; a SCRAM
      // verifier in pg_authid then shows the operator hashed it itself.
      await c.query(`ALTER ROLE "${adminRole}" SET password_encryption = 'md5'`);
    });
    admin = new TenantDatabaseAdmin(urlFor(adminRole, 'postgres'));
    for (const tenant of [tenantA, tenantB]) {
      await admin.ensureDatabase(tenant, { locale: 'C' });
      await runTenantMigrations(admin, tenant);
      await admin.setLoginPassword(tenant.loginRoles[0], `pw-${suffix}`);
    }
  });

  afterEach(async () => {
    await Promise.all(openClients.splice(0).map((c) => c.end().catch(() => undefined)));
  });

  after(async () => {
    await admin?.close();
    // Sweep everything this run created, whatever state a failed test left behind.
    await superuser(async (c) => {
      const pattern = `tenant_sqlt_${suffix}%`;
      const dbs = await c.query<{ datname: string }>(
        'SELECT datname FROM pg_database WHERE datname LIKE $1',
        [pattern],
      );
      for (const { datname } of dbs.rows) await c.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
      const roles = await c.query<{ rolname: string }>(
        'SELECT rolname FROM pg_roles WHERE rolname LIKE $1 OR rolname = $2 ORDER BY length(rolname) DESC',
        [pattern, adminRole],
      );
      for (const { rolname } of roles.rows) {
        await c.query(`DROP OWNED BY "${rolname}"`);
        await c.query(`DROP ROLE IF EXISTS "${rolname}"`);
      }
    });
  });

  it('runs as an admin that is not a superuser', async () => {
    const { rows } = await superuser((c) =>
      c.query<{ rolsuper: boolean; rolcreatedb: boolean; rolcreaterole: boolean }>(
        'SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = $1',
        [adminRole],
      ),
    );
    expect(rows[0]).to.deep.equal({ rolsuper: false, rolcreatedb: true, rolcreaterole: true });
  });

  it('creates the database and roles with the right owners and attributes', async () => {
    const app = appRoleName(tenantA);
    const state = await superuser(async (c) => {
      const db = await c.query<{ owner: string; encoding: string; collate: string }>(
        `SELECT pg_get_userbyid(datdba) AS owner, pg_encoding_to_char(encoding) AS encoding, datcollate AS collate
           FROM pg_database WHERE datname = $1`,
        [tenantA.database],
      );
      const roles = await c.query<{
        rolname: string;
        rolcanlogin: boolean;
        rolinherit: boolean;
        rolconfig: string[] | null;
        in_app: boolean;
      }>(
        `SELECT r.rolname, r.rolcanlogin, r.rolinherit, r.rolconfig,
                pg_has_role(r.rolname, $2, 'MEMBER') AS in_app
           FROM pg_roles r WHERE r.rolname = ANY ($1::text[]) ORDER BY array_position($1::text[], r.rolname::text)`,
        [[tenantA.ownerRole, app, ...tenantA.loginRoles], app],
      );
      return { db: db.rows[0], roles: roles.rows };
    });
    expect(state.db).to.deep.equal({ owner: tenantA.ownerRole, encoding: 'UTF8', collate: 'C' });
    expect(state.roles).to.deep.equal([
      { rolname: tenantA.ownerRole, rolcanlogin: false, rolinherit: true, rolconfig: null, in_app: false },
      { rolname: app, rolcanlogin: false, rolinherit: true, rolconfig: null, in_app: true },
      {
        rolname: tenantA.loginRoles[0],
        rolcanlogin: true,
        rolinherit: true,
        rolconfig: ['search_path=app'],
        in_app: true,
      },
      {
        rolname: tenantA.loginRoles[1],
        rolcanlogin: false,
        rolinherit: true,
        rolconfig: ['search_path=app'],
        in_app: true,
      },
    ]);
    const tables = await superuser(
      (c) =>
        c.query<{ name: string; owner: string }>(
          `SELECT c.relname AS name, pg_get_userbyid(c.relowner) AS owner FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'app' AND c.relkind IN ('r', 'S') ORDER BY 1`,
        ),
      tenantA.database,
    );
    expect(tables.rows.map((r) => r.name)).to.include.members([
      'users',
      'audit_log',
      'outbox',
      'schema_migrations',
    ]);
    expect(new Set(tables.rows.map((r) => r.owner))).to.deep.equal(new Set([tenantA.ownerRole]));
  });

  it('is idempotent: ensuring again creates and repairs nothing', async () => {
    expect(await admin.ensureDatabase(tenantA, { locale: 'C' })).to.deep.equal({
      created: false,
      repaired: [],
    });
    expect(await admin.driftReport(tenantA, { activeLoginRole: tenantA.loginRoles[0] })).to.deep.equal([]);
  });

  it('gives PUBLIC no CONNECT or TEMPORARY and the app role CONNECT', async () => {
    const { rows } = await superuser((c) =>
      c.query<{ pub_connect: boolean; pub_temp: boolean; app_connect: boolean }>(
        `SELECT has_database_privilege('public', $1, 'CONNECT') AS pub_connect,
                has_database_privilege('public', $1, 'TEMPORARY') AS pub_temp,
                has_database_privilege($2, $1, 'CONNECT') AS app_connect`,
        [tenantA.database, appRoleName(tenantA)],
      ),
    );
    expect(rows[0]).to.deep.equal({ pub_connect: false, pub_temp: false, app_connect: true });
  });

  it("lets a login role into its own database and not into another tenant's", async () => {
    const own = await connectAs(tenantA.loginRoles[0], tenantA.database);
    const { rows } = await own.query<{ user: string; search_path: string }>(
      'SELECT current_user AS user, current_setting($1) AS search_path',
      ['search_path'],
    );
    expect(rows[0]).to.deep.equal({ user: tenantA.loginRoles[0], search_path: 'app' });
    expect(await sqlStateOf(connectAs(tenantA.loginRoles[0], tenantB.database))).to.equal('42501');
    expect(await sqlStateOf(connectAs(tenantB.loginRoles[0], tenantA.database))).to.equal('42501');
  });

  it('keeps a login role out of postgres and template1 on a prepared server', async () => {
    // The server preparation (docs/operator.md) ran in before(); tests and make dev share it.
    for (const database of ['postgres', 'template1', tenantB.database]) {
      expect(await sqlStateOf(connectAs(tenantA.loginRoles[0], database)), database).to.equal('42501');
    }
    await connectAs(tenantA.loginRoles[0], tenantA.database);
    // The operator's admin role itself still reaches postgres, where its URL points.
    await connectAs(adminRole, 'postgres');
  });

  it('revokes PUBLIC CONNECT on databases it owns and names the others that still grant it', async () => {
    const owned = `sqlt_${suffix}_owned`;
    const foreign = `sqlt_${suffix}_foreign`;
    const asAdmin = await connectAs(adminRole, 'postgres');
    await asAdmin.query(`CREATE DATABASE "${owned}"`);
    await superuser((c) => c.query(`CREATE DATABASE "${foreign}"`));
    try {
      expect(await sqlStateOf(connectAs(tenantA.loginRoles[0], owned).then((c) => c.end()))).to.equal(
        'resolved',
      );
      const report = await admin.closePublicConnect();
      expect(report.revoked).to.include(owned);
      expect(report.open).to.include(foreign);
      expect(report.open).not.to.include.members(['postgres', 'template1', owned]);
      expect(await sqlStateOf(connectAs(tenantA.loginRoles[0], owned))).to.equal('42501');
      expect((await admin.closePublicConnect()).revoked).not.to.include(owned);
    } finally {
      await asAdmin.query(`DROP DATABASE IF EXISTS "${owned}" WITH (FORCE)`);
      await superuser((c) => c.query(`DROP DATABASE IF EXISTS "${foreign}" WITH (FORCE)`));
    }
  });

  it('connects through the URI built for the Secret', async () => {
    const client = new pg.Client({
      connectionString: postgresUri({
        host: new URL(serviceUrls.postgres).hostname,
        port: Number(new URL(serviceUrls.postgres).port || 5432),
        database: tenantB.database,
        user: tenantB.loginRoles[0],
        password: `pw-${suffix}`,
      }),
    });
    await client.connect();
    openClients.push(client);
    const { rows } = await client.query<{ db: string }>('SELECT current_database() AS db');
    expect(rows[0]?.db).to.equal(tenantB.database);
  });

  it('lets the app write users, only append to the audit log, and create nothing', async () => {
    const c = await connectAs(tenantA.loginRoles[0], tenantA.database);
    const inserted = await c.query<{ id: string }>(
      `INSERT INTO users (email, role, first_name) VALUES ($1, 'admin', 'Ada') RETURNING id`,
      [`ada-${suffix}@example.com`],
    );
    expect(inserted.rows[0]?.id).to.match(/^[0-9a-f-]{36}$/);
    await c.query('UPDATE users SET last_name = $1 WHERE id = $2', ['Lovelace', inserted.rows[0]?.id]);
    expect(
      await sqlStateOf(c.query('INSERT INTO users (email) VALUES ($1)', [`ADA-${suffix}@Example.com`])),
    ).to.equal('23505');
    expect(await sqlStateOf(c.query(`INSERT INTO users (email, role) VALUES ('x@y.z', 'root')`))).to.equal(
      '23514',
    );

    await c.query(
      `INSERT INTO audit_log (actor, action, resource_type, resource_id, diff, ip, hash)
       VALUES ('ada', 'user.update', 'user', $1, '{"last_name": "Lovelace"}', '10.0.0.1', 'h1')`,
      [inserted.rows[0]?.id],
    );
    const audit = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log');
    expect(audit.rows[0]?.n).to.equal(1);
    expect(await sqlStateOf(c.query(`UPDATE audit_log SET action = 'forged'`))).to.equal('42501');
    expect(await sqlStateOf(c.query('DELETE FROM audit_log'))).to.equal('42501');
    expect(await sqlStateOf(c.query('TRUNCATE audit_log'))).to.equal('42501');

    await c.query(`INSERT INTO outbox (topic, payload) VALUES ('user.updated', '{}')`);
    await c.query('UPDATE outbox SET sent_at = now()');

    expect(await sqlStateOf(c.query('CREATE TABLE app.sneaky (id int)'))).to.equal('42501');
    expect(await sqlStateOf(c.query('CREATE TABLE public.sneaky (id int)'))).to.equal('42501');
    expect(await sqlStateOf(c.query('CREATE TEMP TABLE sneaky (id int)'))).to.equal('42501');
    const version = await c.query<{ v: number }>('SELECT max(version) AS v FROM schema_migrations');
    expect(version.rows[0]?.v).to.equal(latestSchemaVersion);
    expect(await sqlStateOf(c.query('DELETE FROM schema_migrations'))).to.equal('42501');
  });

  it('records the schema version and applies nothing the second time', async () => {
    expect(latestSchemaVersion).to.equal(migrations.at(-1)?.version);
    const again = await runTenantMigrations(admin, tenantA);
    expect(again).to.deep.equal({ from: latestSchemaVersion, to: latestSchemaVersion, applied: [] });
    const recorded = await superuser(async (c) => {
      const { rows } = await c.query<{ version: number; name: string }>(
        'SELECT version, name FROM app.schema_migrations ORDER BY version',
      );
      return { rows, version: await readSchemaVersion(c) };
    }, tenantA.database);
    expect(recorded.rows).to.deep.equal(migrations.map((m) => ({ version: m.version, name: m.name })));
    expect(recorded.version).to.equal(latestSchemaVersion);
  });

  it('refuses to run when an applied migration was changed', async () => {
    await superuser(
      (c) => c.query(`UPDATE app.schema_migrations SET checksum = 'edited' WHERE version = 1`),
      tenantB.database,
    );
    try {
      const error = await rejectionOf(runTenantMigrations(admin, tenantB));
      expect(error).to.be.instanceOf(SchemaMigrationError);
      expect((error as Error).message).to.match(/migration 1 .* was changed after it was applied/);
    } finally {
      const [first] = migrations;
      if (first) {
        await superuser(
          (c) =>
            c.query('UPDATE app.schema_migrations SET checksum = $1 WHERE version = 1', [
              migrationChecksum(first),
            ]),
          tenantB.database,
        );
      }
    }
    expect((await runTenantMigrations(admin, tenantB)).applied).to.deep.equal([]);
  });

  // Later migrations for tenant B only, to exercise the runner; numbered after the shipped ones.
  const shipped = latestSchemaVersion;
  const notes = {
    version: shipped + 1,
    name: 'notes',
    sql: 'CREATE TABLE app.notes (id bigserial PRIMARY KEY, body text)',
  };
  const fixed = [...migrations, notes, { version: shipped + 2, name: 'fixed', sql: 'SELECT 1' }];

  it('applies each pending migration in its own transaction and keeps a failed one out', async () => {
    const extra = [
      ...migrations,
      notes,
      { version: shipped + 2, name: 'broken', sql: 'CREATE TABLE app.half_done (id int); SELECT 1/0' },
    ];
    const error = await rejectionOf(runTenantMigrations(admin, tenantB, { migrations: extra }));
    expect(error).to.be.instanceOf(SchemaMigrationError);
    expect((error as Error).message).to.match(
      new RegExp(`migration ${shipped + 2} \\(broken\\) failed: division by zero`),
    );
    const state = await superuser(async (c) => {
      const versions = await c.query<{ version: number }>(
        'SELECT version FROM app.schema_migrations ORDER BY 1',
      );
      const tables = await c.query<{ t: string | null; h: string | null }>(
        `SELECT to_regclass('app.notes')::text AS t, to_regclass('app.half_done')::text AS h`,
      );
      return { versions: versions.rows.map((r) => r.version), tables: tables.rows[0] };
    }, tenantB.database);
    expect(state.versions).to.deep.equal([...migrations.map((m) => m.version), shipped + 1]);
    expect(state.tables).to.deep.equal({ t: 'app.notes', h: null });
    // New tables reach the app role through the default privileges.
    const c = await connectAs(tenantB.loginRoles[0], tenantB.database);
    await c.query(`INSERT INTO notes (body) VALUES ('hello')`);
    // The session lock and role are released after a failure: the fixed list applies.
    expect(await runTenantMigrations(admin, tenantB, { migrations: fixed })).to.deep.equal({
      from: shipped + 1,
      to: shipped + 2,
      applied: [shipped + 2],
    });
  });

  it('serialises concurrent runs against one database', async () => {
    const results = await Promise.all(
      [1, 2, 3].map(() =>
        runTenantMigrations(admin, tenantB, {
          slots: new Semaphore(3),
          migrations: [...fixed, { version: shipped + 3, name: 'slow', sql: 'SELECT pg_sleep(0.2)' }],
        }),
      ),
    );
    // Without the advisory lock all three would apply the slow version and two would fail on its key.
    expect(results.map((r) => r.applied).flat()).to.deep.equal([shipped + 3]);
  });

  it('revokes CONNECT when it was granted back to PUBLIC', async () => {
    await superuser((c) => c.query(`GRANT CONNECT ON DATABASE "${tenantA.database}" TO PUBLIC`));
    const drift = await admin.driftReport(tenantA);
    expect(drift.map((p) => p.code)).to.deep.equal(['PublicAccess']);
    const result = await admin.ensureDatabase(tenantA);
    expect(result).to.deep.equal({ created: false, repaired: ['revoked CONNECT from PUBLIC'] });
    const { rows } = await superuser((c) =>
      c.query<{ ok: boolean }>(`SELECT has_database_privilege('public', $1, 'CONNECT') AS ok`, [
        tenantA.database,
      ]),
    );
    expect(rows[0]?.ok).to.be.false;
    expect(await sqlStateOf(connectAs(tenantB.loginRoles[0], tenantA.database))).to.equal('42501');
  });

  it('recreates a dropped login role with its membership and settings', async () => {
    const dropped = tenantA.loginRoles[1];
    await superuser((c) => c.query(`DROP ROLE "${dropped}"`));
    const drift = await admin.driftReport(tenantA);
    expect(drift).to.deep.include({ code: 'RoleMissing', message: `role "${dropped}" does not exist` });
    const result = await admin.ensureDatabase(tenantA);
    expect(result.repaired).to.include(`recreated role ${dropped}`);
    expect(await admin.loginState(dropped)).to.deep.equal({ exists: true, canLogin: false });
    await admin.setLoginPassword(dropped, `pw2-${suffix}`);
    const c = await connectAs(dropped, tenantA.database);
    const { rows } = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM users');
    expect(rows[0]?.n).to.equal(1);
    await admin.retireLogin(dropped);
  });

  it('recreates a dropped app role and gives it its table privileges back', async () => {
    const app = appRoleName(tenantA);
    // The app role holds privileges in the tenant database, so drop them there first.
    await superuser((c) => c.query(`DROP OWNED BY "${app}"; DROP ROLE "${app}"`), tenantA.database);
    const drift = (await admin.driftReport(tenantA)).map((p) => p.code);
    expect(drift).to.include.members(['RoleMissing', 'AppConnectMissing', 'MembershipMissing']);
    const result = await admin.ensureDatabase(tenantA);
    expect(result.repaired).to.include.members([
      `recreated role ${app}`,
      `granted CONNECT on database ${tenantA.database} to ${app}`,
      `restored table privileges of ${app}`,
    ]);
    const c = await connectAs(tenantA.loginRoles[0], tenantA.database);
    await c.query(`INSERT INTO users (email) VALUES ($1)`, [`grace-${suffix}@example.com`]);
    await c.query(`INSERT INTO audit_log (action, resource_type, hash) VALUES ('user.create', 'user', 'h2')`);
    expect(await sqlStateOf(c.query(`UPDATE audit_log SET action = 'forged'`))).to.equal('42501');
    expect(await sqlStateOf(c.query('DELETE FROM schema_migrations'))).to.equal('42501');
    expect(await admin.driftReport(tenantA, { activeLoginRole: tenantA.loginRoles[0] })).to.deep.equal([]);
  });

  it('rotates: sets the other login role, retires the old one', async () => {
    const tenant = tenantB;
    const [current, next] = tenant.loginRoles;
    const before = await connectAs(current, tenant.database);
    expect(await admin.setLoginPassword(next, `next-${suffix}`)).to.deep.equal({
      exists: true,
      canLogin: true,
    });
    const retired = await admin.retireLogin(current);
    expect(retired.existed).to.be.true;
    // At least the session opened above; a session a previous test closed may still be exiting.
    expect(retired.terminatedSessions).to.be.at.least(1);
    expect(await sqlStateOf(before.query('SELECT 1'))).to.not.equal('resolved');
    expect(await admin.loginState(current)).to.deep.equal({ exists: true, canLogin: false });
    expect(await sqlStateOf(connectAs(current, tenant.database))).to.equal('28000');
    const passwords = await superuser((c) =>
      c.query<{ rolname: string; rolpassword: string | null }>(
        'SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY ($1::text[]) ORDER BY rolname',
        [[current, next]],
      ),
    );
    expect(passwords.rows[0]?.rolpassword).to.be.null;
    // Only a SCRAM verifier reached the server (its own hashing would give MD5), and it is for this password.
    const stored = passwords.rows[1]?.rolpassword ?? '';
    const [, iterations, salt] = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(stored) ?? [];
    expect(stored).to.equal(
      scramSha256Verifier(`next-${suffix}`, {
        salt: Buffer.from(salt ?? '', 'base64'),
        iterations: Number(iterations),
      }),
    );
    const drift = await admin.driftReport(tenant, { activeLoginRole: current });
    expect(drift.map((p) => p.code)).to.deep.equal(['LoginDisabled']);
    expect(await admin.retireLogin(`${tenant.ownerRole}_nobody`)).to.deep.equal({
      existed: false,
      terminatedSessions: 0,
    });
  });

  it('keeps passwords out of errors', async () => {
    const secret = `hunter2-${suffix}`;
    const error = await rejectionOf(admin.setLoginPassword(`${tenantA.ownerRole}_nobody`, secret));
    expect(error).to.be.instanceOf(TenantSqlError);
    expect((error as TenantSqlError).code).to.equal('42704');
    expect(JSON.stringify(error, Object.getOwnPropertyNames(error))).to.not.include(secret);
    expect((error as Error).cause).to.be.undefined;
  });

  describe('retiring and dropping a tenant', () => {
    const tenant = tenantNames(`${tenantPrefix}-c`);

    before(async () => {
      await admin.ensureDatabase(tenant);
      await runTenantMigrations(admin, tenant);
      await admin.setLoginPassword(tenant.loginRoles[0], `pw-${suffix}`);
    });

    it('disableLogin ends open sessions, refuses new ones and keeps the data', async () => {
      const idle = await connectAs(tenant.loginRoles[0], tenant.database);
      const busy = await connectAs(tenant.loginRoles[0], tenant.database);
      await busy.query(`INSERT INTO users (email) VALUES ('kept@example.com')`);
      await busy.query('BEGIN');
      const result = await admin.disableLogin(tenant);
      expect(result).to.deep.equal({ disabled: [...tenant.loginRoles], terminatedSessions: 2 });
      expect(await sqlStateOf(idle.query('SELECT 1'))).to.not.equal('resolved');
      expect(await sqlStateOf(busy.query('SELECT 1'))).to.not.equal('resolved');
      expect(await sqlStateOf(connectAs(tenant.loginRoles[0], tenant.database))).to.equal('28000');
      const kept = await superuser(
        (c) =>
          c.query<{ n: number }>(`SELECT count(*)::int AS n FROM app.users WHERE email = 'kept@example.com'`),
        tenant.database,
      );
      expect(kept.rows[0]?.n).to.equal(1);
      expect(await admin.disableLogin(tenant)).to.deep.equal({
        disabled: [...tenant.loginRoles],
        terminatedSessions: 0,
      });
    });

    it('dropTenant ends open sessions, removes database and roles, and can run again', async () => {
      await admin.setLoginPassword(tenant.loginRoles[0], `pw-${suffix}`);
      const open = await connectAs(tenant.loginRoles[0], tenant.database);
      await open.query('BEGIN');
      const result = await admin.dropTenant(tenant);
      expect(result.droppedDatabase).to.be.true;
      expect(result.droppedRoles).to.deep.equal([
        ...tenant.loginRoles,
        appRoleName(tenant),
        tenant.ownerRole,
      ]);
      expect(result.terminatedSessions).to.equal(1);
      const left = await superuser((c) =>
        c.query<{ dbs: number; roles: number }>(
          `SELECT (SELECT count(*)::int FROM pg_database WHERE datname = $1) AS dbs,
                  (SELECT count(*)::int FROM pg_roles WHERE rolname LIKE $2) AS roles`,
          [tenant.database, `${tenant.ownerRole}%`],
        ),
      );
      expect(left.rows[0]).to.deep.equal({ dbs: 0, roles: 0 });
      expect(await admin.dropTenant(tenant)).to.deep.equal({
        droppedDatabase: false,
        droppedRoles: [],
        terminatedSessions: 0,
      });
      expect(await admin.disableLogin(tenant)).to.deep.equal({ disabled: [], terminatedSessions: 0 });
      const drift = (await admin.driftReport(tenant)).map((p) => p.code);
      expect(drift).to.deep.equal([
        'DatabaseMissing',
        'RoleMissing',
        'RoleMissing',
        'RoleMissing',
        'RoleMissing',
      ]);
    });

    it('dropTenant finishes a half-deleted tenant', async () => {
      const half = tenantNames(`${tenantPrefix}-d`);
      await admin.ensureDatabase(half);
      await superuser((c) => c.query(`DROP DATABASE "${half.database}"`));
      await superuser((c) => c.query(`DROP ROLE "${half.loginRoles[0]}"`));
      const result = await admin.dropTenant(half);
      expect(result).to.deep.equal({
        droppedDatabase: false,
        droppedRoles: [half.loginRoles[1], appRoleName(half), half.ownerRole],
        terminatedSessions: 0,
      });
    });
  });

  describe('when PostgreSQL is unreachable', () => {
    const password = `s3cret-${suffix}`;
    let down: TenantDatabaseAdmin;
    const names: TenantNames = tenantNames(`${tenantPrefix}-down`);

    before(() => {
      down = new TenantDatabaseAdmin(`postgres://${adminRole}:${password}@127.0.0.1:1/postgres`, {
        connectionTimeoutMillis: 2000,
      });
    });

    after(() => down.close());

    const calls: [string, () => Promise<unknown>][] = [
      ['ensureDatabase', () => down.ensureDatabase(names)],
      ['setLoginPassword', () => down.setLoginPassword(names.loginRoles[0], password)],
      ['dropTenant', () => down.dropTenant(names)],
      ['runTenantMigrations', () => runTenantMigrations(down, names)],
    ];
    for (const [name, call] of calls) {
      it(`${name} throws DatabaseUnavailableError without the password`, async () => {
        const error = await rejectionOf(call());
        expect(error).to.be.instanceOf(DatabaseUnavailableError);
        const message = (error as Error).message;
        expect(message).to.include('127.0.0.1:1');
        expect(message).to.not.include(password);
      });
    }
  });
});

describe('Semaphore', () => {
  it('never runs more than its limit at once and runs every task', async () => {
    const slots = new Semaphore(2);
    let running = 0;
    let peak = 0;
    const results = await Promise.all(
      Array.from({ length: 7 }, (_, i) =>
        slots.run(async () => {
          running += 1;
          peak = Math.max(peak, running);
          await new Promise((resolve) => setTimeout(resolve, 5));
          running -= 1;
          return i;
        }),
      ),
    );
    expect(results).to.deep.equal([0, 1, 2, 3, 4, 5, 6]);
    expect(peak).to.equal(2);
    expect(slots.active).to.equal(0);
  });

  it('frees the slot when a task fails and wakes waiters when the limit grows', async () => {
    const slots = new Semaphore(1);
    await rejectionOf(slots.run(() => Promise.reject(new Error('boom'))));
    let release!: () => void;
    const first = slots.run(() => new Promise<void>((resolve) => (release = resolve)));
    let secondStarted = false;
    const second = slots.run(() => {
      secondStarted = true;
      return Promise.resolve();
    });
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(secondStarted).to.be.false;
    slots.setLimit(2);
    await second;
    expect(secondStarted).to.be.true;
    release();
    await first;
    expect(() => slots.setLimit(0)).to.throw(RangeError);
  });
});
