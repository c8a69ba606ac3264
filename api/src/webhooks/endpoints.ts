// The tenant's outgoing webhooks as the API manages them: endpoints (URL,
// event-type filter, signing secret with rotation), the messages and attempts
// the worker recorded, test sends and replays. Every function takes the
// caller's tenant scope first; its database is the only one it reaches.
//
// The worker (worker/) does the sending. The API only writes rows: a test send
// or a replay creates deliveries and a `webhook.deliveries.requested` outbox
// row in the caller's transaction, so they survive a broker outage like every
// domain event and the relay publishes them once the broker confirms.
import { QueryTypes, type Sequelize, type Transaction } from 'sequelize';
import { z } from 'zod';
import { outboundRefusal, type ResolveHost } from '../../../lib/outbound-address.js';
import { deliveriesRequestedTopic, type DeliveriesRequested } from '../../../lib/webhooks/outbox-topics.js';
import { generateWebhookSecret, newMessageId } from '../../../lib/webhooks/standard-webhooks.js';
import type { TenantScope } from '../auth/context.js';
import { problems } from '../http/problem.js';

export interface WebhookSettings {
  /**
   * Lets endpoint URLs use http and loopback addresses (development and tests).
   * Private, link-local and metadata addresses stay refused either way.
   */
  allowLoopback: boolean;
  resolveHost: ResolveHost;
  /** Most messages one replay call re-enqueues. */
  replayLimit: number;
}

export const testEventType = 'webhook.test';

// `user.created`, `user.*`, or `*`; lower case, dot-separated.
const eventType = z
  .string()
  .max(100)
  .regex(/^(\*|[a-z0-9_-]+(\.[a-z0-9_-]+)*(\.\*)?)$/, 'must look like "user.created", "user.*" or "*"');

const url = z.string().trim().min(1).max(2048);
const description = z.string().trim().max(500);

export const createEndpointSchema = z.strictObject({
  url,
  event_types: z.array(eventType).max(50),
  description: description.optional(),
});

export const updateEndpointSchema = z
  .strictObject({
    url: url.optional(),
    event_types: z.array(eventType).max(50).optional(),
    description: description.nullable().optional(),
    enabled: z.boolean().optional(),
  })
  .refine((v) => Object.keys(v).length > 0, { message: 'send at least one field to change' });

export const rotateSecretSchema = z
  .strictObject({
    // How long the previous secret keeps signing alongside the new one; 0 drops it at once.
    overlap_seconds: z
      .number()
      .int()
      .min(0)
      .max(7 * 86_400)
      .default(86_400),
  })
  .default({ overlap_seconds: 86_400 });

const page = {
  page: z.coerce.number().int().min(1).default(1),
  page_size: z.coerce.number().int().min(1).max(100).default(20),
};

export const listEndpointsSchema = z.strictObject(page);

// The schema also allows 'delivering', which no worker writes any more (it cost a commit per attempt).
export const deliveryStatuses = ['pending', 'succeeded', 'retrying', 'failed', 'deferred'] as const;

export const listMessagesSchema = z.strictObject({
  ...page,
  event_type: eventType.optional(),
  status: z.enum(deliveryStatuses).optional(),
  endpoint_id: z.uuid().optional(),
});

export const listAttemptsSchema = z.strictObject(page);

export const replaySchema = z.strictObject({
  since: z.iso
    .datetime({ offset: true })
    .transform((v) => new Date(v))
    .refine((d) => d.getTime() <= Date.now(), { message: 'must not be in the future' }),
});

export type CreateEndpoint = z.infer<typeof createEndpointSchema>;
export type UpdateEndpoint = z.infer<typeof updateEndpointSchema>;
export type ListMessages = z.infer<typeof listMessagesSchema>;
type Page = { page: number; page_size: number };

