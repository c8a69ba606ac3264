// Consumes the work queue of a RetryTopology on its own broker session and
// hands each message to a handler. What both pipelines (webhook deliveries,
// incoming integration events) share lives here: declaring the topology and
// the prefetch on every new channel, acking a message once its handler
// resolved, putting it back when the handler threw, republishing it to a delay
// tier or the parked queue when the handler asks, and draining on shutdown.
// The handler decides what a message means and when to retry; a message is
// acked only after whatever it republished was confirmed, so a crash in
// between redelivers it (at-least-once).
import type { ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import type { Logger } from '../../lib/logger.js';
import { BrokerSession, errorText, publishConfirmed } from './broker-session.js';
import { inProcessSpan } from './message-tracing.js';
import {
  assertRetryTopology,
  attemptHeader,
  delayRoutingKey,
  parkedRoutingKey,
  type RetryTopology,
} from './topology.js';

/** A work message as a handler sees it. */
export interface WorkMessage {
  content: Buffer;
  messageId: string | undefined;
  headers: Record<string, unknown>;
  /** The attempt header; 1 when missing or not a positive integer. */
  attempt: number;
}

/** Where a handler sends a message it is done with for now; each resolves once the broker confirmed. */
export interface RetryOutlet {
  /** Republishes the message to the delay tier of `tierMs`, with `headers` set over its own. */
  delay(tierMs: number, headers: Record<string, unknown>): Promise<void>;
  /** Republishes the message to the parked queue, with why it gave up. */
  park(finalError: string): Promise<void>;
}

/** Resolves when the message is settled (the consumer acks it); throws to have it returned to the queue. */
export type MessageHandler = (message: WorkMessage, retry: RetryOutlet) => Promise<void>;

export interface QueueConsumerOptions {
  /** The broker session's name in logs. */
  name: string;
  amqpUrl: string;
  topology: RetryTopology;
  prefetch: number;
  logger: Logger;
  handle: MessageHandler;
}

export class QueueConsumer {
  private readonly session: BrokerSession;
  private readonly inFlight = new Set<Promise<void>>();
  private consumerTag: string | undefined;
  private draining = false;

  constructor(private readonly options: QueueConsumerOptions) {
    this.session = new BrokerSession({
      url: options.amqpUrl,
      name: options.name,
      logger: options.logger,
      setup: (channel) => this.setup(channel),
    });
  }

  start(): void {
    this.session.start();
  }

  /** Connected and consuming. */
  get ready(): boolean {
    return this.session.connected && this.consumerTag !== undefined;
  }

  /** Stops taking messages, lets the ones in flight finish (up to the deadline), then disconnects. */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true;
    const channel = this.session.channel;
    if (channel && this.consumerTag) {
      await Promise.race([channel.cancel(this.consumerTag).catch(() => undefined), sleep(5_000, true)]);
    }
    this.consumerTag = undefined;
    const timeout = sleep(deadlineMs, true).then(() => 'timeout' as const);
    const outcome = await Promise.race([Promise.allSettled([...this.inFlight]), timeout]);
    if (outcome === 'timeout') {
      this.options.logger.warn(
        { consumer: this.options.name, inFlight: this.inFlight.size },
        'drain deadline passed; the broker redelivers the rest',
      );
    }
    await this.session.stop();
  }

  private async setup(channel: ConfirmChannel): Promise<void> {
    this.consumerTag = undefined;
    await assertRetryTopology(channel, this.options.topology);
    await channel.prefetch(this.options.prefetch);
    if (this.draining) return;
    const { consumerTag } = await channel.consume(this.options.topology.workQueue, (message) => {
      if (!message) {
        // The server cancelled the consumer (queue deleted): start over.
        this.session.reset('consumer cancelled by the broker');
        return;
      }
      const work = this.consume(channel, message);
      this.inFlight.add(work);
      void work.finally(() => this.inFlight.delete(work));
    });
    this.consumerTag = consumerTag;
  }

  private async consume(channel: ConfirmChannel, message: ConsumeMessage): Promise<void> {
    const headers = message.properties.headers ?? {};
    const work: WorkMessage = {
      content: message.content,
      messageId: typeof message.properties.messageId === 'string' ? message.properties.messageId : undefined,
      headers,
      attempt: positiveInt(headers[attemptHeader]) ?? 1,
    };
    const retry: RetryOutlet = {
      delay: (tierMs, extra) => this.republish(channel, message, delayRoutingKey(tierMs), extra),
      park: (finalError) =>
        this.republish(channel, message, parkedRoutingKey, {
          'x-tenantry-final-error': finalError.slice(0, 200),
        }),
    };
    const target = {
      exchange: message.fields.exchange,
      routingKey: message.fields.routingKey,
      messageId: work.messageId,
    };
    try {
      // In the trace the headers carry (message-tracing.ts); retries keep those headers.
      await inProcessSpan(this.options.topology.workQueue, target, headers, work.attempt, () =>
        this.options.handle(work, retry),
      );
      safely(() => channel.ack(message));
    } catch (error) {
      // Storing or publishing the outcome failed (database or broker trouble):
      // put the message back for another try rather than lose it. A short
      // pause keeps an outage from becoming a hot loop.
      this.options.logger.warn(
        { consumer: this.options.name, err: errorText(error) },
        'work message not settled; returning it to the queue',
      );
      await sleep(1_000, false);
      safely(() => channel.nack(message, false, true));
    }
  }

  private republish(
    channel: ConfirmChannel,
    message: ConsumeMessage,
    routingKey: string,
    headers: Record<string, unknown>,
  ): Promise<void> {
    const properties = message.properties;
    const options: Options.Publish = {
      persistent: true,
      contentType: 'application/json',
      ...(typeof properties.messageId === 'string' ? { messageId: properties.messageId } : {}),
      headers: { ...withoutBrokerHeaders(properties.headers ?? {}), ...headers },
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

/** The message's own headers without the dead-lettering history the broker added. */
function withoutBrokerHeaders(headers: Record<string, unknown>): Record<string, unknown> {
  const copy = { ...headers };
  for (const key of Object.keys(copy)) {
    if (key.startsWith('x-death') || key.startsWith('x-first-death') || key.startsWith('x-last-death')) {
      delete copy[key];
    }
  }
  return copy;
}

export function positiveInt(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
  return Number.isInteger(n) && n >= 1 ? n : undefined;
}

/** Acks and nacks on a channel that has since closed throw; the broker redelivers those anyway. */
function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // channel gone: the message returns to the queue
  }
}

/** `unref`: a wait that must not keep the process alive on its own. */
function sleep(ms: number, unref: boolean): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (unref) timer.unref();
  });
}
