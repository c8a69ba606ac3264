// The SQL side of ownership against real PostgreSQL, as the operator's
// non-superuser admin role: markers on what it creates, NameConflict before any
// change to what another owner holds, and the move of a tenant off the role
// names of earlier versions without breaking its sessions.
import { randomBytes, randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import {
  NameConflictError,
  ownershipMarker,
  legacyRoleNames,
  tenantNames,
  type TenantNames,
} from '../../lib/tenant/index.js';
import { TenantDatabaseAdmin } from '../../operator/src/sql/tenant-database.js';
import { createOperatorAdminRole, type OperatorAdminRole } from '../harness/operator-admin.js';
import { serviceUrls, uniqueSuffix, withPostgresAdmin } from '../harness/services.js';

describe('operator SQL ownership (real PostgreSQL)', function () {
  this.timeout(60_000);
  let adminRole: OperatorAdminRole;
  let admin: TenantDatabaseAdmin;
  const prefix = `own${uniqueSuffix().slice(-6)}`;
  const created: TenantNames[] = [];
  const names = (label: string): TenantNames => {
    const n = tenantNames(`${prefix}-${label}`);
    created.push(n);
    return n;
  };
  const sql = <T extends pg.QueryResultRow>(text: string, values: unknown[] = []) =>
    withPostgresAdmin((c) => c.query<T>(text, values));
  const comment = async (role: string) =>
    (
      await sql<{ c: string | null }>(
        `SELECT shobj_description(oid, 'pg_authid') AS c FROM pg_roles WHERE rolname = $1`,
        [role],
      )
    ).rows[0]?.c;
  const connectAs = async (user: string, database: string) => {
    const url = new URL(serviceUrls.postgres);
    url.username = encodeURIComponent(user);
    url.password = '';
    url.pathname = `/${database}`;
    const client = new pg.Client({ connectionString: url.toString() });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  };

  before(async () => {
    adminRole = await createOperatorAdminRole('ownership');
    admin = new TenantDatabaseAdmin(adminRole.url);
  });

  after(async () => {
    await admin?.close();
    for (const n of created) {
      await withPostgresAdmin(async (c) => {
        await c.query(`DROP DATABASE IF EXISTS "${n.database}" WITH (FORCE)`);
        const legacy = legacyRoleNames(n);
        for (const role of [...n.loginRoles, ...legacy.loginRoles, n.appRole, legacy.appRole, n.ownerRole])
          await c.query(`DROP ROLE IF EXISTS "${role}"`);
      }).catch(() => undefined);
    }
    await adminRole?.drop().catch(() => undefined);
  });

  it('marks every role and the database with the owner uid', async () => {
    const n = names('mark');
    const uid = randomUUID();
    await admin.ensureDatabase(n, { owner: { uid } });
    for (const role of [n.ownerRole, n.appRole, ...n.loginRoles])
      expect(await comment(role), role).to.equal(ownershipMarker(uid));
    const db = await sql<{ c: string }>(
      `SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database WHERE datname = $1`,
      [n.database],
    );
    expect(db.rows[0]?.c).to.equal(ownershipMarker(uid));
    // A second run changes nothing.
    expect(await admin.ensureDatabase(n, { owner: { uid } })).to.deep.equal({ created: false, repaired: [] });
  });

  it('refuses, before changing anything, names another uid or nobody recorded holds', async () => {
    const n = names('taken');
    const other = randomUUID();
    await sql(`CREATE ROLE "${n.loginRoles[1]}" LOGIN`);
    await sql(`COMMENT ON ROLE "${n.loginRoles[1]}" IS '${ownershipMarker(other)}'`);
    const error = await admin.ensureDatabase(n, { owner: { uid: randomUUID() } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(NameConflictError);
    expect((error as Error).message)
      .to.contain(`role "${n.loginRoles[1]}"`)
      .and.not.contain(other);
    for (const role of [n.ownerRole, n.appRole, n.loginRoles[0]])
      expect(await comment(role)).to.equal(undefined);
    expect(await comment(n.loginRoles[1])).to.equal(ownershipMarker(other));
    // The finalizer's drop leaves it alone and says so.
    const dropped = await admin.dropTenant(n, { uid: randomUUID() });
    expect(dropped.skipped).to.deep.equal([`role "${n.loginRoles[1]}"`]);
    expect(await comment(n.loginRoles[1])).to.equal(ownershipMarker(other));
    const disabled = await admin.disableLogin(n, { uid: randomUUID() });
    expect(disabled).to.deep.equal({
      disabled: [],
      terminatedSessions: 0,
      skipped: [`role "${n.loginRoles[1]}"`],
    });
    const still = await sql<{ rolcanlogin: boolean }>('SELECT rolcanlogin FROM pg_roles WHERE rolname = $1', [
      n.loginRoles[1],
    ]);
    expect(still.rows[0]?.rolcanlogin).to.equal(true);

    // Unmarked and not recorded: also not adopted. Recorded in the status: recognised and marked.
    const u = names('unmarked');
    await sql(`CREATE ROLE "${u.ownerRole}" NOLOGIN`);
    const uid = randomUUID();
    expect(
      await admin.ensureDatabase(u, { owner: { uid } }).then(
        () => undefined,
        (e: unknown) => e,
      ),
    ).to.be.instanceOf(NameConflictError);
    await admin.ensureDatabase(u, { owner: { uid, recorded: [u.ownerRole] } });
    expect(await comment(u.ownerRole)).to.equal(ownershipMarker(uid));
  });

  it('moves a tenant off the old role names: renames the app role, keeps old sessions, drops unused old logins', async () => {
    const n = names('legacy');
    const legacy = legacyRoleNames(n);
    // As earlier versions built it, unmarked.
    await admin.ensureDatabase({ ...n, appRole: legacy.appRole, loginRoles: legacy.loginRoles });
    const tenantDbUrl = new URL(serviceUrls.postgres);
    tenantDbUrl.pathname = `/${n.database}`;
    await withPostgresAdmin(async (c) => {
      await c.query('CREATE TABLE app.t (x int); INSERT INTO app.t VALUES (1)');
      await c.query(`ALTER TABLE app.t OWNER TO "${n.ownerRole}"`);
      await c.query(`GRANT SELECT ON app.t TO "${legacy.appRole}"`);
    }, tenantDbUrl.toString());
    await admin.setLoginPassword(legacy.loginRoles[0], randomBytes(12).toString('hex'));
    const session = await connectAs(legacy.loginRoles[0], n.database);
    try {
      const uid = randomUUID();
      const owner = { uid, recorded: [n.database, n.ownerRole, legacy.loginRoles[0]] };
      const result = await admin.ensureDatabase(n, { owner });
      expect(result.repaired).to.include(`renamed role ${legacy.appRole} to ${n.appRole}`);
      expect(result.repaired).to.include(`dropped old login role ${legacy.loginRoles[1]}`);
      // The old login in use keeps working, through the renamed app role.
      expect((await session.query('SELECT x FROM app.t')).rows).to.deep.equal([{ x: 1 }]);
      const fresh = await connectAs(legacy.loginRoles[0], n.database);
      await fresh.end();
      const newLogin = await (async () => {
        await admin.setLoginPassword(n.loginRoles[0], randomBytes(12).toString('hex'));
        return connectAs(n.loginRoles[0], n.database);
      })();
      expect((await newLogin.query('SELECT x FROM app.t')).rows).to.deep.equal([{ x: 1 }]);
      await newLogin.end();
      for (const role of [n.ownerRole, n.appRole, ...n.loginRoles])
        expect(await comment(role), role).to.equal(ownershipMarker(uid));
      expect(await comment(legacy.appRole)).to.equal(undefined);

      // Once the status no longer records it, the old login is retired and dropped.
      await admin.retireLogin(legacy.loginRoles[0], owner);
      const later = await admin.ensureDatabase(n, {
        owner: { uid, recorded: [n.database, n.ownerRole, n.loginRoles[0]] },
      });
      expect(later.repaired).to.deep.equal([`dropped old login role ${legacy.loginRoles[0]}`]);
      const left = await sql('SELECT 1 FROM pg_roles WHERE rolname = ANY ($1)', [
        [legacy.appRole, ...legacy.loginRoles],
      ]);
      expect(left.rowCount).to.equal(0);
    } finally {
      await session.end().catch(() => undefined);
    }
  });

  it('never takes an old-scheme name that is another tenant’s owner role', async () => {
    // `<x>-a` owns the database tenant_<x>_a; for tenant <x> that is the old name of a login role.
    const x = names('x');
    const xa = names('x-a');
    const xaUid = randomUUID();
    await admin.ensureDatabase(xa, { owner: { uid: xaUid } });
    const xUid = randomUUID();
    await admin.ensureDatabase(x, { owner: { uid: xUid } });
    await admin.dropTenant(x, { uid: xUid });
    expect(await comment(xa.ownerRole)).to.equal(ownershipMarker(xaUid));
    const db = await sql('SELECT 1 FROM pg_database WHERE datname = $1', [xa.database]);
    expect(db.rowCount).to.equal(1);
  });
});
