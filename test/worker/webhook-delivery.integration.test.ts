// Outgoing webhooks end to end on real PostgreSQL and RabbitMQ: a tenant
// database built from the shipped migrations, a private vhost with a tenant
// user limited to its prefix, and a receiver on loopback.
import { expect } from 'chai';
import amqp from 'amqplib';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import pg from 'pg';
import { Webhook } from 'standardwebhooks';
import { createLogger } from '../../lib/logger.js';
import { quoteIdent } from '../../lib/tenant-schema/migrate.js';
import { outboxChannel } from '../../lib/tenant-schema/migrations.js';
import { generateWebhookSecret } from '../../lib/webhooks/standard-webhooks.js';
import { tenantNames, type TenantNames } from '../../lib/tenant/index.js';
import { RabbitMqAdmin } from '../../operator/src/messaging/rabbitmq-admin.js';
import { appRoleName } from '../../operator/src/sql/tenant-database.js';
import { Deliverer } from '../../worker/src/deliverer.js';
import { CircuitBreaker } from '../../worker/src/circuit-breaker.js';
import { HttpSender } from '../../worker/src/http-sender.js';
import { OutboxListener } from '../../worker/src/outbox-listener.js';
import { OutboxRelay } from '../../worker/src/outbox-relay.js';
import { RetrySchedule } from '../../worker/src/schedule.js';
import { attemptHeader, webhookTopology } from '../../worker/src/topology.js';
import { WebhookStore } from '../../worker/src/webhook-store.js';
import { createTestTenantDatabase, type TestTenantDatabase } from '../harness/tenant-database.js';
import { createTestVhost, serviceUrls, uniqueSuffix, type TestVhost } from '../harness/services.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { eventually } from '../harness/wait.js';
import { WebhookReceiver as Receiver } from '../harness/webhook-harness.js';
import { repoRoot } from '../harness/repo-root.js';

/** `eventually` for probes that need no await. */
function until<T>(
  what: string,
  probe: () => T | undefined,
  options?: { timeoutMs?: number; intervalMs?: number },
) {
  return eventually(what, () => Promise.resolve(probe()), options);
}

const logger = createLogger('webhook-test', process.env.TEST_LOG_LEVEL ?? 'silent');

interface WorkerOptions {
  schedule?: number[];
  timeoutMs?: number;
  prefetch?: number;
  concurrency?: number;
  breakerThreshold?: number;
  breakerCooldownMs?: number;
  disableAfterMs?: number;
  /** AMQP URL for the relay, e.g. through a TCP proxy. */
  relayAmqpUrl?: string;
  pollIntervalMs?: number;
  /** Wake the relay on outbox notifications, as worker/src/main.ts does. */
  listen?: boolean;
}

interface RunningWorker {
  prefix: string;
  deliverer: Deliverer;
  relay: OutboxRelay;
  listener: OutboxListener | undefined;
  stop(): Promise<void>;
}

