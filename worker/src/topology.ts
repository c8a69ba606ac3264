// The tenant's webhook topology on RabbitMQ. Every name sits under the tenant's
// prefix, which is all its RabbitMQ user may configure, write or read; nothing
// uses the default exchange or server-named queues.
//
//   <p>webhooks (direct) --deliver--> <p>webhooks.work  (consumed by workers)
//   <p>webhooks.retry (direct)
//       --delay.<ms>--> <p>webhooks.delay.<ms>  (TTL <ms>, dead-letters to <p>webhooks / deliver)
//       --parked------> <p>webhooks.parked      (kept for inspection; nothing consumes it)
//
// Queues are quorum queues: durable, replicated where there are several nodes,
// and they dead-letter expired messages at-least-once and promptly.
import type { Channel, Options } from 'amqplib';

/** Our attempt counter; x-death is not used, since brokers stop counting on republish. */
export const attemptHeader = 'x-tenantry-attempt';
/** How many times the circuit breaker or the concurrency limit has deferred this delivery. */
export const deferralsHeader = 'x-tenantry-deferrals';
/** The endpoint, so deferral decisions need no database read. */
export const endpointHeader = 'x-tenantry-endpoint';
export const deliverRoutingKey = 'deliver';
export const parkedRoutingKey = 'parked';

export interface RetryTopology {
  workExchange: string;
  workQueue: string;
  retryExchange: string;
  parkedQueue: string;
  /** Delay queue name per tier in milliseconds. */
  delayQueues: ReadonlyMap<number, string>;
}

export function webhookTopology(prefix: string, tiers: readonly number[]): RetryTopology {
  return retryTopology(prefix, 'webhooks', tiers);
}

/**
 * The same shape under another stem, for other work with retries (incoming
 * integration events use `integrations`): `<p><stem>`, `<p><stem>.work`, ...
 */
export function retryTopology(prefix: string, stem: string, tiers: readonly number[]): RetryTopology {
  if (!/^[A-Za-z0-9_.-]+\.$/.test(prefix)) throw new TypeError(`invalid queue prefix "${prefix}"`);
  if (!/^[a-z][a-z0-9-]*$/.test(stem)) throw new TypeError(`invalid topology stem "${stem}"`);
  return {
    workExchange: `${prefix}${stem}`,
    workQueue: `${prefix}${stem}.work`,
    retryExchange: `${prefix}${stem}.retry`,
    parkedQueue: `${prefix}${stem}.parked`,
    delayQueues: new Map(tiers.map((ms) => [ms, `${prefix}${stem}.delay.${ms}`])),
  };
}

export function delayRoutingKey(ms: number): string {
  return `delay.${ms}`;
}

const quorum = { 'x-queue-type': 'quorum' };

/** Declares the exchanges, queues and bindings; idempotent. */
export async function assertRetryTopology(channel: Channel, topology: RetryTopology): Promise<void> {
  await channel.assertExchange(topology.workExchange, 'direct', { durable: true });
  await channel.assertExchange(topology.retryExchange, 'direct', { durable: true });
  await channel.assertQueue(topology.workQueue, { durable: true, arguments: quorum });
  await channel.bindQueue(topology.workQueue, topology.workExchange, deliverRoutingKey);
  await channel.assertQueue(topology.parkedQueue, { durable: true, arguments: quorum });
  await channel.bindQueue(topology.parkedQueue, topology.retryExchange, parkedRoutingKey);
  for (const [ms, queue] of topology.delayQueues) {
    const options: Options.AssertQueue = {
      durable: true,
      arguments: {
        ...quorum,
        'x-message-ttl': ms,
        'x-dead-letter-exchange': topology.workExchange,
        'x-dead-letter-routing-key': deliverRoutingKey,
        // At-least-once dead-lettering needs reject-publish overflow.
        'x-dead-letter-strategy': 'at-least-once',
        'x-overflow': 'reject-publish',
      },
    };
    await channel.assertQueue(queue, options);
    await channel.bindQueue(queue, topology.retryExchange, delayRoutingKey(ms));
  }
}
