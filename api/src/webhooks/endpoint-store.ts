// The rows behind /api/webhooks in one tenant database: endpoints, the
// messages and deliveries the API creates (test sends, replays), and the
// attempts the worker recorded. Only this module reaches their tables; the
// rules live in endpoint-service.ts. Plain reads and writes go through the
// models; a statement the models cannot say is SQL, with the reason beside it.
import { QueryTypes, type Sequelize, type Transaction } from 'sequelize';
import type { TenantModels } from '../tenancy/models.js';
import type { TenantDb } from '../tenancy/tenant-databases.js';
import type { AttemptView, DeliveryView } from './schemas.js';

export interface EndpointRow {
  id: string;
  url: string;
  description: string | null;
  event_types: string[];
  enabled: boolean;
  disabled_reason: string | null;
  disabled_at: Date | null;
  previous_secret_expires_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface MessageRow {
  id: string;
  event_type: string;
  payload: unknown;
  created_at: Date;
  deliveries: DeliveryView[] | null;
}

export type AttemptRow = Omit<AttemptView, 'started_at'> & { started_at: Date };

export interface NewEndpoint {
  url: string;
  description: string | null;
  eventTypes: string[];
  secret: string;
}

/** What an update changes; an absent field stays as it is. */
export interface EndpointChanges {
  url?: string;
  eventTypes?: string[];
  description?: string | null;
  enabled?: boolean;
}

export interface MessageFilter {
  eventType?: string;
  status?: string;
  endpointId?: string;
}

export interface Slice {
  limit: number;
  offset: number;
}

const endpointAttributes = [
  'id',
  'url',
  'description',
  'event_types',
  'enabled',
  'disabled_reason',
  'disabled_at',
  'previous_secret_expires_at',
  'created_at',
  'updated_at',
] as const satisfies (keyof EndpointRow)[];
const endpointColumns = endpointAttributes.join(', ');

// Deliveries come back as JSON built in SQL, so timestamps are already ISO strings: one statement
// answers a page of messages with their deliveries.
const messageSelect = `
  SELECT m.id, m.event_type, m.payload, m.created_at,
         (SELECT json_agg(json_build_object(
                   'id', d.id, 'endpoint_id', d.endpoint_id, 'status', d.status, 'attempts', d.attempts,
                   'deferrals', d.deferrals, 'next_attempt_at', d.next_attempt_at,
                   'last_attempt_at', d.last_attempt_at, 'last_response_status', d.last_response_status,
                   'last_error', d.last_error, 'created_at', d.created_at) ORDER BY d.created_at, d.id)
            FROM app.webhook_deliveries d WHERE d.message_id = m.id) AS deliveries
    FROM app.webhook_messages m`;

export class EndpointStore {
  readonly #sequelize: Sequelize;
  readonly #models: TenantModels;

  constructor(db: TenantDb) {
    this.#sequelize = db.sequelize;
    this.#models = db.models;
  }

  countEndpoints(): Promise<number> {
    return this.#models.WebhookEndpoint.count();
  }

