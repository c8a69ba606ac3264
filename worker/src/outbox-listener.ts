// Wakes the outbox relays as soon as outbox rows are committed: a dedicated
// database connection (outside the pool) LISTENs on the channel that tenant
// schema migration 6's trigger notifies, with the root of the inserted topics
// ("integration" for integration.*). Polling stays the fallback. After any
// loss (a database restart, a cut connection) it reconnects with backoff, and
// on every (re)connect it wakes every relay once, for rows written meanwhile.
import pg from 'pg';
import type { Logger } from '../../lib/logger.js';
import { outboxChannel } from '../../lib/tenant-schema/migrations.js';
import { errorText } from './broker-session.js';
import { Pause, reconnectBackoff } from './pause.js';

export interface OutboxListenerOptions {
  connectionString: string;
  logger: Logger;
  /**
   * Called with the topic root of every notification, and with undefined
   * (anything may be waiting) each time listening (re)starts.
   */
  onNotify: (topicRoot: string | undefined) => void;
  /** Backoff between reconnects, doubling from `minDelayMs` up to `maxDelayMs`. */
  minDelayMs?: number;
  maxDelayMs?: number;
}

export class OutboxListener {
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly pause = new Pause();
  private hangUp: ((reason: string) => void) | undefined;
  private listening = false;

  constructor(private readonly options: OutboxListenerOptions) {}

  /** True while notifications can arrive. */
  get connected(): boolean {
    return this.listening;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.hangUp?.('stopped');
    this.pause.wake();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { logger, onNotify } = this.options;
    const backoff = reconnectBackoff(this.options.minDelayMs, this.options.maxDelayMs);
    while (!this.stopped) {
      const client = new pg.Client({
        connectionString: this.options.connectionString,
        connectionTimeoutMillis: 5_000,
        // Finds a connection that died without a word (no FIN) instead of waiting on it forever.
        keepAlive: true,
        keepAliveInitialDelayMillis: 10_000,
      });
      let hangUp!: (reason: string) => void;
      const lost = new Promise<string>((resolve) => (hangUp = resolve));
      this.hangUp = hangUp;
      // Bound to this connection: a late event of an old one must not end the next.
      client.on('error', (error) => hangUp(`connection error: ${error.message}`));
      client.on('end', () => hangUp('connection ended'));
      client.on('notification', (message) => onNotify(message.payload));
      try {
        await client.connect();
        await client.query(`LISTEN ${outboxChannel}`);
        this.listening = true;
        backoff.reset();
        logger.info('listening for outbox notifications');
        onNotify(undefined);
        const reason = await lost;
        if (!this.stopped) {
          logger.warn({ reason }, 'outbox notifications lost; polling until listening again');
        }
      } catch (error) {
        logger.warn(
          { err: errorText(error), retryInMs: backoff.current },
          'cannot listen for outbox notifications; polling meanwhile',
        );
      }
      this.listening = false;
      this.hangUp = undefined;
      await client.end().catch(() => undefined);
      if (this.stopped) break;
      await this.pause.for(backoff.next());
    }
  }
}
