// A keyed, deduplicating work queue between watch events and reconcile.
// Informer handlers are not awaited, so events only add keys here; a bounded
// pool of workers runs the handler, never twice at once for the same key, and
// retries failures with per-key exponential backoff. Metrics are reported
// through hooks so the queue does not depend on any metrics library.

import { exponentialDelay } from '../../../lib/backoff.js';

/** What a handler may return: nothing, or a request to run the key again later (not a failure). */
export type HandlerResult = void | { requeueAfterMs?: number };

export type KeyHandler = (key: string, signal: AbortSignal) => Promise<HandlerResult> | HandlerResult;

export type ProcessOutcome = 'success' | 'requeue' | 'error';

export interface WorkQueueHooks {
  /** After every handler run, whatever its outcome. */
  onProcessed?(event: { key: string; outcome: ProcessOutcome; durationMs: number }): void;
  /** After a handler threw or rejected; `failures` counts consecutive failures of this key. */
  onFailed?(event: { key: string; error: unknown; failures: number; retryInMs: number }): void;
  /** Whenever the number of keys waiting to run changes. */
  onDepthChange?(depth: number): void;
}

export interface BackoffOptions {
  /** Delay after the first failure. */
  baseDelayMs: number;
  /** Upper bound on any retry delay, jitter included. */
  maxDelayMs: number;
  /** Fraction (0..1) of the delay added at random, so keys that failed together do not retry in lockstep. */
  jitter: number;
}

export interface WorkQueueOptions extends Partial<BackoffOptions> {
  handler: KeyHandler;
  /** Handlers running at once, over different keys (default 2). */
  concurrency?: number;
  hooks?: WorkQueueHooks;
  /** Source of randomness for jitter; tests pass a constant. */
  random?: () => number;
}

export interface ShutDownResult {
  /** True when every in-flight handler finished before the drain timeout. */
  drained: boolean;
  /** Keys that were waiting or delayed and will not run. */
  dropped: string[];
}

const defaultBackoff: BackoffOptions = { baseDelayMs: 100, maxDelayMs: 5 * 60_000, jitter: 0.1 };

/** Retry delay after the `failures`-th consecutive failure (1-based): base·2^(n-1), plus jitter, capped. */
export function backoffDelay(
  failures: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const delay = exponentialDelay(
    failures - 1,
    { initialMs: options.baseDelayMs, maxMs: options.maxDelayMs, jitter: [1, 1 + options.jitter] },
    random,
  );
  // Jitter only adds here, and the cap holds with it included.
  return Math.min(options.maxDelayMs, delay);
}

export class WorkQueue {
  private readonly handler: KeyHandler;
  private readonly concurrency: number;
  private readonly backoff: BackoffOptions;
  private readonly hooks: WorkQueueHooks;
  private readonly random: () => number;

  /** Keys ready to run, in arrival order. */
  private readonly ready: string[] = [];
  /** Keys that must run (again): queued in `ready`, or re-added while processing. */
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private shuttingDown = false;

