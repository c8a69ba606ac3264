// Moves `integration.%` outbox rows (written by the API with each accepted
// event) to the tenant's integration work queue, with the same claim,
// confirm-then-commit loop as the webhook relay.
import type { Logger } from '../../../lib/logger.js';
import { BatchRelay } from '../batch-relay.js';
import { assertRetryTopology, deliverRoutingKey, type RetryTopology } from '../topology.js';
import { integrationPublishOptions } from './event-processor.js';
import type { IntegrationStore, IntegrationWorkItem } from './integration-store.js';

export function integrationRelay(options: {
  amqpUrl: string;
  topology: RetryTopology;
  store: IntegrationStore;
  batchSize: number;
  pollIntervalMs: number;
  logger: Logger;
}): BatchRelay<IntegrationWorkItem> {
  return new BatchRelay<IntegrationWorkItem>({
    name: 'integration-relay',
    amqpUrl: options.amqpUrl,
    setup: (channel) => assertRetryTopology(channel, options.topology),
    source: options.store,
    message: (item) => ({
      exchange: options.topology.workExchange,
      routingKey: deliverRoutingKey,
      content: Buffer.from(JSON.stringify({ event: item.eventId })),
      options: integrationPublishOptions(item.eventId),
      traceContext: item.traceContext,
    }),
    batchSize: options.batchSize,
    pollIntervalMs: options.pollIntervalMs,
    logger: options.logger,
  });
}
