// Step 7: the tenant's RabbitMQ user, confined to its own queue prefix, and the
// Secret with its credentials. An existing password is kept.
import { amqpConnectionInfo } from '../messaging/rabbitmq-admin.js';
import { amqpSecret } from '../specs/index.js';
import { secretString, type Step } from './context.js';

export const messagingStep: Step = {
  condition: 'Messaging',
  async run(ctx) {
    const { tenant, names, deps } = ctx;
    const existing = secretString(
      await deps.cluster.readSecret(names.namespace, names.amqpSecret),
      'password',
    );
    const password = existing ?? deps.newPassword();
    const result = await deps.mq.ensureTenantUser(names, password, {
      resetPassword: existing === undefined,
      owner: ctx.owner,
    });
    if (result.created)
      deps.events.record(tenant, 'Normal', 'MessagingUserCreated', `RabbitMQ user ${names.amqpUser} created`);
    if (result.permissionsRepaired || result.tagsRepaired) {
      deps.events.record(
        tenant,
        'Normal',
        'DriftRepaired',
        `RabbitMQ permissions of ${names.amqpUser} restored`,
      );
    }
    const { host, port, vhost, tls } = deps.endpoints.rabbitmq;
    const data = {
      ...amqpConnectionInfo({
        host,
        port,
        vhost,
        tls,
        username: names.amqpUser,
        password,
        queuePrefix: names.queuePrefix,
      }),
    };
    await deps.cluster.apply(amqpSecret(tenant, data));
    ctx.amqpSecretData = data;
    ctx.status.messaging = {
      username: names.amqpUser,
      secretName: names.amqpSecret,
      vhost,
      queuePrefix: names.queuePrefix,
    };
    return { reason: 'Ready', message: `RabbitMQ user ${names.amqpUser} limited to ${names.queuePrefix}*` };
  },
};
