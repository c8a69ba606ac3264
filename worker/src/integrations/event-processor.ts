// Consumes the tenant's integration work queue and applies each event to the
// tenant database. For every message: claim the event (pending → processing,
// one more attempt), run its sync handler and mark it completed in one
// transaction; on failure record `retrying` and republish to the delay tier
// for the next attempt, or record `failed` and park it; only then ack. A
// message for an event that is already completed or failed is acked as is.
import type { ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import type { Logger } from '../../../lib/logger.js';
import { BrokerSession, errorText, publishConfirmed } from '../broker-session.js';
import type { RetrySchedule } from '../schedule.js';
import {
  assertRetryTopology,
  attemptHeader,
  delayRoutingKey,
  parkedRoutingKey,
  type RetryTopology,
} from '../topology.js';
import type { ClaimedEvent, IntegrationStore, ProviderSettings } from './integration-store.js';
import { CircuitOpenError, PermanentError, TransientError, type ProviderApi } from './provider-api.js';
import { syncHandlers } from './sync-handlers.js';

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
  readonly session: BrokerSession;
  private readonly inFlight = new Set<Promise<void>>();
  private consumerTag: string | undefined;
  private draining = false;

  constructor(private readonly options: EventProcessorOptions) {
    this.session = new BrokerSession({
      url: options.amqpUrl,
      name: 'integration-processor',
      logger: options.logger,
      setup: (channel) => this.setup(channel),
    });
  }

  start(): void {
    this.session.start();
  }

  get ready(): boolean {
    return this.session.connected && this.consumerTag !== undefined;
  }

  /** Stops consuming, waits for in-flight events up to the deadline, then disconnects. */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true;
    const channel = this.session.channel;
    if (channel && this.consumerTag) {
      await Promise.race([channel.cancel(this.consumerTag).catch(() => undefined), sleep(5_000)]);
    }
    this.consumerTag = undefined;
    await Promise.race([Promise.allSettled([...this.inFlight]), sleep(deadlineMs)]);
    await this.session.stop();
    this.options.api.close();
  }

  private async setup(channel: ConfirmChannel): Promise<void> {
    this.consumerTag = undefined;
    await assertRetryTopology(channel, this.options.topology);
    await channel.prefetch(this.options.prefetch);
    if (this.draining) return;
    const { consumerTag } = await channel.consume(this.options.topology.workQueue, (message) => {
      if (!message) {
        this.session.reset('consumer cancelled by the broker');
        return;
      }
      const work = this.handle(channel, message);
      this.inFlight.add(work);
      void work.finally(() => this.inFlight.delete(work));
    });
    this.consumerTag = consumerTag;
  }

  private async handle(channel: ConfirmChannel, message: ConsumeMessage): Promise<void> {
    try {
      await this.process(channel, message);
      safely(() => channel.ack(message));
    } catch (error) {
      // The outcome could not be stored or published: return the message rather than lose it.
      this.options.logger.warn({ err: errorText(error) }, 'integration event not settled; returning it');
      await sleep(1000);
      safely(() => channel.nack(message, false, true));
    }
  }

  private async process(channel: ConfirmChannel, message: ConsumeMessage): Promise<void> {
    const { store, logger } = this.options;
    const eventRowId = parseBody(message.content);
    if (!eventRowId) {
      logger.error('dropping an integration work message without an event id');
      return;
    }
    const attempt = positiveInt(message.properties.headers?.[attemptHeader]) ?? 1;
    const event = await store.claim(eventRowId);
    if (!event) return;
    const settings = await store.providerSettings(event.provider);
    const handler = syncHandlers[event.eventType];
    try {
      if (!handler) throw new PermanentError(`no handler for ${event.eventType}`);
      await store.complete(event.id, (client) =>
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
      );
      this.options.onOutcome?.({ event: event.id, status: 'completed', attempt });
    } catch (error) {
      await this.fail(channel, message, event, settings, attempt, error);
    }
  }

  private async fail(
    channel: ConfirmChannel,
    message: ConsumeMessage,
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
      await this.republish(channel, message, delayRoutingKey(tier), { [attemptHeader]: attempt });
      this.options.onOutcome?.({ event: event.id, status: 'retrying', attempt });
      return;
    }
    const maxRetries = settings?.retryPolicy.max_retries;
    const maxAttempts = Math.min(schedule.maxAttempts, maxRetries === undefined ? Infinity : maxRetries + 1);
    const permanent = error instanceof PermanentError || isDataError(error);
    if (permanent || attempt >= maxAttempts) {
      await store.recordFailure(event.id, { status: 'failed', error: reason });
      await this.republish(channel, message, parkedRoutingKey, {
        'x-tenantry-final-error': reason.slice(0, 200),
      });
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
    await this.republish(channel, message, delayRoutingKey(tier), { [attemptHeader]: attempt + 1 });
    this.options.onOutcome?.({ event: event.id, status: 'retrying', attempt });
  }

  private republish(
    channel: ConfirmChannel,
    message: ConsumeMessage,
    routingKey: string,
    headers: Record<string, unknown>,
  ): Promise<void> {
    const options: Options.Publish = {
      persistent: true,
      contentType: 'application/json',
      ...(typeof message.properties.messageId === 'string'
        ? { messageId: message.properties.messageId }
        : {}),
      headers,
    };
    return publishConfirmed(
      channel,
      this.options.topology.retryExchange,
      routingKey,
      message.content,
      options,
    );
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

function positiveInt(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
  return Number.isInteger(n) && n >= 1 ? n : undefined;
}

function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // channel gone: the broker redelivers the message
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