describe('outgoing webhooks: relay, retry topology and delivery worker', function () {
  this.timeout(120_000);

  let db: TestTenantDatabase;
  let vhost: TestVhost;
  let app: pg.Pool;
  let admin: pg.Pool;
  let broker: amqp.ChannelModel;
  let brokerChannel: amqp.Channel;
  let tenantAmqpUrl: string;
  let rabbit: RabbitMqAdmin;
  let names: TenantNames;
  const tenantName = `wh-${uniqueSuffix()}`;
  const receiver = new Receiver();
  const running: RunningWorker[] = [];
  const children: ChildProcess[] = [];

  before(async () => {
    db = await createTestTenantDatabase('webhooks');
    vhost = await createTestVhost('webhooks');
    app = new pg.Pool({ connectionString: db.loginUrl, max: 10 });
    admin = new pg.Pool({ connectionString: db.superuserUrl, max: 2 });
    // The worker logs in as the tenant's own RabbitMQ user, which may touch only `tenant.<name>.*`.
    names = tenantNames(tenantName);
    rabbit = new RabbitMqAdmin(serviceUrls.rabbitmqManagement, vhost.name);
    const password = randomBytes(12).toString('hex');
    await rabbit.ensureTenantUser(names, password);
    const url = new URL(serviceUrls.rabbitmq);
    url.username = encodeURIComponent(names.amqpUser);
    url.password = password;
    url.pathname = `/${encodeURIComponent(vhost.name)}`;
    tenantAmqpUrl = url.toString();
    broker = await amqp.connect(vhost.url);
    brokerChannel = await broker.createChannel();
    await receiver.start();
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await Promise.allSettled(running.map((w) => w.stop()));
    await receiver.close().catch(() => undefined);
    await broker?.close().catch(() => undefined);
    await app?.end();
    await admin?.end();
    await rabbit?.deleteTenantUser(names).catch(() => undefined);
    await vhost?.drop();
    await db?.drop();
  });

  beforeEach(async () => {
    // Each test starts with no endpoints and nothing left to relay.
    await app.query('DELETE FROM webhook_endpoints');
    await app.query('UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL');
    receiver.received.length = 0;
    receiver.behaviours.clear();
  });

  afterEach(async () => {
    await Promise.allSettled(running.splice(0).map((w) => w.stop()));
  });

  /** A worker in this process, with its own queue prefix so tests never share queues. */
  function startWorker(options: WorkerOptions = {}): RunningWorker {
    const prefix = `${names.queuePrefix}t${uniqueSuffix()}.`;
    const schedule = new RetrySchedule(options.schedule ?? [0, 200, 400, 600]);
    const topology = webhookTopology(prefix, schedule.tiers);
    const pool = new pg.Pool({ connectionString: db.loginUrl, max: 8 });
    const store = new WebhookStore(pool);
    const concurrency = options.concurrency ?? 10;
    const deliverer = new Deliverer({
      amqpUrl: tenantAmqpUrl,
      topology,
      schedule,
      store,
      sender: new HttpSender({ timeoutMs: options.timeoutMs ?? 5_000, allowLoopback: true }),
      gate: new CircuitBreaker({
        concurrency,
        maxHeld: concurrency * 2,
        failureThreshold: options.breakerThreshold ?? 1000,
        cooldownMs: options.breakerCooldownMs ?? 1000,
      }),
      prefetch: options.prefetch ?? 100,
      disableAfterMs: options.disableAfterMs ?? 86_400_000,
      logger,
    });
    const relay = new OutboxRelay({
      amqpUrl: options.relayAmqpUrl ?? tenantAmqpUrl,
      topology,
      store,
      batchSize: 200,
      pollIntervalMs: options.pollIntervalMs ?? 50,
      logger,
      confirmTimeoutMs: 5_000,
    });
    const listener = options.listen
      ? new OutboxListener({
          connectionString: db.loginUrl,
          logger,
          onNotify: () => relay.poke(),
          minDelayMs: 50,
        })
      : undefined;
    deliverer.start();
    relay.start();
    listener?.start();
    const worker: RunningWorker = {
      prefix,
      deliverer,
      relay,
      listener,
      stop: async () => {
        await listener?.stop();
        await relay.stop();
        await deliverer.drain(5_000);
        await pool.end();
      },
    };
    running.push(worker);
    return worker;
  }

  async function ready(worker: RunningWorker): Promise<void> {
    await until('the worker to connect and consume', () =>
      worker.deliverer.ready && worker.relay.ready ? true : undefined,
    );
  }

  async function addEndpoint(
    path: string,
    eventTypes: string[],
    extra: { previousSecret?: string } = {},
  ): Promise<{ id: string; secret: string }> {
    const secret = generateWebhookSecret();
    const { rows } = await app.query<{ id: string }>(
      `INSERT INTO webhook_endpoints (url, event_types, secret, previous_secret, previous_secret_expires_at)
       VALUES ($1, $2, $3, $4, CASE WHEN $4::text IS NULL THEN NULL ELSE now() + interval '1 hour' END)
       RETURNING id`,
      [receiver.url(path), eventTypes, secret, extra.previousSecret ?? null],
    );
    return { id: rows[0]!.id, secret };
  }

  async function emit(topic: string, count = 1): Promise<void> {
    await app.query(
      `INSERT INTO outbox (topic, payload)
       SELECT $1, jsonb_build_object('n', i, 'email', 'user' || i || '@example.com') FROM generate_series(1, $2) i`,
      [topic, count],
    );
  }

  async function deliveriesOf(endpointId: string) {
    const { rows } = await app.query<{
      id: string;
      status: string;
      attempts: number;
      deferrals: number;
      last_error: string | null;
    }>('SELECT id, status, attempts, deferrals, last_error FROM webhook_deliveries WHERE endpoint_id = $1', [
      endpointId,
    ]);
    return rows;
  }

  async function attemptsOf(endpointId: string) {
    const { rows } = await app.query<{ attempt: number; response_status: number | null; outcome: string }>(
      `SELECT a.attempt, a.response_status, a.outcome FROM webhook_attempts a
         JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = $1 ORDER BY a.id`,
      [endpointId],
    );
    return rows;
  }

  async function unsentCount(): Promise<number> {
    const { rows } = await app.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL',
    );
    return rows[0]!.n;
  }

  it('signs per Standard Webhooks with both secrets during a rotation, and records the attempt', async () => {
    const worker = startWorker();
    const previous = generateWebhookSecret();
    const endpoint = await addEndpoint('/signed', ['user.created'], { previousSecret: previous });
    const other = await addEndpoint('/other', ['invoice.*']);
    await emit('user.created');
    await emit('subscription.updated');

    const [request] = await eventually('the signed request', () =>
      Promise.resolve(receiver.on('/signed').length > 0 ? receiver.on('/signed') : undefined),
    );
    const headers = {
      'webhook-id': request!.headers['webhook-id']!,
      'webhook-timestamp': request!.headers['webhook-timestamp']!,
      'webhook-signature': request!.headers['webhook-signature']!,
    };
    expect(headers['webhook-id']).to.match(/^msg_[A-Za-z0-9]+$/);
    expect(headers['webhook-signature'].split(' ')).to.have.length(2);
    const verified = new Webhook(endpoint.secret).verify(request!.body, headers) as Record<string, unknown>;
    expect(verified.type).to.equal('user.created');
    expect(verified.data).to.deep.equal({ n: 1, email: 'user1@example.com' });
    // A receiver still on the previous secret accepts it too; a stranger's secret does not.
    expect(() => new Webhook(previous).verify(request!.body, headers)).not.to.throw();
    expect(() => new Webhook(generateWebhookSecret()).verify(request!.body, headers)).to.throw();

    await eventually('the delivery to be recorded', async () => {
      const [d] = await deliveriesOf(endpoint.id);
      return d?.status === 'succeeded' ? d : undefined;
    });
    expect(await attemptsOf(endpoint.id)).to.deep.equal([
      { attempt: 1, response_status: 200, outcome: 'succeeded' },
    ]);
    const { rows } = await app.query<{ id: string; event_type: string }>(
      'SELECT id, event_type FROM webhook_messages ORDER BY created_at DESC LIMIT 2',
    );
    expect(rows.map((r) => r.event_type).sort()).to.deep.equal(['subscription.updated', 'user.created']);
    expect(rows.map((r) => r.id)).to.include(headers['webhook-id']);
    // The unsubscribed endpoint gets nothing; every row is relayed.
    expect(await deliveriesOf(other.id)).to.deep.equal([]);
    await eventually('the outbox to drain', async () => ((await unsentCount()) === 0 ? true : undefined));
    expect(worker.relay.relayed).to.be.at.least(2);
  });

  it('retries through every delay tier, then parks the message and stores it as failed', async () => {
    const schedule = [0, 300, 600, 900];
    const worker = startWorker({ schedule });
    receiver.behaviours.set('/broken', (_req, res) => res.writeHead(500).end('boom'));
    const endpoint = await addEndpoint('/broken', ['order.*']);
    await emit('order.placed');

    const [delivery] = await eventually(
      'the delivery to fail',
      async () => {
        const rows = await deliveriesOf(endpoint.id);
        return rows[0]?.status === 'failed' ? rows : undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(delivery).to.include({ attempts: 4, last_error: 'HTTP 500' });
    expect((await attemptsOf(endpoint.id)).map((a) => a.attempt)).to.deep.equal([1, 2, 3, 4]);
    const times = receiver.on('/broken').map((r) => r.at);
    expect(times).to.have.length(4);
    for (let i = 1; i < times.length; i++) {
      // Each retry waited in its own tier's TTL queue.
      expect(times[i]! - times[i - 1]!).to.be.at.least(schedule[i]! - 50);
    }
    const ids = new Set(receiver.on('/broken').map((r) => r.headers['webhook-id']));
    expect(ids.size).to.equal(1);

    const parked = await eventually('the parked message', async () => {
      const message = await brokerChannel.get(`${worker.prefix}webhooks.parked`, { noAck: true });
      return message || undefined;
    });
    expect(parked.properties.messageId).to.equal([...ids][0]);
    expect(parked.properties.headers?.[attemptHeader]).to.equal(4);
    expect(JSON.parse(parked.content.toString())).to.include({ delivery_id: delivery!.id });
    for (const tier of [300, 600, 900]) {
      const q = await brokerChannel.checkQueue(`${worker.prefix}webhooks.delay.${tier}`);
      expect(q.messageCount).to.equal(0);
    }
  });

  it('honours Retry-After by waiting in a tier at least that long', async () => {
    startWorker({ schedule: [0, 200, 2500, 5000] });
    receiver.behaviours.set('/busy', (_req, res, nth) => {
      if (nth === 1) res.writeHead(429, { 'retry-after': '2' }).end();
      else res.writeHead(204).end();
    });
    const endpoint = await addEndpoint('/busy', []);
    await emit('user.updated');
    await eventually('the retried delivery', async () => {
      const rows = await deliveriesOf(endpoint.id);
      return rows[0]?.status === 'succeeded' ? rows : undefined;
    });
    const [first, second] = receiver.on('/busy').map((r) => r.at);
    // Without Retry-After the 200 ms tier would have been used.
    expect(second! - first!).to.be.at.least(2000);
    expect((await attemptsOf(endpoint.id)).map((a) => a.response_status)).to.deep.equal([429, 204]);
  });

  it('disables an endpoint that answers 410 Gone and tells the tenant through the outbox', async () => {
    startWorker();
    receiver.behaviours.set('/gone', (_req, res) => res.writeHead(410).end());
    const endpoint = await addEndpoint('/gone', ['user.deleted']);
    await emit('user.deleted');
    const row = await eventually('the endpoint to be disabled', async () => {
      const { rows } = await app.query<{ enabled: boolean; disabled_reason: string | null }>(
        'SELECT enabled, disabled_reason FROM webhook_endpoints WHERE id = $1',
        [endpoint.id],
      );
      return rows[0]?.enabled === false ? rows[0] : undefined;
    });
    expect(row.disabled_reason).to.match(/410/);
    const deliveries = await deliveriesOf(endpoint.id);
    expect(deliveries).to.have.length(1);
    expect(deliveries[0]).to.include({ status: 'failed', attempts: 1 });
    const events = await app.query<{ payload: { endpoint_id: string; reason: string } }>(
      `SELECT payload FROM outbox WHERE topic = 'webhook.endpoint.disabled'`,
    );
    expect(events.rows.map((r) => r.payload.endpoint_id)).to.include(endpoint.id);
    // A disabled endpoint gets no new deliveries.
    await emit('user.deleted');
    await eventually('the second event to be relayed', async () =>
      (await unsentCount()) === 0 ? true : undefined,
    );
    expect(await deliveriesOf(endpoint.id)).to.have.length(1);
    expect(receiver.on('/gone')).to.have.length(1);
  });

  it('disables an endpoint that keeps failing for the configured window', async () => {
    startWorker({ schedule: [0, 200, 200, 200, 200, 200, 200, 200, 200], disableAfterMs: 700 });
    receiver.behaviours.set('/flaky', (_req, res) => res.writeHead(503).end());
    const endpoint = await addEndpoint('/flaky', []);
    await emit('payment.failed');
    const row = await eventually('the failing endpoint to be disabled', async () => {
      const { rows } = await app.query<{ enabled: boolean; disabled_reason: string | null }>(
        'SELECT enabled, disabled_reason FROM webhook_endpoints WHERE id = $1',
        [endpoint.id],
      );
      return rows[0]?.enabled === false ? rows[0] : undefined;
    });
    expect(row.disabled_reason).to.match(/failing continuously/);
    const attempts = await attemptsOf(endpoint.id);
    expect(attempts.length).to.be.within(2, 8);
    const events = await app.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM outbox WHERE topic = 'webhook.endpoint.disabled' AND payload->>'endpoint_id' = $1`,
      [endpoint.id],
    );
    expect(events.rows[0]?.n).to.equal(1);
  });

  it('opens the circuit and defers messages without counting attempts', async () => {
    startWorker({ schedule: [0, 300, 600, 900, 1200], breakerThreshold: 2, breakerCooldownMs: 5_000 });
    receiver.behaviours.set('/down', (_req, res) => res.writeHead(502).end());
    const endpoint = await addEndpoint('/down', []);
    // Two failures in a row open the circuit.
    for (let i = 1; i <= 2; i++) {
      await emit('message.sent');
      await eventually(`failure ${i}`, async () =>
        (await attemptsOf(endpoint.id)).length === i ? true : undefined,
      );
    }
    await emit('message.sent', 10);
    const rows = await eventually('deferrals', async () => {
      const all = await deliveriesOf(endpoint.id);
      return all.filter((r) => r.status === 'deferred').length === 12 ? all : undefined;
    });
    // Within the cooldown nothing else reached the endpoint, and no deferral counted as an attempt.
    expect(await attemptsOf(endpoint.id)).to.have.length(2);
    expect(receiver.on('/down')).to.have.length(2);
    for (const d of rows) {
      expect(d.deferrals).to.be.at.least(1);
      expect(d.last_error).to.match(/circuit open/);
    }
    expect(rows.filter((d) => d.attempts === 0)).to.have.length(10);
  });

  it('marks outbox rows sent only once the broker has them, and loses none when the broker connection is cut', async () => {
    const amqpTarget = new URL(serviceUrls.rabbitmq);
    let proxy: TcpProxy | undefined;
    try {
      proxy = await startTcpProxy(Number(amqpTarget.port || 5672), amqpTarget.hostname);
      const relayUrl = new URL(tenantAmqpUrl);
      relayUrl.hostname = '127.0.0.1';
      relayUrl.port = String(proxy.port);
      const worker = startWorker({ relayAmqpUrl: relayUrl.toString() });
      await ready(worker);
      const endpoint = await addEndpoint('/relay', []);

      // Broker unreachable: writes are accepted, nothing is marked sent.
      await proxy.pause();
      await emit('user.created', 20);
      await new Promise((ok) => setTimeout(ok, 1500));
      expect(await unsentCount()).to.equal(20);
      expect(await deliveriesOf(endpoint.id)).to.deep.equal([]);
      await proxy.resume();
      await eventually('the held rows to be relayed', async () =>
        (await unsentCount()) === 0 ? true : undefined,
      );

      // Cut the connection again while a larger load is being relayed.
      await emit('user.updated', 400);
      await new Promise((ok) => setTimeout(ok, 30));
      await proxy.pause();
      await new Promise((ok) => setTimeout(ok, 500));
      await proxy.resume();
      await until(
        'every event to be delivered',
        () => {
          const ids = new Set(receiver.on('/relay').map((r) => r.headers['webhook-id']));
          return ids.size >= 420 ? ids : undefined;
        },
        { timeoutMs: 60_000 },
      );
      expect(await unsentCount()).to.equal(0);
      // The receiver sees a delivery just before its attempt is recorded: wait for the records.
      const succeeded = async () => {
        const { rows } = await app.query<{ n: number }>(
          `SELECT count(DISTINCT m.outbox_id)::int AS n FROM webhook_messages m
             JOIN webhook_deliveries d ON d.message_id = m.id
            WHERE d.endpoint_id = $1 AND d.status = 'succeeded'`,
          [endpoint.id],
        );
        return rows[0]?.n ?? 0;
      };
      await eventually('every delivery to be recorded', async () =>
        (await succeeded()) >= 420 ? true : undefined,
      );
      expect(await succeeded()).to.equal(420);
    } finally {
      await proxy?.close();
    }
  });

  it('notifies the outbox channel once per committed statement and topic root', async () => {
    const client = new pg.Client({ connectionString: db.loginUrl });
    await client.connect();
    try {
      const payloads: string[] = [];
      client.on('notification', (message) => payloads.push(`${message.channel} ${message.payload}`));
      await client.query(`LISTEN ${outboxChannel}`);
      const writer = await app.connect();
      try {
        await writer.query('BEGIN');
        await writer.query(
          `INSERT INTO outbox (topic, payload) VALUES ('user.created', '{}'), ('user.updated', '{}'),
             ('integration.user-service', '{}')`,
        );
        await writer.query(`INSERT INTO outbox (topic, payload) VALUES ('user.deleted', '{}')`);
        await new Promise((ok) => setTimeout(ok, 200));
        // Nothing before the commit.
        expect(payloads).to.deep.equal([]);
        await writer.query('COMMIT');
      } finally {
        writer.release();
      }
      await until('the notifications', () => (payloads.length >= 2 ? true : undefined));
      await new Promise((ok) => setTimeout(ok, 200));
      expect(payloads.sort()).to.deep.equal([`${outboxChannel} integration`, `${outboxChannel} user`]);
    } finally {
      await client.end();
    }
  });

  it('relays at once on an outbox notification, and again after the listening connection is cut', async () => {
    // With a one-minute poll, only the notification can bring these rows out in time.
    const worker = startWorker({ pollIntervalMs: 60_000, listen: true });
    await ready(worker);
    await until('the listener to connect', () => (worker.listener?.connected ? true : undefined));
    const endpoint = await addEndpoint('/woken', []);
    const deliveredWithin = async (topic: string, ms: number) => {
      const started = Date.now();
      await emit(topic);
      await until(`${topic} to arrive`, () => (receiver.on('/woken').length > 0 ? true : undefined), {
        timeoutMs: ms,
        intervalMs: 10,
      });
      return Date.now() - started;
    };
    expect(await deliveredWithin('user.created', 5_000)).to.be.below(5_000);

    // The database ends the listening session (as a restart would): the listener reconnects.
    receiver.received.length = 0;
    const listeningPids = async () => {
      const { rows } = await admin.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = $1`,
        [`LISTEN ${outboxChannel}`],
      );
      return rows.map((r) => r.pid);
    };
    const [before] = await listeningPids();
    expect(before).to.be.a('number');
    await admin.query('SELECT pg_terminate_backend($1)', [before]);
    await eventually('the listener to reconnect', async () => {
      const pids = await listeningPids();
      return pids.length === 1 && pids[0] !== before && worker.listener?.connected ? true : undefined;
    });
    expect(await deliveredWithin('user.updated', 5_000)).to.be.below(5_000);
    expect((await deliveriesOf(endpoint.id)).length).to.equal(2);
  });

  it('returns every message of a batch whose recording fails to the queue, and loses none', async () => {
    const worker = startWorker({ prefetch: 50 });
    await ready(worker);
    const endpoint = await addEndpoint('/unrecorded', []);
    const appRole = quoteIdent(appRoleName(db.names));
    const count = 40;
    // Every attempt is sent, but no batch of them can be recorded.
    await admin.query(`REVOKE INSERT ON app.webhook_attempts FROM ${appRole}`);
    try {
      await emit('order.shipped', count);
      await until(
        'every event to be attempted',
        () => (receiver.idsOn('/unrecorded').size >= count ? true : undefined),
        { timeoutMs: 20_000 },
      );
      const sentBefore = receiver.on('/unrecorded').length;
      await new Promise((ok) => setTimeout(ok, 2_500));
      // Nothing was recorded, and nothing was acked: the deliveries are still open and
      // are attempted again, each about once a second (no hot loop).
      expect(await attemptsOf(endpoint.id)).to.deep.equal([]);
      const open = await deliveriesOf(endpoint.id);
      expect(open).to.have.length(count);
      expect(open.filter((d) => d.status === 'succeeded')).to.deep.equal([]);
      const resent = receiver.on('/unrecorded').length - sentBefore;
      expect(resent).to.be.within(count, count * 5);
    } finally {
      await admin.query(`GRANT INSERT ON app.webhook_attempts TO ${appRole}`);
    }
    const done = await eventually(
      'every delivery to be recorded',
      async () => {
        const rows = await deliveriesOf(endpoint.id);
        return rows.every((d) => d.status === 'succeeded') ? rows : undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(done).to.have.length(count);
    // One recorded attempt per delivery: the failed batches left nothing behind.
    const attempts = await attemptsOf(endpoint.id);
    expect(attempts).to.have.length(count);
    expect(new Set(attempts.map((a) => `${a.attempt} ${a.outcome}`))).to.deep.equal(new Set(['1 succeeded']));
    await eventually('the work queue to be empty', async () => {
      const q = await brokerChannel.checkQueue(`${worker.prefix}webhooks.work`);
      return q.messageCount === 0 ? true : undefined;
    });
  });

  it('keeps healthy endpoints at full speed while one endpoint times out', async function () {
    this.timeout(180_000);
    startWorker({
      timeoutMs: 1_000,
      breakerThreshold: 3,
      breakerCooldownMs: 2_000,
      concurrency: 4,
      schedule: [0, 500, 1000, 2000, 4000],
    });
    const healthy = [];
    for (let i = 0; i < 10; i++) healthy.push(await addEndpoint(`/healthy/${i}`, ['hol.*']));
    receiver.behaviours.set('/dead', () => undefined); // never answers
    await addEndpoint('/dead', ['hol.mixed']);
    // The base rounds carry an eleventh delivery per event too, to an endpoint that answers, so the
    // two kinds of round differ only in that endpoint being dead, not in the amount of work.
    await addEndpoint('/spare', ['hol.base']);
    const perRound = 150;
    const healthyPaths = new Set(healthy.map((_, i) => `/healthy/${i}`));
    const healthyCount = () => receiver.received.filter((r) => healthyPaths.has(r.path)).length;

    const round = async (topic: string): Promise<number> => {
      receiver.received.length = 0;
      const started = Date.now();
      await emit(topic, perRound);
      await until(
        `${topic} to reach the healthy endpoints`,
        () => (healthyCount() >= perRound * healthy.length ? true : undefined),
        { timeoutMs: 90_000, intervalMs: 20 },
      );
      return (perRound * healthy.length) / ((Date.now() - started) / 1000);
    };
    await round('hol.warmup');
    // Alternate the rounds so load from elsewhere on the machine hits both sides alike.
    let alone = 0;
    let withDead = 0;
    const pairs = 3;
    for (let i = 0; i < pairs; i++) {
      alone += (await round('hol.base')) / pairs;
      withDead += (await round('hol.mixed')) / pairs;
    }
    expect(
      withDead,
      `healthy deliveries/s: ${alone.toFixed(0)} alone, ${withDead.toFixed(0)} with a dead endpoint`,
    ).to.be.at.least(alone * 0.8);
  });

  it('loses no delivery when the worker process is SIGKILLed mid-load', async function () {
    this.timeout(180_000);
    const prefix = `${names.queuePrefix}k${uniqueSuffix()}.`;
    const endpoints = [];
    for (let i = 0; i < 3; i++) endpoints.push(await addEndpoint(`/kill/${i}`, []));
    receiver.behaviours.set('/kill/0', (_req, res) => setTimeout(() => res.writeHead(200).end(), 5));
    const accepted = 300;
    const spawnWorker = (metricsPort = 0) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'worker/src/main.ts'], {
        cwd: repoRoot,
        env: {
          ...process.env,
          TENANTRY_TENANT: tenantName,
          DATABASE_URL: db.loginUrl,
          AMQP_URL: tenantAmqpUrl,
          AMQP_QUEUE_PREFIX: prefix,
          HTTP_HOST: '127.0.0.1',
          HTTP_PORT: '0',
          METRICS_HOST: '127.0.0.1',
          METRICS_PORT: String(metricsPort),
          WEBHOOKS_ALLOW_LOOPBACK: 'true',
          WEBHOOK_RETRY_SCHEDULE: '0,200ms,400ms,800ms',
          OUTBOX_POLL_INTERVAL: '50ms',
          LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      children.push(child);
      return child;
    };
    const first = spawnWorker();
    await emit('load.event', accepted);
    const keys = () => new Set(receiver.received.map((r) => `${r.path} ${r.headers['webhook-id']}`));
    await until('some deliveries before the kill', () => (keys().size >= 100 ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 20,
    });
    first.kill('SIGKILL');
    await new Promise((ok) => first.once('exit', ok));
    const deliveredAtKill = keys().size;
    expect(deliveredAtKill).to.be.below(accepted * endpoints.length);

    const metricsPort = await freePort();
    const second = spawnWorker(metricsPort);
    const delivered = await until(
      'every accepted delivery to arrive',
      () => (keys().size >= accepted * endpoints.length ? keys() : undefined),
      { timeoutMs: 120_000 },
    );
    expect(delivered.size).to.equal(accepted * endpoints.length);
    // The second worker's metrics count at least every delivery the first one had not made.
    const metrics = await eventually(
      'the second worker to count its attempts',
      async () => {
        const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        const succeeded = Number(
          /^tenantry_worker_webhook_attempts_total\{outcome="succeeded"\} (\d+)/m.exec(text)?.[1],
        );
        return succeeded >= accepted * endpoints.length - deliveredAtKill ? text : undefined;
      },
      { timeoutMs: 10_000 },
    );
    expect(metrics).to.match(/^tenantry_worker_ready 1$/m);
    expect(metrics).to.match(/^tenantry_worker_webhook_attempt_duration_seconds_count \d+/m);
    expect(metrics).to.match(/^tenantry_worker_outbox_relayed_total\{relay="webhooks"\} \d+/m);
    expect(metrics).to.match(/^tenantry_worker_process_resident_memory_bytes \d+/m);
    second.kill('SIGTERM');
    const code = await new Promise((ok) => second.once('exit', ok));
    expect(code).to.equal(0);
    const { rows } = await app.query<{ status: string; n: number }>(
      `SELECT status, count(*)::int AS n FROM webhook_deliveries WHERE endpoint_id = ANY($1::uuid[]) GROUP BY status`,
      [endpoints.map((e) => e.id)],
    );
    expect(rows).to.deep.equal([{ status: 'succeeded', n: accepted * endpoints.length }]);
  });
});

/** A loopback port nothing listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
