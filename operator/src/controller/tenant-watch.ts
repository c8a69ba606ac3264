// Feeds Tenant names to the work queue from a self-healing list/watch. A full
// relist every resync period queues every Tenant, which is the periodic drift
// check. Watch events that only change the status (our own writes) are skipped.
import { ListWatch } from '../../../lib/kube/list-watch.js';
import type { Logger } from '../../../lib/logger.js';
import {
  restoreFromUidAnnotation,
  rotatePasswordAnnotation,
  type Tenant,
} from '../../../lib/tenant/index.js';
import { describeKubeError, type Cluster } from '../kube/cluster.js';

export interface Enqueue {
  add(key: string): void;
}

function fingerprint(tenant: Tenant): string {
  return JSON.stringify([
    tenant.metadata.generation,
    Boolean(tenant.metadata.deletionTimestamp),
    tenant.metadata.annotations?.[rotatePasswordAnnotation],
    tenant.metadata.annotations?.[restoreFromUidAnnotation],
    tenant.metadata.finalizers ?? [],
  ]);
}

export class TenantWatch {
  private readonly seen = new Map<string, string>();
  private readonly loop: ListWatch<Tenant, [name: string, fingerprint: string]>;

  constructor(cluster: Cluster, queue: Enqueue, log: Logger, options: { resyncMs: number }) {
    this.loop = new ListWatch(
      'tenants',
      {
        list: (page) => cluster.listTenants(page),
        watch: (rv, onEvent, done) => cluster.watchTenants(rv, onEvent, done),
      },
      {
        onList: (tenants) => {
          this.seen.clear();
          for (const [name, print] of tenants) {
            this.seen.set(name, print);
            queue.add(name);
          }
        },
        onEvent: (type, tenant) => {
          const name = tenant.metadata?.name;
          if (!name) return;
          if (type === 'DELETED') {
            this.seen.delete(name);
            return;
          }
          const next = fingerprint(tenant);
          if (this.seen.get(name) === next) return;
          this.seen.set(name, next);
          queue.add(name);
        },
      },
      log,
      { resyncMs: options.resyncMs, describeError: describeKubeError },
      (tenant) => [tenant.metadata.name, fingerprint(tenant)],
    );
  }

  get synced(): boolean {
    return this.loop.synced;
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }
}
