// The baseline of bench/webhooks.bench.ts, run as its own process like the
// worker: consume a queue with amqplib, POST each body to TARGET_URL over a
// keep-alive agent, ack on the response. No database, no signing, no retries.
import http from 'node:http';
import amqp from 'amqplib';

const amqpUrl = process.env.AMQP_URL ?? '';
const queue = process.env.QUEUE ?? '';
const target = new URL(process.env.TARGET_URL ?? '');
const prefetch = Number(process.env.PREFETCH ?? '100');
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function post(body: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      target,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (response) => {
        response.resume();
        response.on('end', resolve);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

async function main(): Promise<void> {
  const connection = await amqp.connect(amqpUrl);
  const channel = await connection.createChannel();
  await channel.assertQueue(queue, { durable: false });
  await channel.prefetch(prefetch);
  await channel.consume(queue, (message) => {
    if (!message) return;
    post(message.content).then(
      () => channel.ack(message),
      () => channel.nack(message, false, true),
    );
  });
  process.stdout.write('ready\n');
  process.once('SIGTERM', () => {
    void connection.close().finally(() => process.exit(0));
  });
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
