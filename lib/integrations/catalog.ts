// The incoming-integration contract shared by the API (which accepts events)
// and the worker (which applies them): the providers, the event types each
// may send, the identifier every type must carry, and the outbox topic that
// hands an accepted event to the worker.
import { z } from 'zod';

export const providers = ['user-service', 'payment-service', 'communication-service'] as const;
export type Provider = (typeof providers)[number];

export function isProvider(value: string): value is Provider {
  return (providers as readonly string[]).includes(value);
}

/** Event types per provider, and the `data` field that names the record each one is about. */
export const eventTypes: Record<Provider, Readonly<Record<string, string>>> = {
  'user-service': {
    'user.created': 'user_id',
    'user.updated': 'user_id',
    'user.deleted': 'user_id',
    'user.activated': 'user_id',
    'user.deactivated': 'user_id',
  },
  'payment-service': {
    'subscription.created': 'subscription_id',
    'subscription.updated': 'subscription_id',
    'subscription.canceled': 'subscription_id',
    'payment.succeeded': 'payment_id',
    'payment.failed': 'payment_id',
    'invoice.created': 'invoice_id',
  },
  'communication-service': {
    'message.sent': 'message_id',
    'message.delivered': 'message_id',
    'message.bounced': 'message_id',
    'message.opened': 'message_id',
    'message.clicked': 'message_id',
    'message.failed': 'message_id',
  },
};

export const eventStatuses = ['pending', 'processing', 'completed', 'retrying', 'failed'] as const;
export type EventStatus = (typeof eventStatuses)[number];

const identifier = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9._:@-]+$/, 'letters, digits and . _ : @ - only');

/** One incoming event as providers send it (webhook_events.json). Unknown top-level fields are kept. */
export const integrationEventSchema = z.looseObject({
  event_type: z.string().min(1).max(100),
  event_id: identifier.optional(),
  timestamp: z.iso.datetime({ offset: true }).optional(),
  organization_id: z.string().min(1).max(200).optional(),
  data: z.record(z.string(), z.unknown()),
  metadata: z.record(z.string(), z.unknown()).optional(),
});
export type IntegrationEventBody = z.infer<typeof integrationEventSchema>;

/** The outbox topic of an accepted event; the webhook relay leaves `integration.%` alone. */
export function integrationTopic(provider: Provider, eventType: string): string {
  return `integration.${provider}.${eventType}`;
}

/** What the outbox row and the work message carry: the event's row id. */
export interface IntegrationWork {
  event: string;
}
