// The operator's Prometheus metrics. They live on a registry of their own, not
// prom-client's global one, so tests and several instances in one process do
// not collide, and the work queue reports into them through its hooks.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ProcessOutcome, WorkQueueHooks } from './work-queue.js';

export interface OperatorMetrics {
  readonly registry: Registry;
  readonly reconcileTotal: Counter<'result'>;
  readonly reconcileErrors: Counter;
  readonly reconcileDuration: Histogram<'result'>;
  readonly tenantsByPhase: Gauge<'phase'>;
  readonly workQueueDepth: Gauge;
  readonly databasesOpenToPublic: Gauge<'database'>;
  readonly leader: Gauge;
  readonly signingKeyRotationDue: Gauge;
}

export interface OperatorMetricsOptions {
  /** Prepended to every metric name (default `tenantry_operator_`). */
  prefix?: string;
  /** Also collect process and Node.js runtime metrics (default true). */
  defaultMetrics?: boolean;
}

export function createOperatorMetrics({
  prefix = 'tenantry_operator_',
  defaultMetrics = true,
}: OperatorMetricsOptions = {}): OperatorMetrics {
  const registry = new Registry();
  if (defaultMetrics) collectDefaultMetrics({ register: registry, prefix });
  return {
    registry,
    reconcileTotal: new Counter({
      name: `${prefix}reconcile_total`,
      help: 'Reconciliations run, by result (success, requeue, error).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    reconcileErrors: new Counter({
      name: `${prefix}reconcile_errors_total`,
      help: 'Reconciliations that failed and were scheduled for retry.',
      registers: [registry],
    }),
    reconcileDuration: new Histogram({
      name: `${prefix}reconcile_duration_seconds`,
      help: 'Time spent in one reconciliation, by result.',
      labelNames: ['result'] as const,
      // Most reconciles are a few API calls; database provisioning can take seconds.
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    tenantsByPhase: new Gauge({
      name: `${prefix}tenants`,
      help: 'Tenants known to the operator, by status phase.',
      labelNames: ['phase'] as const,
      registers: [registry],
    }),
    workQueueDepth: new Gauge({
      name: `${prefix}workqueue_depth`,
      help: 'Keys waiting in the work queue.',
      registers: [registry],
    }),
    databasesOpenToPublic: new Gauge({
      name: `${prefix}databases_open_to_public`,
      help: 'Databases, other than those the operator owns, that still grant CONNECT to PUBLIC (1 each); should be none.',
      labelNames: ['database'] as const,
      registers: [registry],
    }),
    leader: new Gauge({
      name: `${prefix}leader`,
      help: '1 while this replica holds the Lease and reconciles; only the leader reports tenants and signing keys.',
      registers: [registry],
    }),
    signingKeyRotationDue: new Gauge({
      name: `${prefix}signing_key_rotation_due_timestamp_seconds`,
      help: "When the API signing keys' next rotation is due (Unix time), as of the last successful check.",
      registers: [registry],
    }),
  };
}

/** Work-queue hooks that feed the reconcile and queue-depth metrics. */
export function workQueueMetricsHooks(metrics: OperatorMetrics): WorkQueueHooks {
  return {
    onProcessed: ({ outcome, durationMs }: { outcome: ProcessOutcome; durationMs: number }) => {
      metrics.reconcileTotal.inc({ result: outcome });
      metrics.reconcileDuration.observe({ result: outcome }, durationMs / 1000);
    },
    onFailed: () => metrics.reconcileErrors.inc(),
    onDepthChange: (depth) => metrics.workQueueDepth.set(depth),
  };
}

/** Replaces the per-phase tenant counts, so a phase no tenant is in any more drops out. */
export function setTenantPhaseCounts(
  metrics: OperatorMetrics,
  counts: Readonly<Record<string, number>>,
): void {
  metrics.tenantsByPhase.reset();
  for (const [phase, count] of Object.entries(counts)) metrics.tenantsByPhase.set({ phase }, count);
}
