// A throwaway tenant database built the way the operator builds one: its roles
// and database from the operator's SQL layer, the schema from the shipped
// migrations. Tests reach it as the tenant's login role, so the app role's
// privileges are the ones under test, or as the superuser to play an insider.
import { randomBytes } from 'node:crypto';
import { latestSchemaVersion, migrateTenantSchema } from '../../lib/tenant-schema/migrate.js';
import { tenantNames, type TenantNames } from '../../lib/tenant/index.js';
import { appRoleName, TenantDatabaseAdmin } from '../../operator/src/sql/tenant-database.js';
import { serviceUrls, uniqueSuffix } from './services.js';

export interface TestTenantDatabase {
  names: TenantNames;
  /** Connects as the tenant's first login role: what the API uses. */
  loginUrl: string;
  /** Connects as the admin (superuser on development machines) to the tenant database. */
  superuserUrl: string;
  /** Drops the database and the tenant's roles. */
  drop(): Promise<void>;
}

export async function createTestTenantDatabase(label: string): Promise<TestTenantDatabase> {
  const names = tenantNames(`${label.replace(/[^a-z0-9]/gi, '-').toLowerCase()}-${uniqueSuffix()}`);
  const admin = new TenantDatabaseAdmin(serviceUrls.postgres);
  try {
    await admin.ensureDatabase(names);
    const migrated = await admin.withTenantDatabase(names.database, (c) =>
      migrateTenantSchema(c, { ownerRole: names.ownerRole, appRole: appRoleName(names) }),
    );
    if (migrated.to !== latestSchemaVersion) throw new Error(`schema stopped at v${migrated.to}`);
    // Trust auth: the password only gives the role LOGIN.
    await admin.setLoginPassword(names.loginRoles[0], randomBytes(16).toString('hex'));
  } catch (error) {
    await admin.dropTenant(names).catch(() => undefined);
    await admin.close();
    throw error;
  }
  const urlFor = (user: string | undefined): string => {
    const url = new URL(serviceUrls.postgres);
    if (user !== undefined) {
      url.username = encodeURIComponent(user);
      url.password = '';
    }
    url.pathname = `/${encodeURIComponent(names.database)}`;
    return url.toString();
  };
  return {
    names,
    loginUrl: urlFor(names.loginRoles[0]),
    superuserUrl: urlFor(undefined),
    drop: async () => {
      try {
        await admin.dropTenant(names);
      } finally {
        await admin.close();
      }
    },
  };
}
