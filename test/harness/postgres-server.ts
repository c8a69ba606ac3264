// Prepares the shared PostgreSQL server the way docs/operator.md ("Preparing
// the server") asks of a production one: no database outside the tenants' own
// lets every role connect. `postgres` and `template1` grant CONNECT to PUBLIC
// out of the box; revoked, a tenant's login role can open its own database
// only. Roles that do connect to `postgres` get CONNECT explicitly: locally
// those are the operator admin roles of tests and benches (non-superusers with
// CREATEROLE); superusers need no grant. Idempotent, run once per process.
import { withPostgresAdmin } from './services.js';

let prepared: Promise<void> | undefined;

export function preparePostgresServer(): Promise<void> {
  prepared ??= withPostgresAdmin(async (c) => {
    await c.query('REVOKE CONNECT ON DATABASE postgres FROM PUBLIC');
    await c.query('REVOKE CONNECT ON DATABASE template1 FROM PUBLIC');
    const { rows } = await c.query<{ name: string }>(
      `SELECT rolname AS name FROM pg_roles
        WHERE rolcanlogin AND rolcreaterole AND NOT rolsuper
          AND NOT has_database_privilege(oid, 'postgres', 'CONNECT')`,
    );
    for (const { name } of rows) await grantAdminConnect(c, name);
  }).catch((error: unknown) => {
    prepared = undefined;
    throw error;
  });
  return prepared;
}

interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rowCount: number | null }>;
}

const quoted = (role: string): string => `"${role.replaceAll('"', '""')}"`;

/** Lets an operator admin role (a non-superuser) reach `postgres`, where its connection URL points. */
export async function grantAdminConnect(c: Queryable, role: string): Promise<void> {
  await c.query(`GRANT CONNECT ON DATABASE postgres TO ${quoted(role)}`);
}

/** Drops an admin role made by `grantAdminConnect`'s callers: its grant on `postgres` would block DROP ROLE. */
export async function dropAdminRole(c: Queryable, role: string): Promise<void> {
  const { rowCount } = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
  if (!rowCount) return;
  await c.query(`REVOKE CONNECT ON DATABASE postgres FROM ${quoted(role)}`);
  await c.query(`DROP ROLE ${quoted(role)}`);
}
