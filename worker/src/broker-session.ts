// One AMQP connection and confirm channel that come back after any loss. amqplib
// does not recreate channels the server closed (a 406, a consumer timeout), so
// any close of either tears both down and the session reconnects with backoff,
// running `setup` (declare topology, start consuming) on each new channel.
import amqp, { type ChannelModel, type ConfirmChannel, type Options } from 'amqplib';
import type { Logger } from '../../lib/logger.js';
import { redactUrl } from '../../lib/services.js';
import { Pause, reconnectBackoff } from './pause.js';

export interface BrokerSessionOptions {
  url: string;
  name: string;
  logger: Logger;
  /** Runs on every new channel before the session counts as connected. */
  setup: (channel: ConfirmChannel) => Promise<void>;
  /** Backoff between reconnects, doubling from `minDelayMs` up to `maxDelayMs`. */
  minDelayMs?: number;
  maxDelayMs?: number;
}

export class BrokerSession {
  private model: ChannelModel | undefined;
  private current: ConfirmChannel | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly pause = new Pause();

  constructor(private readonly options: BrokerSessionOptions) {}

  /** The live channel, or undefined while (re)connecting. */
  get channel(): ConfirmChannel | undefined {
    return this.current;
  }

  get connected(): boolean {
    return this.current !== undefined;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Drops the current connection; the session reconnects. */
  reset(reason: string): void {
    const model = this.model;
    if (!model) return;
    this.options.logger.warn({ session: this.options.name, reason }, 'resetting broker connection');
    void closeQuietly(model);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.pause.wake();
    const model = this.model;
    this.model = undefined;
    this.current = undefined;
    if (model) await closeQuietly(model);
    await this.loop;
  }

  private async run(): Promise<void> {
    const { logger, name } = this.options;
    const backoff = reconnectBackoff(this.options.minDelayMs, this.options.maxDelayMs);
    while (!this.stopped) {
      try {
        const { closed } = await this.connectOnce();
        logger.info({ session: name }, 'connected to the broker');
        backoff.reset();
        const reason = await closed;
        logger.warn({ session: name, reason }, 'broker connection or channel lost');
      } catch (error) {
        logger.warn(
          {
            session: name,
            url: redactUrl(this.options.url),
            err: errorText(error),
            retryInMs: backoff.current,
          },
          'cannot reach the broker',
        );
      }
      this.current = undefined;
      const model = this.model;
      this.model = undefined;
      if (model) await closeQuietly(model);
      if (this.stopped) break;
      await this.pause.for(backoff.next());
    }
  }

  /** Connects and sets up; `closed` settles when either the connection or the channel closes. */
  private async connectOnce(): Promise<{ closed: Promise<string> }> {
    const model = await amqp.connect(this.options.url, { timeout: 10_000 });
    this.model = model;
    let settle!: (reason: string) => void;
    const closed = new Promise<string>((resolve) => (settle = resolve));
    model.on('error', (error: Error) => settle(`connection error: ${error.message}`));
    model.on('close', () => {
      closedModels.add(model);
      settle('connection closed');
    });
    const channel = await model.createConfirmChannel();
    channel.on('error', (error: Error) => settle(`channel error: ${error.message}`));
    channel.on('close', () => settle('channel closed'));
    await this.options.setup(channel);
    if (this.stopped) throw new Error('stopped');
    this.current = channel;
    return { closed };
  }
}

// amqplib's close() on a connection that is already closed never settles.
const closedModels = new WeakSet<ChannelModel>();

async function closeQuietly(model: ChannelModel): Promise<void> {
  if (closedModels.has(model)) return;
  closedModels.add(model);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    model.close().catch(() => undefined),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, 5_000))),
  ]);
  clearTimeout(timer);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Publishes on a confirm channel and resolves once the broker has confirmed. */
export function publishConfirmed(
  channel: ConfirmChannel,
  exchange: string,
  routingKey: string,
  content: Buffer,
  options: Options.Publish,
): Promise<void> {
  return new Promise((resolve, reject) => {
    try {
      channel.publish(exchange, routingKey, content, options, (error: unknown) =>
        error
          ? reject(error instanceof Error ? error : new Error('the broker refused the message'))
          : resolve(),
      );
    } catch (error) {
      reject(error instanceof Error ? error : new Error(String(error)));
    }
  });
}
