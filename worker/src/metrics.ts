// The tenant worker's Prometheus metrics, on a registry of its own: webhook
// attempts and their duration, deliveries parked, integration event outcomes,
// rows relayed from the outbox and those still waiting, whether the broker
// sessions are up, and the process's runtime metrics. Components report through
// the hooks they already have (onAttempt, onOutcome); the relays' counters and
// the outbox backlog are read at scrape time.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DelivererOptions } from './deliverer.js';
import type { EventProcessorOptions } from './integrations/event-processor.js';

const prefix = 'tenantry_worker_';
const relays = ['webhooks', 'integrations'] as const;

type Relay = 'webhooks' | 'integrations';

export interface OutboxBacklog {
  /** Unsent rows. */
  pending: number;
  /** Age of the oldest unsent row; 0 when there is none. */
  oldestAgeSeconds: number;
}

export interface WorkerMetricSources {
  /** Outbox rows published and committed since start, per relay. */
  relayed: Record<Relay, () => number>;
  /** The unsent outbox rows of each relay, read from the database at scrape time. */
  outboxBacklog: () => Promise<Record<Relay, OutboxBacklog>>;
  ready: () => boolean;
}

export interface WorkerMetrics {
  readonly registry: Registry;
  readonly onAttempt: NonNullable<DelivererOptions['onAttempt']>;
  readonly onOutcome: NonNullable<EventProcessorOptions['onOutcome']>;
}

/** An attempt's outcome as a label: the status class, or why there was none. */
export function attemptOutcome(status: number | undefined): string {
  if (status === undefined) return 'no_response';
  if (status >= 200 && status < 300) return 'succeeded';
  return status >= 500 ? 'server_error' : 'client_error';
}

export function createWorkerMetrics(sources: WorkerMetricSources): WorkerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix });
  const attempts = new Counter({
    name: `${prefix}webhook_attempts_total`,
    help: 'Webhook delivery attempts recorded, by outcome (succeeded, client_error, server_error, no_response).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: `${prefix}webhook_attempt_duration_seconds`,
    help: 'Time from sending a webhook to its answer (or the timeout).',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const parked = new Counter({
    name: `${prefix}webhook_deliveries_parked_total`,
    help: 'Webhook deliveries that failed their last attempt and were parked (no retry follows).',
    registers: [registry],
  });
  const events = new Counter({
    name: `${prefix}integration_events_total`,
    help: 'Incoming integration events processed, by the status stored (completed, retrying, failed).',
    labelNames: ['status'] as const,
    registers: [registry],
  });
  const seen = { webhooks: 0, integrations: 0 };
  new Counter({
    name: `${prefix}outbox_relayed_total`,
    help: 'Outbox rows published with broker confirms and marked sent, by relay.',
    labelNames: ['relay'] as const,
    registers: [registry],
    collect() {
      for (const relay of relays) {
        const now = sources.relayed[relay]();
        this.inc({ relay }, now - seen[relay]);
        seen[relay] = now;
      }
    },
  });
  // Both gauges come from one query: an answer younger than a second is reused. A database that does
  // not answer leaves the last values, and the scrape itself still succeeds.
  let cached: { at: number; backlog: Promise<Record<Relay, OutboxBacklog> | undefined> } | undefined;
  const readBacklog = () => {
    if (!cached || Date.now() - cached.at > 1000) {
      cached = { at: Date.now(), backlog: sources.outboxBacklog().catch(() => undefined) };
    }
    return cached.backlog;
  };
  new Gauge({
    name: `${prefix}outbox_pending`,
    help: 'Outbox rows not yet relayed to the broker, by relay.',
    labelNames: ['relay'] as const,
    registers: [registry],
    async collect() {
      const found = await readBacklog();
      for (const relay of relays) if (found) this.set({ relay }, found[relay].pending);
    },
  });
  new Gauge({
    name: `${prefix}outbox_oldest_pending_age_seconds`,
    help: 'Age of the oldest outbox row not yet relayed, by relay; 0 when none waits.',
    labelNames: ['relay'] as const,
    registers: [registry],
    async collect() {
      const found = await readBacklog();
      for (const relay of relays) if (found) this.set({ relay }, found[relay].oldestAgeSeconds);
    },
  });
  new Gauge({
    name: `${prefix}ready`,
    help: '1 while every broker session is connected and consuming.',
    registers: [registry],
    collect() {
      this.set(sources.ready() ? 1 : 0);
    },
  });
  return {
    registry,
    onAttempt: ({ result, status }) => {
      attempts.inc({ outcome: attemptOutcome(result.status) });
      duration.observe(result.durationMs / 1000);
      if (status === 'failed') parked.inc();
    },
    onOutcome: ({ status }) => events.inc({ status }),
  };
}
