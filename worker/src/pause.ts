// Waiting between rounds of the worker's long-running loops (the outbox relays,
// the broker session, the outbox listener): a pause that stop() or a poke can
// cut short, and the jittered doubling delay between reconnects.

/** A sleep another caller can end early with `wake()`; one wait at a time. */
export class Pause {
  #wake: (() => void) | undefined;

  for(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  /** Ends the current wait now; does nothing when none is running. */
  wake(): void {
    this.#wake?.();
  }
}

/** Reconnect delays: from `minMs`, doubling up to `maxMs`, each jittered by ±20 % so replicas spread out. */
export class Backoff {
  #delay: number;

  constructor(
    private readonly minMs = 200,
    private readonly maxMs = 30_000,
  ) {
    this.#delay = minMs;
  }

  /** The delay to wait now (what logs report as the retry time, before jitter). */
  get current(): number {
    return this.#delay;
  }

  /** A jittered wait for this attempt; the next one will be twice as long. */
  next(): number {
    const jittered = this.#delay * (0.8 + Math.random() * 0.4);
    this.#delay = Math.min(this.#delay * 2, this.maxMs);
    return jittered;
  }

  reset(): void {
    this.#delay = this.minMs;
  }
}
