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
    // Until the Deployment controller has seen the new template, its counts are of the old one.
    const observed = (s.observedGeneration ?? 0) >= (deployment.metadata?.generation ?? 0);
    const updated = observed ? (s.updatedReplicas ?? 0) : 0;
    const available = s.availableReplicas ?? 0;
    const rolled = observed && updated >= want && available >= want && (s.replicas ?? 0) === want;
    if (!rolled) {
      return {
        reason: 'RollingOut',
        message: `worker has ${updated}/${want} replicas on the current template, ${available} available`,
        // The worker watch queues the Tenant as the rollout moves; this is only a fallback.
        // The rollout keeps the previous pods until new ones are available (maxUnavailable 0,
        // and they keep their login until it completes), so an existing worker goes on serving.
        pending: { requeueAfterMs: 30_000, serving: want > 0 && available >= want },
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
