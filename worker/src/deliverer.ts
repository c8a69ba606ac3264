// Consumes the tenant's webhook work queue and delivers each message to its
// endpoint. For every message: admit it through the endpoint gate (or defer
// it), load the delivery, sign and POST, record the attempt in the tenant
// database, schedule a retry or park it, and only then ack, on the channel it
// came from. A crash anywhere before the ack means the broker redelivers it:
// deliveries are at-least-once, and receivers deduplicate by webhook-id.
// The database work of the messages in flight is batched (lib/batcher.ts): one
// statement loads the deliveries of many messages, one transaction records
// their attempts, and each message is acked only after its batch committed.
import type { ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import type { Logger } from '../../lib/logger.js';
import { signWebhook } from '../../lib/webhooks/standard-webhooks.js';
import { Batcher } from '../../lib/batcher.js';
import { BrokerSession, errorText, publishConfirmed } from './broker-session.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import type { HttpSender, SendResult } from './http-sender.js';
import type { RetrySchedule } from './schedule.js';
import {
  assertRetryTopology,
  attemptHeader,
  deferralsHeader,
  delayRoutingKey,
  endpointHeader,
  parkedRoutingKey,
  type RetryTopology,
} from './topology.js';
import type { AttemptRecord, DeliveryToSend, WebhookStore } from './webhook-store.js';

/** The body of a work message: which delivery, and the outbox row it came from. */
export interface DeliveryMessage {
  delivery_id: string;
  outbox_id?: string;
}

export interface DelivererOptions {
  amqpUrl: string;
  topology: RetryTopology;
  schedule: RetrySchedule;
  store: WebhookStore;
  sender: HttpSender;
  gate: CircuitBreaker;
  prefetch: number;
  disableAfterMs: number;
  logger: Logger;
  /**
   * Called after each attempt is recorded, with the delivery's status after it (`failed`: parked, no
   * attempt follows); for metrics and tests.
   */
  onAttempt?: (attempt: {
    deliveryId: string;
    attempt: number;
    result: SendResult;
    status: 'succeeded' | 'retrying' | 'failed';
  }) => void;
}

export class Deliverer {
  readonly session: BrokerSession;
  private readonly inFlight = new Set<Promise<void>>();
  private consumerTag: string | undefined;
  private draining = false;
  private readonly loads: Batcher<DeliveryMessage, DeliveryToSend | undefined>;
  private readonly records: Batcher<AttemptRecord, void>;

  constructor(private readonly options: DelivererOptions) {
    this.session = new BrokerSession({
      url: options.amqpUrl,
      name: 'deliverer',
      logger: options.logger,
      setup: (channel) => this.setup(channel),
    });
    const { store, logger, prefetch } = options;
    // Two load batches at once, so one waiting for a relay's commit does not hold up the rest.
    this.loads = new Batcher({ maxSize: prefetch, concurrency: 2, run: (bodies) => this.loadBatch(bodies) });
    // One record batch at a time: batches grow with the load, and this
    // worker's transactions never lock the same endpoint rows against each other.
    this.records = new Batcher<AttemptRecord, void>({
      maxSize: prefetch,
      concurrency: 1,
      run: async (records) => {
        for (const { endpointId, reason } of await store.recordAttempts(records)) {
          logger.warn({ endpointId, reason }, 'endpoint disabled');
        }
        return records.map(() => undefined);
      },
    });
  }

  start(): void {
    this.session.start();
  }

  get ready(): boolean {
    return this.session.connected && this.consumerTag !== undefined;
  }

  /** Stops taking messages, lets the ones in flight finish (up to the deadline), then disconnects. */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true;
    const channel = this.session.channel;
    if (channel && this.consumerTag) {
      await Promise.race([channel.cancel(this.consumerTag).catch(() => undefined), sleep(5_000)]);
    }
    this.consumerTag = undefined;
    const timeout = new Promise<'timeout'>((resolve) =>
      setTimeout(() => resolve('timeout'), deadlineMs).unref(),
    );
    const outcome = await Promise.race([Promise.allSettled([...this.inFlight]), timeout]);
    if (outcome === 'timeout') {
      this.options.logger.warn(
        { inFlight: this.inFlight.size },
        'drain deadline passed; the broker redelivers the rest',
      );
    }
    await this.session.stop();
    this.options.sender.close();
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
      // Storing or publishing failed (database or broker trouble). Put the
      // message back for another try rather than lose it; a short pause keeps
      // a database outage from becoming a hot loop.
      this.options.logger.warn({ err: errorText(error) }, 'delivery not settled; returning it to the queue');
      await sleep(1000);
      safely(() => channel.nack(message, false, true));
    }
  }

  private async process(channel: ConfirmChannel, message: ConsumeMessage): Promise<void> {
    const { logger, store, gate, schedule } = this.options;
    const body = parseBody(message.content);
    if (!body) {
      logger.error(
        { messageId: message.properties.messageId },
        'dropping a work message that is not a delivery',
      );
      return;
    }
    const headers = message.properties.headers ?? {};
    const attempt = positiveInt(headers[attemptHeader]) ?? 1;
    const endpointHint = typeof headers[endpointHeader] === 'string' ? headers[endpointHeader] : undefined;

    const decision = await gate.acquire(endpointHint ?? body.delivery_id);
    if (!decision.admitted) {
      const tier = schedule.tierAtLeast(decision.retryInMs);
      const deferrals = (positiveInt(headers[deferralsHeader]) ?? 0) + 1;
      await this.republish(channel, message, delayRoutingKey(tier), { [deferralsHeader]: deferrals });
      // Stored at 1, 2, 4, 8... deferrals: a dead endpoint's churn stays off the database.
      if ((deferrals & (deferrals - 1)) === 0) {
        const nextAt = new Date(Date.now() + tier);
        await store.markDeferred(body.delivery_id, deferrals, nextAt, `deferred: ${decision.reason}`);
      }
      return;
    }
    let gateOutcome: 'success' | 'failure' | 'neutral' = 'neutral';
    try {
      const delivery = await this.loads.add(body);
      if (!delivery) {
        // The relay rolled back after publishing; it publishes a fresh delivery.
        logger.info(
          { deliveryId: body.delivery_id },
          'dropping a work message for a delivery that does not exist',
        );
        return;
      }
      if (delivery.status === 'succeeded' || delivery.status === 'failed') return;
      if (!delivery.enabled) {
        await store.markAbandoned(delivery.deliveryId, 'endpoint disabled');
        // Let the rest of its messages through the gate quickly: they end the same way.
        gateOutcome = 'success';
        return;
      }
      const result = await this.send(delivery);
      gateOutcome =
        result.status !== undefined && result.status >= 200 && result.status < 300 ? 'success' : 'failure';
      if (result.permanent) gateOutcome = 'neutral';
      await this.settle(channel, message, delivery, attempt, result);
    } finally {
      decision.release(gateOutcome);
    }
  }

  /**
   * The deliveries of a batch of messages. One the relay has published but
   * not yet committed is invisible: waiting for the relay's transaction tells
   * "not committed yet" from "rolled back", so a worker never drops a delivery
   * that is about to exist.
   */
  private async loadBatch(bodies: DeliveryMessage[]): Promise<(DeliveryToSend | undefined)[]> {
    const { store } = this.options;
    const found = await store.loadDeliveries(bodies.map((b) => b.delivery_id));
    const unseen = bodies.filter((b) => b.outbox_id !== undefined && !found.has(b.delivery_id));
    if (unseen.length > 0) {
      await store.awaitRelayCommits([...new Set(unseen.map((b) => b.outbox_id as string))]);
      const late = await store.loadDeliveries(unseen.map((b) => b.delivery_id));
      for (const [id, delivery] of late) found.set(id, delivery);
    }
    return bodies.map((b) => found.get(b.delivery_id));
  }

  private async send(delivery: DeliveryToSend): Promise<SendResult> {
    const timestamp = Math.floor(Date.now() / 1000);
    const body = JSON.stringify({
      type: delivery.eventType,
      timestamp: delivery.messageCreatedAt.toISOString(),
      data: delivery.payload,
    });
    const headers = signWebhook(delivery.secrets, delivery.messageId, timestamp, body);
    return this.options.sender.post(delivery.url, { ...headers }, body);
  }

  /** Records the attempt, then publishes the retry or the parked copy; the caller acks after. */
  private async settle(
    channel: ConfirmChannel,
    message: ConsumeMessage,
    delivery: DeliveryToSend,
    attempt: number,
    result: SendResult,
  ): Promise<void> {
    const { schedule } = this.options;
    const startedAt = new Date(Date.now() - result.durationMs);
    const succeeded = result.status !== undefined && result.status >= 200 && result.status < 300;
    const gone = result.status === 410;
    const last = attempt >= schedule.maxAttempts || gone || result.permanent === true;
    const tier = succeeded || last ? undefined : schedule.tierBefore(attempt + 1, result.retryAfterMs);
    if (result.refusal) {
      this.options.logger.warn(
        { deliveryId: delivery.deliveryId, endpointId: delivery.endpointId, err: result.refusal },
        'endpoint URL refused',
      );
    }
    const status = succeeded ? 'succeeded' : last ? 'failed' : 'retrying';
    // Resolves once the batch holding this attempt has committed.
    await this.records.add({
      deliveryId: delivery.deliveryId,
      endpointId: delivery.endpointId,
      attempt,
      startedAt,
      durationMs: result.durationMs,
      responseStatus: result.status,
      error: result.error,
      succeeded,
      status,
      nextAttemptAt: tier === undefined ? undefined : new Date(Date.now() + tier),
      ...(gone ? { disableReason: 'the endpoint answered 410 Gone' } : {}),
      disableAfterMs: this.options.disableAfterMs,
    });
    this.options.onAttempt?.({ deliveryId: delivery.deliveryId, attempt, result, status });
    if (succeeded) return;
    if (tier !== undefined) {
      await this.republish(channel, message, delayRoutingKey(tier), { [attemptHeader]: attempt + 1 });
    } else {
      await this.republish(channel, message, parkedRoutingKey, {
        'x-tenantry-final-error': (result.error ?? 'failed').slice(0, 200),
      });
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

export function deliveryPublishOptions(messageId: string, endpointId: string, attempt = 1): Options.Publish {
  return {
    persistent: true,
    contentType: 'application/json',
    messageId,
    headers: { [attemptHeader]: attempt, [endpointHeader]: endpointId },
  };
}

function withoutBrokerHeaders(headers: Record<string, unknown>): Record<string, unknown> {
  const copy = { ...headers };
  for (const key of Object.keys(copy)) {
    if (key.startsWith('x-death') || key.startsWith('x-first-death') || key.startsWith('x-last-death')) {
      delete copy[key];
    }
  }
  return copy;
}

function parseBody(content: Buffer): DeliveryMessage | undefined {
  try {
    const value = JSON.parse(content.toString('utf8')) as Partial<DeliveryMessage>;
    if (typeof value.delivery_id !== 'string' || !/^[0-9a-f-]{36}$/.test(value.delivery_id)) return undefined;
    return {
      delivery_id: value.delivery_id,
      ...(typeof value.outbox_id === 'string' && /^\d+$/.test(value.outbox_id)
        ? { outbox_id: value.outbox_id }
        : {}),
    };
  } catch {
    return undefined;
  }
}

function positiveInt(value: unknown): number | undefined {
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
