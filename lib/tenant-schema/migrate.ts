// Applies the tenant schema migrations to one tenant database. Shared by the
// operator (which runs it) and the API (which reads the expected version).
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { withTransaction } from '../transaction.js';
import { appendOnlyTables, migrations as shippedMigrations, type Migration } from './migrations.js';

export type { Migration } from './migrations.js';

/** The version a tenant database has once every shipped migration is applied. */
export const latestSchemaVersion: number = Math.max(0, ...shippedMigrations.map((m) => m.version));

/** The roles a tenant schema is built for: objects belong to the owner, the app role uses them. */
export interface TenantSchemaRoles {
  ownerRole: string;
  appRole: string;
}

export interface MigrationResult {
  /** The schema version before this run. */
  from: number;
  /** The schema version after this run. */
  to: number;
  /** Versions applied by this run, in order. */
  applied: number[];
}

/** The migration that adds `tenant_uid` to refresh tokens and API clients. */
export const tenantUidMigrationVersion = 8;

export interface MigrateOptions {
  migrations?: readonly Migration[];
  /**
   * The uid of the Tenant that owned this database before the upgrade. When the
   * `tenant_uid` migration runs, rows issued before it get this uid in the same
   * transaction, so they keep working. Leave it out for a database that may
   * have come from an earlier Tenant (a restore): its rows stay without a uid
   * and are refused.
   */
  legacyOwnerUid?: string;
}

/** A migration that cannot be applied, or a history that does not match the code. */
export class SchemaMigrationError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SchemaMigrationError';
  }
}

/** Quotes an SQL identifier: wraps it in double quotes and doubles any inside. */
export function quoteIdent(name: string): string {
  if (name.length === 0 || name.includes('\0')) throw new Error('invalid SQL identifier');
  return `"${name.replaceAll('"', '""')}"`;
}

export function migrationChecksum(migration: Migration): string {
  return createHash('sha256').update(migration.sql).digest('hex');
}

/** Fills a migration template's role placeholders with quoted role names. */
export function renderMigrationSql(sql: string, roles: TenantSchemaRoles): string {
  return sql.replaceAll(/\{\{(\w+)\}\}/g, (_match, key: string) => {
    if (key === 'appRole') return quoteIdent(roles.appRole);
    if (key === 'ownerRole') return quoteIdent(roles.ownerRole);
    throw new SchemaMigrationError(`unknown placeholder {{${key}}} in a migration`);
  });
}

// Advisory locks are scoped to the current database, so one key serialises
// the runs against each tenant database without blocking the others.
const migrationLockKey = '7315846201';

/**
 * Brings the tenant schema up to the newest migration. `client` must be
 * connected to the tenant database as a member of `ownerRole`, so everything it
 * creates belongs to the owner and the default privileges reach the app role.
 * Each migration runs in its own transaction; a failed one is rolled back and
 * stops the run.
 */
export async function migrateTenantSchema(
  client: pg.ClientBase,
  roles: TenantSchemaRoles,
  options: MigrateOptions = {},
): Promise<MigrationResult> {
  const list = options.migrations ?? shippedMigrations;
  assertOrdered(list);
  await client.query('SELECT pg_advisory_lock($1::bigint)', [migrationLockKey]);
  let result: MigrationResult;
  try {
    await client.query(`SET ROLE ${quoteIdent(roles.ownerRole)}`);
    result = await applyPending(client, roles, list, options.legacyOwnerUid);
  } catch (error) {
    await releaseSession(client).catch(() => undefined);
    throw error;
  }
  await releaseSession(client);
  return result;
}

/** The tenant database's schema version, 0 when no migration has run. */
export async function readSchemaVersion(client: pg.ClientBase): Promise<number> {
  const { rows } = await client.query<{ present: boolean }>(
    `SELECT to_regclass('app.schema_migrations') IS NOT NULL AS present`,
  );
  if (!rows[0]?.present) return 0;
  const current = await client.query<{ version: number }>(
    'SELECT coalesce(max(version), 0) AS version FROM app.schema_migrations',
  );
  return current.rows[0]?.version ?? 0;
}

/**
 * Grants the app role its privileges on the existing tables and sequences
 * again. Default privileges only cover objects created later, so a recreated
 * app role needs this to use the tables that are already there.
 */
