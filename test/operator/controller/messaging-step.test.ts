import { expect } from 'chai';
import type { V1Secret } from '@kubernetes/client-node';
import { ownershipMarker } from '../../../lib/tenant/index.js';
import { secretString } from '../../../operator/src/controller/context.js';
import { MessagingUnavailableError } from '../../../operator/src/messaging/rabbitmq-admin.js';
import { fakes } from './fakes.js';
import { provisioned, reconcile, rerunOfProvisioned, runThrough, withTenant } from './drive.js';

const amqpSecret = (fx: ReturnType<typeof fakes>) =>
  fx.kube.get<V1Secret>('Secret', 'acme-amqp', 'tenant-acme');

describe('operator step Messaging', () => {
  it('creates the broker user confined to the queue prefix, and the Secret with its credentials', async () => {
    const fx = fakes();
    withTenant(fx);
    const { ctx, outcome } = await runThrough(fx, 'Messaging');
    expect(outcome).to.deep.equal({
      reason: 'Ready',
      message: 'RabbitMQ user tenant-acme limited to tenant.acme.*',
    });
    const user = fx.mq.users.get('tenant-acme');
    expect(user).to.deep.include({ marker: ownershipMarker('uid-acme'), prefix: 'tenant.acme.' });
    const secret = amqpSecret(fx);
    expect(secretString(secret, 'password')).to.equal(user?.password);
    expect(secretString(secret, 'uri')).to.equal(
      `amqp://tenant-acme:${user?.password}@rabbitmq.example:5672/tenantry`,
    );
    expect(secretString(secret, 'queuePrefix')).to.equal('tenant.acme.');
    expect(ctx.amqpSecretData?.username).to.equal('tenant-acme');
    expect(ctx.status.messaging).to.deep.equal({
      username: 'tenant-acme',
      secretName: 'acme-amqp',
      vhost: 'tenantry',
      queuePrefix: 'tenant.acme.',
    });
    expect(fx.events.reasons()).to.include('MessagingUserCreated');
  });

  it('turns False with MessagingUnreachable when the management API cannot be reached', async () => {
    const fx = fakes();
    withTenant(fx);
    fx.mq.failures.set(
      'ensureTenantUser',
      new MessagingUnavailableError(
        'http://admin:mq-s3cret@rabbitmq.example:15672/api',
        new Error('ETIMEDOUT'),
      ),
    );
    const done = await reconcile(fx);
    expect(done.condition('Quota')).to.include({ status: 'True' });
    const condition = done.condition('Messaging');
    expect(condition).to.include({ status: 'False', reason: 'MessagingUnreachable' });
    expect(condition?.message).to.include('ETIMEDOUT').and.not.include('mq-s3cret');
    expect(done.condition('Workload')).to.include({ status: 'Unknown', reason: 'Blocked' });
    expect(amqpSecret(fx)).to.equal(undefined);
  });

  it('refuses a broker user another Tenant owns: NameConflict, user untouched, no Secret', async () => {
    const fx = fakes();
    withTenant(fx);
    const foreign = {
      marker: ownershipMarker('uid-someone-else'),
      password: 'theirs',
      prefix: 'tenant.acme.',
    };
    fx.mq.users.set('tenant-acme', { ...foreign });
    const done = await reconcile(fx);
    const condition = done.condition('Messaging');
    expect(condition).to.include({ status: 'False', reason: 'NameConflict' });
    expect(condition?.message).to.include('RabbitMQ user "tenant-acme"').and.not.include('uid-someone-else');
    expect(fx.mq.users.get('tenant-acme')).to.deep.equal(foreign);
    expect(amqpSecret(fx)).to.equal(undefined);
  });

  it('restores drifted permissions and keeps the password', async () => {
    const fx = fakes();
    withTenant(fx);
    await provisioned(fx);
    const password = fx.mq.users.get('tenant-acme')!.password;
    fx.mq.users.get('tenant-acme')!.prefix = '';
    await runThrough(fx, 'Messaging');
    expect(fx.mq.users.get('tenant-acme')).to.deep.include({ prefix: 'tenant.acme.', password });
    expect(fx.events.recorded.at(-1)).to.include({ reason: 'DriftRepaired' });
  });

  it('changes nothing when run again: the password in the Secret is kept', async () => {
    await rerunOfProvisioned('Messaging');
  });
});
