// Wires the incoming-integration side of a tenant worker: the relay from the
// outbox to `<prefix>integrations`, the event processor, and the provider API
// client whose circuit changes are written for /api/integrations/health.
import type pg from 'pg';
import type { Logger } from '../../../lib/logger.js';
import type { BatchRelay } from '../batch-relay.js';
import { CircuitBreaker } from '../circuit-breaker.js';
import { RetrySchedule } from '../schedule.js';
import { retryTopology, type RetryTopology } from '../topology.js';
import { EventProcessor, type EventProcessorOptions } from './event-processor.js';
import { integrationRelay } from './integration-relay.js';
import { IntegrationStore, type IntegrationWorkItem } from './integration-store.js';
import { ProviderApi } from './provider-api.js';

export interface IntegrationSettings {
  /** Wait before each processing attempt; the first is 0. */
  schedule: number[];
  prefetch: number;
  api: {
    timeoutMs: number;
    retries: number;
    baseDelayMs: number;
    breakerThreshold: number;
    breakerCooldownMs: number;
    allowLoopback: boolean;
  };
  outbox: { batchSize: number; pollIntervalMs: number };
}

export interface IntegrationEngine {
  topology: RetryTopology;
  relay: BatchRelay<IntegrationWorkItem>;
  processor: EventProcessor;
  store: IntegrationStore;
  gate: CircuitBreaker;
  readonly ready: boolean;
  start(): void;
  stop(deadlineMs: number): Promise<void>;
}

export function createIntegrationEngine(options: {
  tenant: string;
  pool: pg.Pool;
  amqpUrl: string;
  queuePrefix: string;
  settings: IntegrationSettings;
  logger: Logger;
  onOutcome?: EventProcessorOptions['onOutcome'];
}): IntegrationEngine {
  const { settings, logger } = options;
  const schedule = new RetrySchedule(settings.schedule);
  const topology = retryTopology(options.queuePrefix, 'integrations', schedule.tiers);
  const store = new IntegrationStore(options.pool);
  const gate = new CircuitBreaker({
    concurrency: 10,
    maxHeld: 1000,
    failureThreshold: settings.api.breakerThreshold,
    cooldownMs: settings.api.breakerCooldownMs,
  });
  const api = new ProviderApi({
    gate,
    timeoutMs: settings.api.timeoutMs,
    retries: settings.api.retries,
    baseDelayMs: settings.api.baseDelayMs,
    maxInlineWaitMs: 5_000,
    allowLoopback: settings.api.allowLoopback,
    onCircuit: (_key, provider, status) => {
      store
        .writeCircuit(provider, status)
        .catch((error: unknown) =>
          logger.warn({ provider, err: String(error) }, 'cannot record circuit state'),
        );
    },
  });
  const relay = integrationRelay({
    amqpUrl: options.amqpUrl,
    topology,
    store,
    batchSize: settings.outbox.batchSize,
    pollIntervalMs: settings.outbox.pollIntervalMs,
    logger,
  });
  const processor = new EventProcessor({
    tenant: options.tenant,
    amqpUrl: options.amqpUrl,
    topology,
    schedule,
    store,
    api,
    prefetch: settings.prefetch,
    logger,
    ...(options.onOutcome ? { onOutcome: options.onOutcome } : {}),
  });
  return {
    topology,
    relay,
    processor,
    store,
    gate,
    get ready() {
      return relay.ready && processor.ready;
    },
    start() {
      processor.start();
      relay.start();
    },
    async stop(deadlineMs) {
      await relay.stop();
      await processor.drain(deadlineMs);
    },
  };
}
