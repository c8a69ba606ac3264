// The loop shared by the outbox relays: claim a batch from the tenant
// database, publish one message per item on a confirm channel, and let the
// source commit only after every confirm arrived (or roll back on failure or
// timeout). A full batch runs the next at once, and so does a poke (an outbox
// notification) that came while a batch ran; otherwise it polls. Failures back
// off, and pokes do not cut a backoff short.
import type { Options } from 'amqplib';
import type { ConfirmChannel } from 'amqplib';
import { exponentialDelay } from '../../lib/backoff.js';
import type { Logger } from '../../lib/logger.js';
import { BrokerSession, errorText, publishConfirmed } from './broker-session.js';
import { endWith } from '../../lib/telemetry/index.js';
import { startPublishSpan } from './message-tracing.js';
import { Pause } from './pause.js';

/** Claims rows, calls `publish` with them inside its transaction, commits only if it resolves. */
export interface RelaySource<T> {
  relayBatch(limit: number, publish: (items: T[]) => Promise<void>): Promise<number>;
}

export interface RelayMessage {
  exchange: string;
  routingKey: string;
  content: Buffer;
  options: Options.Publish;
  /** The outbox row's `trace_context`: the message is published in that trace (message-tracing.ts). */
  traceContext?: unknown;
}

export interface BatchRelayOptions<T> {
  name: string;
  amqpUrl: string;
  /** Declares what the relay publishes to, on every new channel. */
  setup: (channel: ConfirmChannel) => Promise<void>;
  source: RelaySource<T>;
  message: (item: T) => RelayMessage;
  batchSize: number;
  pollIntervalMs: number;
  logger: Logger;
  /** How long a batch waits for the broker's confirms before it gives up and rolls back. */
  confirmTimeoutMs?: number;
}

export class BatchRelay<T> {
  readonly session: BrokerSession;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly pause = new Pause();
  private poked = false;
  private backingOff = false;
  /** Rows published and committed since start. */
  relayed = 0;

  constructor(private readonly relayOptions: BatchRelayOptions<T>) {
    this.session = new BrokerSession({
      url: relayOptions.amqpUrl,
      name: relayOptions.name,
      logger: relayOptions.logger,
      setup: relayOptions.setup,
    });
  }

  get ready(): boolean {
    return this.session.connected;
  }

  start(): void {
    this.session.start();
    this.loop ??= this.run();
  }

  /** Runs a batch now instead of at the next poll (or right after the one running). */
  poke(): void {
    this.poked = true;
    if (!this.backingOff) this.pause.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.pause.wake();
    await this.loop;
    await this.session.stop();
  }

  private async run(): Promise<void> {
    const { source, batchSize, pollIntervalMs, logger, name } = this.relayOptions;
    let failures = 0;
    while (!this.stopped) {
      let handled = 0;
      this.poked = false;
      if (this.session.connected) {
        try {
          handled = await source.relayBatch(batchSize, (items) => this.publish(items));
          this.relayed += handled;
          failures = 0;
        } catch (error) {
          failures += 1;
          logger.warn({ relay: name, err: errorText(error), failures }, 'outbox batch rolled back; retrying');
        }
      }
      if (this.stopped) break;
      // A full batch means more may be waiting; a poke, that rows came in meanwhile: go again at once.
      if (failures === 0 && (handled >= batchSize || this.poked)) continue;
      const wait = exponentialDelay(failures, { initialMs: pollIntervalMs, maxMs: 30_000 });
      this.backingOff = failures > 0;
      await this.pause.for(wait);
    }
  }

  private async publish(items: T[]): Promise<void> {
    const channel = this.session.channel;
    if (!channel) throw new Error('not connected to the broker');
    const confirms = items.map((item) => {
      const m = this.relayOptions.message(item);
      const messageId = typeof m.options.messageId === 'string' ? m.options.messageId : undefined;
      const { span, traceHeaders } = startPublishSpan(
        { exchange: m.exchange, routingKey: m.routingKey, messageId },
        m.traceContext,
      );
      const headers = m.options.headers as Record<string, unknown> | undefined;
      const options = { ...m.options, headers: { ...headers, ...traceHeaders } };
      return endWith(span, publishConfirmed(channel, m.exchange, m.routingKey, m.content, options));
    });
    let timer: NodeJS.Timeout | undefined;
    const timeoutMs = this.relayOptions.confirmTimeoutMs ?? 30_000;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no broker confirm within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([Promise.all(confirms), timeout]);
    } catch (error) {
      // Whatever is still outstanding must not settle later into nothing.
      for (const c of confirms) c.catch(() => undefined);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
}
