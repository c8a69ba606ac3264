// Outgoing webhook benchmark on this machine: the tenant worker
// (worker/src/main.ts as a child process, like the operator's Deployment runs
// it) relays a tenant database's outbox to RabbitMQ with publisher confirms,
// fans out to endpoints, signs, POSTs to a loopback receiver and records every
// attempt in the database before it acks. Baseline in the same run: a bare
// amqplib publish → consume → HTTP POST loop, also in its own process, with no
// persistence, confirms or signing (bench/support/bare-webhook-consumer.ts).
// Two measurements each: throughput with a backlog, then latency at a fixed
// rate (open loop) from enqueue (the outbox INSERT, or the bare publish) to the
// receiver seeing the first attempt. stdout carries only JSON lines.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import amqp from 'amqplib';
import pg from 'pg';
import { generateWebhookSecret } from '../lib/webhooks/standard-webhooks.js';
import { createTestVhost, type TestVhost } from '../test/harness/services.js';
import { createTestTenantDatabase, type TestTenantDatabase } from '../test/harness/tenant-database.js';
import { emit, intSetting, percentile, progress } from './support/report.js';

const settings = {
  deliveries: intSetting('BENCH_WEBHOOK_DELIVERIES', 20_000, 100, 1_000_000),
  endpoints: intSetting('BENCH_WEBHOOK_ENDPOINTS', 4, 1, 100),
  rate: intSetting('BENCH_WEBHOOK_RATE', 300, 1, 10_000),
  seconds: intSetting('BENCH_WEBHOOK_SECONDS', 15, 2, 600),
  prefetch: intSetting('BENCH_WEBHOOK_PREFETCH', 200, 1, 10_000),
  concurrency: intSetting('BENCH_WEBHOOK_CONCURRENCY', 50, 1, 1000),
  dbPool: intSetting('BENCH_WEBHOOK_DB_POOL', 10, 1, 100),
  pollInterval: process.env.BENCH_WEBHOOK_POLL || '200ms',
};
const repoRoot = resolve(import.meta.dirname, '..');
const bench = 'webhooks';
const deadlineMs = 10 * 60_000;
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

/** Counts requests per path; records the first arrival of each `seq` per path. */
class Receiver {
  readonly counts = new Map<string, number>();
  readonly firstArrival = new Map<string, Map<number, number>>();
  private server: Server | undefined;
  port = 0;

  async start(): Promise<void> {
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (c: Buffer) => chunks.push(c));
      request.on('end', () => {
        const at = performance.now();
        const path = request.url ?? '/';
        this.counts.set(path, (this.counts.get(path) ?? 0) + 1);
        if (path.endsWith('-lat')) {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
            seq?: number;
            data?: { seq?: number };
          };
          const seq = body.data?.seq ?? body.seq ?? -1;
          const seen = this.firstArrival.get(path) ?? new Map<number, number>();
          this.firstArrival.set(path, seen);
          if (!seen.has(seq)) seen.set(seq, at);
        }
        response.writeHead(200).end('ok');
      });
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  countWhere(prefix: string): number {
    let total = 0;
    for (const [path, n] of this.counts) if (path.startsWith(prefix)) total += n;
    return total;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((ok) => (this.server ? this.server.close(ok) : ok(undefined)));
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  await new Promise((ok) => server.close(ok));
  return port;
}

async function until(
  what: string,
  probe: () => Promise<boolean> | boolean,
  timeoutMs = deadlineMs,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function spawnChild(script: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: repoRoot,
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // The worker logs JSON on stdout; keep it off ours.
  child.stdout?.resume();
  return child;
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((ok) => child.once('exit', ok));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(10_000)]);
  if (child.exitCode === null) child.kill('SIGKILL');
}

