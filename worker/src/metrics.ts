// The tenant worker's Prometheus metrics, on a registry of its own: webhook
// attempts and their duration, integration event outcomes, rows relayed from
// the outbox, whether the broker sessions are up, and the process's runtime
// metrics. Components report through the hooks they already have (onAttempt,
// onOutcome) and the relays' counters, read at scrape time.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DelivererOptions } from './deliverer.js';
import type { EventProcessorOptions } from './integrations/event-processor.js';

const prefix = 'tenantry_worker_';

export interface WorkerMetricSources {
  /** Outbox rows published and committed since start, per relay. */
  relayed: Record<'webhooks' | 'integrations', () => number>;
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
      for (const relay of ['webhooks', 'integrations'] as const) {
        const now = sources.relayed[relay]();
        this.inc({ relay }, now - seen[relay]);
        seen[relay] = now;
      }
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
    onAttempt: ({ result }) => {
      attempts.inc({ outcome: attemptOutcome(result.status) });
      duration.observe(result.durationMs / 1000);
    },
    onOutcome: ({ status }) => events.inc({ status }),
  };
}
