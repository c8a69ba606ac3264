// The broker side of one tenant, as a variant of the platform holds it, for
// bench/messaging.bench.ts. Each variant declares with the worker's own
// modules and holds the same connections, channels and consumers as one
// worker process of that variant; a later topology is added as another
// variant and measured against `current` in the same run.
import type { ConfirmChannel } from 'amqplib';
import type { Logger } from '../../lib/logger.js';
import { BatchRelay } from '../../worker/src/batch-relay.js';
import { publishConfirmed } from '../../worker/src/broker-session.js';
import { loadWorkerConfig } from '../../worker/src/config.js';
import { QueueConsumer } from '../../worker/src/queue-consumer.js';
import { RetrySchedule } from '../../worker/src/schedule.js';
import {
  assertRetryTopology,
  deliverRoutingKey,
  retryTopology,
  webhookTopology,
  type RetryTopology,
} from '../../worker/src/topology.js';

export interface TenantSpec {
  index: number;
  name: string;
  queuePrefix: string;
  /** The tenant's own AMQP URL: its user, its password, the platform vhost. */
  amqpUrl: string;
  logger: Logger;
  /** Called for every message the tenant's webhook consumer receives (it is acked afterwards). */
  onMessage: (content: Buffer) => void;
}

export interface HeldTenant {
  index: number;
  amqpUrl: string;
  /** Every connection is up, the topology declared and every consumer consuming. */
  readonly ready: boolean;
  /** Publishes one webhook delivery the way the outbox relay does (persistent, confirmed). */
  publish(channel: ConfirmChannel, content: Buffer): Promise<void>;
  stop(): Promise<void>;
}

export interface MessagingVariant {
  name: string;
  consumersPerTenant: number;
  start(tenant: TenantSpec): HeldTenant;
}

/**
 * Today's worker (worker/src/main.ts): four broker sessions, each its own
 * connection with one confirm channel that declares the tenant's retry
 * topology on connect: the webhook deliverer and the integration event
 * processor (QueueConsumer, consuming the work queues), and the webhook and
 * integration outbox relays (BatchRelay). Webhooks have a work, a parked and
 * one delay queue per tier of the standard schedule (6); integrations, the
 * same with the 5 tiers of their default schedule: 15 quorum queues.
 */
export const currentVariant: MessagingVariant = {
  name: 'current',
  consumersPerTenant: 2,
  start(tenant) {
    // The worker's own defaults (schedules, prefetch), as its Deployment leaves them.
    const config = loadWorkerConfig({
      TENANTRY_TENANT: tenant.name,
      DATABASE_URL: 'postgres://unused@127.0.0.1/unused',
      AMQP_URL: tenant.amqpUrl,
      AMQP_QUEUE_PREFIX: tenant.queuePrefix,
    });
    const webhooks = webhookTopology(config.queuePrefix, new RetrySchedule(config.delivery.schedule).tiers);
    const integrations = retryTopology(
      config.queuePrefix,
      'integrations',
      new RetrySchedule(config.integrations.schedule).tiers,
    );
    const { logger } = tenant;
    const consumer = (name: string, topology: RetryTopology, prefetch: number, deliver: boolean) =>
      new QueueConsumer({
        name,
        amqpUrl: config.amqpUrl,
        topology,
        prefetch,
        logger,
        handle: (message) => {
          if (deliver) tenant.onMessage(message.content);
          return Promise.resolve();
        },
      });
    // The relays' broker side; their outbox is empty here, and polling it never reaches the broker.
    const relay = (name: string, topology: RetryTopology) =>
      new BatchRelay<never>({
        name,
        amqpUrl: config.amqpUrl,
        setup: (channel) => assertRetryTopology(channel, topology),
        source: { relayBatch: () => Promise.resolve(0) },
        message: () => {
          throw new Error('nothing to relay');
        },
        batchSize: config.outbox.batchSize,
        pollIntervalMs: 60_000,
        logger,
      });
    const deliverer = consumer('deliverer', webhooks, config.delivery.prefetch, true);
    const processor = consumer('event-processor', integrations, config.integrations.prefetch, false);
    const outboxRelay = relay('outbox-relay', webhooks);
    const integrationRelay = relay('integration-relay', integrations);
    deliverer.start();
    outboxRelay.start();
    processor.start();
    integrationRelay.start();
    return {
      index: tenant.index,
      amqpUrl: tenant.amqpUrl,
      get ready() {
        return deliverer.ready && processor.ready && outboxRelay.ready && integrationRelay.ready;
      },
      publish: (channel, content) =>
        publishConfirmed(channel, webhooks.workExchange, deliverRoutingKey, content, {
          persistent: true,
          contentType: 'application/json',
        }),
      async stop() {
        await Promise.allSettled([
          outboxRelay.stop(),
          integrationRelay.stop(),
          deliverer.drain(1_000),
          processor.drain(1_000),
        ]);
      },
    };
  },
};
