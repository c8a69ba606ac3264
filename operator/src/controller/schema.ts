// Step 3: tenant schema migrations, run as the tenant's owner role. Skipped when
// the recorded version is current and nothing about the database changed.
import { latestSchemaVersion } from '../../../lib/tenant-schema/migrate.js';
import type { Step } from './context.js';

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
      db.schemaVersion = await ctx.deps.migrate(ctx.names);
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
