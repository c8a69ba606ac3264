// Outgoing webhooks through real outages of the machine's RabbitMQ and
// PostgreSQL, against a Tenant provisioned by the real operator, the API and
// the tenant worker (relay and deliverer in-process as the tenant's own users).
// Every case counts accepted messages (outbox rows that committed) and
// delivered ones (distinct events at the receiver): they must match. A
// message may arrive twice (at-least-once; same webhook-id), never not at all.
//
// These restart services other suites use: each outage lasts a few seconds and
// the service is always started again in `finally`, then waited for.
import { expect } from 'chai';
import pg from 'pg';
import { startTestApi, type TestApi } from '../harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../harness/platform.js';
import { seedUser, signIn } from '../harness/seeded-tenants.js';
import { startPostgres, startRabbitMq, stopPostgres, stopRabbitMq } from '../harness/service-outages.js';
import { eventually } from '../harness/wait.js';
import { startTestWorker, tenantAmqp, WebhookReceiver, type TestWorker } from '../harness/webhook-harness.js';

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

interface LoadRun {
  /** Sequence numbers whose INSERT was acknowledged. */
  acknowledged: Set<number>;
  done: Promise<void>;
}

describe('outgoing webhooks through broker and database outages', function () {
  this.timeout(300_000);
  let platform: TestPlatform;
  let api: TestApi;
  let worker: TestWorker;
  let tenant: string;
  let token: string;
  let outbox: pg.Pool;
  const receiver = new WebhookReceiver();
  const path = '/faults';

  /** Inserts `count` outbox rows at `perSecond`, retrying each until it commits or the deadline passes. */
  function load(run: string, count: number, perSecond: number): LoadRun {
    const acknowledged = new Set<number>();
    const deadline = Date.now() + 120_000;
    const done = (async () => {
      const started = Date.now();
      for (let seq = 0; seq < count; seq++) {
        const due = started + (seq * 1000) / perSecond;
        if (due > Date.now()) await sleep(due - Date.now());
        while (Date.now() < deadline) {
          try {
            await outbox.query('INSERT INTO app.outbox (topic, payload) VALUES ($1, $2)', [
              'fault.load',
              JSON.stringify({ run, seq }),
            ]);
            acknowledged.add(seq);
            break;
          } catch {
            await sleep(100);
          }
        }
      }
    })();
    return { acknowledged, done };
  }

  /** What the tenant database holds for a run: the truth of what was accepted. */
  async function accepted(run: string): Promise<Set<number>> {
    const { rows } = await outbox.query<{ seq: number }>(
      `SELECT (payload->>'seq')::int AS seq FROM app.outbox WHERE topic = 'fault.load' AND payload->>'run' = $1`,
      [run],
    );
    return new Set(rows.map((r) => r.seq));
  }

  function delivered(run: string): { seqs: Set<number>; requests: number; webhookIds: Set<string> } {
    const seqs = new Set<number>();
    const webhookIds = new Set<string>();
    let requests = 0;
    for (const r of receiver.on(path)) {
      const event = JSON.parse(r.body) as { type: string; data: { run?: string; seq?: number } };
      if (event.type !== 'fault.load' || event.data.run !== run) continue;
      requests += 1;
      seqs.add(event.data.seq!);
      webhookIds.add(r.headers['webhook-id']!);
    }
    return { seqs, requests, webhookIds };
  }

  /** Waits until every accepted message of the run was delivered, then checks the counts match. */
  async function expectAllDelivered(run: string, load: LoadRun): Promise<void> {
    const truth = await eventually('the accepted rows to be readable', () => accepted(run), {
      timeoutMs: 60_000,
    });
    // No acknowledged write was lost by the database either.
    for (const seq of load.acknowledged)
      expect(truth.has(seq), `acknowledged row ${seq} is missing`).to.equal(true);
    await eventually(
      `all ${truth.size} accepted messages of ${run} to be delivered`,
      () => Promise.resolve(delivered(run).seqs.size >= truth.size ? true : undefined),
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    const got = delivered(run);
    const missing = [...truth].filter((seq) => !got.seqs.has(seq));
    expect(missing, `accepted ${truth.size}, delivered ${got.seqs.size}`).to.deep.equal([]);
    expect(got.seqs.size).to.equal(truth.size);
    // One message per accepted row: duplicates are redeliveries of the same webhook-id.
    expect(got.webhookIds.size).to.equal(truth.size);
    expect(got.requests).to.be.at.least(truth.size);
  }

  before(async () => {
    platform = await startTestPlatform('whfaults');
    tenant = platform.tenantName('a');
    await platform.applyTenant(tenant);
    await platform.waitReady(tenant);
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace, {
      webhooksAllowLoopback: true,
    });
    await seedUser(api, tenant, 'owner', `owner@${tenant}.example`);
    token = (await signIn(api, tenant, `owner@${tenant}.example`)).access;
    await receiver.start();
    const endpoint = await api.call('POST', '/api/webhooks/endpoints', {
      token,
      body: { url: receiver.url(path), event_types: ['fault.*', 'user.created'] },
    });
    expect(endpoint.status, JSON.stringify(endpoint.body)).to.equal(201);
    const databaseUrl = api.directory.servable(tenant).credentials.uri;
    outbox = new pg.Pool({ connectionString: databaseUrl, max: 2, connectionTimeoutMillis: 2_000 });
    outbox.on('error', () => undefined);
    const amqp = await tenantAmqp(platform.cp, tenant);
    worker = startTestWorker({ databaseUrl, amqpUrl: amqp.url, queuePrefix: amqp.queuePrefix });
    await worker.ready();
  });

  after(async () => {
    // Whatever happened, leave the shared services running.
    await startRabbitMq().catch(() => undefined);
    await startPostgres().catch(() => undefined);
    await worker?.stop();
    await outbox?.end();
    await receiver.close();
    await api?.close();
    await platform?.cleanup();
  });

  it('delivers every accepted message when RabbitMQ is restarted mid-load (stop_app / start_app)', async () => {
    const run = 'rabbit-restart';
    const running = load(run, 500, 100);
    await sleep(1_500);
    try {
      await stopRabbitMq();
      await sleep(3_000);
    } finally {
      await startRabbitMq();
    }
    await running.done;
    expect(running.acknowledged.size).to.equal(500);
    await expectAllDelivered(run, running);
  });

  it('keeps accepting API writes while the broker is down and delivers them once it is back', async () => {
    const emails = Array.from({ length: 20 }, (_, i) => `down-${i}@${tenant}.example`);
    try {
      await stopRabbitMq();
      for (const email of emails) {
        const res = await api.call('POST', '/api/users', { token, body: { email } });
        expect(res.status, JSON.stringify(res.body)).to.equal(201);
      }
      // The events wait in the outbox: nothing can be published meanwhile.
      await sleep(1_000);
      const { rows } = await outbox.query<{ n: string }>(
        `SELECT count(*) AS n FROM app.outbox
          WHERE topic = 'user.created' AND sent_at IS NULL AND payload->'user'->>'email' = ANY($1)`,
        [emails],
      );
      expect(Number(rows[0]!.n)).to.equal(emails.length);
      const received = receiver.on(path).filter((r) => emails.some((e) => r.body.includes(e)));
      expect(received).to.have.length(0);
    } finally {
      await startRabbitMq();
    }
    const deliveredEmails = () =>
      new Set(
        receiver
          .on(path)
          .map((r) => JSON.parse(r.body) as { type: string; data: { user?: { email: string } } })
          .filter((e) => e.type === 'user.created')
          .map((e) => e.data.user?.email),
      );
    await eventually(
      'every user.created accepted while the broker was down to be delivered',
      () => Promise.resolve(emails.every((e) => deliveredEmails().has(e)) ? true : undefined),
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    expect(emails.filter((e) => deliveredEmails().has(e))).to.have.length(emails.length);
  });

  it('delivers every accepted message when PostgreSQL is restarted mid-load', async () => {
    const run = 'postgres-restart';
    const running = load(run, 500, 100);
    await sleep(1_500);
    try {
      await stopPostgres();
      await sleep(2_000);
    } finally {
      await startPostgres();
    }
    await running.done;
    await expectAllDelivered(run, running);
    // The acknowledged inserts all committed; those cut off by the outage were retried.
    expect(running.acknowledged.size).to.equal(500);
  });
});
