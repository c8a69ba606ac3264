import { expect } from 'chai';
import { ownershipMarker, rotatePasswordAnnotation } from '../../../lib/tenant/index.js';
import { DatabaseUnavailableError } from '../../../operator/src/sql/tenant-database.js';
import { fakes, state } from './fakes.js';
import { provisioned, reconcile, runThrough, withTenant, rerunOfProvisioned } from './drive.js';

const loginA = 'tenant_acme.a';
const loginB = 'tenant_acme.b';

describe('operator step Database', () => {
  it('creates the database and roles marked as the Tenant’s, and a login role with a new password', async () => {
    const fx = fakes();
    withTenant(fx);
    const { ctx, outcome } = await runThrough(fx, 'Database');
    expect(outcome).to.deep.equal({
      reason: 'Created',
      message: 'database tenant_acme and login role ready',
    });
    const marker = ownershipMarker('uid-acme');
    expect(fx.db.databases.get('tenant_acme')).to.deep.equal({ marker, locale: 'C' });
    expect([...fx.db.roles.keys()]).to.have.members(['tenant_acme', 'tenant_acme.app', loginA, loginB]);
    expect(fx.db.roles.get(loginA)).to.deep.equal({ marker, canLogin: true, password: 'password-1' });
    expect(fx.db.roles.get(loginB)).to.deep.include({ canLogin: false });
    expect(ctx.dbCredentials).to.deep.equal({ username: loginA, password: 'password-1' });
    expect(ctx.databaseCreated).to.equal(true);
    expect(ctx.status.database).to.deep.equal({
      name: 'tenant_acme',
      ownerRole: 'tenant_acme',
      // The server the operator reaches PostgreSQL on (POSTGRES_URL), for `kubectl get tn -o wide`.
      server: 'postgres-admin.example:5432',
      username: loginA,
      passwordRotatedAt: '2026-12-01T12:00:00.000Z',
      lastRotationTrigger: '|',
    });
    expect(fx.events.reasons()).to.deep.equal(['DatabaseCreated', 'CredentialsCreated']);
  });

  it('turns False with DatabaseUnreachable when PostgreSQL cannot be reached, without the password', async () => {
    const fx = fakes();
    withTenant(fx);
    fx.db.failures.set(
      'ensureDatabase',
      new DatabaseUnavailableError(
        'postgres://operator:s3cret-pw@db.example:5432/postgres',
        new Error('connect ECONNREFUSED'),
      ),
    );
    const done = await reconcile(fx);
    expect(done.error).to.be.instanceOf(DatabaseUnavailableError);
    expect(done.condition('Namespace')).to.include({ status: 'True' });
    const condition = done.condition('Database');
    expect(condition).to.include({ status: 'False', reason: 'DatabaseUnreachable' });
    expect(condition?.message).to.include('connect ECONNREFUSED').and.not.include('s3cret-pw');
    expect(done.condition('Schema')).to.include({ status: 'Unknown', reason: 'Blocked' });
    expect(done.tenant.status?.phase).to.equal('Provisioning');
    // A database that is down comes back by itself: still working, not stalled, no Stalled event.
    expect(done.condition('Reconciling')).to.include({ status: 'True', reason: 'DatabaseUnreachable' });
    expect(done.condition('Stalled')).to.include({ status: 'False' });
    expect(fx.events.reasons()).not.to.include('Stalled');
  });

  it('refuses a database and roles another Tenant owns: NameConflict, nothing touched', async () => {
    const fx = fakes();
    withTenant(fx);
    const names = (await runThrough(fx, 'Namespace')).ctx.names;
    fx.db.seedForeign(names, 'uid-of-another-acme');
    const before = state(fx);
    const done = await reconcile(fx);
    const condition = done.condition('Database');
    expect(condition).to.include({ status: 'False', reason: 'NameConflict' });
    expect(condition?.message).to.include('database "tenant_acme"').and.include('role "tenant_acme.a"');
    expect(condition?.message).not.to.include('uid-of-another-acme');
    expect((state(fx) as { roles: unknown }).roles).to.deep.equal((before as { roles: unknown }).roles);
    expect(fx.db.databases.get('tenant_acme')?.marker).to.equal(ownershipMarker('uid-of-another-acme'));
    // The later steps never ran: no connection Secret carries a password for someone else's roles.
    expect(fx.kube.get('Secret', 'acme-db', 'tenant-acme')).to.equal(undefined);
    expect(fx.events.recorded.map((e) => `${e.type} ${e.reason}`)).to.deep.equal([
      'Warning NameConflict',
      'Warning Stalled',
    ]);
    // Only a change to the Tenant (another name, or the restore annotation) gets past it.
    expect(done.condition('Stalled')).to.include({ status: 'True', reason: 'NameConflict' });
    expect(done.condition('Reconciling')).to.include({ status: 'False', reason: 'Stalled' });
  });

  it('changes nothing when run again: same login, same password, no events', async () => {
    const { ctx } = await rerunOfProvisioned('Database');
    expect(ctx.dbCredentials).to.deep.equal({ username: loginA, password: 'password-1' });
  });

  it('gives a login role that lost its login the known password back', async () => {
    const fx = fakes();
    withTenant(fx);
    await provisioned(fx);
    fx.db.roles.get(loginA)!.canLogin = false;
    fx.db.roles.get(loginA)!.password = undefined;
    await runThrough(fx, 'Database');
    expect(fx.db.roles.get(loginA)).to.deep.include({ canLogin: true, password: 'password-1' });
    expect(fx.events.reasons()).to.include('LoginRestored');
  });

  it('rotates onto the other login role when asked, keeping the old one until the worker rolled', async () => {
    const fx = fakes();
    withTenant(fx);
    const tenant = await provisioned(fx);
    tenant.metadata.annotations = { [rotatePasswordAnnotation]: '2026-12-01' };
    fx.kube.addTenant(tenant);
    const rotating = await reconcile(fx);
    expect(rotating.tenant.status?.database).to.include({ username: loginB, retiringUsername: loginA });
    expect(fx.db.roles.get(loginB)?.canLogin).to.equal(true);
    expect(fx.db.roles.get(loginB)?.password).to.be.a('string').and.not.equal('password-1');
    expect(fx.db.roles.get(loginA)?.canLogin).to.equal(true);
    // The previous pods keep serving on the old login while the worker rolls.
    expect(rotating.condition('Workload')).to.include({ status: 'True', reason: 'RollingOut' });
    expect(rotating.condition('Ready')).to.include({ status: 'True', reason: 'RollingOut' });
    fx.kube.rollOut('tenant-acme', 'tenantry-worker');
    const rolled = await reconcile(fx);
    expect(rolled.tenant.status?.phase).to.equal('Ready');
    expect(rolled.tenant.status?.database?.retiringUsername).to.equal(undefined);
    expect(fx.db.roles.get(loginA)).to.deep.include({ canLogin: false, password: undefined });
    expect(fx.events.reasons()).to.include.members(['PasswordRotated', 'LoginRetired']);
  });
});
