// Server-wide privileges the operator relies on but does not create: which
// databases outside the tenants' own still let every role (PUBLIC) connect. A
// new database grants CONNECT to PUBLIC, and so do `postgres` and `template1`
// out of the box; any tenant login role could then open them. The operator
// revokes that on databases it owns; the rest needs the server preparation in
// docs/operator.md, so it is reported.
import type pg from 'pg';
import { quoteIdent } from '../../../lib/tenant-schema/migrate.js';

export interface PublicConnectReport {
  /** Databases whose CONNECT for PUBLIC the operator has just revoked. */
  revoked: string[];
  /** Databases that still let PUBLIC connect, owned by roles the operator cannot act for. */
  open: string[];
}

export async function closePublicConnect(c: pg.ClientBase): Promise<PublicConnectReport> {
  // A NULL datacl means the built-in defaults, which give PUBLIC CONNECT. template0
  // accepts no connections at all, so it is left out. "Ours" is ownership by the
  // admin or a role it was granted (tenant owners), not a superuser's reach.
  const { rows } = await c.query<{ name: string; ours: boolean }>(
    `SELECT d.datname AS name,
            (d.datdba = me.oid OR EXISTS (SELECT 1 FROM pg_auth_members m
                                           WHERE m.roleid = d.datdba AND m.member = me.oid)) AS ours
       FROM pg_database d, (SELECT oid FROM pg_roles WHERE rolname = current_user) me
      WHERE d.datallowconn
        AND EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                     WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT')
      ORDER BY d.datname`,
  );
  const report: PublicConnectReport = { revoked: [], open: [] };
  for (const row of rows) {
    if (row.ours) {
      await c.query(`REVOKE CONNECT ON DATABASE ${quoteIdent(row.name)} FROM PUBLIC`);
      report.revoked.push(row.name);
    } else {
      report.open.push(row.name);
    }
  }
  return report;
}
