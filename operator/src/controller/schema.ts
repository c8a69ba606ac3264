// Step 3: tenant schema migrations, run as the tenant's owner role. Skipped when
// the recorded version is current and nothing about the database changed.
import { latestSchemaVersion } from '../../../lib/tenant-schema/migrate.js';
import type { ReconcileContext, Step } from './context.js';

/**
 * The Tenant's uid when this very Tenant object already migrated the database
 * on an earlier reconcile: then the rows in it were issued under this Tenant,
 * and rows from before uids were recorded may take its uid. A Tenant seen for
 * the first time (new, or re-created over a database kept under Retain) has no
 * recorded schema version, so a restored database's rows stay without a uid.
 */
function ownedSince(ctx: ReconcileContext): { legacyOwnerUid?: string } {
  const recorded = ctx.tenant.status?.database;
  const uid = ctx.tenant.metadata.uid;
  const migratedBefore =
    !ctx.databaseCreated && recorded?.name === ctx.names.database && (recorded.schemaVersion ?? 0) > 0;
  return migratedBefore && uid ? { legacyOwnerUid: uid } : {};
}

export const schemaStep: Step = {
  condition: 'Schema',
  async run(ctx) {
    const db = (ctx.status.database ??= {});
    const current =
      db.schemaVersion === latestSchemaVersion &&
      !ctx.databaseCreated &&
      ctx.tenant.status?.observedGeneration === ctx.tenant.metadata.generation;
    if (!current) {
      const before = db.schemaVersion;
      db.schemaVersion = await ctx.deps.migrate(ctx.names, ownedSince(ctx));
      if (before !== db.schemaVersion) {
        ctx.deps.events.record(
          ctx.tenant,
          'Normal',
          'SchemaMigrated',
          `schema at version ${db.schemaVersion}`,
        );
      }
    }
    return { reason: 'UpToDate', message: `schema at version ${db.schemaVersion}` };
  },
};