  constructor(options: WorkQueueOptions) {
    this.handler = options.handler;
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? 2));
    this.backoff = {
      baseDelayMs: options.baseDelayMs ?? defaultBackoff.baseDelayMs,
      maxDelayMs: options.maxDelayMs ?? defaultBackoff.maxDelayMs,
      jitter: options.jitter ?? defaultBackoff.jitter,
    };
    this.hooks = options.hooks ?? {};
    this.random = options.random ?? Math.random;
  }

  /** Keys waiting to run (not counting delayed or in-flight ones). */
  get length(): number {
    return this.ready.length;
  }

  /** Keys scheduled by addAfter or a retry, not yet due. */
  get delayedCount(): number {
    return this.delayed.size;
  }

  get activeCount(): number {
    return this.processing.size;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Consecutive failures of `key` since its last success. */
  failureCount(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Queues `key`; a key already waiting is not queued twice. Returns false after shutdown. */
  add(key: string): boolean {
    if (this.shuttingDown) return false;
    if (this.dirty.has(key)) return true;
    this.dirty.add(key);
    // A key being processed runs again when its current run ends, not alongside it.
    if (!this.processing.has(key)) {
      this.ready.push(key);
      this.depthChanged();
      this.pump();
    }
    return true;
  }

  /** Queues `key` after `ms`; of several pending delays for one key the earliest wins. */
  addAfter(key: string, ms: number): boolean {
    if (this.shuttingDown) return false;
    if (ms <= 0) return this.add(key);
    const at = Date.now() + ms;
    const existing = this.delayed.get(key);
    if (existing && existing.at <= at) return true;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, { at, timer });
    return true;
  }

  /** Drops the failure history of `key` and any delayed re-add, e.g. when its object is gone. */
  forget(key: string): void {
    this.failures.delete(key);
    const pending = this.delayed.get(key);
    if (pending) {
      clearTimeout(pending.timer);
      this.delayed.delete(key);
    }
  }

  /**
   * Stops taking work, drops waiting and delayed keys (the next leader relists them) and waits up
   * to `drainTimeoutMs` for in-flight handlers; their AbortSignal fires if the wait runs out.
   */
  async shutDown({ drainTimeoutMs = 30_000 }: { drainTimeoutMs?: number } = {}): Promise<ShutDownResult> {
    this.shuttingDown = true;
    const dropped = new Set<string>(this.ready);
    this.ready.length = 0;
    for (const [key, { timer }] of this.delayed) {
      clearTimeout(timer);
      dropped.add(key);
    }
    this.delayed.clear();
    for (const key of this.dirty) if (!this.processing.has(key)) dropped.add(key);
    this.dirty.clear();
    this.depthChanged();

    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), drainTimeoutMs);
    });
    const drained = await Promise.race([this.idle().then(() => true as const), timedOut]);
    clearTimeout(timer);
    if (!drained) this.abort.abort(new Error('work queue drain timed out'));
    return { drained, dropped: [...dropped] };
  }

  private async idle(): Promise<void> {
    // Handlers finishing during shutdown start nothing new, so this loop ends.
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private pump(): void {
    while (!this.shuttingDown && this.processing.size < this.concurrency && this.ready.length > 0) {
      const key = this.ready.shift() as string;
      this.dirty.delete(key);
      this.processing.add(key);
      this.depthChanged();
      const run = this.process(key);
      this.inFlight.add(run);
      void run.finally(() => this.inFlight.delete(run));
    }
  }

  /** Never rejects: every handler outcome is turned into a retry, a requeue or nothing. */
  private async process(key: string): Promise<void> {
    const started = performance.now();
    let outcome: ProcessOutcome;
    try {
      const result = await this.handler(key, this.abort.signal);
      this.failures.delete(key);
      const requeueAfterMs = result?.requeueAfterMs;
      if (requeueAfterMs !== undefined) {
        outcome = 'requeue';
        this.addAfter(key, requeueAfterMs);
      } else {
        outcome = 'success';
      }
    } catch (error) {
      outcome = 'error';
      const failures = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, failures);
      const retryInMs = backoffDelay(failures, this.backoff, this.random);
      this.addAfter(key, retryInMs);
      this.callHook(() => this.hooks.onFailed?.({ key, error, failures, retryInMs }));
    }
    const durationMs = performance.now() - started;
    this.callHook(() => this.hooks.onProcessed?.({ key, outcome, durationMs }));

    this.processing.delete(key);
    if (this.dirty.has(key) && !this.shuttingDown) {
      this.ready.push(key);
      this.depthChanged();
    }
    this.pump();
  }

  private depthChanged(): void {
    this.callHook(() => this.hooks.onDepthChange?.(this.ready.length));
  }

  private callHook(call: () => void): void {
    try {
      call();
    } catch {
      // A broken metrics hook must not stall reconciliation.
    }
  }
}
