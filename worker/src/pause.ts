// Waiting between rounds of the worker's long-running loops (the outbox relays,
// the broker session, the outbox listener): a pause that stop() or a poke can
// cut short, and the jittered doubling delay between reconnects.

import { Backoff } from '../../lib/backoff.js';

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
export function reconnectBackoff(minMs = 200, maxMs = 30_000): Backoff {
  return new Backoff({ initialMs: minMs, maxMs, jitter: [0.8, 1.2] });
}