  async listEndpoints(slice: Slice): Promise<EndpointRow[]> {
    const rows = await this.#models.WebhookEndpoint.findAll({
      attributes: [...endpointAttributes],
      order: [
        ['created_at', 'ASC'],
        ['id', 'ASC'],
      ],
      limit: slice.limit,
      offset: slice.offset,
    });
    return rows.map((row) => row.get({ plain: true }));
  }

  /** The endpoint; inside a transaction, locked (FOR UPDATE) until it ends. */
  async findEndpoint(id: string, transaction?: Transaction): Promise<EndpointRow | undefined> {
    const row = await this.#models.WebhookEndpoint.findByPk(id, {
      attributes: [...endpointAttributes],
      ...(transaction ? { transaction, lock: true } : {}),
    });
    return row?.get({ plain: true });
  }

  async insertEndpoint(endpoint: NewEndpoint, transaction: Transaction): Promise<EndpointRow> {
    const row = await this.#models.WebhookEndpoint.create(
      {
        url: endpoint.url,
        description: endpoint.description,
        event_types: endpoint.eventTypes,
        secret: endpoint.secret,
      },
      { transaction, returning: [...endpointAttributes] },
    );
    return row.get({ plain: true });
  }

  /**
   * Applies `changes`. Enabling again clears the failing streak, so the worker judges the endpoint
   * afresh; disabling records when and why. SQL: the new values depend on the row's current ones
   * (CASE on `enabled`), which one statement reads and writes together.
   */
  async updateEndpoint(id: string, changes: EndpointChanges, transaction: Transaction): Promise<EndpointRow> {
    const [row] = await this.#select<EndpointRow>(
      `UPDATE app.webhook_endpoints
          SET url = coalesce($2, url),
              event_types = coalesce($3::text[], event_types),
              description = CASE WHEN $4::boolean THEN $5 ELSE description END,
              enabled = coalesce($6, enabled),
              disabled_at = CASE WHEN $6 IS NULL OR $6 = enabled THEN disabled_at
                                 WHEN $6 THEN NULL ELSE now() END,
              disabled_reason = CASE WHEN $6 IS NULL OR $6 = enabled THEN disabled_reason
                                     WHEN $6 THEN NULL ELSE 'disabled through the API' END,
              failing_since = CASE WHEN $6 AND NOT enabled THEN NULL ELSE failing_since END,
              updated_at = now()
        WHERE id = $1
    RETURNING ${endpointColumns}`,
      [
        id,
        changes.url ?? null,
        changes.eventTypes ?? null,
        changes.description !== undefined,
        changes.description ?? null,
        changes.enabled ?? null,
      ],
      transaction,
    );
    return row!;
  }

  /** Its deliveries and attempts go with it (ON DELETE CASCADE). */
  async deleteEndpoint(id: string, transaction: Transaction): Promise<void> {
    await this.#models.WebhookEndpoint.destroy({ where: { id }, transaction });
  }

  /**
   * Signs with `secret` from now on; the current secret becomes the previous one and keeps signing
   * for `overlapSeconds` (none when 0). One statement: the swap reads the row it writes.
   */
  async rotateSecret(
    id: string,
    secret: string,
    overlapSeconds: number,
    transaction: Transaction,
  ): Promise<EndpointRow> {
    const [row] = await this.#select<EndpointRow>(
      `UPDATE app.webhook_endpoints
          SET previous_secret = CASE WHEN $3::int > 0 THEN secret END,
              previous_secret_expires_at = CASE WHEN $3::int > 0 THEN now() + make_interval(secs => $3::int) END,
              secret = $2, updated_at = now()
        WHERE id = $1
    RETURNING ${endpointColumns}`,
      [id, secret, overlapSeconds],
      transaction,
    );
    return row!;
  }

  async insertMessage(
    message: { id: string; eventType: string; payload: object },
    transaction: Transaction,
  ): Promise<void> {
    await this.#models.WebhookMessage.create(
      { id: message.id, event_type: message.eventType, payload: message.payload },
      { transaction, returning: false },
    );
  }

  /** Records the outbox row that requested the message's first deliveries. */
  async setMessageOutbox(messageId: string, outboxId: string, transaction: Transaction): Promise<void> {
    await this.#models.WebhookMessage.update(
      { outbox_id: outboxId },
      { where: { id: messageId }, transaction },
    );
  }

  /** New pending deliveries of `messageIds` to one endpoint; their ids. */
  async insertDeliveries(
    messageIds: string[],
    endpointId: string,
    transaction: Transaction,
  ): Promise<string[]> {
    // One statement for the whole batch, whatever its size.
    const rows = await this.#select<{ id: string }>(
      `INSERT INTO app.webhook_deliveries (message_id, endpoint_id)
       SELECT m, $2 FROM unnest($1::text[]) AS m RETURNING id`,
      [messageIds, endpointId],
      transaction,
    );
    return rows.map((r) => r.id);
  }

  /**
   * Up to `limit` messages created since `since` that had a delivery to the endpoint, oldest first.
   * SQL: an EXISTS on the deliveries, which the models (no associations) do not express.
   */
  messagesSince(
    endpointId: string,
    since: Date,
    limit: number,
    transaction: Transaction,
  ): Promise<{ id: string; created_at: Date }[]> {
    return this.#select(
      `SELECT m.id, m.created_at FROM app.webhook_messages m
        WHERE m.created_at >= $2
          AND EXISTS (SELECT 1 FROM app.webhook_deliveries d WHERE d.message_id = m.id AND d.endpoint_id = $1)
        ORDER BY m.created_at, m.id LIMIT $3`,
      [endpointId, since, limit],
      transaction,
    );
  }

  /** The matching messages, newest first, with their total (SQL: see messageSelect). */
  async listMessages(filter: MessageFilter, slice: Slice): Promise<{ count: number; rows: MessageRow[] }> {
    const bind: unknown[] = [];
    const where: string[] = [];
    if (filter.eventType) {
      bind.push(filter.eventType);
      where.push(`m.event_type = $${bind.length}`);
    }
    if (filter.status || filter.endpointId) {
      const conditions: string[] = ['d.message_id = m.id'];
      if (filter.status) {
        bind.push(filter.status);
        conditions.push(`d.status = $${bind.length}`);
      }
      if (filter.endpointId) {
        bind.push(filter.endpointId);
        conditions.push(`d.endpoint_id = $${bind.length}`);
      }
      where.push(`EXISTS (SELECT 1 FROM app.webhook_deliveries d WHERE ${conditions.join(' AND ')})`);
    }
    const clause = where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '';
    const count = await this.#count(`SELECT count(*) AS count FROM app.webhook_messages m${clause}`, bind);
    const rows = await this.#select<MessageRow>(
      `${messageSelect}${clause} ORDER BY m.created_at DESC, m.id DESC LIMIT $${bind.length + 1} OFFSET $${bind.length + 2}`,
      [...bind, slice.limit, slice.offset],
    );
    return { count, rows };
  }

  async findMessage(id: string): Promise<MessageRow | undefined> {
    const [row] = await this.#select<MessageRow>(`${messageSelect} WHERE m.id = $1`, [id]);
    return row;
  }

  /** The attempts at delivering one message, in the order they started, with their total (SQL: a join). */
  async listAttempts(messageId: string, slice: Slice): Promise<{ count: number; rows: AttemptRow[] }> {
    const from = `FROM app.webhook_attempts a JOIN app.webhook_deliveries d ON d.id = a.delivery_id
                 WHERE d.message_id = $1`;
    const count = await this.#count(`SELECT count(*) AS count ${from}`, [messageId]);
    const rows = await this.#select<AttemptRow>(
      `SELECT a.id::text AS id, a.delivery_id, d.endpoint_id, a.attempt, a.started_at, a.duration_ms,
              a.response_status, a.error, a.outcome
         ${from} ORDER BY a.started_at, a.id LIMIT $2 OFFSET $3`,
      [messageId, slice.limit, slice.offset],
    );
    return { count, rows };
  }

  #select<T extends object>(sql: string, bind: unknown[], transaction?: Transaction): Promise<T[]> {
    return this.#sequelize.query<T>(sql, {
      bind,
      type: QueryTypes.SELECT,
      ...(transaction ? { transaction } : {}),
    });
  }

  async #count(sql: string, bind: unknown[]): Promise<number> {
    const [row] = await this.#select<{ count: string }>(sql, bind);
    return Number(row?.count ?? 0);
  }
}
