// Consumes the tenant's integration work queue and applies each event to the
// tenant database. For every message: claim the event (pending → processing,
// one more attempt), run its sync handler and mark it completed in one
// transaction; on failure record `retrying` and republish to the delay tier
// for the next attempt, or record `failed` and park it; the queue consumer
// (queue-consumer.ts) acks only then. A message for an event that is already
// completed or failed is acked as is.
import type { Options } from 'amqplib';
import type { Logger } from '../../../lib/logger.js';
import { errorText } from '../broker-session.js';
import { QueueConsumer, type RetryOutlet, type WorkMessage } from '../queue-consumer.js';
import type { RetrySchedule } from '../schedule.js';
import { attemptHeader, type RetryTopology } from '../topology.js';
import type { ClaimedEvent, IntegrationStore, ProviderSettings } from './integration-store.js';
import { CircuitOpenError, PermanentError, TransientError, type ProviderApi } from './provider-api.js';
import { syncHandlers } from './sync-handlers.js';
import { inSpan } from '../../../lib/telemetry/index.js';

export interface EventProcessorOptions {
  tenant: string;
  amqpUrl: string;
  topology: RetryTopology;
  schedule: RetrySchedule;
  store: IntegrationStore;
  api: ProviderApi;
  prefetch: number;
  logger: Logger;
  /** Called after each outcome is stored; for metrics and tests. */
  onOutcome?: (outcome: {
    event: string;
    status: 'completed' | 'retrying' | 'failed';
    attempt: number;
  }) => void;
}

export class EventProcessor {
  private readonly consumer: QueueConsumer;

  constructor(private readonly options: EventProcessorOptions) {
    this.consumer = new QueueConsumer({
      name: 'integration-processor',
      amqpUrl: options.amqpUrl,
      topology: options.topology,
      prefetch: options.prefetch,
      logger: options.logger,
      handle: (message, retry) => this.process(message, retry),
    });
  }

  start(): void {
    this.consumer.start();
  }

  get ready(): boolean {
    return this.consumer.ready;
  }

  /** Stops consuming, waits for in-flight events up to the deadline, then disconnects. */
  async drain(deadlineMs: number): Promise<void> {
    await this.consumer.drain(deadlineMs);
    this.options.api.close();
  }

  private async process(message: WorkMessage, retry: RetryOutlet): Promise<void> {
    const { store, logger } = this.options;
    const eventRowId = parseBody(message.content);
    if (!eventRowId) {
      logger.error('dropping an integration work message without an event id');
      return;
    }
    const { attempt } = message;
    const event = await store.claim(eventRowId);
    if (!event) return;
    const settings = await store.providerSettings(event.provider);
    const handler = syncHandlers[event.eventType];
    try {
      if (!handler) throw new PermanentError(`no handler for ${event.eventType}`);
      // The sync handler's own span, so its queries and provider API calls show under it.
      await inSpan(
        `sync ${event.eventType}`,
        {
          'tenantry.integration.provider': event.provider,
          'tenantry.integration.event_type': event.eventType,
        },
        () =>
          store.complete(event.id, (client) =>
            handler({
              client,
              eventType: event.eventType,
              eventId: event.eventId,
              event: event.payload,
              fetch: (path) => {
                if (!settings) throw new PermanentError(`${event.provider} is not configured`);
                return this.options.api.get(`${this.options.tenant}/${event.provider}`, settings, path);
              },
            }),
          ),
      );
      this.options.onOutcome?.({ event: event.id, status: 'completed', attempt });
    } catch (error) {
      await this.fail(retry, event, settings, attempt, error);
    }
  }

  private async fail(
    retry: RetryOutlet,
    event: ClaimedEvent,
    settings: ProviderSettings | undefined,
    attempt: number,
    error: unknown,
  ): Promise<void> {
    const { schedule, store, logger } = this.options;
    const reason = errorText(error);
    if (error instanceof CircuitOpenError) {
      // Not the event's fault: wait out the circuit without spending an attempt.
      const tier = schedule.tierAtLeast(error.retryInMs);
      await store.recordFailure(event.id, {
        status: 'retrying',
        error: reason,
        nextAttemptAt: new Date(Date.now() + tier),
        uncount: true,
      });
      await retry.delay(tier, { [attemptHeader]: attempt });
      this.options.onOutcome?.({ event: event.id, status: 'retrying', attempt });
      return;
    }
    const maxRetries = settings?.retryPolicy.max_retries;
    const maxAttempts = Math.min(schedule.maxAttempts, maxRetries === undefined ? Infinity : maxRetries + 1);
    const permanent = error instanceof PermanentError || isDataError(error);
    if (permanent || attempt >= maxAttempts) {
      await store.recordFailure(event.id, { status: 'failed', error: reason });
      await retry.park(reason);
      logger.warn(
        { event: event.id, type: event.eventType, attempt, err: reason },
        'integration event parked',
      );
      this.options.onOutcome?.({ event: event.id, status: 'failed', attempt });
      return;
    }
    const retryAfter = error instanceof TransientError ? error.retryAfterMs : undefined;
    const tier = schedule.tierBefore(attempt + 1, retryAfter);
    await store.recordFailure(event.id, {
      status: 'retrying',
      error: reason,
      nextAttemptAt: new Date(Date.now() + tier),
    });
    await retry.delay(tier, { [attemptHeader]: attempt + 1 });
    this.options.onOutcome?.({ event: event.id, status: 'retrying', attempt });
  }
}

export function integrationPublishOptions(eventRowId: string): Options.Publish {
  return {
    persistent: true,
    contentType: 'application/json',
    messageId: eventRowId,
    headers: { [attemptHeader]: 1 },
  };
}

/** PostgreSQL rejected the data itself (class 22: bad value; 23: constraint): retrying cannot help. */
function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}

function parseBody(content: Buffer): string | undefined {
  try {
    const value = JSON.parse(content.toString('utf8')) as { event?: unknown };
    return typeof value.event === 'string' && /^[0-9a-f-]{36}$/.test(value.event) ? value.event : undefined;
  } catch {
    return undefined;
  }
}
