import { expect } from 'chai';
import type { V1Deployment } from '@kubernetes/client-node';
import { ownershipMarker, tenantUidLabel } from '../../../lib/tenant/index.js';
import { fakes, kubeError } from './fakes.js';
import { provisioned, reconcile, rerunOfProvisioned, runThrough, withTenant } from './drive.js';

const deployment = (fx: ReturnType<typeof fakes>) =>
  fx.kube.get<V1Deployment>('Deployment', 'tenantry-worker', 'tenant-acme');
const checksumOf = (d: V1Deployment | undefined) => d?.spec?.template.metadata?.annotations;

describe('operator step Workload', () => {
  it('applies the worker and reports RollingOut until the Deployment is available, then Available', async () => {
    const fx = fakes();
    withTenant(fx);
    const first = await reconcile(fx);
    expect(first.error).to.equal(undefined);
    expect(first.result?.requeueAfterMs).to.equal(30_000);
    expect(first.condition('Workload')).to.include({ status: 'False', reason: 'RollingOut' });
    expect(first.tenant.status?.phase).to.equal('Provisioning');
    expect(first.tenant.status?.worker).to.deep.equal({ replicas: 1, availableReplicas: 0 });
    expect(fx.kube.get('ServiceAccount', 'tenantry-worker', 'tenant-acme')).not.to.equal(undefined);
    expect(deployment(fx)?.spec?.replicas).to.equal(1);
    expect(deployment(fx)?.metadata?.labels?.[tenantUidLabel]).to.equal('uid-acme');
    fx.kube.rollOut('tenant-acme', 'tenantry-worker');
    const { outcome, ctx } = await runThrough(fx, 'Workload');
    expect(outcome).to.deep.equal({ reason: 'Available', message: 'worker has 1 available replicas' });
    expect(ctx.status.worker).to.deep.equal({ replicas: 1, availableReplicas: 1 });
  });

  it('rolls the worker when the credentials change, and scales it to zero when suspended', async () => {
    const fx = fakes();
    withTenant(fx);
    await provisioned(fx);
    const before = checksumOf(deployment(fx));
    const tenant = fx.kube.tenant('acme')!;
    tenant.spec.database = { passwordRotation: { trigger: 'now' } };
    tenant.metadata.generation = 2;
    fx.kube.addTenant(tenant);
    const rotated = await reconcile(fx);
    expect(rotated.condition('Workload')).to.include({ status: 'True', reason: 'RollingOut' });
    expect(checksumOf(deployment(fx))).not.to.deep.equal(before);

    const suspended = fx.kube.tenant('acme')!;
    suspended.spec.suspended = true;
    suspended.metadata.generation = 3;
    fx.kube.addTenant(suspended);
    await reconcile(fx);
    expect(deployment(fx)?.spec?.replicas).to.equal(0);
    fx.kube.rollOut('tenant-acme', 'tenantry-worker');
    const zero = await reconcile(fx);
    expect(zero.condition('Workload')).to.include({
      status: 'True',
      reason: 'ScaledToZero',
      message: 'worker scaled to zero',
    });
    expect(zero.tenant.status?.phase).to.equal('Suspended');
  });

  it('stays Ready and Reconciling while an available worker rolls, and is not Ready once no replica is available', async () => {
    const fx = fakes();
    withTenant(fx);
    await provisioned(fx);
    const tenant = fx.kube.tenant('acme')!;
    tenant.spec.database = { passwordRotation: { trigger: 'now' } };
    tenant.metadata.generation = 2;
    fx.kube.addTenant(tenant);
    const rolling = await reconcile(fx);
    expect(rolling.error).to.equal(undefined);
    expect(rolling.result?.requeueAfterMs).to.equal(30_000);
    expect(rolling.condition('Workload')).to.include({
      status: 'True',
      reason: 'RollingOut',
      message: 'worker has 0/1 replicas on the current template, 1 available',
    });
    expect(rolling.condition('Ready')).to.include({
      status: 'True',
      reason: 'RollingOut',
      observedGeneration: 2,
      message: 'serving while Workload: worker has 0/1 replicas on the current template, 1 available',
    });
    expect(rolling.condition('Reconciling')).to.include({ status: 'True', reason: 'RollingOut' });
    expect(rolling.condition('Stalled')).to.include({ status: 'False' });
    expect(rolling.tenant.status?.phase).to.equal('Ready');
    expect(fx.events.reasons().filter((r) => r === 'Ready')).to.have.length(1);

    // The previous pods are gone before new ones are available: the worker is not serving.
    const stuck = deployment(fx)!;
    stuck.status = { ...stuck.status, availableReplicas: 0 };
    fx.kube.seed(stuck);
    const down = await reconcile(fx);
    expect(down.condition('Workload')).to.include({ status: 'False', reason: 'RollingOut' });
    expect(down.condition('Ready')).to.include({ status: 'False', reason: 'RollingOut' });
    expect(down.tenant.status?.phase).to.equal('Degraded');

    fx.kube.rollOut('tenant-acme', 'tenantry-worker');
    const done = await reconcile(fx);
    expect(done.condition('Ready')).to.include({ status: 'True', reason: 'Provisioned' });
    expect(done.condition('Reconciling')).to.include({ status: 'False', reason: 'Reconciled' });
  });

  it('is Stalled with Invalid when the Deployment is refused as invalid (a spec that cannot work)', async () => {
    const fx = fakes();
    withTenant(fx);
    const refusal =
      'Deployment.apps "tenantry-worker" is invalid: spec.template.spec.containers[0].resources.requests: ' +
      'Invalid value: "2": must be less than or equal to cpu limit of 500m';
    fx.kube.failures.set('apply:Deployment', kubeError(422, refusal));
    const done = await reconcile(fx);
    expect(done.condition('Messaging')).to.include({ status: 'True' });
    const message = `Kubernetes API answered 422: ${refusal}`;
    expect(done.condition('Workload')).to.include({ status: 'False', reason: 'Invalid', message });
    expect(done.condition('Ready')).to.include({ status: 'False', reason: 'Invalid' });
    expect(done.condition('Stalled')).to.include({
      status: 'True',
      reason: 'Invalid',
      message: `Workload: ${message}`,
      observedGeneration: 1,
    });
    expect(done.condition('Reconciling')).to.include({ status: 'False', reason: 'Stalled' });
    const stalled = fx.events.recorded.filter((e) => e.reason === 'Stalled');
    expect(stalled).to.have.length(1);
    expect(stalled[0]).to.include({ type: 'Warning' });
    expect(stalled[0]?.message).to.include('must be less than or equal to cpu limit');

    // Tried again unchanged: still Stalled, and no second Stalled event for the same generation.
    await reconcile(fx);
    expect(fx.events.recorded.filter((e) => e.reason === 'Stalled')).to.have.length(1);

    // A change to the spec gets it going again: Stalled clears.
    fx.kube.failures.clear();
    const tenant = fx.kube.tenant('acme')!;
    tenant.spec.worker = { resources: { requests: { cpu: '100m' } } };
    tenant.metadata.generation = 2;
    fx.kube.addTenant(tenant);
    const fixed = await reconcile(fx);
    expect(fixed.condition('Stalled')).to.include({ status: 'False', observedGeneration: 2 });
    expect(fixed.condition('Reconciling')).to.include({ status: 'True', reason: 'RollingOut' });
  });

  it('is Reconciling, not Stalled, when the API server fails for a while', async () => {
    const fx = fakes();
    withTenant(fx);
    fx.kube.failures.set(
      'apply:Deployment',
      kubeError(503, 'the server is currently unable to handle the request'),
    );
    const done = await reconcile(fx);
    expect(done.condition('Workload')).to.include({ status: 'False', reason: 'KubernetesApiError' });
    expect(done.condition('Reconciling')).to.include({ status: 'True', reason: 'KubernetesApiError' });
    expect(done.condition('Stalled')).to.include({ status: 'False' });
    expect(fx.events.reasons()).not.to.include('Stalled');
  });

  it('refuses to retire a login role another owner holds: NameConflict, the role keeps its login', async () => {
    const fx = fakes();
    withTenant(fx);
    await provisioned(fx);
    // A login role of the scheme before ownership markers, left to retire, that is
    // meanwhile another tenant's (those names collided across tenants).
    const tenant = fx.kube.tenant('acme')!;
    tenant.status!.database!.retiringUsername = 'tenant_acme_a';
    fx.kube.addTenant(tenant);
    const theirs = { marker: ownershipMarker('uid-of-acme-a'), canLogin: true, password: 'theirs' };
    fx.db.roles.set('tenant_acme_a', { ...theirs });
    const done = await reconcile(fx);
    expect(done.condition('Database')).to.include({ status: 'True' });
    expect(done.condition('Workload')).to.include({ status: 'False', reason: 'NameConflict' });
    expect(done.condition('Workload')?.message).to.include('role "tenant_acme_a"');
    expect(fx.db.roles.get('tenant_acme_a')).to.deep.equal(theirs);
    expect(done.tenant.status?.database?.retiringUsername).to.equal('tenant_acme_a');
  });

  it('changes nothing when run again', async () => {
    await rerunOfProvisioned('Workload', 'Available');
  });
});
