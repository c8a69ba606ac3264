// The tenant's outgoing webhooks as the API manages them: endpoints (URL,
// event-type filter, signing secret with rotation), the messages and attempts
// the worker recorded, test sends and replays. Every function takes the
// caller's tenant scope first; its database is the only one it reaches.
// Requests and views are in schemas.ts, the SQL in endpoint-store.ts.
//
// The worker (worker/) does the sending. The API only writes rows: a test send
// or a replay creates deliveries and a `webhook.deliveries.requested` outbox
// row in the caller's transaction, so they survive a broker outage like every
// domain event and the relay publishes them once the broker confirms.
import type { Transaction } from 'sequelize';
import { outboundRefusal, type ResolveHost } from '../../../lib/outbound-address.js';
import { deliveriesRequestedTopic, type DeliveriesRequested } from '../../../lib/webhooks/outbox-topics.js';
import { generateWebhookSecret, newMessageId } from '../../../lib/webhooks/standard-webhooks.js';
import type { TenantScope } from '../auth/context.js';
import { problems } from '../http/problem.js';
import { eventData } from './domain-events.js';
import { EndpointStore } from './endpoint-store.js';
import { appendToOutbox } from './outbox-store.js';
import {
  attemptView,
  endpointView,
  isEndpointId,
  isMessageId,
  messageView,
  type AttemptView,
  type CreateEndpoint,
  type EndpointView,
  type ListMessages,
  type MessageView,
  type Page,
  type UpdateEndpoint,
} from './schemas.js';

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

const sliceOf = (query: Page) => ({ limit: query.page_size, offset: (query.page - 1) * query.page_size });

export async function listEndpoints(
  scope: TenantScope,
  query: Page,
): Promise<{ count: number; results: EndpointView[] }> {
  const store = new EndpointStore(scope.db);
  const count = await store.countEndpoints();
  const rows = await store.listEndpoints(sliceOf(query));
  return { count, results: rows.map(endpointView) };
}

/** The endpoint; inside a transaction, locked until it ends. */
export async function getEndpoint(
  scope: TenantScope,
  id: string,
  transaction?: Transaction,
): Promise<EndpointView> {
  const row = isEndpointId(id) ? await new EndpointStore(scope.db).findEndpoint(id, transaction) : undefined;
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
  const url = await checkEndpointUrl(input.url, settings);
  const secret = generateWebhookSecret();
  const row = await new EndpointStore(scope.db).insertEndpoint(
    { url, description: input.description ?? null, eventTypes: [...new Set(input.event_types)], secret },
    transaction,
  );
  return { endpoint: endpointView(row), secret };
}

export async function updateEndpoint(
  scope: TenantScope,
  id: string,
  input: UpdateEndpoint,
  settings: WebhookSettings,
  transaction: Transaction,
): Promise<{ before: EndpointView; after: EndpointView }> {
  const before = await getEndpoint(scope, id, transaction);
  const url = input.url === undefined ? undefined : await checkEndpointUrl(input.url, settings);
  const row = await new EndpointStore(scope.db).updateEndpoint(
    id,
    {
      ...(url !== undefined ? { url } : {}),
      ...(input.event_types ? { eventTypes: [...new Set(input.event_types)] } : {}),
      ...(input.description !== undefined ? { description: input.description } : {}),
      ...(input.enabled !== undefined ? { enabled: input.enabled } : {}),
    },
    transaction,
  );
  return { before, after: endpointView(row) };
}

export async function deleteEndpoint(
  scope: TenantScope,
  id: string,
  transaction: Transaction,
): Promise<EndpointView> {
  const before = await getEndpoint(scope, id, transaction);
  // Queued work messages for its deliveries find nothing and are dropped.
  await new EndpointStore(scope.db).deleteEndpoint(id, transaction);
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
  const row = await new EndpointStore(scope.db).rotateSecret(id, secret, overlapSeconds, transaction);
  return { before, after: endpointView(row), secret };
}

async function requestDeliveries(
  scope: TenantScope,
  deliveryIds: string[],
  transaction: Transaction,
): Promise<string> {
  const payload: DeliveriesRequested = { delivery_ids: deliveryIds };
  return appendToOutbox(scope.db, deliveriesRequestedTopic, payload, transaction);
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
  const store = new EndpointStore(scope.db);
  const messageId = newMessageId();
  await store.insertMessage(
    {
      id: messageId,
      eventType: testEventType,
      payload: eventData('webhook.test', { endpoint_id: endpoint.id, requested_by: scope.auth.userId }),
    },
    transaction,
  );
  const [deliveryId] = await store.insertDeliveries([messageId], endpoint.id, transaction);
  const outboxId = await requestDeliveries(scope, [deliveryId!], transaction);
  await store.setMessageOutbox(messageId, outboxId, transaction);
  return { message_id: messageId, delivery_id: deliveryId! };
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
  const store = new EndpointStore(scope.db);
  // One more than the limit tells whether the next call has anything to do.
  const messages = await store.messagesSince(endpoint.id, since, limit + 1, transaction);
  const chosen = messages.slice(0, limit);
  if (chosen.length === 0) return { enqueued: 0, next_since: null };
  const inserted = await store.insertDeliveries(
    chosen.map((m) => m.id),
    endpoint.id,
    transaction,
  );
  await requestDeliveries(scope, inserted, transaction);
  const next = messages[limit];
  return { enqueued: inserted.length, next_since: next ? next.created_at.toISOString() : null };
}

export async function listMessages(
  scope: TenantScope,
  query: ListMessages,
): Promise<{ count: number; results: MessageView[] }> {
  const { count, rows } = await new EndpointStore(scope.db).listMessages(
    {
      ...(query.event_type ? { eventType: query.event_type } : {}),
      ...(query.status ? { status: query.status } : {}),
      ...(query.endpoint_id ? { endpointId: query.endpoint_id } : {}),
    },
    sliceOf(query),
  );
  return { count, results: rows.map(messageView) };
}

export async function getMessage(scope: TenantScope, id: string): Promise<MessageView> {
  const row = isMessageId(id) ? await new EndpointStore(scope.db).findMessage(id) : undefined;
  if (!row) throw problems.notFound(`no webhook message ${id}`);
  return messageView(row);
}

export async function listAttempts(
  scope: TenantScope,
  messageId: string,
  query: Page,
): Promise<{ count: number; results: AttemptView[] }> {
  await getMessage(scope, messageId);
  const { count, rows } = await new EndpointStore(scope.db).listAttempts(messageId, sliceOf(query));
  return { count, results: rows.map(attemptView) };
}
