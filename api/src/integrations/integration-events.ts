// The tenant's incoming events (app.integration_events): list with filters,
// one event with its payload, a manual retry of a parked event, and per
// provider health from the events and the worker's circuit-breaker status.
// The statements are in integration-event-store.ts.
import type { Transaction } from 'sequelize';
import { z } from 'zod';
import { eventStatuses, providers, type EventStatus } from '../../../lib/integrations/catalog.js';
import { problems } from '../http/problem.js';
import { encode, named, pageSchema, timestamp } from '../http/responses.js';
import type { TenantDb } from '../tenancy/tenant-databases.js';
import { IntegrationEventStore, type EventRow } from './integration-event-store.js';

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

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export const integrationEventSchema = named(
  'IntegrationEvent',
  z.object({
    id: z.uuid(),
    event_id: z.string().describe("The provider's event id, or the webhook-id."),
    provider: z.enum(providers),
    event_type: z.string(),
    organization_id: z.string().nullable(),
    status: z.enum(eventStatuses),
    attempts: z.int().min(0),
    last_error: z.string().nullable(),
    next_attempt_at: timestamp.nullable(),
    received_at: timestamp,
    processed_at: timestamp.nullable(),
    updated_at: timestamp,
    payload: z.unknown().optional().describe('The event as the provider sent it; only for one event.'),
  }),
  'An incoming provider event and how far its processing got.',
);

export const integrationEventPageSchema = pageSchema('IntegrationEventPage', integrationEventSchema);

const circuitStates = ['closed', 'open', 'half-open'] as const;
type CircuitState = (typeof circuitStates)[number];

export const integrationHealthSchema = named(
  'IntegrationHealth',
  z.object({
    providers: z.array(
      z.object({
        provider: z.enum(providers),
        configured: z.boolean(),
        enabled: z.boolean(),
        circuit: z.object({
          state: z.enum(circuitStates),
          open_until: timestamp.nullable(),
          consecutive_failures: z.int().min(0),
        }),
        success_rate: z.object({
          window_minutes: z.int().min(1),
          completed: z.int().min(0),
          failed: z.int().min(0),
          completed_after_retry: z.int().min(0),
          rate: z.number().min(0).max(1).nullable(),
        }),
        last_error: z.object({ message: z.string().nullable(), at: timestamp.nullable() }).nullable(),
        lag: z.object({
          oldest_unprocessed_seconds: z.number().min(0),
          processing_p50_ms: z.number().nullable(),
          processing_p99_ms: z.number().nullable(),
        }),
        queue_depth: z.int().min(0),
      }),
    ),
  }),
  'Per provider: circuit state, success rate, last error, lag and queue depth.',
);

function eventView(row: EventRow) {
  return encode(integrationEventSchema, {
    id: row.id,
    event_id: row.event_id,
    provider: row.provider,
    event_type: row.event_type,
    organization_id: row.organization_id,
    // The column's CHECK admits only these; encode() verifies it.
    status: row.status as EventStatus,
    attempts: row.attempts,
    last_error: row.last_error,
    next_attempt_at: iso(row.next_attempt_at),
    received_at: row.received_at.toISOString(),
    processed_at: iso(row.processed_at),
    updated_at: row.updated_at.toISOString(),
    ...(row.payload === undefined ? {} : { payload: row.payload }),
  });
}

const uuid = z.uuid();

export async function listEvents(db: TenantDb, query: ListEvents) {
  const { count, rows } = await new IntegrationEventStore(db).list(
    {
      ...(query.provider !== undefined ? { provider: query.provider } : {}),
      ...(query.status !== undefined ? { status: query.status } : {}),
      ...(query.event_type !== undefined ? { event_type: query.event_type } : {}),
    },
    { limit: query.page_size, offset: (query.page - 1) * query.page_size },
  );
  return { count, results: rows.map(eventView) };
}

export async function getEvent(db: TenantDb, id: string, transaction?: Transaction) {
  if (!uuid.safeParse(id).success) throw problems.notFound('no such event');
  const row = await new IntegrationEventStore(db).find(id, transaction);
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
  const row = await new IntegrationEventStore(db).retryFailed(id, transaction);
  if (!row) throw problems.conflict(`only failed events can be retried; this one is ${before.status}`);
  return { before, after: eventView(row) };
}

/** Health per provider over the last `windowMinutes`. */
export async function providerHealth(db: TenantDb, windowMinutes: number) {
  const rows = await new IntegrationEventStore(db).health(windowMinutes, providers);
  const now = Date.now();
  return rows.map((r) => {
    const completed = Number(r.completed);
    const failed = Number(r.failed);
    const openUntil = r.circuit_open_until?.getTime() ?? 0;
    // The worker writes "open" with its deadline; past the deadline the next call is a probe.
    const circuit = (
      r.circuit_state === 'open' && openUntil <= now ? 'half-open' : (r.circuit_state ?? 'closed')
    ) as CircuitState;
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
