// Stores accepted incoming events, each with its outbox row, by group commit:
// the requests that reach one tenant database while its previous statement
// runs wait for it and then go together in one INSERT, so one commit (one WAL
// flush) serves many requests. Under no load a request waits only for the end
// of the current event-loop turn. A request's events always go in one
// statement, so they are stored all together or not at all.
import { QueryTypes } from 'sequelize';
import type { Provider } from '../../../lib/integrations/catalog.js';
import type { Logger } from '../../../lib/logger.js';
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
}

interface Waiting {
  events: readonly NewEvent[];
  done(ids: (string | undefined)[]): void;
  fail(error: Error): void;
}

interface TenantQueue {
  waiting: Waiting[];
  /** A statement is running or about to start; new requests wait for the next one. */
  busy: boolean;
}

const keyOf = (e: { provider: string; eventId: string }) => `${e.provider}\0${e.eventId}`;

export class IncomingEventStore {
  // Keyed by the pool handle: a tenant whose pool is replaced gets a new queue.
  private readonly queues = new WeakMap<TenantDb, TenantQueue>();

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
    let queue = this.queues.get(db);
    if (!queue) {
      queue = { waiting: [], busy: false };
      this.queues.set(db, queue);
    }
    const stored = new Promise<(string | undefined)[]>((done, fail) => {
      queue.waiting.push({ events, done, fail });
    });
    if (!queue.busy) {
      queue.busy = true;
      // Requests that finish reading in this event-loop turn join the first statement.
      setImmediate(() => void this.drain(db, queue));
    }
    return stored;
  }

  private async drain(db: TenantDb, queue: TenantQueue): Promise<void> {
    while (queue.waiting.length > 0) {
      let events = 0;
      let take = 0;
      for (const next of queue.waiting) {
        if (take > 0 && events + next.events.length > this.maxEventsPerStatement) break;
        events += next.events.length;
        take += 1;
      }
      await this.flush(db, queue.waiting.splice(0, take));
    }
    queue.busy = false;
  }

  private async flush(db: TenantDb, group: Waiting[]): Promise<void> {
    // Only the first copy of an event goes into the statement; later copies are duplicates.
    const seen = new Set<string>();
    const first = group.map((w) =>
      w.events.map((e) => {
        const key = keyOf(e);
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      }),
    );
    // In key order: statements of several replicas then take their row locks in the same order, never a deadlock.
    const rows = group
      .flatMap((w, i) => w.events.filter((_, j) => first[i]![j]))
      .sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
    try {
      const inserted = await insertEvents(db, rows);
      group.forEach((w, i) =>
        w.done(w.events.map((e, j) => (first[i]![j] ? inserted.get(keyOf(e)) : undefined))),
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
      const problem = problems.unavailable(
        'the events could not be stored; nothing was stored, retry shortly',
      );
      for (const w of group) w.fail(problem);
    }
  }
}

/**
 * Inserts the events that are new and one outbox row for each, atomically (a
 * single statement); returns provider+event_id → row id for the new ones.
 */
async function insertEvents(db: TenantDb, events: NewEvent[]): Promise<Map<string, string>> {
  const rows = await db.sequelize.query<{ id: string; provider: string; event_id: string }>(
    `WITH ev AS (
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
      ],
      type: QueryTypes.SELECT,
    },
  );
  return new Map(rows.map((r) => [keyOf({ provider: r.provider, eventId: r.event_id }), r.id]));
}
