// What /api/webhooks accepts and answers: the zod schemas its requests are
// parsed with, the views it shows, and the mappers from stored rows to views.
// A view never carries a secret.
import { z } from 'zod';
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

export function endpointView(row: EndpointRow): EndpointView {
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

export function messageView(row: MessageRow): MessageView {
  return {
    id: row.id,
    event_type: row.event_type,
    payload: row.payload,
    created_at: row.created_at.toISOString(),
    deliveries: row.deliveries ?? [],
  };
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

export function attemptView(row: AttemptRow): AttemptView {
  return { ...row, started_at: row.started_at.toISOString() };
}
