// Queues a Tenant when its worker Deployment's rollout moves (or the Deployment
// is deleted), so the Workload step learns of a finished rollout at once
// instead of polling for it. Only the fields that decide "rolled out" count;
// the Tenant watch's relist still queues every Tenant each resync period.
import type { V1Deployment } from '@kubernetes/client-node';
import { ListWatch } from '../../../lib/kube/list-watch.js';
import type { Logger } from '../../../lib/logger.js';
import { managedByLabel, tenantLabel } from '../../../lib/tenant/index.js';
import { describeKubeError, type Cluster } from '../kube/cluster.js';
import { managedByValue } from '../specs/index.js';
import type { Enqueue } from './tenant-watch.js';

const selector = `${managedByLabel}=${managedByValue},${tenantLabel}`;

function rolloutFingerprint(deployment: V1Deployment): string {
  const s = deployment.status ?? {};
  return JSON.stringify([
    deployment.metadata?.generation,
    deployment.spec?.replicas,
    s.observedGeneration,
    s.replicas,
    s.updatedReplicas,
    s.availableReplicas,
  ]);
}

export class WorkerWatch {
  private readonly seen = new Map<string, string>();
  private readonly loop: ListWatch<V1Deployment, [key: string, fingerprint: string]>;

  constructor(cluster: Cluster, queue: Enqueue, log: Logger, options: { resyncMs: number }) {
    const key = (d: V1Deployment) => `${d.metadata?.namespace}/${d.metadata?.name}`;
    this.loop = new ListWatch(
      'worker deployments',
      {
        list: (page) => cluster.listDeployments(selector, page),
        watch: (rv, onEvent, done) => cluster.watchDeployments(selector, rv, onEvent, done),
      },
      {
        onList: (deployments) => {
          this.seen.clear();
          for (const [k, print] of deployments) this.seen.set(k, print);
        },
        onEvent: (type, deployment) => {
          const tenant = deployment.metadata?.labels?.[tenantLabel];
          if (!tenant) return;
          if (type === 'DELETED') {
            this.seen.delete(key(deployment));
          } else {
            const next = rolloutFingerprint(deployment);
            if (this.seen.get(key(deployment)) === next) return;
            this.seen.set(key(deployment), next);
          }
          queue.add(tenant);
        },
      },
      log,
      { resyncMs: options.resyncMs, describeError: describeKubeError },
      (d) => [key(d), rolloutFingerprint(d)],
    );
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }
}
