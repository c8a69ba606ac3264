// Step 8: the worker's ServiceAccount and Deployment. The pod template carries a
// checksum of the credentials, so a rotated password rolls the Deployment; once
// the rollout is complete the previous login role is retired.
import { workerReplicas } from '../../../lib/tenant/index.js';
import { checksum, workerDeployment, workerServiceAccount } from '../specs/index.js';
import type { Step } from './context.js';

export const workloadStep: Step = {
  condition: 'Workload',
  async run(ctx) {
    const { tenant, deps } = ctx;
    if (!ctx.dbSecretData || !ctx.amqpSecretData) throw new Error('connection Secrets are not known yet');
    const secretChecksum = checksum({
      ...Object.fromEntries(Object.entries(ctx.dbSecretData).map(([k, v]) => [`db.${k}`, v])),
      ...Object.fromEntries(Object.entries(ctx.amqpSecretData).map(([k, v]) => [`amqp.${k}`, v])),
    });
    await deps.cluster.apply(workerServiceAccount(tenant));
    const deployment = await deps.cluster.apply(workerDeployment(tenant, deps.build, { secretChecksum }));
    const want = workerReplicas(tenant);
    const s = deployment.status ?? {};
    ctx.status.worker = { replicas: want, availableReplicas: s.availableReplicas ?? 0 };
    const rolled =
      (s.observedGeneration ?? 0) >= (deployment.metadata?.generation ?? 0) &&
      (s.updatedReplicas ?? 0) >= want &&
      (s.availableReplicas ?? 0) >= want &&
      (s.replicas ?? 0) === want;
    if (!rolled) {
      return {
        reason: 'RollingOut',
        message: `worker has ${s.availableReplicas ?? 0}/${want} available replicas on the current template`,
        // The worker watch queues the Tenant as the rollout moves; this is only a fallback.
        pending: { requeueAfterMs: 30_000 },
      };
    }
    const db = (ctx.status.database ??= {});
    if (db.retiringUsername) {
      await deps.db.retireLogin(db.retiringUsername, ctx.owner);
      deps.events.record(
        tenant,
        'Normal',
        'LoginRetired',
        `retired ${db.retiringUsername} after the worker rolled`,
      );
      delete db.retiringUsername;
    }
    return {
      reason: want === 0 ? 'ScaledToZero' : 'Available',
      message: want === 0 ? 'worker scaled to zero' : `worker has ${want} available replicas`,
    };
  },
};
