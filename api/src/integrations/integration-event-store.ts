// The rows of app.integration_events as the API reads them, and the manual
// retry of a parked event. The views and rules are in integration-events.ts;
// intake writes through integration-event-intake.ts.
import { QueryTypes, type Sequelize, type Transaction } from 'sequelize';
import type { Provider } from '../../../lib/integrations/catalog.js';
import type { IntegrationEventAttributes, TenantModels } from '../tenancy/models.js';
import type { TenantDb } from '../tenancy/tenant-databases.js';

/** A row of app.integration_events; lists leave the payload out. */
export type EventRow = Omit<IntegrationEventAttributes, 'payload'> & { payload?: unknown };

export interface HealthRow {
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

export interface EventFilter {
  provider?: string;
  status?: string;
  event_type?: string;
}

const columns = `id, provider, event_id, event_type, organization_id, status, attempts, last_error,
  next_attempt_at, received_at, processed_at, updated_at`;

export class IntegrationEventStore {
  readonly #sequelize: Sequelize;
  readonly #model: TenantModels['IntegrationEvent'];

  constructor(db: TenantDb) {
    this.#sequelize = db.sequelize;
    this.#model = db.models.IntegrationEvent;
  }

  /** The matching events, newest first, and how many match in all. */
  async list(
    filter: EventFilter,
    slice: { limit: number; offset: number },
  ): Promise<{ count: number; rows: EventRow[] }> {
    const where: string[] = [];
    const bind: unknown[] = [];
    for (const field of ['provider', 'status', 'event_type'] as const) {
      const value = filter[field];
      if (value !== undefined) {
        bind.push(value);
        where.push(`${field} = $${bind.length}`);
      }
    }
    const clause = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const [counted] = await this.#select<{ count: string }>(
      `SELECT count(*) FROM app.integration_events ${clause}`,
      bind,
    );
    const rows = await this.#select<EventRow>(
      `SELECT ${columns} FROM app.integration_events ${clause}
        ORDER BY received_at DESC, id LIMIT $${bind.length + 1} OFFSET $${bind.length + 2}`,
      [...bind, slice.limit, slice.offset],
    );
    return { count: Number(counted?.count ?? 0), rows };
  }

  /** One event with its payload. */
  async find(id: string, transaction?: Transaction): Promise<EventRow | undefined> {
    const row = await this.#model.findByPk(id, transaction ? { transaction } : {});
    return row?.get({ plain: true });
  }

  /**
   * A failed event back to pending, with a new outbox row, in one statement (a CTE: the outbox row
   * exists exactly when the status changed). Undefined when the event is not failed.
   */
  async retryFailed(id: string, transaction: Transaction): Promise<EventRow | undefined> {
    const [row] = await this.#select<EventRow>(
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
      [id],
      transaction,
    );
    return row;
  }

  /**
   * Per provider, over the last `windowMinutes`: its configuration and circuit, outcome counts,
   * processing lag and queue. One statement of lateral joins and aggregates, which the model layer
   * cannot express.
   */
  health(windowMinutes: number, providers: readonly Provider[]): Promise<HealthRow[]> {
    return this.#select<HealthRow>(
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
      [providers, windowMinutes],
    );
  }

  #select<T extends object>(sql: string, bind: unknown[], transaction?: Transaction): Promise<T[]> {
    return this.#sequelize.query<T>(sql, {
      bind,
      type: QueryTypes.SELECT,
      ...(transaction ? { transaction } : {}),
    });
  }
}