/** What the API shows of an endpoint: never a secret. */
export interface EndpointView {
  id: string;
  url: string;
  description: string | null;
  event_types: string[];
  enabled: boolean;
  disabled_reason: string | null;
  disabled_at: string | null;
  /** Until when the previous secret still signs, during a rotation. */
  previous_secret_expires_at: string | null;
  created_at: string;
  updated_at: string;
}

interface EndpointRow {
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

const endpointColumns =
  'id, url, description, event_types, enabled, disabled_reason, disabled_at, previous_secret_expires_at, created_at, updated_at';

function endpointView(row: EndpointRow): EndpointView {
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    event_types: row.event_types,
    enabled: row.enabled,
    disabled_reason: row.disabled_reason,
    disabled_at: row.disabled_at?.toISOString() ?? null,
    previous_secret_expires_at: row.previous_secret_expires_at?.toISOString() ?? null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

const loopbackHosts = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Refuses URLs the worker must never be pointed at (SSRF); the reason names the field. */
export async function checkEndpointUrl(value: string, settings: WebhookSettings): Promise<string> {
  const parsed = URL.parse(value);
  if (!parsed || !/^https?:$/.test(parsed.protocol)) {
    throw problems.validation([{ field: 'url', message: 'must be an absolute http(s) URL' }]);
  }
  if (parsed.hash) throw problems.validation([{ field: 'url', message: 'must not have a fragment' }]);
  const host = parsed.hostname.toLowerCase();
  const loopback = settings.allowLoopback && (loopbackHosts.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host));
  const refusal = await outboundRefusal(parsed, {
    allowPrivate: loopback,
    resolveHost: settings.resolveHost,
  });
  if (refusal) {
    const problem = problems.validation([{ field: 'url', message: `refused: ${refusal.message}` }]);
    // The error mapper logs the cause: the addresses the host resolved to stay out of the answer.
    problem.cause = refusal;
    throw problem;
  }
  return parsed.toString();
}

function isUuid(id: string): boolean {
  return z.uuid().safeParse(id).success;
}

async function count(sequelize: Sequelize, sql: string, bind: unknown[]): Promise<number> {
  const [row] = await sequelize.query<{ count: string }>(sql, { bind, type: QueryTypes.SELECT });
  return Number(row?.count ?? 0);
}

export async function listEndpoints(
  scope: TenantScope,
  query: Page,
): Promise<{ count: number; results: EndpointView[] }> {
  const sequelize = scope.db.sequelize;
  const total = await count(sequelize, 'SELECT count(*) AS count FROM app.webhook_endpoints', []);
  const rows = await sequelize.query<EndpointRow>(
    `SELECT ${endpointColumns} FROM app.webhook_endpoints ORDER BY created_at, id LIMIT $1 OFFSET $2`,
    { bind: [query.page_size, (query.page - 1) * query.page_size], type: QueryTypes.SELECT },
  );
  return { count: total, results: rows.map(endpointView) };
}

export async function getEndpoint(
  scope: TenantScope,
  id: string,
  transaction?: Transaction,
): Promise<EndpointView> {
  if (!isUuid(id)) throw problems.notFound(`no webhook endpoint ${id}`);
  const [row] = await scope.db.sequelize.query<EndpointRow>(
    `SELECT ${endpointColumns} FROM app.webhook_endpoints WHERE id = $1${transaction ? ' FOR UPDATE' : ''}`,
    { bind: [id], type: QueryTypes.SELECT, ...(transaction ? { transaction } : {}) },
  );
  if (!row) throw problems.notFound(`no webhook endpoint ${id}`);
  return endpointView(row);
}

/** Creates an endpoint; the secret in the answer is shown nowhere else. */
export async function createEndpoint(
  scope: TenantScope,
  input: CreateEndpoint,
  settings: WebhookSettings,
  transaction: Transaction,
): Promise<{ endpoint: EndpointView; secret: string }> {
  const checkedUrl = await checkEndpointUrl(input.url, settings);
  const secret = generateWebhookSecret();
  const [row] = await scope.db.sequelize.query<EndpointRow>(
    `INSERT INTO app.webhook_endpoints (url, description, event_types, secret)
     VALUES ($1, $2, $3::text[], $4) RETURNING ${endpointColumns}`,
    {
      bind: [checkedUrl, input.description ?? null, [...new Set(input.event_types)], secret],
      type: QueryTypes.SELECT,
      transaction,
    },
  );
  return { endpoint: endpointView(row!), secret };
}

export async function updateEndpoint(
  scope: TenantScope,
  id: string,
  input: UpdateEndpoint,
  settings: WebhookSettings,
  transaction: Transaction,
): Promise<{ before: EndpointView; after: EndpointView }> {
  const before = await getEndpoint(scope, id, transaction);
  const checkedUrl = input.url === undefined ? undefined : await checkEndpointUrl(input.url, settings);
  // Enabling again clears the failing streak, so the worker judges it afresh.
  const [row] = await scope.db.sequelize.query<EndpointRow>(
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
    {
      bind: [
        id,
        checkedUrl ?? null,
        input.event_types ? [...new Set(input.event_types)] : null,
        input.description !== undefined,
        input.description ?? null,
        input.enabled ?? null,
      ],
      type: QueryTypes.SELECT,
      transaction,
    },
  );
  return { before, after: endpointView(row!) };
}

export async function deleteEndpoint(
  scope: TenantScope,
  id: string,
  transaction: Transaction,
): Promise<EndpointView> {
  const before = await getEndpoint(scope, id, transaction);
  // Its deliveries and attempts go with it (ON DELETE CASCADE); queued work messages find nothing and are dropped.
  await scope.db.sequelize.query('DELETE FROM app.webhook_endpoints WHERE id = $1', {
    bind: [id],
    transaction,
  });
  return before;
}

/** A new secret; the current one becomes the previous one and keeps signing for `overlapSeconds`. */
export async function rotateSecret(
  scope: TenantScope,
  id: string,
  overlapSeconds: number,
  transaction: Transaction,
): Promise<{ before: EndpointView; after: EndpointView; secret: string }> {
  const before = await getEndpoint(scope, id, transaction);
  const secret = generateWebhookSecret();
  const [row] = await scope.db.sequelize.query<EndpointRow>(
    `UPDATE app.webhook_endpoints
        SET previous_secret = CASE WHEN $3::int > 0 THEN secret END,
            previous_secret_expires_at = CASE WHEN $3::int > 0 THEN now() + make_interval(secs => $3::int) END,
            secret = $2, updated_at = now()
      WHERE id = $1
  RETURNING ${endpointColumns}`,
    { bind: [id, secret, overlapSeconds], type: QueryTypes.SELECT, transaction },
  );
  return { before, after: endpointView(row!), secret };
}

async function requestDeliveries(
  sequelize: Sequelize,
  deliveryIds: string[],
  transaction: Transaction,
): Promise<string> {
  const payload: DeliveriesRequested = { delivery_ids: deliveryIds };
  const [row] = await sequelize.query<{ id: string }>(
    'INSERT INTO app.outbox (topic, payload) VALUES ($1, $2::jsonb) RETURNING id',
    { bind: [deliveriesRequestedTopic, JSON.stringify(payload)], type: QueryTypes.SELECT, transaction },
  );
  return row!.id;
}

function requireEnabled(endpoint: EndpointView): void {
  if (!endpoint.enabled)
    throw problems.conflict(`webhook endpoint ${endpoint.id} is disabled; enable it first`);
}

/** A `webhook.test` message for this endpoint alone, through the normal pipeline. */
export async function sendTestMessage(
  scope: TenantScope,
  id: string,
  transaction: Transaction,
): Promise<{ message_id: string; delivery_id: string }> {
  const endpoint = await getEndpoint(scope, id, transaction);
  requireEnabled(endpoint);
  const sequelize = scope.db.sequelize;
  const messageId = newMessageId();
  await sequelize.query(
    'INSERT INTO app.webhook_messages (id, event_type, payload) VALUES ($1, $2, $3::jsonb)',
    {
      bind: [
        messageId,
        testEventType,
        JSON.stringify({ endpoint_id: endpoint.id, requested_by: scope.auth.userId }),
      ],
      transaction,
    },
  );
  const [delivery] = await sequelize.query<{ id: string }>(
    'INSERT INTO app.webhook_deliveries (message_id, endpoint_id) VALUES ($1, $2) RETURNING id',
    { bind: [messageId, endpoint.id], type: QueryTypes.SELECT, transaction },
  );
  const outboxId = await requestDeliveries(sequelize, [delivery!.id], transaction);
  await sequelize.query('UPDATE app.webhook_messages SET outbox_id = $2 WHERE id = $1', {
    bind: [messageId, outboxId],
    transaction,
  });
  return { message_id: messageId, delivery_id: delivery!.id };
}

/**
 * Re-enqueues, as new deliveries of the same messages (same webhook-id, so
 * receivers can deduplicate), every message created since `since` that was
 * meant for this endpoint, oldest first, at most `limit` of them. When more
 * remain, `next_since` is where the next call carries on.
 */
export async function replayEndpoint(
  scope: TenantScope,
  id: string,
  since: Date,
  limit: number,
  transaction: Transaction,
): Promise<{ enqueued: number; next_since: string | null }> {
  const endpoint = await getEndpoint(scope, id, transaction);
  requireEnabled(endpoint);
  const sequelize = scope.db.sequelize;
  const messages = await sequelize.query<{ id: string; created_at: Date }>(
    `SELECT m.id, m.created_at FROM app.webhook_messages m
      WHERE m.created_at >= $2
        AND EXISTS (SELECT 1 FROM app.webhook_deliveries d WHERE d.message_id = m.id AND d.endpoint_id = $1)
      ORDER BY m.created_at, m.id LIMIT $3`,
    { bind: [endpoint.id, since, limit + 1], type: QueryTypes.SELECT, transaction },
  );
  const chosen = messages.slice(0, limit);
  if (chosen.length === 0) return { enqueued: 0, next_since: null };
  const inserted = await sequelize.query<{ id: string }>(
    `INSERT INTO app.webhook_deliveries (message_id, endpoint_id)
     SELECT m, $2 FROM unnest($1::text[]) AS m RETURNING id`,
    { bind: [chosen.map((m) => m.id), endpoint.id], type: QueryTypes.SELECT, transaction },
  );
  await requestDeliveries(
    sequelize,
    inserted.map((d) => d.id),
    transaction,
  );
  const next = messages[limit];
  return { enqueued: inserted.length, next_since: next ? next.created_at.toISOString() : null };
}

export interface DeliveryView {
  id: string;
  endpoint_id: string;
  status: (typeof deliveryStatuses)[number];
  attempts: number;
  deferrals: number;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  last_response_status: number | null;
  last_error: string | null;
  created_at: string;
}

export interface MessageView {
  id: string;
  event_type: string;
  payload: unknown;
  created_at: string;
  deliveries: DeliveryView[];
}

interface MessageRow {
  id: string;
  event_type: string;
  payload: unknown;
  created_at: Date;
  deliveries: (Omit<DeliveryView, never> & { id: string })[] | null;
}

// Deliveries come back as JSON built in SQL, so timestamps are already ISO strings.
const messageSelect = `
  SELECT m.id, m.event_type, m.payload, m.created_at,
         (SELECT json_agg(json_build_object(
                   'id', d.id, 'endpoint_id', d.endpoint_id, 'status', d.status, 'attempts', d.attempts,
                   'deferrals', d.deferrals, 'next_attempt_at', d.next_attempt_at,
                   'last_attempt_at', d.last_attempt_at, 'last_response_status', d.last_response_status,
                   'last_error', d.last_error, 'created_at', d.created_at) ORDER BY d.created_at, d.id)
            FROM app.webhook_deliveries d WHERE d.message_id = m.id) AS deliveries
    FROM app.webhook_messages m`;

function messageView(row: MessageRow): MessageView {
  return {
    id: row.id,
    event_type: row.event_type,
    payload: row.payload,
    created_at: row.created_at.toISOString(),
    deliveries: row.deliveries ?? [],
  };
}

export async function listMessages(
  scope: TenantScope,
  query: ListMessages,
): Promise<{ count: number; results: MessageView[] }> {
  const sequelize = scope.db.sequelize;
  const bind: unknown[] = [];
  const where: string[] = [];
  if (query.event_type) {
    bind.push(query.event_type);
    where.push(`m.event_type = $${bind.length}`);
  }
  if (query.status || query.endpoint_id) {
    const conditions: string[] = ['d.message_id = m.id'];
    if (query.status) {
      bind.push(query.status);
      conditions.push(`d.status = $${bind.length}`);
    }
    if (query.endpoint_id) {
      bind.push(query.endpoint_id);
      conditions.push(`d.endpoint_id = $${bind.length}`);
    }
    where.push(`EXISTS (SELECT 1 FROM app.webhook_deliveries d WHERE ${conditions.join(' AND ')})`);
  }
  const filter = where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '';
  const total = await count(sequelize, `SELECT count(*) AS count FROM app.webhook_messages m${filter}`, bind);
  const rows = await sequelize.query<MessageRow>(
    `${messageSelect}${filter} ORDER BY m.created_at DESC, m.id DESC LIMIT $${bind.length + 1} OFFSET $${bind.length + 2}`,
    {
      bind: [...bind, query.page_size, (query.page - 1) * query.page_size],
      type: QueryTypes.SELECT,
    },
  );
  return { count: total, results: rows.map(messageView) };
}

const messageIdPattern = /^msg_[A-Za-z0-9]{8,64}$/;

export async function getMessage(scope: TenantScope, id: string): Promise<MessageView> {
  if (!messageIdPattern.test(id)) throw problems.notFound(`no webhook message ${id}`);
  const [row] = await scope.db.sequelize.query<MessageRow>(`${messageSelect} WHERE m.id = $1`, {
    bind: [id],
    type: QueryTypes.SELECT,
  });
  if (!row) throw problems.notFound(`no webhook message ${id}`);
  return messageView(row);
}

export interface AttemptView {
  id: string;
  delivery_id: string;
  endpoint_id: string;
  attempt: number;
  started_at: string;
  duration_ms: number;
  response_status: number | null;
  error: string | null;
  outcome: 'succeeded' | 'failed';
}

export async function listAttempts(
  scope: TenantScope,
  messageId: string,
  query: Page,
): Promise<{ count: number; results: AttemptView[] }> {
  await getMessage(scope, messageId);
  const sequelize = scope.db.sequelize;
  const from = `FROM app.webhook_attempts a JOIN app.webhook_deliveries d ON d.id = a.delivery_id
               WHERE d.message_id = $1`;
  const total = await count(sequelize, `SELECT count(*) AS count ${from}`, [messageId]);
  const rows = await sequelize.query<Omit<AttemptView, 'started_at'> & { started_at: Date }>(
    `SELECT a.id::text AS id, a.delivery_id, d.endpoint_id, a.attempt, a.started_at, a.duration_ms,
            a.response_status, a.error, a.outcome
       ${from} ORDER BY a.started_at, a.id LIMIT $2 OFFSET $3`,
    { bind: [messageId, query.page_size, (query.page - 1) * query.page_size], type: QueryTypes.SELECT },
  );
  return { count: total, results: rows.map((r) => ({ ...r, started_at: r.started_at.toISOString() })) };
}
