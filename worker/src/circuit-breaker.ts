// Per-endpoint admission in one worker process: a concurrency limit and a
// circuit breaker. A message the gate refuses is deferred (republished to a
// delay tier) instead of waiting, so a dead or slow endpoint holds at most a
// few prefetch slots and never stalls deliveries to anyone else.

import { exponentialDelay } from '../../lib/backoff.js';

export type GateDecision =
  | { admitted: true; release: (outcome: 'success' | 'failure' | 'neutral') => void }
  | { admitted: false; reason: string; retryInMs: number };

export interface CircuitBreakerOptions {
  /** Requests in flight per endpoint. */
  concurrency: number;
  /** Messages an endpoint may hold (in flight plus waiting for a slot); more are deferred. */
  maxHeld: number;
  /** Consecutive failures that open the circuit. */
  failureThreshold: number;
  /** How long an open circuit refuses before letting one probe through; doubles per failed probe, up to 8x. */
  cooldownMs: number;
  now?: () => number;
}

interface EndpointState {
  inFlight: number;
  waiting: (() => void)[];
  failures: number;
  openUntil: number;
  probing: boolean;
  /** Failed probes in a row: each doubles the next cooldown. */
  failedProbes: number;
}

export type CircuitState = 'closed' | 'open' | 'half-open';

export class CircuitBreaker {
  private readonly endpoints = new Map<string, EndpointState>();
  private readonly now: () => number;

  constructor(private readonly options: CircuitBreakerOptions) {
    this.now = options.now ?? Date.now;
  }

  circuit(endpointId: string): CircuitState {
    const state = this.endpoints.get(endpointId);
    if (!state || state.openUntil === 0) return 'closed';
    return this.now() < state.openUntil ? 'open' : 'half-open';
  }

  /** How long the circuit stays open from now; 0 when it is closed or half-open. */
  remainingMs(endpointId: string): number {
    const state = this.endpoints.get(endpointId);
    return state ? Math.max(0, state.openUntil - this.now()) : 0;
  }

  /** Waits for a slot, or refuses at once when the circuit is open or the endpoint holds too much. */
  async acquire(endpointId: string): Promise<GateDecision> {
    const state = this.state(endpointId);
    const refusal = this.refusal(state);
    if (refusal) return refusal;
    if (state.inFlight >= this.options.concurrency) {
      if (state.inFlight + state.waiting.length >= this.options.maxHeld) {
        return { admitted: false, reason: 'endpoint concurrency limit reached', retryInMs: 0 };
      }
      // A releasing request hands its slot over, so nothing can jump the queue.
      await new Promise<void>((resolve) => state.waiting.push(resolve));
      // The circuit may have opened while this message waited.
      const late = this.refusal(state, true);
      if (late) {
        this.freeSlot(state);
        return late;
      }
    } else {
      state.inFlight += 1;
    }
    const probe = state.openUntil !== 0;
    if (probe) state.probing = true;
    let released = false;
    return {
      admitted: true,
      release: (outcome) => {
        if (released) return;
        released = true;
        if (probe) state.probing = false;
        if (outcome === 'success') {
          state.failures = 0;
          state.openUntil = 0;
          state.failedProbes = 0;
        } else if (outcome === 'failure') {
          state.failures += 1;
          if (probe) state.failedProbes = Math.min(state.failedProbes + 1, 3);
          if (probe || state.failures >= this.options.failureThreshold) {
            const cooldownMs = exponentialDelay(state.failedProbes, { initialMs: this.options.cooldownMs });
            state.openUntil = this.now() + cooldownMs;
          }
        }
        this.freeSlot(state);
        if (state.inFlight === 0 && state.waiting.length === 0 && state.failures === 0) {
          this.endpoints.delete(endpointId);
        }
      },
    };
  }

  /** `holdsSlot`: the caller already counts in `inFlight`. */
  private refusal(state: EndpointState, holdsSlot = false): GateDecision | undefined {
    if (state.openUntil === 0) return undefined;
    const remaining = state.openUntil - this.now();
    if (remaining > 0) return { admitted: false, reason: 'circuit open', retryInMs: remaining };
    // Half-open: one probe at a time decides whether the circuit closes.
    if (state.probing || state.inFlight > (holdsSlot ? 1 : 0)) {
      return { admitted: false, reason: 'circuit half-open, probe in flight', retryInMs: 0 };
    }
    return undefined;
  }

  /** Gives the slot to the next waiter, or frees it. */
  private freeSlot(state: EndpointState): void {
    const next = state.waiting.shift();
    if (next) next();
    else state.inFlight -= 1;
  }

  private state(endpointId: string): EndpointState {
    let state = this.endpoints.get(endpointId);
    if (!state) {
      state = { inFlight: 0, waiting: [], failures: 0, openUntil: 0, probing: false, failedProbes: 0 };
      this.endpoints.set(endpointId, state);
    }
    return state;
  }
}
