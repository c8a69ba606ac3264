// Domain events for outgoing webhooks. A change writes its event into the
// tenant's transactional outbox in the change's own transaction, so an event
// exists exactly when its change committed; the worker's relay fans it out to
// the subscribed endpoints. Payloads are views, built through the schemas
// below (the OpenAPI document's `webhooks` section): never a secret or a hash.
import type { Transaction } from 'sequelize';
import { z } from 'zod';
import { named, timestamp } from '../http/responses.js';
import type { TenantDb } from '../tenancy/tenant-databases.js';
import { userSchema } from '../users/user-schema.js';
import { appendToOutbox } from './outbox-store.js';

export const userEventTypes = [
  'user.created',
  'user.updated',
  'user.deleted',
  'user.activated',
  'user.deactivated',
] as const;

export type DomainEventType = (typeof userEventTypes)[number];

const userEventData = named(
  'UserEventData',
  z.object({ user: userSchema }),
  'The user as it is after the change (before it, for user.deleted).',
);

const userUpdatedData = named(
  'UserUpdatedData',
  z.object({
    user: userSchema,
    changed_fields: z
      .array(z.string())
      .min(1)
      .describe('The fields that changed, but is_active and updated_at.'),
  }),
);

/** Sent by the worker when it disables an endpoint after failing for too long. */
export const endpointDisabledData = named(
  'WebhookEndpointDisabledData',
  z.object({ endpoint_id: z.uuid(), reason: z.string(), disabled_at: timestamp }),
);

export const testEventData = named(
  'WebhookTestData',
  z.object({
    endpoint_id: z.uuid(),
    requested_by: z.string().describe('The user or API client that asked for the test.'),
  }),
);

/** Every event type the platform emits, with the schema of its `data`. */
export const eventDataSchemas = {
  'user.created': userEventData,
  'user.updated': userUpdatedData,
  'user.deleted': userEventData,
  'user.activated': userEventData,
  'user.deactivated': userEventData,
  'webhook.endpoint.disabled': endpointDisabledData,
  'webhook.test': testEventData,
} as const;

export type EventType = keyof typeof eventDataSchemas;

/** Every event type the platform emits, for endpoint filters and documentation. */
export const domainEventTypes = Object.keys(eventDataSchemas) as readonly EventType[];

export const eventSummaries: Record<EventType, string> = {
  'user.created': 'A user was created (by an admin, bulk import, self-registration, SSO or a provider).',
  'user.updated': "A user's email, names, role, department or external id changed.",
  'user.deleted': 'A user was deleted.',
  'user.activated': 'A deactivated user was activated again.',
  'user.deactivated': 'A user was deactivated; their sessions ended.',
  'webhook.endpoint.disabled': 'An endpoint was disabled after its deliveries kept failing.',
  'webhook.test': 'A test message asked for with POST /api/webhooks/endpoints/{id}/test.',
};

/** The body the worker posts: `{type, timestamp, data}`, one schema per event type. */
export const webhookBodySchemas = Object.fromEntries(
  Object.entries(eventDataSchemas).map(([type, data]) => [
    type,
    named(
      `${type
        .split('.')
        .map((word) => word[0]!.toUpperCase() + word.slice(1))
        .join('')}Event`,
      z.object({
        type: z.literal(type),
        timestamp: timestamp.describe('When the event happened (the message was created).'),
        data,
      }),
      eventSummaries[type as EventType],
    ),
  ]),
) as unknown as Record<EventType, z.ZodType>;

/** The event's data, built through its schema: a field the schema lacks is not sent. */
export function eventData<T extends EventType>(
  type: T,
  data: z.input<(typeof eventDataSchemas)[T]>,
): z.output<(typeof eventDataSchemas)[T]> {
  const schema: z.ZodType = eventDataSchemas[type];
  const result = schema.safeParse(data);
  if (!result.success) throw new Error(`${type} payload does not match its schema: ${result.error.message}`);
  return result.data as z.output<(typeof eventDataSchemas)[T]>;
}

export async function recordDomainEvent<T extends DomainEventType>(
  db: TenantDb,
  type: T,
  data: z.input<(typeof eventDataSchemas)[T]>,
  transaction: Transaction,
): Promise<void> {
  await appendToOutbox(db, type, eventData(type, data), transaction);
}
