import { expect } from 'chai';
import {
  conditionTypes,
  finalizerName,
  ownershipMarker,
  summaryConditionTypes,
} from '../../../lib/tenant/index.js';
import { fakes, secretsNamespace, state } from './fakes.js';
import { provisioned, reconcile, withTenant } from './drive.js';

describe('operator reconcile through every step', () => {
  it('makes a fresh Tenant Ready: finalizer first, every condition True, one Ready event', async () => {
    const fx = fakes();
    withTenant(fx, 'globex', { spec: { plan: 'free' } });
    const tenant = await provisioned(fx, 'globex');
    expect(tenant.metadata.finalizers).to.deep.equal([finalizerName]);
    expect(tenant.status?.conditions?.map((c) => c.type)).to.deep.equal([
      ...conditionTypes,
      ...summaryConditionTypes,
    ]);
    const status = (type: string) => tenant.status?.conditions?.find((c) => c.type === type)?.status;
    expect(conditionTypes.every((type) => status(type) === 'True')).to.be.true;
    // The kstatus view: Ready, neither reconciling nor stalled.
    expect([status('Ready'), status('Reconciling'), status('Stalled')]).to.deep.equal([
      'True',
      'False',
      'False',
    ]);
    expect(tenant.status?.conditions?.every((c) => c.observedGeneration === 1)).to.be.true;
    expect(tenant.status?.observedGeneration).to.equal(1);
    expect(fx.events.reasons().filter((r) => r === 'Ready')).to.have.length(1);
    expect(fx.events.recorded.filter((e) => e.type === 'Warning')).to.deep.equal([]);
  });

  it('is Reconciling while a step is pending, with the step’s reason, and never Stalled', async () => {
    const fx = fakes();
    withTenant(fx);
    const first = await reconcile(fx);
    expect(first.error).to.equal(undefined);
    expect(first.condition('Workload')).to.include({ status: 'False', reason: 'RollingOut' });
    expect(first.condition('Reconciling')).to.include({ status: 'True', reason: 'RollingOut' });
    expect(first.condition('Reconciling')?.message).to.equal(
      'Workload: worker has 0/1 replicas on the current template, 0 available',
    );
    expect(first.condition('Stalled')).to.include({ status: 'False', reason: 'Reconciling' });
    expect(first.condition('Ready')).to.include({ status: 'False', reason: 'RollingOut' });
    for (const c of first.tenant.status?.conditions ?? []) expect(c.observedGeneration).to.equal(1);
    fx.kube.rollOut('tenant-acme', 'tenantry-worker');
    const done = await reconcile(fx);
    expect(done.condition('Reconciling')).to.include({ status: 'False', reason: 'Reconciled' });
    expect(done.condition('Ready')).to.include({ status: 'True' });
  });

  it('changes nothing, not even the status, when nothing changed', async () => {
    const fx = fakes();
    withTenant(fx);
    await provisioned(fx);
    const before = state(fx);
    const changes = { kube: fx.kube.changes, db: fx.db.changes, mq: fx.mq.changes };
    const events = fx.events.recorded.length;
    fx.clock.now = new Date('2026-12-01T13:00:00Z');
    const again = await reconcile(fx);
    expect(again.error).to.equal(undefined);
    expect(again.result).to.deep.equal({ phase: 'Ready' });
    expect({ kube: fx.kube.changes, db: fx.db.changes, mq: fx.mq.changes }).to.deep.equal(changes);
    expect(state(fx)).to.deep.equal(before);
    expect(fx.events.recorded.length).to.equal(events);
  });

  it('on deletion under Retain disables the logins, removes the broker user and the finalizer, keeps the data', async () => {
    const fx = fakes();
    withTenant(fx);
    const tenant = await provisioned(fx);
    tenant.metadata.deletionTimestamp = '2026-12-01T12:30:00Z';
    fx.kube.addTenant(tenant);
    const done = await reconcile(fx);
    expect(done.result).to.deep.equal({ phase: 'Deleting' });
    expect(done.tenant.metadata.finalizers).to.deep.equal([]);
    expect(fx.db.databases.has('tenant_acme')).to.equal(true);
    expect(fx.db.roles.get('tenant_acme.a')?.canLogin).to.equal(false);
    expect(fx.mq.users.has('tenant-acme')).to.equal(false);
    expect(fx.kube.get('Secret', 'tenant-acme-db', secretsNamespace)).not.to.equal(undefined);
    expect(fx.events.recorded.at(-1)).to.include({ type: 'Normal', reason: 'Retained' });
  });

  it('on deletion under Delete drops only what is the Tenant’s and reports the rest', async () => {
    const fx = fakes();
    withTenant(fx, 'acme', { spec: { database: { deletionPolicy: 'Delete' } } });
    const tenant = await provisioned(fx);
    // Since then, another Tenant holds the broker user name.
    fx.mq.users.get('tenant-acme')!.marker = ownershipMarker('uid-someone-else');
    tenant.metadata.deletionTimestamp = '2026-12-01T12:30:00Z';
    fx.kube.addTenant(tenant);
    await reconcile(fx);
    expect(fx.db.databases.has('tenant_acme')).to.equal(false);
    expect(fx.db.roles.size).to.equal(0);
    expect(fx.mq.users.has('tenant-acme')).to.equal(true);
    expect(fx.kube.get('Secret', 'tenant-acme-db', secretsNamespace)).to.equal(undefined);
    expect(fx.events.recorded.map((e) => `${e.type} ${e.reason}`).slice(-2)).to.deep.equal([
      'Warning NameConflict',
      'Normal Deleted',
    ]);
    expect(fx.kube.tenant('acme')?.metadata.finalizers).to.deep.equal([]);
  });
});
