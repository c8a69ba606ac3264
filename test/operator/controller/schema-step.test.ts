import { expect } from 'chai';
import { latestSchemaVersion } from '../../../lib/tenant-schema/migrate.js';
import { restoreFromUidAnnotation, tenantNames } from '../../../lib/tenant/index.js';
import { DatabaseUnavailableError } from '../../../operator/src/sql/tenant-database.js';
import { fakes, makeTenant, state } from './fakes.js';
import { provisioned, reconcile, runThrough, withTenant } from './drive.js';

describe('operator step Schema', () => {
  it('migrates a new database to the latest version and records it', async () => {
    const fx = fakes();
    withTenant(fx);
    const { ctx, outcome } = await runThrough(fx, 'Schema');
    expect(outcome).to.deep.equal({
      reason: 'UpToDate',
      message: `schema at version ${latestSchemaVersion}`,
    });
    expect(ctx.status.database?.schemaVersion).to.equal(latestSchemaVersion);
    // A database created by this reconcile has no rows from before uids were recorded.
    expect(fx.migrations).to.deep.equal([{ database: 'tenant_acme', legacyOwnerUid: undefined }]);
    expect(fx.events.reasons()).to.include('SchemaMigrated');
  });

  it('turns False with the reason of the migration failure, and blocks the later steps', async () => {
    const fx = fakes();
    withTenant(fx);
    fx.migrateError = new Error('migration 4 failed: relation "app.users" does not exist');
    const failed = await reconcile(fx);
    expect(failed.condition('Database')).to.include({ status: 'True' });
    expect(failed.condition('Schema')).to.include({
      status: 'False',
      reason: 'Failed',
      message: 'migration 4 failed: relation "app.users" does not exist',
    });
    expect(failed.condition('Secrets')).to.include({ status: 'Unknown', reason: 'Blocked' });
    fx.migrateError = new DatabaseUnavailableError('postgres://db.example/tenant_acme', new Error('timeout'));
    const unreachable = await reconcile(fx);
    expect(unreachable.condition('Schema')).to.include({ status: 'False', reason: 'DatabaseUnreachable' });
  });

  it('lets rows without a uid take the Tenant’s only when this very Tenant migrated the database before', async () => {
    const fx = fakes();
    withTenant(fx);
    await provisioned(fx);
    // A spec change: the schema step looks again, as the Tenant that migrated it.
    const tenant = fx.kube.tenant('acme')!;
    tenant.metadata.generation = 2;
    tenant.spec.plan = 'professional';
    fx.kube.addTenant(tenant);
    await reconcile(fx);
    expect(fx.migrations.map((m) => m.legacyOwnerUid)).to.deep.equal([undefined, 'uid-acme']);

    // A Tenant re-created over a retained database (the restore annotation) has no recorded
    // version: the rows there were issued under the old Tenant and stay without a uid.
    const again = fakes();
    const restored = makeTenant('acme', { uid: 'uid-of-the-new-acme' });
    restored.metadata.annotations = { [restoreFromUidAnnotation]: 'uid-of-the-old-acme' };
    again.kube.addTenant(restored);
    again.db.seedForeign(tenantNames('acme'), 'uid-of-the-old-acme');
    const done = await reconcile(again);
    expect(done.condition('Database')).to.include({ status: 'True', reason: 'Ready' });
    expect(again.migrations).to.deep.equal([{ database: 'tenant_acme', legacyOwnerUid: undefined }]);
  });

  it('changes nothing and migrates nothing when run again', async () => {
    const fx = fakes();
    withTenant(fx);
    await provisioned(fx);
    const before = state(fx);
    const { outcome } = await runThrough(fx, 'Schema');
    expect(outcome.reason).to.equal('UpToDate');
    expect(fx.migrations).to.have.length(1);
    expect(state(fx)).to.deep.equal(before);
    expect(fx.events.reasons().filter((r) => r === 'SchemaMigrated')).to.have.length(1);
  });
});
