// The tenant database side of webhook delivery: fan-out of outbox rows into
// messages and deliveries, the deliveries a worker is about to send, and the
// record of each attempt, a batch at a time. Every query is schema-qualified;
// the pool connects as the tenant's login role, so the app role's privileges apply.
import type pg from 'pg';
import { inOutboxSpan } from '../../lib/telemetry/index.js';
import { withTransaction } from '../../lib/transaction.js';
import { deliveriesRequestedTopic, type DeliveriesRequested } from '../../lib/webhooks/outbox-topics.js';
import { eventTypeMatches, newMessageId } from '../../lib/webhooks/standard-webhooks.js';

export type DeliveryStatus = 'pending' | 'succeeded' | 'retrying' | 'failed' | 'deferred';

/** The tenant-visible event written to the outbox when an endpoint is disabled. */
export const endpointDisabledTopic = 'webhook.endpoint.disabled';

export interface FannedOutDelivery {
  deliveryId: string;
  messageId: string;
  endpointId: string;
  outboxId: string;
  /** The outbox row's W3C trace context (lib/telemetry/), if it has one. */
  traceContext?: unknown;
}

export interface DeliveryToSend {
  deliveryId: string;
  status: DeliveryStatus;
  attempts: number;
  messageId: string;
  eventType: string;
  payload: unknown;
  messageCreatedAt: Date;
  endpointId: string;
  url: string;
  enabled: boolean;
  /** The current secret first, then the previous one while its overlap lasts. */
  secrets: string[];
}

export interface AttemptRecord {
  deliveryId: string;
  endpointId: string;
  attempt: number;
  startedAt: Date;
  durationMs: number;
  responseStatus: number | undefined;
  error: string | undefined;
  succeeded: boolean;
  /** The status the delivery moves to. */
  status: DeliveryStatus;
  nextAttemptAt: Date | undefined;
  /** Disable the endpoint now (e.g. it answered 410), with this reason. */
  disableReason?: string;
  /** Disable the endpoint if it has been failing for at least this long. */
  disableAfterMs: number;
}

export interface DisabledEndpoint {
  endpointId: string;
  reason: string;
}

/** What a batch of attempts does to one endpoint's failing streak. */
export interface EndpointStreak {
  endpointId: string;
  /** A success ended the streak within the batch. */
  reset: boolean;
  /** When the failures after the batch's last success began; undefined when it ended on a success. */
  since: Date | undefined;
  /** A reason to disable the endpoint now (an attempt answered 410). */
  disableReason: string | undefined;
  disableAfterMs: number;
}

/** Folds a batch's attempts, in order, into one streak change per endpoint (sorted by id). */
export function endpointStreaks(records: readonly AttemptRecord[]): EndpointStreak[] {
  const streaks = new Map<string, EndpointStreak>();
  for (const r of records) {
    let streak = streaks.get(r.endpointId);
    if (!streak) {
      streak = {
        endpointId: r.endpointId,
        reset: false,
        since: undefined,
        disableReason: undefined,
        disableAfterMs: r.disableAfterMs,
      };
      streaks.set(r.endpointId, streak);
    }
    if (r.succeeded) {
      streak.reset = true;
      streak.since = undefined;
    } else if (!streak.since || r.startedAt < streak.since) {
      streak.since = r.startedAt;
    }
    streak.disableReason ??= r.disableReason;
    streak.disableAfterMs = r.disableAfterMs;
  }
  return [...streaks.values()].sort((a, b) => (a.endpointId < b.endpointId ? -1 : 1));
}

export class WebhookStore {
  constructor(
    private readonly pool: pg.Pool,
    /** Outbox topics another consumer owns (SQL LIKE patterns); the relay leaves them alone. */
    private readonly excludedTopics: readonly string[] = ['integration.%'],
  ) {}

