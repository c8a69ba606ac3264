// Moves the tenant's outbox to RabbitMQ. Each batch claims unsent rows with
// FOR UPDATE SKIP LOCKED (so any number of relays can run), fans each row out
// to a message and one delivery per subscribed endpoint, publishes the
// deliveries on a confirm channel, and marks the rows sent in the same
// transaction only after the broker has confirmed every publish. While the
// broker is unreachable the transaction rolls back and the rows wait.
// The loop itself is batch-relay.ts, shared with the integration relay.
import type { Logger } from '../../lib/logger.js';
import { BatchRelay } from './batch-relay.js';
import { deliveryPublishOptions, type DeliveryMessage } from './deliverer.js';
import { assertRetryTopology, deliverRoutingKey, type RetryTopology } from './topology.js';
import type { FannedOutDelivery, WebhookStore } from './webhook-store.js';

export interface OutboxRelayOptions {
  amqpUrl: string;
  topology: RetryTopology;
  store: WebhookStore;
  batchSize: number;
  pollIntervalMs: number;
  logger: Logger;
  /** How long a batch waits for the broker's confirms before it gives up and rolls back. */
  confirmTimeoutMs?: number;
}

export class OutboxRelay extends BatchRelay<FannedOutDelivery> {
  constructor(options: OutboxRelayOptions) {
    super({
      name: 'outbox-relay',
      amqpUrl: options.amqpUrl,
      setup: (channel) => assertRetryTopology(channel, options.topology),
      source: options.store,
      message: (d) => {
        const body: DeliveryMessage = { delivery_id: d.deliveryId, outbox_id: d.outboxId };
        return {
          exchange: options.topology.workExchange,
          routingKey: deliverRoutingKey,
          content: Buffer.from(JSON.stringify(body)),
          options: deliveryPublishOptions(d.messageId, d.endpointId),
          traceContext: d.traceContext,
        };
      },
      batchSize: options.batchSize,
      pollIntervalMs: options.pollIntervalMs,
      logger: options.logger,
      ...(options.confirmTimeoutMs === undefined ? {} : { confirmTimeoutMs: options.confirmTimeoutMs }),
    });
  }
}
