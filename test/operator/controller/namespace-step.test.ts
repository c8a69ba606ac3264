import { expect } from 'chai';
import type { V1Namespace } from '@kubernetes/client-node';
import { NameConflictError, tenantUidLabel } from '../../../lib/tenant/index.js';
import { namespaceStep } from '../../../operator/src/controller/namespace.js';
import { contextFor, fakes, kubeError } from './fakes.js';
import { reconcile, rerunOfProvisioned, runThrough, withTenant } from './drive.js';

describe('operator step Namespace', () => {
  it('creates the namespace owned by the Tenant, under the restricted Pod Security level', async () => {
    const fx = fakes();
    withTenant(fx);
    const { ctx, outcome } = await runThrough(fx, 'Namespace');
    expect(outcome).to.deep.equal({ reason: 'Ready', message: 'namespace tenant-acme ready' });
    expect(ctx.status.namespace).to.equal('tenant-acme');
    const ns = fx.kube.get<V1Namespace>('Namespace', 'tenant-acme');
    expect(ns?.metadata?.labels).to.include({
      [tenantUidLabel]: 'uid-acme',
      'pod-security.kubernetes.io/enforce': 'restricted',
    });
    expect(ns?.metadata?.ownerReferences?.[0]).to.include({
      kind: 'Tenant',
      uid: 'uid-acme',
      controller: true,
    });
  });

  it('waits while a namespace of a previous incarnation is still terminating, whoever owned it', async () => {
    const fx = fakes();
    withTenant(fx);
    fx.kube.seed({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name: 'tenant-acme',
        labels: { [tenantUidLabel]: 'uid-of-the-previous-acme' },
        deletionTimestamp: new Date('2026-12-01T11:59:00Z'),
      },
      status: { phase: 'Terminating' },
    } as V1Namespace);
    const done = await reconcile(fx);
    expect(done.error).to.equal(undefined);
    expect(done.result?.requeueAfterMs).to.equal(2000);
    expect(done.condition('Namespace')).to.include({ status: 'False', reason: 'Terminating' });
    expect(done.condition('Database')).to.include({ status: 'Unknown', reason: 'Blocked' });
    expect(fx.db.databases.size).to.equal(0);
  });

  it('turns False with KubernetesApiError when the API server refuses, and blocks the later steps', async () => {
    const fx = fakes();
    withTenant(fx);
    fx.kube.failures.set('apply:Namespace', kubeError(403, 'namespaces is forbidden'));
    const done = await reconcile(fx);
    expect(done.error).to.be.instanceOf(Error);
    expect(done.condition('Namespace')).to.include({
      status: 'False',
      reason: 'KubernetesApiError',
      message: 'Kubernetes API answered 403: namespaces is forbidden',
    });
    expect(done.condition('Workload')).to.include({ status: 'Unknown', reason: 'Blocked' });
    expect(done.condition('Ready')).to.include({ status: 'False', reason: 'KubernetesApiError' });
    expect(fx.events.recorded).to.deep.include({
      tenant: 'acme',
      type: 'Warning',
      reason: 'KubernetesApiError',
      message: 'Namespace: Kubernetes API answered 403: namespaces is forbidden',
    });
  });

  it('leaves a namespace another Tenant owns untouched and reports NameConflict', async () => {
    const fx = fakes();
    withTenant(fx);
    const foreign: V1Namespace = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'tenant-acme', labels: { [tenantUidLabel]: 'uid-someone-else' } },
      status: { phase: 'Active' },
    };
    fx.kube.seed(foreign);
    await namespaceStep.run(contextFor(fx.kube.tenant('acme')!, fx.deps)).then(
      () => expect.fail('the step took over a foreign namespace'),
      (error: unknown) => expect(error).to.be.instanceOf(NameConflictError),
    );
    const done = await reconcile(fx);
    expect(done.condition('Namespace')).to.include({ status: 'False', reason: 'NameConflict' });
    expect(done.condition('Namespace')?.message).to.match(/^namespace "tenant-acme" already exists/);
    expect(done.condition('Namespace')?.message).not.to.include('uid-someone-else');
    expect(fx.kube.get('Namespace', 'tenant-acme')).to.deep.equal(foreign);
    expect(fx.db.databases.size).to.equal(0);
  });

  it('adopts an unmarked namespace its status already records, and stamps it', async () => {
    const fx = fakes();
    withTenant(fx, 'acme', { status: { namespace: 'tenant-acme' } });
    fx.kube.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'tenant-acme' } });
    const { outcome } = await runThrough(fx, 'Namespace');
    expect(outcome.reason).to.equal('Ready');
    expect(fx.kube.get('Namespace', 'tenant-acme')?.metadata?.labels).to.include({
      [tenantUidLabel]: 'uid-acme',
    });
  });

  it('changes nothing when run again', async () => {
    await rerunOfProvisioned('Namespace');
  });
});
