// Consumes the tenant's webhook work queue and delivers each message to its
// endpoint. For every message: admit it through the endpoint gate (or defer
// it), load the delivery, sign and POST, record the attempt in the tenant
// database, and schedule a retry or park it; the queue consumer
// (queue-consumer.ts) acks only then. A crash anywhere before the ack means the
// broker redelivers it: deliveries are at-least-once, and receivers
// deduplicate by webhook-id.
// The database work of the messages in flight is batched (lib/batcher.ts): one
// statement loads the deliveries of many messages, one transaction records
// their attempts, and each message is acked only after its batch committed.
import type { Options } from 'amqplib';
import type { Logger } from '../../lib/logger.js';
import { signWebhook } from '../../lib/webhooks/standard-webhooks.js';
import { Batcher } from '../../lib/batcher.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import type { HttpSender, SendResult } from './http-sender.js';
import { positiveInt, QueueConsumer, type RetryOutlet, type WorkMessage } from './queue-consumer.js';
import type { RetrySchedule } from './schedule.js';
import { attemptHeader, deferralsHeader, endpointHeader, type RetryTopology } from './topology.js';
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
  private readonly consumer: QueueConsumer;
  private readonly loads: Batcher<DeliveryMessage, DeliveryToSend | undefined>;
  private readonly records: Batcher<AttemptRecord, void>;

  constructor(private readonly options: DelivererOptions) {
    const { store, logger, prefetch } = options;
    this.consumer = new QueueConsumer({
      name: 'deliverer',
      amqpUrl: options.amqpUrl,
      topology: options.topology,
      prefetch,
      logger,
      handle: (message, retry) => this.process(message, retry),
    });
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
    this.consumer.start();
  }

  get ready(): boolean {
    return this.consumer.ready;
  }

  /** Stops taking messages, lets the ones in flight finish (up to the deadline), then disconnects. */
  async drain(deadlineMs: number): Promise<void> {
    await this.consumer.drain(deadlineMs);
    this.options.sender.close();
  }

  private async process(message: WorkMessage, retry: RetryOutlet): Promise<void> {
    const { logger, store, gate, schedule } = this.options;
    const body = parseBody(message.content);
    if (!body) {
      logger.error({ messageId: message.messageId }, 'dropping a work message that is not a delivery');
      return;
    }
    const { headers, attempt } = message;
    const endpointHint = typeof headers[endpointHeader] === 'string' ? headers[endpointHeader] : undefined;

    const decision = await gate.acquire(endpointHint ?? body.delivery_id);
    if (!decision.admitted) {
      const tier = schedule.tierAtLeast(decision.retryInMs);
      const deferrals = (positiveInt(headers[deferralsHeader]) ?? 0) + 1;
      await retry.delay(tier, { [deferralsHeader]: deferrals });
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
      await this.settle(retry, delivery, attempt, result);
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
    retry: RetryOutlet,
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
      await retry.delay(tier, { [attemptHeader]: attempt + 1 });
    } else {
      await retry.park(result.error ?? 'failed');
    }
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
