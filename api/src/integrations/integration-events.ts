// The tenant's incoming events (app.integration_events): list with filters,
// one event with its payload, a manual retry of a parked event, and per
// provider health from the events and the worker's circuit-breaker status.
import { QueryTypes, type Transaction } from 'sequelize';
import { z } from 'zod';
import { eventStatuses, providers, type Provider } from '../../../lib/integrations/catalog.js';
import { problems } from '../http/problem.js';
import type { TenantDb } from '../tenancy/tenant-databases.js';

export const listEventsSchema = z.strictObject({
  page: z.coerce.number().int().min(1).default(1),
  page_size: z.coerce.number().int().min(1).max(100).default(20),
  provider: z.enum(providers).optional(),
  status: z.enum(eventStatuses).optional(),
  event_type: z.string().max(100).optional(),
});
export type ListEvents = z.infer<typeof listEventsSchema>;

export const healthSchema = z.strictObject({
  window_minutes: z.coerce.number().int().min(1).max(1440).default(15),
});

interface EventRow {
  id: string;
  provider: Provider;
  event_id: string;
  event_type: string;
  organization_id: string | null;
  status: string;
  attempts: number;
  last_error: string | null;
  next_attempt_at: Date | null;
  received_at: Date;
  processed_at: Date | null;
  updated_at: Date;
  payload?: unknown;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function eventView(row: EventRow) {
  return {
    id: row.id,
    event_id: row.event_id,
    provider: row.provider,
    event_type: row.event_type,
    organization_id: row.organization_id,
    status: row.status,
    attempts: row.attempts,
    last_error: row.last_error,
    next_attempt_at: iso(row.next_attempt_at),
    received_at: row.received_at.toISOString(),
    processed_at: iso(row.processed_at),
    updated_at: row.updated_at.toISOString(),
    ...(row.payload === undefined ? {} : { payload: row.payload }),
  };
}

const columns = `id, provider, event_id, event_type, organization_id, status, attempts, last_error,
  next_attempt_at, received_at, processed_at, updated_at`;

const uuid = z.uuid();

export async function listEvents(db: TenantDb, query: ListEvents) {
  const where: string[] = [];
  const bind: unknown[] = [];
  for (const field of ['provider', 'status', 'event_type'] as const) {
    const value = query[field];
    if (value !== undefined) {
      bind.push(value);
      where.push(`${field} = $${bind.length}`);
    }
  }
  const clause = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
  const [counted] = await db.sequelize.query<{ count: string }>(
    `SELECT count(*) FROM app.integration_events ${clause}`,
    { bind, type: QueryTypes.SELECT },
  );
  const rows = await db.sequelize.query<EventRow>(
    `SELECT ${columns} FROM app.integration_events ${clause}
      ORDER BY received_at DESC, id LIMIT $${bind.length + 1} OFFSET $${bind.length + 2}`,
    { bind: [...bind, query.page_size, (query.page - 1) * query.page_size], type: QueryTypes.SELECT },
  );
  return { count: Number(counted?.count ?? 0), results: rows.map(eventView) };
}

export async function getEvent(db: TenantDb, id: string, transaction?: Transaction) {
  if (!uuid.safeParse(id).success) throw problems.notFound('no such event');
  const [row] = await db.sequelize.query<EventRow>(
    `SELECT ${columns}, payload FROM app.integration_events WHERE id = $1`,
    { bind: [id], type: QueryTypes.SELECT, ...(transaction ? { transaction } : {}) },
  );
  if (!row) throw problems.notFound('no such event');
  return eventView(row);
}

/**
 * Sends a parked (failed) event through processing again: status back to
 * pending and a new outbox row, in one statement. Events in any other state
 * are already on their way or done, so retrying them is a conflict.
 */
export async function retryEvent(db: TenantDb, id: string, transaction: Transaction) {
  const before = await getEvent(db, id, transaction);
  const [row] = await db.sequelize.query<EventRow>(
    `WITH ev AS (
       UPDATE app.integration_events
          SET status = 'pending', next_attempt_at = NULL, updated_at = now()
        WHERE id = $1 AND status = 'failed'
        RETURNING ${columns}
     ), ob AS (
       INSERT INTO app.outbox (topic, payload)
       SELECT 'integration.' || provider || '.' || event_type, jsonb_build_object('event', id) FROM ev
     )
     SELECT * FROM ev`,
    { bind: [id], type: QueryTypes.SELECT, transaction },
  );
  if (!row) throw problems.conflict(`only failed events can be retried; this one is ${before.status}`);
  return { before, after: eventView(row) };
}

interface HealthRow {
  provider: Provider;
  enabled: boolean | null;
  circuit_state: string | null;
  circuit_open_until: Date | null;
  consecutive_failures: number | null;
  status_error: string | null;
  status_error_at: Date | null;
  event_error: string | null;
  event_error_at: Date | null;
  completed: string;
  failed: string;
  retried: string;
  queue_depth: string;
  oldest_open: Date | null;
  lag_p50_ms: number | null;
  lag_p99_ms: number | null;
}

/** Health per provider over the last `windowMinutes`. */
export async function providerHealth(db: TenantDb, windowMinutes: number) {
  const rows = await db.sequelize.query<HealthRow>(
    `SELECT p.provider, c.enabled,
            s.circuit_state, s.circuit_open_until, s.consecutive_failures,
            s.last_error AS status_error, s.last_error_at AS status_error_at,
            le.last_error AS event_error, le.updated_at AS event_error_at,
            w.completed, w.failed, w.retried, o.queue_depth, o.oldest_open, w.lag_p50_ms, w.lag_p99_ms
       FROM unnest($1::text[]) AS p(provider)
       LEFT JOIN app.integration_providers c ON c.provider = p.provider
       LEFT JOIN app.integration_provider_status s ON s.provider = p.provider
       LEFT JOIN LATERAL (
         SELECT last_error, updated_at FROM app.integration_events
          WHERE provider = p.provider AND last_error IS NOT NULL
          ORDER BY updated_at DESC LIMIT 1) le ON true
       CROSS JOIN LATERAL (
         SELECT count(*) FILTER (WHERE status = 'completed') AS completed,
                count(*) FILTER (WHERE status = 'failed') AS failed,
                count(*) FILTER (WHERE status = 'completed' AND attempts > 1) AS retried,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at) * 1000)
                  FILTER (WHERE status = 'completed') AS lag_p50_ms,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at) * 1000)
                  FILTER (WHERE status = 'completed') AS lag_p99_ms
           FROM app.integration_events
          WHERE provider = p.provider AND updated_at > now() - make_interval(mins => $2)) w
       CROSS JOIN LATERAL (
         SELECT count(*) AS queue_depth, min(received_at) AS oldest_open
           FROM app.integration_events
          WHERE provider = p.provider AND status NOT IN ('completed', 'failed')) o
      ORDER BY p.provider`,
    { bind: [providers, windowMinutes], type: QueryTypes.SELECT },
  );
  const now = Date.now();
  return rows.map((r) => {
    const completed = Number(r.completed);
    const failed = Number(r.failed);
    const openUntil = r.circuit_open_until?.getTime() ?? 0;
    // The worker writes "open" with its deadline; past the deadline the next call is a probe.
    const circuit =
      r.circuit_state === 'open' && openUntil <= now ? 'half-open' : (r.circuit_state ?? 'closed');
    // While the circuit is not closed, the provider API's own error explains it best
    // (events then only say that the circuit is open).
    const statusNewer =
      r.status_error_at !== null &&
      (circuit !== 'closed' ||
        r.event_error_at === null ||
        r.status_error_at.getTime() >= r.event_error_at.getTime());
    return {
      provider: r.provider,
      configured: r.enabled !== null,
      enabled: r.enabled === true,
      circuit: {
        state: circuit,
        open_until: iso(r.circuit_open_until),
        consecutive_failures: r.consecutive_failures ?? 0,
      },
      success_rate: {
        window_minutes: windowMinutes,
        completed,
        failed,
        completed_after_retry: Number(r.retried),
        rate: completed + failed === 0 ? null : completed / (completed + failed),
      },
      last_error: statusNewer
        ? { message: r.status_error, at: iso(r.status_error_at) }
        : r.event_error
          ? { message: r.event_error, at: iso(r.event_error_at) }
          : null,
      lag: {
        oldest_unprocessed_seconds: r.oldest_open ? Math.max(0, (now - r.oldest_open.getTime()) / 1000) : 0,
        processing_p50_ms: r.lag_p50_ms === null ? null : Math.round(r.lag_p50_ms),
        processing_p99_ms: r.lag_p99_ms === null ? null : Math.round(r.lag_p99_ms),
      },
      queue_depth: Number(r.queue_depth),
    };
  });
}