export async function reapplyAppPrivileges(client: pg.ClientBase, roles: TenantSchemaRoles): Promise<void> {
  const app = quoteIdent(roles.appRole);
  await withTransaction(client, async () => {
    await client.query(`SET LOCAL ROLE ${quoteIdent(roles.ownerRole)}`);
    await client.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA app TO ${app}`);
    await client.query(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA app TO ${app}`);
    const { rows } = await client.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'app' AND c.relkind IN ('r', 'p') AND c.relname = ANY($1::text[])`,
      [['schema_migrations', ...appendOnlyTables]],
    );
    for (const { name } of rows) {
      const revoked =
        name === 'schema_migrations' ? 'INSERT, UPDATE, DELETE, TRUNCATE' : 'UPDATE, DELETE, TRUNCATE';
      await client.query(`REVOKE ${revoked} ON app.${quoteIdent(name)} FROM ${app}`);
    }
  });
}

function assertOrdered(list: readonly Migration[]): void {
  list.forEach((migration, index) => {
    const previous = list[index - 1];
    if (!Number.isInteger(migration.version) || migration.version < 1) {
      throw new SchemaMigrationError(`migration version ${migration.version} is not a positive integer`);
    }
    if (previous && migration.version <= previous.version) {
      throw new SchemaMigrationError(
        `migrations must have increasing versions: ${migration.version} follows ${previous.version}`,
      );
    }
  });
}

async function applyPending(
  client: pg.ClientBase,
  roles: TenantSchemaRoles,
  list: readonly Migration[],
  legacyOwnerUid: string | undefined,
): Promise<MigrationResult> {
  await ensureHistoryTable(client, roles);
  const history = await client.query<{ version: number; name: string; checksum: string }>(
    'SELECT version, name, checksum FROM app.schema_migrations ORDER BY version',
  );
  const known = new Map(list.map((m) => [m.version, m]));
  for (const row of history.rows) {
    const migration = known.get(row.version);
    if (!migration) {
      throw new SchemaMigrationError(
        `the database has migration ${row.version} (${row.name}), which this build does not know; ` +
          `it was migrated by a newer version`,
      );
    }
    if (migrationChecksum(migration) !== row.checksum) {
      throw new SchemaMigrationError(
        `migration ${row.version} (${migration.name}) was changed after it was applied ` +
          `(checksum ${row.checksum.slice(0, 12)} in the database, ${migrationChecksum(migration).slice(0, 12)} in the code); ` +
          `add a new migration instead of editing an applied one`,
      );
    }
  }
  const done = new Set(history.rows.map((r) => r.version));
  const from = Math.max(0, ...done);
  const applied: number[] = [];
  for (const migration of list) {
    if (done.has(migration.version)) continue;
    if (migration.version < from) {
      throw new SchemaMigrationError(
        `migration ${migration.version} (${migration.name}) is older than the applied version ${from}; ` +
          `give it a version above ${from}`,
      );
    }
    await applyOne(client, migration, roles, legacyOwnerUid);
    applied.push(migration.version);
  }
  return { from, to: applied.at(-1) ?? from, applied };
}

async function ensureHistoryTable(client: pg.ClientBase, roles: TenantSchemaRoles): Promise<void> {
  const { rows } = await client.query<{ schema: boolean; table: boolean }>(
    `SELECT to_regnamespace('app') IS NOT NULL AS schema, to_regclass('app.schema_migrations') IS NOT NULL AS table`,
  );
  if (rows[0]?.table) return;
  if (!rows[0]?.schema) {
    throw new SchemaMigrationError('schema "app" does not exist; ensure the tenant database first');
  }
  await withTransaction(client, async () => {
    await client.query(`CREATE TABLE IF NOT EXISTS app.schema_migrations (
      version int PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    // The app may read which version it runs against, never rewrite history.
    await client.query(
      `REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON app.schema_migrations FROM ${quoteIdent(roles.appRole)}`,
    );
  });
}

async function applyOne(
  client: pg.ClientBase,
  migration: Migration,
  roles: TenantSchemaRoles,
  legacyOwnerUid: string | undefined,
): Promise<void> {
  try {
    await withTransaction(client, async () => {
      await client.query(renderMigrationSql(migration.sql, roles));
      if (migration.version === tenantUidMigrationVersion && legacyOwnerUid) {
        await client.query('UPDATE app.refresh_tokens SET tenant_uid = $1 WHERE tenant_uid IS NULL', [
          legacyOwnerUid,
        ]);
        await client.query('UPDATE app.api_clients SET tenant_uid = $1 WHERE tenant_uid IS NULL', [
          legacyOwnerUid,
        ]);
      }
      await client.query('INSERT INTO app.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
        migration.version,
        migration.name,
        migrationChecksum(migration),
      ]);
    });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new SchemaMigrationError(`migration ${migration.version} (${migration.name}) failed: ${reason}`, {
      cause: error,
    });
  }
}

async function releaseSession(client: pg.ClientBase): Promise<void> {
  await client.query('RESET ROLE');
  await client.query('SELECT pg_advisory_unlock($1::bigint)', [migrationLockKey]);
}
