import { expect } from 'chai';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { tenantUidLabel } from '../../../lib/tenant/index.js';
import { networkPolicyNames } from '../../../operator/src/specs/network-policies.js';
import { fakes, kubeError } from './fakes.js';
import { provisioned, reconcile, rerunOfProvisioned, runThrough, withTenant } from './drive.js';

const policy = (fx: ReturnType<typeof fakes>, name: string) =>
  fx.kube.get<V1NetworkPolicy>('NetworkPolicy', name, 'tenant-acme');

describe('operator step NetworkPolicy', () => {
  it('applies the default-deny policy and its allowances in the tenant namespace', async () => {
    const fx = fakes();
    withTenant(fx);
    const { outcome } = await runThrough(fx, 'NetworkPolicy');
    expect(outcome).to.deep.equal({ reason: 'Ready', message: '6 NetworkPolicies applied' });
    for (const name of networkPolicyNames) {
      expect(policy(fx, name)?.metadata?.labels?.[tenantUidLabel], name).to.equal('uid-acme');
    }
    expect(policy(fx, 'default-deny')?.spec).to.deep.include({ ingress: [], egress: [] });
  });

  it('puts back a policy someone loosened', async () => {
    const fx = fakes();
    withTenant(fx);
    await provisioned(fx);
    const loosened = policy(fx, 'default-deny')!;
    loosened.spec = { ...loosened.spec, podSelector: {}, ingress: [{}] };
    fx.kube.seed(loosened);
    await runThrough(fx, 'NetworkPolicy');
    expect(policy(fx, 'default-deny')?.spec?.ingress).to.deep.equal([]);
  });

  it('turns False with KubernetesApiError when a policy is refused, and blocks the later steps', async () => {
    const fx = fakes();
    withTenant(fx);
    fx.kube.failures.set('apply:NetworkPolicy', kubeError(403, 'networkpolicies is forbidden'));
    const done = await reconcile(fx);
    expect(done.condition('Secrets')).to.include({ status: 'True' });
    expect(done.condition('NetworkPolicy')).to.include({
      status: 'False',
      reason: 'KubernetesApiError',
      message: 'Kubernetes API answered 403: networkpolicies is forbidden',
    });
    expect(done.condition('Quota')).to.include({ status: 'Unknown', reason: 'Blocked' });
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
    expect(done.condition('Namespace')).to.include({ status: 'False', reason: 'NameConflict' });
    expect(done.condition('NetworkPolicy')).to.include({ status: 'Unknown', reason: 'Blocked' });
    expect(policy(fx, 'default-deny')).to.equal(undefined);
  });

  it('changes nothing when run again', async () => {
    await rerunOfProvisioned('NetworkPolicy');
  });
});
