// Stores accepted incoming events, each with its outbox row, by group commit:
// the requests that reach one tenant database while its previous statement
// runs wait for it and then go together in one INSERT, so one commit (one WAL
// flush) serves many requests. Under no load a request waits only for the end
// of the current event-loop turn (lib/batcher.ts). A request's events always go
// in one statement, so they are stored all together or not at all.
import { QueryTypes } from 'sequelize';
import { Batcher } from '../../../lib/batcher.js';
import type { Provider } from '../../../lib/integrations/catalog.js';
import type { Logger } from '../../../lib/logger.js';
import { inOutboxSpan, type TraceCarrier } from '../../../lib/telemetry/index.js';
import { problems } from '../http/problem.js';
import type { TenantDb } from '../tenancy/tenant-databases.js';

/** Most events in one statement; a request's events are never split, so one request may exceed it alone. */
export const defaultMaxEventsPerStatement = 500;

export interface NewEvent {
  provider: Provider;
  eventId: string;
  eventType: string;
  organizationId: string | null;
  /** The event as JSON text. */
  payload: string;
  /** The trace context its outbox row carries (set by `store`); undefined when tracing is off. */
  traceContext?: TraceCarrier;
}

const keyOf = (e: { provider: string; eventId: string }) => `${e.provider}\0${e.eventId}`;

export class IntegrationEventIntake {
  // Keyed by the pool handle: a tenant whose pool is replaced gets a new queue.
  private readonly queues = new WeakMap<TenantDb, Batcher<readonly NewEvent[], (string | undefined)[]>>();

  constructor(
    private readonly log: Logger,
    private readonly maxEventsPerStatement = defaultMaxEventsPerStatement,
  ) {}

  /**
   * Stores the events that are new, in one statement with other requests'.
   * Resolves, per event, to its new row id, or to undefined when the event
   * (same provider and event_id) was already stored, earlier or by another
   * request in the same statement, or earlier in `events`. Rejects with a
   * 503 problem when the statement failed: then none of them was stored.
   */
  store(db: TenantDb, events: readonly NewEvent[]): Promise<(string | undefined)[]> {
    if (events.length === 0) return Promise.resolve([]);
    // One span per request: its events' outbox rows continue the request's trace from it.
    return inOutboxSpan(`integration.${events[0]!.provider}`, (traceContext) =>
      this.enqueue(db, traceContext ? events.map((e) => ({ ...e, traceContext })) : events),
    );
  }

  private enqueue(db: TenantDb, events: readonly NewEvent[]): Promise<(string | undefined)[]> {
    let queue = this.queues.get(db);
    if (!queue) {
      // One statement at a time per tenant database; requests meanwhile gather for the next.
      queue = new Batcher({
        maxSize: this.maxEventsPerStatement,
        sizeOf: (request) => request.length,
        concurrency: 1,
        run: (group) => this.flush(db, group),
      });
      this.queues.set(db, queue);
    }
    return queue.add(events);
  }

  private async flush(db: TenantDb, group: (readonly NewEvent[])[]): Promise<(string | undefined)[][]> {
    // Only the first copy of an event goes into the statement; later copies are duplicates.
    const seen = new Set<string>();
    const first = group.map((request) =>
      request.map((e) => {
        const key = keyOf(e);
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      }),
    );
    // In key order: statements of several replicas then take their row locks in the same order, never a deadlock.
    const rows = group
      .flatMap((request, i) => request.filter((_, j) => first[i]![j]))
      .sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
    try {
      const inserted = await insertEvents(db, rows);
      return group.map((request, i) =>
        request.map((e, j) => (first[i]![j] ? inserted.get(keyOf(e)) : undefined)),
      );
    } catch (error) {
      // The error's text only: its parameters would carry the payloads.
      this.log.error(
        {
          tenant: db.tenant,
          requests: group.length,
          events: rows.length,
          code: (error as { original?: { code?: string } }).original?.code,
          err: String(error),
        },
        'storing incoming events failed',
      );
      throw problems.unavailable('the events could not be stored; nothing was stored, retry shortly');
    }
  }
}

/**
 * Inserts the events that are new and one outbox row for each, atomically (a
 * single statement); returns provider+event_id → row id for the new ones.
 */
async function insertEvents(db: TenantDb, events: NewEvent[]): Promise<Map<string, string>> {
  // The trace context column is named only when there is one to store (tracing on): with tracing
  // off the statement is the one from before the column existed.
  const traced = events.some((e) => e.traceContext !== undefined);
  const rows = await db.sequelize.query<{ id: string; provider: string; event_id: string }>(
    traced
      ? `WITH input AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[])
         WITH ORDINALITY AS i(provider, event_id, event_type, organization_id, payload, trace_context, n)
     ), ev AS (
       INSERT INTO app.integration_events (provider, event_id, event_type, organization_id, payload)
       SELECT provider, event_id, event_type, organization_id, payload FROM input ORDER BY n
       ON CONFLICT (provider, event_id) DO NOTHING
       RETURNING id, provider, event_id, event_type
     ), ob AS (
       INSERT INTO app.outbox (topic, payload, trace_context)
       SELECT 'integration.' || ev.provider || '.' || ev.event_type, jsonb_build_object('event', ev.id),
              input.trace_context
         FROM ev JOIN input USING (provider, event_id)
     )
     SELECT id, provider, event_id FROM ev`
      : `WITH ev AS (
       INSERT INTO app.integration_events (provider, event_id, event_type, organization_id, payload)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[])
       ON CONFLICT (provider, event_id) DO NOTHING
       RETURNING id, provider, event_id, event_type
     ), ob AS (
       INSERT INTO app.outbox (topic, payload)
       SELECT 'integration.' || ev.provider || '.' || ev.event_type, jsonb_build_object('event', ev.id) FROM ev
     )
     SELECT id, provider, event_id FROM ev`,
    {
      bind: [
        events.map((e) => e.provider),
        events.map((e) => e.eventId),
        events.map((e) => e.eventType),
        events.map((e) => e.organizationId),
        events.map((e) => e.payload),
        ...(traced ? [events.map((e) => (e.traceContext ? JSON.stringify(e.traceContext) : null))] : []),
      ],
      type: QueryTypes.SELECT,
    },
  );
  return new Map(rows.map((r) => [keyOf({ provider: r.provider, eventId: r.event_id }), r.id]));
}
