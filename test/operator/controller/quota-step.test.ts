import { expect } from 'chai';
import type { V1LimitRange, V1ResourceQuota } from '@kubernetes/client-node';
import { tenantUidLabel } from '../../../lib/tenant/index.js';
import { limitRangeName, resourceQuotaName } from '../../../operator/src/specs/quota.js';
import { fakes, kubeError } from './fakes.js';
import { provisioned, reconcile, rerunOfProvisioned, runThrough, withTenant } from './drive.js';

const quota = (fx: ReturnType<typeof fakes>) =>
  fx.kube.get<V1ResourceQuota>('ResourceQuota', resourceQuotaName, 'tenant-acme');
const limits = (fx: ReturnType<typeof fakes>) =>
  fx.kube.get<V1LimitRange>('LimitRange', limitRangeName, 'tenant-acme');

describe('operator step Quota', () => {
  it('applies the ResourceQuota and LimitRange of the plan', async () => {
    const fx = fakes();
    withTenant(fx);
    const { outcome } = await runThrough(fx, 'Quota');
    expect(outcome).to.deep.equal({ reason: 'Ready', message: 'quota for plan starter applied' });
    expect(quota(fx)?.spec?.hard).to.include({ 'requests.cpu': '2', 'limits.memory': '8Gi', pods: '20' });
    expect(quota(fx)?.metadata?.labels?.[tenantUidLabel]).to.equal('uid-acme');
    expect(limits(fx)?.spec?.limits[0]?.defaultRequest).to.deep.equal({ cpu: '100m', memory: '128Mi' });
  });

  it('follows a plan change', async () => {
    const fx = fakes();
    withTenant(fx);
    await provisioned(fx);
    const tenant = fx.kube.tenant('acme')!;
    tenant.spec.plan = 'free';
    tenant.metadata.generation = 2;
    fx.kube.addTenant(tenant);
    const { outcome } = await runThrough(fx, 'Quota');
    expect(outcome.message).to.equal('quota for plan free applied');
    expect(quota(fx)?.spec?.hard).to.include({ 'requests.cpu': '1', pods: '10' });
    expect(quota(fx)?.metadata?.generation).to.equal(2);
  });

  it('turns False with KubernetesApiError when the LimitRange is refused, and blocks the later steps', async () => {
    const fx = fakes();
    withTenant(fx);
    fx.kube.failures.set('apply:LimitRange', kubeError(500, 'etcdserver: request timed out'));
    const done = await reconcile(fx);
    expect(done.condition('NetworkPolicy')).to.include({ status: 'True' });
    expect(done.condition('Quota')).to.include({
      status: 'False',
      reason: 'KubernetesApiError',
      message: 'Kubernetes API answered 500: etcdserver: request timed out',
    });
    expect(done.condition('Messaging')).to.include({ status: 'Unknown', reason: 'Blocked' });
    expect(fx.mq.users.size).to.equal(0);
  });

  it('applies nothing into a namespace another Tenant owns', async () => {
    const fx = fakes();
    withTenant(fx);
    fx.kube.seed({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'tenant-acme', labels: { [tenantUidLabel]: 'uid-someone-else' } },
    });
    const done = await reconcile(fx);
    expect(done.condition('Quota')).to.include({ status: 'Unknown', reason: 'Blocked' });
    expect(quota(fx)).to.equal(undefined);
    expect(limits(fx)).to.equal(undefined);
  });

  it('changes nothing when run again', async () => {
    await rerunOfProvisioned('Quota');
  });
});
