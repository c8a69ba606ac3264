import { expect } from 'chai';
import amqp from 'amqplib';
import { createLogger } from '../../lib/logger.js';
import { QueueConsumer, type MessageHandler, type WorkMessage } from '../../worker/src/queue-consumer.js';
import {
  attemptHeader,
  deliverRoutingKey,
  retryTopology,
  type RetryTopology,
} from '../../worker/src/topology.js';
import { createTestVhost, uniqueSuffix, type TestVhost } from '../harness/services.js';
import { eventually } from '../harness/wait.js';

describe('worker queue consumer (real RabbitMQ)', function () {
  this.timeout(60_000);

  let vhost: TestVhost;
  let broker: amqp.ChannelModel;
  let channel: amqp.Channel;
  const consumers: QueueConsumer[] = [];

  before(async () => {
    vhost = await createTestVhost('queue-consumer');
    broker = await amqp.connect(vhost.url);
    channel = await broker.createChannel();
  });

  after(async () => {
    await broker?.close().catch(() => undefined);
    await vhost?.drop();
  });

  afterEach(async () => {
    await Promise.allSettled(consumers.splice(0).map((c) => c.drain(1_000)));
  });

  /** A consumer of a topology of its own, started and consuming. */
  async function start(
    handle: MessageHandler,
  ): Promise<{ topology: RetryTopology; consumer: QueueConsumer }> {
    const topology = retryTopology(`qc${uniqueSuffix()}.`, 'work', [200]);
    const consumer = new QueueConsumer({
      name: 'test-consumer',
      amqpUrl: vhost.url,
      topology,
      prefetch: 4,
      logger: createLogger('test', 'silent'),
      handle,
    });
    consumers.push(consumer);
    expect(consumer.ready).to.equal(false);
    consumer.start();
    await eventually('the consumer to consume', () => Promise.resolve(consumer.ready || undefined));
    return { topology, consumer };
  }

  function publish(topology: RetryTopology, body: unknown, headers: Record<string, unknown> = {}): void {
    channel.publish(topology.workExchange, deliverRoutingKey, Buffer.from(JSON.stringify(body)), {
      messageId: 'm-1',
      headers,
    });
  }

  /** Messages waiting in `queue`, once the consumer has let go of what it held. */
  async function waiting(queue: string): Promise<number> {
    return (await channel.checkQueue(queue)).messageCount;
  }

  it('acks a message once its handler resolved, and hands over its id, headers and attempt', async () => {
    const seen: WorkMessage[] = [];
    const { topology, consumer } = await start((message) => {
      seen.push(message);
      return Promise.resolve();
    });
    publish(topology, { n: 1 }, { [attemptHeader]: 3, 'x-custom': 'kept' });
    publish(topology, { n: 2 }, { [attemptHeader]: 'nonsense' });
    await eventually('both messages', () => Promise.resolve(seen.length === 2 || undefined));
    expect(seen.map((m) => JSON.parse(m.content.toString()) as unknown)).to.deep.equal([{ n: 1 }, { n: 2 }]);
    expect(seen.map((m) => m.attempt)).to.deep.equal([3, 1]);
    expect(seen[0]).to.deep.include({ messageId: 'm-1' });
    expect(seen[0]?.headers).to.include({ 'x-custom': 'kept' });
    await consumer.drain(1_000);
    expect(consumer.ready).to.equal(false);
    expect(await waiting(topology.workQueue)).to.equal(0);
  });

  it('returns a message whose handler threw, and gets it again', async () => {
    let calls = 0;
    const { topology } = await start(() => {
      calls += 1;
      return calls === 1 ? Promise.reject(new Error('database down')) : Promise.resolve();
    });
    publish(topology, { n: 1 });
    await eventually('the redelivery', () => Promise.resolve(calls === 2 || undefined));
  });

  it('sends a message through a delay tier and parks it, with its own headers but not the broker’s', async () => {
    const seen: WorkMessage[] = [];
    const { topology, consumer } = await start(async (message, retry) => {
      seen.push(message);
      if (message.attempt === 1) await retry.delay(200, { [attemptHeader]: 2 });
      else await retry.park(`gave up: ${'x'.repeat(300)}`);
    });
    publish(topology, { n: 1 }, { [attemptHeader]: 1, 'x-custom': 'kept' });
    await eventually('the second attempt', () => Promise.resolve(seen.length === 2 || undefined));
    // Dead-lettered out of the delay queue: the broker added its history.
    expect(Object.keys(seen[1]!.headers)).to.include('x-death');
    expect(seen[1]).to.deep.include({ attempt: 2, messageId: 'm-1' });
    const parked = await eventually('the parked copy', async () => {
      const got = await channel.get(topology.parkedQueue, { noAck: true });
      return got === false ? undefined : got;
    });
    const headers = parked.properties.headers ?? {};
    expect(headers).to.include({ [attemptHeader]: 2, 'x-custom': 'kept' });
    expect(headers['x-tenantry-final-error']).to.be.a('string').with.length(200);
    expect(
      Object.keys(headers).filter((k) => k.startsWith('x-death') || k.includes('-death-')),
    ).to.deep.equal([]);
    expect(parked.properties.messageId).to.equal('m-1');
    await consumer.drain(1_000);
    expect(await waiting(topology.workQueue)).to.equal(0);
  });

  it('drains: takes no more, waits for the handlers in flight up to the deadline, and the rest go back', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let started = 0;
    const { topology, consumer } = await start(async () => {
      started += 1;
      await held;
    });
    publish(topology, { n: 1 });
    await eventually('the handler to start', () => Promise.resolve(started === 1 || undefined));
    const began = Date.now();
    await consumer.drain(300);
    expect(Date.now() - began).to.be.within(250, 5_000);
    // The handler outlived the deadline: its message was not acked and is back in the queue.
    await eventually('the message back in the queue', async () =>
      (await waiting(topology.workQueue)) === 1 ? true : undefined,
    );
    release();
    publish(topology, { n: 2 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(started).to.equal(1);
  });
});
