// Outbox topics with a meaning of their own for the webhook relay, shared by
// the API that writes them and the worker that reads them.

/**
 * Not an event: the payload `{delivery_ids: [...]}` names deliveries the API
 * has already created (a test send, a replay) that the relay only publishes.
 * Going through the outbox keeps them in the API's transaction and lets them
 * wait out a broker outage like every other row.
 */
export const deliveriesRequestedTopic = 'webhook.deliveries.requested';

/** What a `webhook.deliveries.requested` row carries. */
export interface DeliveriesRequested {
  delivery_ids: string[];
}
