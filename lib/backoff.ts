// Exponential backoff for every retry loop: the operator's work queue, the
// list/watch loop, the worker's reconnects and outbox relays, and provider API
// calls. Each caller picks its jitter; the doubling and the cap are the same.

export interface BackoffPolicy {
  /** The delay before the first retry (attempt 0). */
  initialMs: number;
  /** The most any delay grows to before jitter; unbounded when left out. */
  maxMs?: number;
  /**
   * The capped delay is multiplied by a random factor between these two:
   * [0, 1] is full jitter, [0.5, 1] equal jitter, [0.8, 1.2] ±20 %. No jitter when left out.
   */
  jitter?: readonly [low: number, high: number];
}

/** The wait before retry `attempt` (0-based): initialMs·2^attempt, capped at maxMs, then jittered. */
export function exponentialDelay(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  // Cap the exponent so 2^n stays finite for something that fails for days.
  const exponent = Math.min(Math.max(0, attempt), 52);
  const capped = Math.min(policy.maxMs ?? Infinity, policy.initialMs * 2 ** exponent);
  if (!policy.jitter) return capped;
  const [low, high] = policy.jitter;
  return capped * (low + random() * (high - low));
}

/** Consecutive retries of one loop: each `next()` waits twice as long as the last, until `reset()`. */
export class Backoff {
  #attempt = 0;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay the next wait is based on, before jitter (what logs report as the retry time). */
  get current(): number {
    return exponentialDelay(this.#attempt, { ...this.policy, jitter: undefined });
  }

  /** A jittered wait for this attempt; the next one will be twice as long, up to the cap. */
  next(): number {
    return exponentialDelay(this.#attempt++, this.policy, this.random);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
