// The tenant database side of webhook delivery: fan-out of outbox rows into
// messages and deliveries, the delivery a worker is about to send, and the
// record of each attempt. Every query is schema-qualified; the pool connects as
// the tenant's login role, so the app role's privileges apply.
import type pg from 'pg';
import { deliveriesRequestedTopic, type DeliveriesRequested } from '../../lib/webhooks/outbox-topics.js';
import { eventTypeMatches, newMessageId } from '../../lib/webhooks/standard-webhooks.js';

export type DeliveryStatus = 'pending' | 'delivering' | 'succeeded' | 'retrying' | 'failed' | 'deferred';

/** The tenant-visible event written to the outbox when an endpoint is disabled. */
export const endpointDisabledTopic = 'webhook.endpoint.disabled';

export interface FannedOutDelivery {
  deliveryId: string;
  messageId: string;
  endpointId: string;
  outboxId: string;
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

export interface AttemptOutcome {
  /** Set when this attempt disabled the endpoint. */
  endpointDisabled?: string;
}

const lostConnection = new WeakMap<pg.PoolClient, () => void>();

/**
 * A client for a transaction. The pool only listens for errors on idle
 * clients; a checked-out one whose connection drops between queries (a
 * database restart while a batch waits for broker confirms) would otherwise
 * raise an uncaught 'error' and crash the worker. The next query fails instead.
 */
async function checkout(pool: pg.Pool): Promise<pg.PoolClient> {
  const client = await pool.connect();
  const ignore = () => undefined;
  client.on('error', ignore);
  lostConnection.set(client, ignore);
  return client;
}

function checkin(client: pg.PoolClient): void {
  const ignore = lostConnection.get(client);
  if (ignore) client.removeListener('error', ignore);
  client.release();
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
    const client = await checkout(this.pool);
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ id: string; topic: string; payload: unknown; created_at: Date }>(
        `SELECT id, topic, payload, created_at FROM app.outbox
          WHERE sent_at IS NULL AND NOT (topic LIKE ANY($2::text[]))
          ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [limit, this.excludedTopics],
      );
      if (rows.length === 0) {
        await client.query('COMMIT');
        return 0;
      }
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
      const pairs: { messageId: string; endpointId: string; outboxId: string }[] = [];
      events.forEach((row, i) => {
        for (const endpoint of endpoints.rows) {
          if (eventTypeMatches(endpoint.event_types, row.topic)) {
            pairs.push({ messageId: messageIds[i] as string, endpointId: endpoint.id, outboxId: row.id });
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
      await client.query('COMMIT');
      return rows.length;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      checkin(client);
    }
  }

  /** The still-open deliveries named by `webhook.deliveries.requested` rows. */
  private async requestedDeliveries(
    client: pg.PoolClient,
    rows: readonly { id: string; payload: unknown }[],
  ): Promise<FannedOutDelivery[]> {
    const ids: string[] = [];
    const outboxOf = new Map<string, string>();
    for (const row of rows) {
      const named = (row.payload as Partial<DeliveriesRequested> | null)?.delivery_ids;
      for (const id of Array.isArray(named) ? named : []) {
        if (typeof id !== 'string' || !/^[0-9a-f-]{36}$/.test(id)) continue;
        ids.push(id);
        outboxOf.set(id, row.id);
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
      outboxId: outboxOf.get(d.id) as string,
    }));
  }

  /**
   * The delivery and what is needed to send it. A delivery the relay has
   * published but not yet committed is invisible; waiting on its outbox row's
   * lock tells "not committed yet" from "rolled back", so a worker never drops
   * a delivery that is about to exist.
   */
  async loadDelivery(deliveryId: string, outboxId: string | undefined): Promise<DeliveryToSend | undefined> {
    const found = await this.selectDelivery(deliveryId);
    if (found || outboxId === undefined) return found;
    const client = await checkout(this.pool);
    try {
      await client.query('BEGIN');
      await client.query('SELECT 1 FROM app.outbox WHERE id = $1 FOR KEY SHARE', [outboxId]);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      checkin(client);
    }
    return this.selectDelivery(deliveryId);
  }

  private async selectDelivery(deliveryId: string): Promise<DeliveryToSend | undefined> {
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
        WHERE d.id = $1`,
      [deliveryId],
    );
    const row = rows[0];
    if (!row) return undefined;
    return {
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
    };
  }

  async markDelivering(deliveryId: string): Promise<void> {
    await this.pool.query(
      `UPDATE app.webhook_deliveries SET status = 'delivering', updated_at = now() WHERE id = $1`,
      [deliveryId],
    );
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
   * Records one attempt and its consequences in one transaction: the attempt
   * row, the delivery's new status, the endpoint's failing streak, and, when
   * the endpoint is disabled, the tenant-visible outbox event saying so.
   */
  async recordAttempt(record: AttemptRecord): Promise<AttemptOutcome> {
    const client = await checkout(this.pool);
    try {
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO app.webhook_attempts
           (delivery_id, attempt, started_at, duration_ms, response_status, error, outcome)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [
          record.deliveryId,
          record.attempt,
          record.startedAt,
          record.durationMs,
          record.responseStatus ?? null,
          record.error ?? null,
          record.succeeded ? 'succeeded' : 'failed',
        ],
      );
      await client.query(
        `UPDATE app.webhook_deliveries
            SET status = $2, attempts = greatest(attempts, $3), next_attempt_at = $4, last_attempt_at = $5,
                last_error = $6, last_response_status = $7, last_duration_ms = $8, updated_at = now()
          WHERE id = $1`,
        [
          record.deliveryId,
          record.status,
          record.attempt,
          record.nextAttemptAt ?? null,
          record.startedAt,
          record.error ?? null,
          record.responseStatus ?? null,
          record.durationMs,
        ],
      );
      let disableReason = record.disableReason;
      if (record.succeeded) {
        await client.query(
          `UPDATE app.webhook_endpoints SET failing_since = NULL, updated_at = now()
            WHERE id = $1 AND failing_since IS NOT NULL`,
          [record.endpointId],
        );
      } else {
        const { rows } = await client.query<{ failing_ms: number }>(
          `UPDATE app.webhook_endpoints SET failing_since = coalesce(failing_since, $2), updated_at = now()
            WHERE id = $1
        RETURNING extract(epoch FROM (now() - failing_since)) * 1000 AS failing_ms`,
          [record.endpointId, record.startedAt],
        );
        const failingMs = Number(rows[0]?.failing_ms ?? 0);
        if (!disableReason && failingMs >= record.disableAfterMs) {
          disableReason = `failing continuously for ${Math.round(failingMs / 1000)}s`;
        }
      }
      const outcome: AttemptOutcome = {};
      if (disableReason && (await this.disable(client, record.endpointId, disableReason))) {
        outcome.endpointDisabled = disableReason;
      }
      await client.query('COMMIT');
      return outcome;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      checkin(client);
    }
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
    await client.query('INSERT INTO app.outbox (topic, payload) VALUES ($1, $2)', [
      endpointDisabledTopic,
      JSON.stringify({ endpoint_id: endpointId, reason, disabled_at: row.disabled_at.toISOString() }),
    ]);
    return true;
  }
}
