// Domain events for outgoing webhooks. A change writes its event into the
// tenant's transactional outbox in the change's own transaction, so an event
// exists exactly when its change committed; the worker's relay fans it out to
// the subscribed endpoints. Payloads are views: never a secret or a hash.
import type { Transaction } from 'sequelize';
import type { TenantDb } from '../tenancy/tenant-databases.js';
import { appendToOutbox } from './outbox-store.js';

export const userEventTypes = [
  'user.created',
  'user.updated',
  'user.deleted',
  'user.activated',
  'user.deactivated',
] as const;

export type DomainEventType = (typeof userEventTypes)[number];

/** Every event type the platform emits, for endpoint filters and documentation. */
export const domainEventTypes: readonly string[] = [
  ...userEventTypes,
  'webhook.endpoint.disabled',
  'webhook.test',
];

export async function recordDomainEvent(
  db: TenantDb,
  type: DomainEventType,
  data: object,
  transaction: Transaction,
): Promise<void> {
  await appendToOutbox(db, type, data, transaction);
}
