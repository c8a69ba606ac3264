// The PostgreSQL role the operator runs as outside production: LOGIN with
// CREATEDB and CREATEROLE only, never a superuser, so tests and benchmarks
// exercise the same privilege checks as a real install. The server is prepared
// first, as for a real install: the role gets CONNECT on `postgres` explicitly.
import { dropAdminRole, grantAdminConnect, preparePostgresServer } from './postgres-server.js';
import { serviceUrls, uniqueSuffix, withPostgresAdmin } from './services.js';

export interface OperatorAdminRole {
  name: string;
  /** Connection URL for the role, on the same host and port as the admin URL unless `port` was given. */
  url: string;
  /** Drops the role; drop the tenant databases and roles it created first. */
  drop(): Promise<void>;
}

export async function createOperatorAdminRole(
  label: string,
  options: { port?: number } = {},
): Promise<OperatorAdminRole> {
  const name = `tenantry_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_admin_${uniqueSuffix().slice(-6)}`;
  await preparePostgresServer();
  await withPostgresAdmin(async (c) => {
    await c.query(`CREATE ROLE "${name}" LOGIN CREATEDB CREATEROLE`);
    await grantAdminConnect(c, name);
  });
  const url = new URL(serviceUrls.postgres);
  url.username = name;
  url.password = '';
  if (options.port !== undefined) url.port = String(options.port);
  return {
    name,
    url: url.toString(),
    drop: () => withPostgresAdmin((c) => dropAdminRole(c, name)),
  };
}
