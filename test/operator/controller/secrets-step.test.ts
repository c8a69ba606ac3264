import { expect } from 'chai';
import type { V1Secret } from '@kubernetes/client-node';
import { tenantUidLabel } from '../../../lib/tenant/index.js';
import { secretString } from '../../../operator/src/controller/context.js';
import { secretsStep } from '../../../operator/src/controller/secrets.js';
import { contextFor, fakes, kubeError, secretsNamespace } from './fakes.js';
import { reconcile, rerunOfProvisioned, runThrough, withTenant } from './drive.js';

describe('operator step Secrets', () => {
  it('writes the connection Secret and its platform copy with the same credentials', async () => {
    const fx = fakes();
    withTenant(fx);
    const { ctx, outcome } = await runThrough(fx, 'Secrets');
    expect(outcome).to.deep.equal({
      reason: 'Ready',
      message: 'Secret acme-db holds the connection details',
    });
    const secret = fx.kube.get<V1Secret>('Secret', 'acme-db', 'tenant-acme');
    const copy = fx.kube.get<V1Secret>('Secret', 'tenant-acme-db', secretsNamespace);
    expect(secret?.data).to.deep.equal(copy?.data);
    expect(secretString(secret, 'username')).to.equal('tenant_acme.a');
    expect(secretString(secret, 'password')).to.equal('password-1');
    expect(secretString(secret, 'uri')).to.equal(
      'postgresql://tenant_acme.a:password-1@postgres.example:5432/tenant_acme',
    );
    expect(secret?.metadata?.ownerReferences?.[0]?.uid).to.equal('uid-acme');
    // The copy outlives the Tenant under Retain: marked, but not owned.
    expect(copy?.metadata?.labels?.[tenantUidLabel]).to.equal('uid-acme');
    expect(copy?.metadata?.ownerReferences).to.equal(undefined);
    expect(ctx.dbSecretData?.password).to.equal('password-1');
    expect(ctx.status.database?.secretName).to.equal('acme-db');
  });

  it('turns False with Invalid, and Stalled, when the API server refuses a Secret as invalid', async () => {
    const fx = fakes();
    withTenant(fx);
    fx.kube.failures.set('apply:Secret', kubeError(422, 'Secret "tenant-acme-db" is invalid'));
    const done = await reconcile(fx);
    expect(done.condition('Schema')).to.include({ status: 'True' });
    expect(done.condition('Secrets')).to.include({
      status: 'False',
      reason: 'Invalid',
      message: 'Kubernetes API answered 422: Secret "tenant-acme-db" is invalid',
    });
    expect(done.condition('Stalled')).to.include({ status: 'True', reason: 'Invalid' });
    expect(done.condition('NetworkPolicy')).to.include({ status: 'Unknown', reason: 'Blocked' });
  });

  it('fails rather than write a Secret without credentials', async () => {
    const fx = fakes();
    const ctx = contextFor(withTenant(fx), fx.deps);
    await secretsStep.run(ctx).then(
      () => expect.fail('wrote a Secret without credentials'),
      (error: Error) => expect(error.message).to.equal('database credentials are not known yet'),
    );
    expect(fx.kube.changes).to.equal(0);
  });

  it('never overwrites the platform copy a retained Tenant left when its database is another owner’s', async () => {
    const fx = fakes();
    withTenant(fx);
    const names = (await runThrough(fx, 'Namespace')).ctx.names;
    fx.db.seedForeign(names, 'uid-of-the-old-acme');
    const retained: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: 'tenant-acme-db',
        namespace: secretsNamespace,
        labels: { [tenantUidLabel]: 'uid-of-the-old-acme' },
      },
      data: { username: Buffer.from('tenant_acme.a').toString('base64') },
    };
    fx.kube.seed(retained);
    const done = await reconcile(fx);
    expect(done.condition('Database')).to.include({ status: 'False', reason: 'NameConflict' });
    expect(done.condition('Secrets')).to.include({ status: 'Unknown', reason: 'Blocked' });
    expect(fx.kube.get('Secret', 'tenant-acme-db', secretsNamespace)).to.deep.equal(retained);
    expect(fx.kube.get('Secret', 'acme-db', 'tenant-acme')).to.equal(undefined);
  });

  it('changes nothing when run again', async () => {
    await rerunOfProvisioned('Secrets');
  });
});