/** Runs `fire(seq)` at `rate` per second for `seconds` without waiting on earlier calls (open loop). */
async function openLoop(
  rate: number,
  seconds: number,
  fire: (seq: number) => Promise<void>,
): Promise<{ sentAt: Map<number, number>; achieved: number }> {
  const sentAt = new Map<number, number>();
  const total = rate * seconds;
  const pending: Promise<void>[] = [];
  const start = performance.now();
  for (let seq = 0; seq < total; seq++) {
    const due = start + (seq * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    sentAt.set(seq, performance.now());
    pending.push(fire(seq));
  }
  await Promise.all(pending);
  return { sentAt, achieved: total / ((performance.now() - start) / 1000) };
}

function latencies(sentAt: Map<number, number>, arrivals: Map<number, number> | undefined): number[] {
  const values: number[] = [];
  for (const [seq, sent] of sentAt) {
    const at = arrivals?.get(seq);
    if (at !== undefined) values.push(at - sent);
  }
  return values;
}

async function main(): Promise<void> {
  let db: TestTenantDatabase | undefined;
  let vhost: TestVhost | undefined;
  let worker: ChildProcess | undefined;
  let bare: ChildProcess | undefined;
  let pool: pg.Pool | undefined;
  let broker: amqp.ChannelModel | undefined;
  const receiver = new Receiver();
  const cleanUp = async () => {
    await stopChild(worker);
    await stopChild(bare);
    await broker?.close().catch(() => undefined);
    await pool?.end().catch(() => undefined);
    await receiver.close().catch(() => undefined);
    await vhost?.drop().catch(() => undefined);
    await db?.drop().catch(() => undefined);
  };
  process.once('SIGINT', () => void cleanUp().then(() => process.exit(130)));
  process.once('SIGTERM', () => void cleanUp().then(() => process.exit(143)));

  try {
    progress(`settings ${JSON.stringify(settings)}`);
    db = await createTestTenantDatabase('whbench');
    vhost = await createTestVhost('whbench');
    await receiver.start();
    pool = new pg.Pool({ connectionString: db.loginUrl, max: 8 });

    // ---- baseline: bare amqplib publish → consume → POST ----
    const bareQueue = 'bench.bare';
    broker = await amqp.connect(vhost.url);
    const channel = await broker.createChannel();
    await channel.assertQueue(bareQueue, { durable: false });
    await channel.assertQueue(`${bareQueue}.lat`, { durable: false });
    const startBare = async (queue: string, path: string) => {
      const child = spawnChild('bench/support/bare-webhook-consumer.ts', {
        AMQP_URL: vhost!.url,
        QUEUE: queue,
        TARGET_URL: receiver.url(path),
        PREFETCH: String(settings.prefetch),
      });
      await new Promise<void>((ok, fail) => {
        child.stdout?.once('data', () => ok());
        child.once('exit', (code) => fail(new Error(`the bare consumer exited (${code})`)));
      });
      return child;
    };
    progress('baseline: throughput');
    bare = await startBare(bareQueue, '/bare');
    const bareStart = performance.now();
    for (let seq = 0; seq < settings.deliveries; seq++) {
      if (!channel.sendToQueue(bareQueue, Buffer.from(JSON.stringify({ seq, type: 'bench.throughput' })))) {
        await new Promise((ok) => channel.once('drain', ok));
      }
    }
    await until(
      'the bare loop to deliver every message',
      () => receiver.countWhere('/bare') >= settings.deliveries,
    );
    const bareThroughput = settings.deliveries / ((performance.now() - bareStart) / 1000);
    await stopChild(bare);
    progress(`baseline: ${bareThroughput.toFixed(0)} deliveries/s; latency at ${settings.rate}/s`);
    bare = await startBare(`${bareQueue}.lat`, '/bare-lat');
    const bareLoop = await openLoop(settings.rate, settings.seconds, (seq) => {
      channel.sendToQueue(`${bareQueue}.lat`, Buffer.from(JSON.stringify({ seq })));
      return Promise.resolve();
    });
    await until(
      'the bare latency run to arrive',
      () => (receiver.firstArrival.get('/bare-lat')?.size ?? 0) >= bareLoop.sentAt.size,
      60_000,
    );
    const bareLatencies = latencies(bareLoop.sentAt, receiver.firstArrival.get('/bare-lat'));
    await stopChild(bare);
    bare = undefined;

    // ---- the product: outbox → relay → RabbitMQ → worker → signed POST → attempt recorded ----
    const tenant = db.names.database.replace(/^tenant_/, '').replaceAll('_', '-');
    const perEndpoint = Math.ceil(settings.deliveries / settings.endpoints);
    const total = perEndpoint * settings.endpoints;
    for (let i = 0; i < settings.endpoints; i++) {
      await pool.query('INSERT INTO app.webhook_endpoints (url, event_types, secret) VALUES ($1, $2, $3)', [
        receiver.url(`/p/${i}`),
        ['bench.throughput'],
        generateWebhookSecret(),
      ]);
    }
    await pool.query('INSERT INTO app.webhook_endpoints (url, event_types, secret) VALUES ($1, $2, $3)', [
      receiver.url('/p-lat'),
      ['bench.latency'],
      generateWebhookSecret(),
    ]);
    const httpPort = await freePort();
    worker = spawnChild('worker/src/main.ts', {
      TENANTRY_TENANT: tenant,
      DATABASE_URL: db.loginUrl,
      AMQP_URL: vhost.url,
      AMQP_QUEUE_PREFIX: `tenant.${tenant}.`,
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: String(httpPort),
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: '0',
      DB_POOL_MAX: String(settings.dbPool),
      WEBHOOKS_ALLOW_LOOPBACK: 'true',
      WEBHOOK_PREFETCH: String(settings.prefetch),
      WEBHOOK_ENDPOINT_CONCURRENCY: String(settings.concurrency),
      OUTBOX_POLL_INTERVAL: settings.pollInterval,
    });
    await until(
      'the worker to be ready',
      () =>
        fetch(`http://127.0.0.1:${httpPort}/readyz`).then(
          (r) => r.ok,
          () => false,
        ),
      60_000,
    );
    progress(`product: throughput, ${perEndpoint} events × ${settings.endpoints} endpoints`);
    const start = performance.now();
    await pool.query(
      `INSERT INTO app.outbox (topic, payload)
       SELECT 'bench.throughput', jsonb_build_object('seq', i) FROM generate_series(1, $1) i`,
      [perEndpoint],
    );
    await until('the receiver to get every delivery', () => receiver.countWhere('/p/') >= total);
    const received = performance.now();
    // Every attempt is recorded before its ack; wait for the records too, and time to the last one.
    let recorded = 0;
    await until('every attempt to be recorded', async () => {
      const { rows } = await pool!.query<{ n: string }>(
        `SELECT count(*) AS n FROM app.webhook_attempts a
           JOIN app.webhook_deliveries d ON d.id = a.delivery_id
           JOIN app.webhook_messages m ON m.id = d.message_id
          WHERE m.event_type = 'bench.throughput' AND a.outcome = 'succeeded'`,
      );
      recorded = Number(rows[0]?.n ?? 0);
      return recorded >= total;
    });
    const seconds = (performance.now() - start) / 1000;
    const throughput = total / seconds;
    progress(
      `product: ${throughput.toFixed(0)} deliveries/s (all received after ${((received - start) / 1000).toFixed(1)} s)`,
    );

    progress(`product: latency at ${settings.rate}/s for ${settings.seconds} s`);
    const loop = await openLoop(settings.rate, settings.seconds, async (seq) => {
      await pool!.query(`INSERT INTO app.outbox (topic, payload) VALUES ('bench.latency', $1)`, [
        JSON.stringify({ seq }),
      ]);
    });
    await until(
      'the latency run to arrive',
      () => (receiver.firstArrival.get('/p-lat')?.size ?? 0) >= loop.sentAt.size,
      120_000,
    );
    const productLatencies = latencies(loop.sentAt, receiver.firstArrival.get('/p-lat'));

    emit(`${bench}.throughput`, 'deliveries_per_second', throughput, '1/s', bareThroughput);
    emit(`${bench}.throughput`, 'deliveries', total, 'count', settings.deliveries);
    emit(`${bench}.throughput`, 'attempts_recorded', recorded, 'count', null);
    emit(`${bench}.latency`, 'rate', loop.achieved, '1/s', bareLoop.achieved);
    emit(
      `${bench}.latency`,
      'enqueue_to_first_attempt_p50_ms',
      percentile(productLatencies, 50),
      'ms',
      percentile(bareLatencies, 50),
    );
    emit(
      `${bench}.latency`,
      'enqueue_to_first_attempt_p99_ms',
      percentile(productLatencies, 99),
      'ms',
      percentile(bareLatencies, 99),
    );
    emit(
      `${bench}.latency`,
      'enqueue_to_first_attempt_max_ms',
      Math.max(...productLatencies),
      'ms',
      Math.max(...bareLatencies),
    );
  } finally {
    await cleanUp();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    progress(`failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
