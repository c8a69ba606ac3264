// Lists and watches Tenants and feeds their names to the work queue. The
// client's watch stops on most errors and can stall silently, so this loop owns
// restarts: any end of the watch leads to a relist after a backoff, and a full
// relist every resync period doubles as the periodic drift check and as a
// watchdog against a watch that went quiet.
import type { Logger } from '../../../lib/logger.js';
import { rotatePasswordAnnotation, type Tenant } from '../api/tenant.js';
import { describeKubeError, type Cluster } from '../kube/cluster.js';

export interface Enqueue {
  add(key: string): void;
}

interface Seen {
  generation: number | undefined;
  deleting: boolean;
  rotate: string | undefined;
  finalizers: string;
}

function fingerprint(tenant: Tenant): Seen {
  return {
    generation: tenant.metadata.generation,
    deleting: Boolean(tenant.metadata.deletionTimestamp),
    rotate: tenant.metadata.annotations?.[rotatePasswordAnnotation],
    finalizers: (tenant.metadata.finalizers ?? []).join(','),
  };
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((ok) => {
    const timer = setTimeout(ok, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      ok();
    });
  });

export interface TenantWatchOptions {
  resyncMs: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

export class TenantWatch {
  private readonly seen = new Map<string, Seen>();
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  private current: AbortController | undefined;
  private syncedOnce = false;
  restarts = 0;

  constructor(
    private readonly cluster: Cluster,
    private readonly queue: Enqueue,
    private readonly log: Logger,
    private readonly options: TenantWatchOptions,
  ) {}

  /** True once the first list has been queued. */
  get synced(): boolean {
    return this.syncedOnce;
  }

  get tenantCount(): number {
    return this.seen.size;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    this.current?.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const initial = this.options.backoffInitialMs ?? 500;
    const max = this.options.backoffMaxMs ?? 30_000;
    let failures = 0;
    while (!this.stopping.signal.aborted) {
      try {
        const resourceVersion = await this.relist();
        failures = 0;
        await this.watchUntilEnd(resourceVersion);
      } catch (error) {
        failures += 1;
        this.log.warn({ err: describeKubeError(error), failures }, 'tenant list/watch failed; retrying');
      }
      if (this.stopping.signal.aborted) break;
      this.restarts += 1;
      if (failures > 0) {
        const delay = Math.min(max, initial * 2 ** (failures - 1));
        await sleep(delay / 2 + Math.random() * (delay / 2), this.stopping.signal);
      }
    }
  }

  private async relist(): Promise<string> {
    const { items, resourceVersion } = await this.cluster.listTenants();
    const names = new Set<string>();
    for (const tenant of items) {
      names.add(tenant.metadata.name);
      this.seen.set(tenant.metadata.name, fingerprint(tenant));
      this.queue.add(tenant.metadata.name);
    }
    for (const name of this.seen.keys()) if (!names.has(name)) this.seen.delete(name);
    this.syncedOnce = true;
    return resourceVersion;
  }

  /** Resolves when the watch ends: an error, a server-side close, or the resync period. */
  private async watchUntilEnd(resourceVersion: string): Promise<void> {
    let finish: (error: unknown) => void = () => undefined;
    const ended = new Promise<unknown>((ok) => (finish = ok));
    this.current = await this.cluster.watchTenants(
      resourceVersion,
      (type, tenant) => this.onEvent(type, tenant),
      (error) => finish(error),
    );
    const resync = setTimeout(() => this.current?.abort(), this.options.resyncMs);
    const error = await ended;
    clearTimeout(resync);
    if (error && !this.stopping.signal.aborted && !isAbort(error)) {
      throw error instanceof Error ? error : new Error(JSON.stringify(error));
    }
  }

  private onEvent(type: string, tenant: Tenant): void {
    const name = tenant.metadata?.name;
    if (!name || type === 'BOOKMARK') return;
    if (type === 'ERROR') {
      // Typically 410 Gone: abort so the loop relists.
      this.current?.abort();
      return;
    }
    if (type === 'DELETED') {
      this.seen.delete(name);
      return;
    }
    const next = fingerprint(tenant);
    const before = this.seen.get(name);
    this.seen.set(name, next);
    // Our own status patches also arrive here; they need no reconcile.
    if (before && JSON.stringify(before) === JSON.stringify(next)) return;
    this.queue.add(name);
  }
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || error.message.includes('aborted'));
}
