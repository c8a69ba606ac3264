// The tenant-database side of incoming integrations in the worker: relaying
// `integration.%` outbox rows, claiming an event for processing, recording its
// outcome, reading the provider's configuration and writing the provider API's
// circuit state for health. The pool connects as the tenant's login role.
import type pg from 'pg';
import { withTransaction } from '../../../lib/transaction.js';
import type { RelaySource } from '../batch-relay.js';

/** One outbox row on its way to the integration work queue. */
export interface IntegrationWorkItem {
  outboxId: string;
  eventId: string;
  topic: string;
  /** The outbox row's W3C trace context (lib/telemetry/), if it has one. */
  traceContext?: unknown;
}

export interface ClaimedEvent {
  id: string;
  provider: string;
  eventId: string;
  eventType: string;
  organizationId: string | null;
  payload: Record<string, unknown>;
  attempts: number;
  receivedAt: Date;
}

export interface ProviderSettings {
  provider: string;
  apiBaseUrl: string | null;
  credentials: Record<string, string> | null;
  retryPolicy: { max_retries?: number; backoff_multiplier?: number; max_backoff_seconds?: number };
  rateLimit: { requests_per_minute?: number; burst_limit?: number };
  enabled: boolean;
}

export interface CircuitStatus {
  state: 'closed' | 'open' | 'half-open';
  openUntil: Date | null;
  consecutiveFailures: number;
  lastError: string | null;
}

export class IntegrationStore implements RelaySource<IntegrationWorkItem> {
  constructor(readonly pool: pg.Pool) {}

  /** Claims unsent `integration.%` outbox rows; marks them sent after `publish` resolves. */
  async relayBatch(limit: number, publish: (items: IntegrationWorkItem[]) => Promise<void>): Promise<number> {
    return withTransaction(this.pool, async (client) => {
      const { rows } = await client.query<{
        id: string;
        topic: string;
        payload: { event?: unknown };
        trace_context: unknown;
      }>(
        `SELECT id, topic, payload, trace_context FROM app.outbox
          WHERE sent_at IS NULL AND topic LIKE 'integration.%'
          ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [limit],
      );
      const items = rows
        .filter((r) => typeof r.payload.event === 'string')
        .map((r) => ({
          outboxId: r.id,
          eventId: r.payload.event as string,
          topic: r.topic,
          traceContext: r.trace_context,
        }));
      if (items.length > 0) await publish(items);
      if (rows.length > 0) {
        await client.query('UPDATE app.outbox SET sent_at = now() WHERE id = ANY($1::bigint[])', [
          rows.map((r) => r.id),
        ]);
      }
      return rows.length;
    });
  }

  /**
   * Moves an event to `processing` and counts the attempt. Undefined when it
   * does not exist or is already completed or failed (a redelivered copy).
   */
  async claim(eventRowId: string): Promise<ClaimedEvent | undefined> {
    const { rows } = await this.pool.query<{
      id: string;
      provider: string;
      event_id: string;
      event_type: string;
      organization_id: string | null;
      payload: Record<string, unknown>;
      attempts: number;
      received_at: Date;
    }>(
      `UPDATE app.integration_events
          SET status = 'processing', attempts = attempts + 1, next_attempt_at = NULL, updated_at = now()
        WHERE id = $1 AND status IN ('pending', 'retrying', 'processing')
        RETURNING id, provider, event_id, event_type, organization_id, payload, attempts, received_at`,
      [eventRowId],
    );
    const r = rows[0];
    return (
      r && {
        id: r.id,
        provider: r.provider,
        eventId: r.event_id,
        eventType: r.event_type,
        organizationId: r.organization_id,
        payload: r.payload,
        attempts: r.attempts,
        receivedAt: r.received_at,
      }
    );
  }

  /** Runs `apply` and marks the event completed in one transaction. */
  async complete(eventRowId: string, apply: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    await withTransaction(this.pool, async (client) => {
      await apply(client);
      await client.query(
        `UPDATE app.integration_events
            SET status = 'completed', processed_at = now(), last_error = NULL, updated_at = now()
          WHERE id = $1`,
        [eventRowId],
      );
    });
  }

  /**
   * Records a failed attempt: `retrying` with the next attempt's time, or
   * `failed` (parked). `uncount` takes the attempt back (a deferral, not an attempt).
   */
  async recordFailure(
    eventRowId: string,
    outcome: { status: 'retrying' | 'failed'; error: string; nextAttemptAt?: Date; uncount?: boolean },
  ): Promise<void> {
    await this.pool.query(
      `UPDATE app.integration_events
          SET status = $2, last_error = $3, next_attempt_at = $4, updated_at = now(),
              attempts = CASE WHEN $5 THEN greatest(attempts - 1, 0) ELSE attempts END
        WHERE id = $1`,
      [
        eventRowId,
        outcome.status,
        outcome.error.slice(0, 1000),
        outcome.nextAttemptAt ?? null,
        outcome.uncount ?? false,
      ],
    );
  }

  async providerSettings(provider: string): Promise<ProviderSettings | undefined> {
    const { rows } = await this.pool.query<{
      provider: string;
      api_base_url: string | null;
      credentials: Record<string, string> | null;
      retry_policy: ProviderSettings['retryPolicy'];
      rate_limit: ProviderSettings['rateLimit'];
      enabled: boolean;
    }>(
      `SELECT provider, api_base_url, credentials, retry_policy, rate_limit, enabled
         FROM app.integration_providers WHERE provider = $1`,
      [provider],
    );
    const r = rows[0];
    return (
      r && {
        provider: r.provider,
        apiBaseUrl: r.api_base_url,
        credentials: r.credentials,
        retryPolicy: r.retry_policy,
        rateLimit: r.rate_limit,
        enabled: r.enabled,
      }
    );
  }

  async writeCircuit(provider: string, status: CircuitStatus): Promise<void> {
    await this.pool.query(
      `INSERT INTO app.integration_provider_status AS s
         (provider, circuit_state, circuit_open_until, consecutive_failures, last_error, last_error_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, CASE WHEN $5::text IS NULL THEN NULL ELSE now() END, now())
       ON CONFLICT (provider) DO UPDATE SET
         circuit_state = EXCLUDED.circuit_state,
         circuit_open_until = EXCLUDED.circuit_open_until,
         consecutive_failures = EXCLUDED.consecutive_failures,
         last_error = coalesce(EXCLUDED.last_error, s.last_error),
         last_error_at = coalesce(EXCLUDED.last_error_at, s.last_error_at),
         updated_at = now()`,
      [
        provider,
        status.state,
        status.openUntil,
        status.consecutiveFailures,
        status.lastError?.slice(0, 1000) ?? null,
      ],
    );
  }
}
