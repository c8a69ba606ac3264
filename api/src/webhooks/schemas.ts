// What /api/webhooks accepts and answers: the zod schemas its requests are
// parsed with, the views it shows, and the mappers from stored rows to views.
// A view never carries a secret.
import { z } from 'zod';
import { encode, named, pageSchema, timestamp } from '../http/responses.js';
import type { AttemptRow, EndpointRow, MessageRow } from './endpoint-store.js';

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
export type Page = { page: number; page_size: number };

/** Whether a path segment can name an endpoint at all (anything else is a 404, not a query). */
export function isEndpointId(id: string): boolean {
  return z.uuid().safeParse(id).success;
}

const messageIdPattern = /^msg_[A-Za-z0-9]{8,64}$/;

/** Whether a path segment can name a message at all. */
export function isMessageId(id: string): boolean {
  return messageIdPattern.test(id);
}

/** What the API shows of an endpoint: never a secret. */
export const endpointSchema = named(
  'WebhookEndpoint',
  z.object({
    id: z.uuid(),
    url: z.string(),
    description: z.string().nullable(),
    event_types: z
      .array(z.string())
      .describe('Patterns such as `user.created` or `user.*`; empty means every event.'),
    enabled: z.boolean(),
    disabled_reason: z.string().nullable(),
    disabled_at: timestamp.nullable(),
    previous_secret_expires_at: timestamp
      .nullable()
      .describe('Until when the previous secret still signs, during a rotation.'),
    created_at: timestamp,
    updated_at: timestamp,
  }),
  'An outgoing webhook endpoint. Never its signing secret.',
);

export const endpointPageSchema = pageSchema('WebhookEndpointPage', endpointSchema);

export const endpointWithSecretSchema = named(
  'WebhookEndpointWithSecret',
  endpointSchema.extend({
    secret: z
      .string()
      .regex(/^whsec_/)
      .describe('The signing secret (Standard Webhooks); shown in this answer only.'),
  }),
  'An endpoint with its new signing secret, which no other answer shows.',
);

export type EndpointView = z.output<typeof endpointSchema>;

export function endpointView(row: EndpointRow): EndpointView {
  return encode(endpointSchema, {
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
  });
}

export const deliverySchema = named(
  'WebhookDelivery',
  z.object({
    id: z.string(),
    endpoint_id: z.uuid(),
    status: z.enum(deliveryStatuses),
    attempts: z.int().min(0),
    deferrals: z.int().min(0),
    next_attempt_at: timestamp.nullable(),
    last_attempt_at: timestamp.nullable(),
    last_response_status: z.int().nullable(),
    last_error: z.string().nullable(),
    created_at: timestamp,
  }),
  'A message on its way to one endpoint.',
);

export type DeliveryView = z.output<typeof deliverySchema>;

export const messageSchema = named(
  'WebhookMessage',
  z.object({
    id: z.string().describe('The webhook-id header of every delivery of this message.'),
    event_type: z.string(),
    payload: z.unknown().describe("The event's data: the `data` of the delivered body (see webhooks)."),
    created_at: timestamp,
    deliveries: z.array(deliverySchema),
  }),
  'An outgoing message and its deliveries.',
);

export const messagePageSchema = pageSchema('WebhookMessagePage', messageSchema);

export type MessageView = z.output<typeof messageSchema>;

export function messageView(row: MessageRow): MessageView {
  return encode(messageSchema, {
    id: row.id,
    event_type: row.event_type,
    payload: row.payload,
    created_at: row.created_at.toISOString(),
    deliveries: row.deliveries ?? [],
  });
}

export const attemptSchema = named(
  'WebhookAttempt',
  z.object({
    id: z.string(),
    delivery_id: z.string(),
    endpoint_id: z.uuid(),
    attempt: z.int().min(1),
    started_at: timestamp,
    duration_ms: z.number().min(0),
    response_status: z.int().nullable(),
    error: z.string().nullable(),
    outcome: z.enum(['succeeded', 'failed']),
  }),
  'One delivery attempt.',
);

export const attemptPageSchema = pageSchema('WebhookAttemptPage', attemptSchema);

export type AttemptView = z.output<typeof attemptSchema>;

export function attemptView(row: AttemptRow): AttemptView {
  return encode(attemptSchema, { ...row, started_at: row.started_at.toISOString() });
}

export const testMessageSchema = named(
  'WebhookTestQueued',
  z.object({ message_id: z.string(), delivery_id: z.string() }),
  'The queued webhook.test message and its delivery.',
);

export const replayResultSchema = named(
  'WebhookReplayQueued',
  z.object({
    since: timestamp,
    limit: z.int().min(1),
    enqueued: z.int().min(0),
    next_since: timestamp.nullable().describe('Where the next call carries on when more messages remain.'),
  }),
);
