// A list-then-watch loop that heals itself. The client's watch stops on most
// errors and can stall silently, so this loop owns restarts: any end of the
// watch leads to a relist after a jittered backoff, and the watch is cut every
// resync period so a relist doubles as a periodic full sync and as a watchdog
// against a watch that went quiet. Lists are read in pages, and each item can
// be reduced to what the consumer keeps (`keep`) as its page arrives, so a
// relist of a thousand objects never holds them all at once.
import { exponentialDelay, type BackoffPolicy } from '../backoff.js';
import type { Logger } from '../logger.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

/** One page of a list; `continue` is set while more pages follow. */
export interface ListPage<T> {
  items: T[];
  resourceVersion: string;
  continue?: string | undefined;
}

/** At most `limit` items, after `continue` when it is set (the API server's list chunking). */
export interface ListPageRequest {
  limit: number;
  continue?: string;
}

/** A page request as @kubernetes/client-node's list calls take it. */
export function pageQuery(page: ListPageRequest): { limit: number; _continue?: string } {
  return page.continue ? { limit: page.limit, _continue: page.continue } : { limit: page.limit };
}

/** A typed list answer (V1SecretList and the like) as a page. */
export function pageOf<T>(list: {
  items: T[];
  metadata?: { resourceVersion?: string; _continue?: string };
}): ListPage<T> {
  return {
    items: list.items,
    resourceVersion: list.metadata?.resourceVersion ?? '',
    continue: list.metadata?._continue,
  };
}

export interface ListWatchSource<T> {
  list(page: ListPageRequest): Promise<ListPage<T>>;
  /** Starts a watch; `done` is called exactly once when it ends for any reason. */
  watch(
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: T) => void,
    done: (error: unknown) => void,
  ): Promise<AbortController>;
}

export interface ListWatchHandlers<T, K = T> {
  /** The full current list (each item passed through `keep`), after every (re)list. */
  onList(items: K[]): void;
  /** A change seen by the watch (never BOOKMARK or ERROR). */
  onEvent(type: 'ADDED' | 'MODIFIED' | 'DELETED', object: T): void;
}

export interface ListWatchOptions {
  resyncMs: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  describeError?: (error: unknown) => string;
  /** Items asked for per list page (default 250). */
  pageSize?: number;
}

/** What a list keeps of each item, as its page arrives; the whole item unless the caller says otherwise. */
export type Keep<T, K> = (item: T) => K;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((ok) => {
    const timer = setTimeout(ok, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      ok();
    });
  });

function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || error.message.includes('aborted'));
}

export class ListWatch<T, K = T> {
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  private current: AbortController | undefined;
  private syncedOnce = false;
  /** How many times the watch ended and was restarted; useful to tests and metrics. */
  restarts = 0;

  constructor(
    private readonly name: string,
    private readonly source: ListWatchSource<T>,
    private readonly handlers: ListWatchHandlers<T, K>,
    private readonly log: Logger,
    private readonly options: ListWatchOptions,
    private readonly keep: Keep<T, K> = (item) => item as unknown as K,
  ) {}

  /** True once the first list has been delivered. */
  get synced(): boolean {
    return this.syncedOnce;
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
    // Equal jitter: at least half the delay, so a flapping API server is not hammered.
    const backoff: BackoffPolicy = {
      initialMs: this.options.backoffInitialMs ?? 500,
      maxMs: this.options.backoffMaxMs ?? 30_000,
      jitter: [0.5, 1],
    };
    const describe =
      this.options.describeError ?? ((e: unknown) => (e instanceof Error ? e.message : 'unknown error'));
    let failures = 0;
    while (!this.stopping.signal.aborted) {
      try {
        const { items, resourceVersion } = await this.listAll();
        if (this.stopping.signal.aborted) break;
        this.handlers.onList(items);
        this.syncedOnce = true;
        failures = 0;
        // Watch until the resync period is over. The client ends a watch that has been
        // quiet for a while; that is not a reason to relist, so watch again from the
        // last resourceVersion seen. Only 410 Gone or the period's end relists.
        const deadline = Date.now() + this.options.resyncMs;
        let latest = resourceVersion;
        while (!this.stopping.signal.aborted && Date.now() < deadline) {
          const outcome = await this.watchUntil(latest, deadline);
          latest = outcome.resourceVersion;
          if (outcome.gone) break;
        }
      } catch (error) {
        failures += 1;
        this.log.warn({ watch: this.name, err: describe(error), failures }, 'list/watch failed; retrying');
      }
      if (this.stopping.signal.aborted) break;
      this.restarts += 1;
      if (failures > 0) await sleep(exponentialDelay(failures - 1, backoff), this.stopping.signal);
    }
  }

  /** Every page of the list, reduced by `keep`; the version is the one the first page was served at. */
  private async listAll(): Promise<{ items: K[]; resourceVersion: string }> {
    const limit = this.options.pageSize ?? 250;
    const items: K[] = [];
    let page = await this.source.list({ limit });
    const { resourceVersion } = page;
    for (;;) {
      for (const item of page.items) items.push(this.keep(item));
      if (!page.continue || this.stopping.signal.aborted) break;
      page = await this.source.list({ limit, continue: page.continue });
    }
    return { items, resourceVersion };
  }

  /** Watches from `resourceVersion` until the watch ends or `deadline`; reports the last version seen. */
  private async watchUntil(
    resourceVersion: string,
    deadline: number,
  ): Promise<{ resourceVersion: string; gone: boolean }> {
    let latest = resourceVersion;
    let gone = false;
    let finish: (error: unknown) => void = () => undefined;
    const ended = new Promise<unknown>((ok) => (finish = ok));
    this.current = await this.source.watch(
      resourceVersion,
      (type, object) => {
        if (type === 'ERROR') {
          // Typically 410 Gone: the version is too old; end so the loop relists.
          gone = true;
          this.current?.abort();
          return;
        }
        const version = (object as { metadata?: { resourceVersion?: string } } | undefined)?.metadata
          ?.resourceVersion;
        if (version) latest = version;
        if (type !== 'BOOKMARK') this.handlers.onEvent(type, object);
      },
      (error) => finish(error),
    );
    const timer = setTimeout(() => this.current?.abort(), Math.max(0, deadline - Date.now()));
    const error = await ended;
    clearTimeout(timer);
    if (error && !this.stopping.signal.aborted && !isAbort(error)) {
      throw error instanceof Error ? error : new Error(JSON.stringify(error));
    }
    return { resourceVersion: latest, gone };
  }
}