  /**
   * Claims up to `limit` unsent outbox rows (skipping rows another relay holds),
   * creates a message for each and a delivery for every enabled endpoint that
   * subscribes to it, and calls `publish` with the deliveries. The rows are
   * marked sent in the same transaction, after `publish` resolves; if it throws,
   * everything rolls back and the rows stay unsent. Returns the rows handled.
   */
  async relayBatch(
    limit: number,
    publish: (deliveries: FannedOutDelivery[]) => Promise<void>,
  ): Promise<number> {
    return withTransaction(this.pool, async (client) => {
      const { rows } = await client.query<{
        id: string;
        topic: string;
        payload: unknown;
        created_at: Date;
        trace_context: unknown;
      }>(
        `SELECT id, topic, payload, created_at, trace_context FROM app.outbox
          WHERE sent_at IS NULL AND NOT (topic LIKE ANY($2::text[]))
          ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [limit, this.excludedTopics],
      );
      if (rows.length === 0) return 0;
      // Deliveries the API created itself (test sends, replays) are published as they are.
      const requested = rows.filter((r) => r.topic === deliveriesRequestedTopic);
      const events = rows.filter((r) => r.topic !== deliveriesRequestedTopic);
      const deliveries = await this.requestedDeliveries(client, requested);
      const endpoints = await client.query<{ id: string; event_types: string[] }>(
        'SELECT id, event_types FROM app.webhook_endpoints WHERE enabled',
      );
      const messageIds = events.map(() => newMessageId());
      await client.query(
        `INSERT INTO app.webhook_messages (id, event_type, payload, outbox_id, created_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::bigint[], $5::timestamptz[])`,
        [
          messageIds,
          events.map((r) => r.topic),
          events.map((r) => JSON.stringify(r.payload)),
          events.map((r) => r.id),
          events.map((r) => r.created_at),
        ],
      );
      const pairs: { messageId: string; endpointId: string; outboxId: string; traceContext: unknown }[] = [];
      events.forEach((row, i) => {
        for (const endpoint of endpoints.rows) {
          if (eventTypeMatches(endpoint.event_types, row.topic)) {
            pairs.push({
              messageId: messageIds[i] as string,
              endpointId: endpoint.id,
              outboxId: row.id,
              traceContext: row.trace_context,
            });
          }
        }
      });
      if (pairs.length > 0) {
        const inserted = await client.query<{ id: string }>(
          `INSERT INTO app.webhook_deliveries (message_id, endpoint_id)
           SELECT * FROM unnest($1::text[], $2::uuid[]) RETURNING id`,
          [pairs.map((p) => p.messageId), pairs.map((p) => p.endpointId)],
        );
        // INSERT ... SELECT unnest returns rows in input order.
        pairs.forEach((p, i) => deliveries.push({ ...p, deliveryId: inserted.rows[i]?.id as string }));
      }
      if (deliveries.length > 0) await publish(deliveries);
      await client.query('UPDATE app.outbox SET sent_at = now() WHERE id = ANY($1::bigint[])', [
        rows.map((r) => r.id),
      ]);
      return rows.length;
    });
  }

  /** The still-open deliveries named by `webhook.deliveries.requested` rows. */
  private async requestedDeliveries(
    client: pg.PoolClient,
    rows: readonly { id: string; payload: unknown; trace_context: unknown }[],
  ): Promise<FannedOutDelivery[]> {
    const ids: string[] = [];
    const outboxOf = new Map<string, { id: string; trace_context: unknown }>();
    for (const row of rows) {
      const named = (row.payload as Partial<DeliveriesRequested> | null)?.delivery_ids;
      for (const id of Array.isArray(named) ? named : []) {
        if (typeof id !== 'string' || !/^[0-9a-f-]{36}$/.test(id)) continue;
        ids.push(id);
        outboxOf.set(id, row);
      }
    }
    if (ids.length === 0) return [];
    const { rows: found } = await client.query<{ id: string; message_id: string; endpoint_id: string }>(
      `SELECT id, message_id, endpoint_id FROM app.webhook_deliveries
        WHERE id = ANY($1::uuid[]) AND status NOT IN ('succeeded', 'failed')`,
      [ids],
    );
    return found.map((d) => ({
      deliveryId: d.id,
      messageId: d.message_id,
      endpointId: d.endpoint_id,
      outboxId: outboxOf.get(d.id)!.id,
      traceContext: outboxOf.get(d.id)!.trace_context,
    }));
  }

  /**
   * The deliveries named by `deliveryIds` and what is needed to send them, in
   * one read. A delivery is not marked while its request is in flight: that
   * would cost a write and a commit per batch on the way to every first attempt.
   */
  async loadDeliveries(deliveryIds: readonly string[]): Promise<Map<string, DeliveryToSend>> {
    const { rows } = await this.pool.query<{
      id: string;
      status: DeliveryStatus;
      attempts: number;
      message_id: string;
      event_type: string;
      payload: unknown;
      message_created_at: Date;
      endpoint_id: string;
      url: string;
      enabled: boolean;
      secret: string;
      previous_secret: string | null;
    }>(
      `SELECT d.id, d.status, d.attempts, m.id AS message_id, m.event_type, m.payload,
              m.created_at AS message_created_at, e.id AS endpoint_id, e.url, e.enabled, e.secret,
              CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END AS previous_secret
         FROM app.webhook_deliveries d
         JOIN app.webhook_messages m ON m.id = d.message_id
         JOIN app.webhook_endpoints e ON e.id = d.endpoint_id
        WHERE d.id = ANY($1::uuid[])`,
      [deliveryIds],
    );
    return new Map(
      rows.map((row) => [
        row.id,
        {
          deliveryId: row.id,
          status: row.status,
          attempts: row.attempts,
          messageId: row.message_id,
          eventType: row.event_type,
          payload: row.payload,
          messageCreatedAt: row.message_created_at,
          endpointId: row.endpoint_id,
          url: row.url,
          enabled: row.enabled,
          secrets: row.previous_secret ? [row.secret, row.previous_secret] : [row.secret],
        },
      ]),
    );
  }

  /**
   * Waits until no relay transaction holds these outbox rows. A worker can get
   * a work message before the relay that published it commits; once the
   * relay's transaction is over, its deliveries either exist (committed) or
   * never will (rolled back), so a missing delivery is never dropped early.
   */
  async awaitRelayCommits(outboxIds: readonly string[]): Promise<void> {
    await this.pool.query('SELECT 1 FROM app.outbox WHERE id = ANY($1::bigint[]) FOR KEY SHARE', [outboxIds]);
  }

  /** A deferral is not an attempt: only the status, the counter and the next time change. */
  async markDeferred(
    deliveryId: string,
    deferrals: number,
    nextAttemptAt: Date,
    reason: string,
  ): Promise<void> {
    await this.pool.query(
      `UPDATE app.webhook_deliveries
          SET status = 'deferred', deferrals = greatest(deferrals, $2), next_attempt_at = $3, last_error = $4,
              updated_at = now()
        WHERE id = $1 AND status NOT IN ('succeeded', 'failed')`,
      [deliveryId, deferrals, nextAttemptAt, reason],
    );
  }

  /** A delivery that will not be attempted (its endpoint is disabled). */
  async markAbandoned(deliveryId: string, reason: string): Promise<void> {
    await this.pool.query(
      `UPDATE app.webhook_deliveries
          SET status = 'failed', next_attempt_at = NULL, last_error = $2, updated_at = now()
        WHERE id = $1 AND status NOT IN ('succeeded', 'failed')`,
      [deliveryId, reason],
    );
  }

  /**
   * Records a batch of attempts and their consequences in one transaction: the
   * attempt rows, each delivery's new status, each endpoint's failing streak,
   * and for an endpoint this disables, the tenant-visible outbox event saying
   * so. The records count in their order, as if recorded one after another.
   * Attempts of deliveries deleted meanwhile (with their endpoint) are skipped.
   * Returns the endpoints the batch disabled.
   */
  async recordAttempts(records: readonly AttemptRecord[]): Promise<DisabledEndpoint[]> {
    return withTransaction(this.pool, async (client) => {
      // The last attempt of a delivery sets its status.
      const latest = [...new Map(records.map((r) => [r.deliveryId, r])).values()];
      const updated = await client.query<{ id: string }>(
        `UPDATE app.webhook_deliveries d
            SET status = r.status, attempts = greatest(d.attempts, r.attempt), next_attempt_at = r.next_attempt_at,
                last_attempt_at = r.started_at, last_error = r.error, last_response_status = r.response_status,
                last_duration_ms = r.duration_ms, updated_at = now()
           FROM unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::timestamptz[], $6::text[],
                       $7::int[], $8::int[])
                AS r(id, status, attempt, next_attempt_at, started_at, error, response_status, duration_ms)
          WHERE d.id = r.id
      RETURNING d.id`,
        [
          latest.map((r) => r.deliveryId),
          latest.map((r) => r.status),
          latest.map((r) => r.attempt),
          latest.map((r) => r.nextAttemptAt ?? null),
          latest.map((r) => r.startedAt),
          latest.map((r) => r.error ?? null),
          latest.map((r) => r.responseStatus ?? null),
          latest.map((r) => r.durationMs),
        ],
      );
      // The updated rows stay locked until COMMIT, so their attempts can reference them.
      const present = new Set(updated.rows.map((row) => row.id));
      const kept = records.filter((r) => present.has(r.deliveryId));
      await client.query(
        `INSERT INTO app.webhook_attempts
           (delivery_id, attempt, started_at, duration_ms, response_status, error, outcome)
         SELECT * FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::int[], $5::int[], $6::text[], $7::text[])`,
        [
          kept.map((r) => r.deliveryId),
          kept.map((r) => r.attempt),
          kept.map((r) => r.startedAt),
          kept.map((r) => r.durationMs),
          kept.map((r) => r.responseStatus ?? null),
          kept.map((r) => r.error ?? null),
          kept.map((r) => (r.succeeded ? 'succeeded' : 'failed')),
        ],
      );
      const streaks = endpointStreaks(kept);
      const { rows: failing } = await client.query<{ id: string; failing_ms: number }>(
        `UPDATE app.webhook_endpoints e
            SET failing_since = CASE WHEN s.reset THEN s.since ELSE coalesce(e.failing_since, s.since) END,
                updated_at = now()
           FROM unnest($1::uuid[], $2::bool[], $3::timestamptz[]) AS s(id, reset, since)
          WHERE e.id = s.id AND (s.since IS NOT NULL OR e.failing_since IS NOT NULL)
      RETURNING e.id, extract(epoch FROM (now() - e.failing_since)) * 1000 AS failing_ms`,
        [streaks.map((s) => s.endpointId), streaks.map((s) => s.reset), streaks.map((s) => s.since ?? null)],
      );
      const failingMs = new Map(failing.map((row) => [row.id, Number(row.failing_ms ?? 0)]));
      const disabled: DisabledEndpoint[] = [];
      for (const streak of streaks) {
        let reason = streak.disableReason;
        const ms = failingMs.get(streak.endpointId) ?? 0;
        if (!reason && streak.since && ms >= streak.disableAfterMs) {
          reason = `failing continuously for ${Math.round(ms / 1000)}s`;
        }
        if (reason && (await this.disable(client, streak.endpointId, reason))) {
          disabled.push({ endpointId: streak.endpointId, reason });
        }
      }
      return disabled;
    });
  }

  private async disable(client: pg.PoolClient, endpointId: string, reason: string): Promise<boolean> {
    const { rows } = await client.query<{ disabled_at: Date }>(
      `UPDATE app.webhook_endpoints
          SET enabled = false, disabled_reason = $2, disabled_at = now(), updated_at = now()
        WHERE id = $1 AND enabled
    RETURNING disabled_at`,
      [endpointId, reason],
    );
    const row = rows[0];
    if (!row) return false;
    const payload = JSON.stringify({
      endpoint_id: endpointId,
      reason,
      disabled_at: row.disabled_at.toISOString(),
    });
    await inOutboxSpan(endpointDisabledTopic, (traceContext) =>
      client.query('INSERT INTO app.outbox (topic, payload, trace_context) VALUES ($1, $2, $3)', [
        endpointDisabledTopic,
        payload,
        traceContext ? JSON.stringify(traceContext) : null,
      ]),
    );
    return true;
  }
}
