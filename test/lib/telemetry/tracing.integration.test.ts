// One request followed across the real processes by its OpenTelemetry trace:
// the API and the tenant worker run as they do in production (child processes,
// configured only by OTEL_* variables) and export OTLP/JSON to a receiver on
// loopback. An outgoing webhook: API handler → database → outbox row → publish
// → RabbitMQ → process → the customer's endpoint, whose request carries the
// same `traceparent`. An incoming provider webhook: API intake → outbox →
// publish → process → sync handler.
import { expect } from 'chai';
import pg from 'pg';
import { hashPassword } from '../../../api/src/auth/passwords.js';
import { tenantNames } from '../../../lib/tenant/index.js';
import { generateWebhookSecret } from '../../../lib/webhooks/standard-webhooks.js';
import { OtlpReceiver, spanKind, type ReceivedSpan } from '../../harness/otlp-receiver.js';
import {
  startApiProcess,
  startWorkerProcess,
  type PlatformProcess,
} from '../../harness/platform-processes.js';
import { startTestPlatform, type TestPlatform } from '../../harness/platform.js';
import { ProviderSimulator, sampleEvents } from '../../harness/provider-simulator.js';
import { readyTenants, seededPassword } from '../../harness/seeded-tenants.js';
import { uniqueSuffix } from '../../harness/services.js';
import { eventually } from '../../harness/wait.js';
import { WebhookReceiver } from '../../harness/webhook-harness.js';

const traceparentPattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/;

/** The span of `spans` that `predicate` picks; fails naming what was there. */
function only(spans: ReceivedSpan[], what: string, predicate: (s: ReceivedSpan) => boolean): ReceivedSpan {
  const found = spans.filter(predicate);
  expect(found, `${what} in ${JSON.stringify(spans.map((s) => `${s.service}: ${s.name}`))}`).to.have.length(
    1,
  );
  return found[0]!;
}

function expectChild(child: ReceivedSpan, parent: ReceivedSpan): void {
  expect(child.parentSpanId, `${child.name} (${child.service}) is a child of ${parent.name}`).to.equal(
    parent.spanId,
  );
  expect(child.traceId).to.equal(parent.traceId);
}

describe('tracing across the API, the outbox, RabbitMQ and the worker', function () {
  this.timeout(180_000);
  let platform: TestPlatform;
  let tenant: string;
  let otlp: OtlpReceiver;
  let endpoint: WebhookReceiver;
  let api: PlatformProcess | undefined;
  let worker: PlatformProcess | undefined;
  let db: pg.Pool;
  let token: string;
  const run = uniqueSuffix().slice(-6);

  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`http://127.0.0.1:${api!.port}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  };

  before(async () => {
    otlp = new OtlpReceiver();
    await otlp.start();
    endpoint = new WebhookReceiver();
    await endpoint.start();
    const otel = {
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      // Export within a fraction of a second instead of every 5 s.
      OTEL_BSP_SCHEDULE_DELAY: '100',
      OTEL_RESOURCE_ATTRIBUTES: `deployment.environment.name=test-${run}`,
    };
    platform = await startTestPlatform('trace', otel);
    [tenant] = await readyTenants(platform, ['a']);
    const secret = JSON.parse(
      await platform.cp.kubectl([
        'get',
        'secret',
        '-n',
        tenantNames(tenant).namespace,
        tenantNames(tenant).dbSecret,
        '-o',
        'json',
      ]),
    ) as { data: Record<string, string> };
    db = new pg.Pool({ connectionString: Buffer.from(secret.data.uri!, 'base64').toString('utf8'), max: 2 });
    await db.query(
      `INSERT INTO app.users (email, role, first_name, last_name, password_hash)
       VALUES ($1, 'owner', 'Olga', 'Owner', $2)`,
      [`owner@${tenant}.example`, await hashPassword(seededPassword)],
    );
    [api, worker] = await Promise.all([
      startApiProcess(platform.cp, platform.platformNamespace, { ...otel, WEBHOOKS_ALLOW_LOOPBACK: 'true' }),
      startWorkerProcess(platform.cp, tenant, {
        ...otel,
        WEBHOOKS_ALLOW_LOOPBACK: 'true',
        WEBHOOK_RETRY_SCHEDULE: '0,300ms,600ms',
      }),
    ]);
    token = '';
    token = await eventually(
      'a sign-in once the API serves the tenant and has its signing keys',
      async () => {
        const res = await call('POST', '/api/auth/login', {
          tenant,
          email: `owner@${tenant}.example`,
          password: seededPassword,
        });
        return res.status === 200 ? (res.body.access_token as string) : undefined;
      },
    );
  });

  after(async () => {
    await Promise.all([api?.stop(), worker?.stop()]);
    await db?.end();
    await endpoint?.close();
    await otlp?.close();
    await platform?.cleanup();
  });

  it('follows an outgoing webhook from the API handler to the customer endpoint in one trace', async () => {
    const created = await call('POST', '/api/webhooks/endpoints', {
      url: endpoint.url('/hook'),
      event_types: ['user.created'],
    });
    expect(created.status, JSON.stringify(created.body)).to.equal(201);
    const user = await call('POST', '/api/users', { email: `traced-${run}@example.com`, role: 'member' });
    expect(user.status, JSON.stringify(user.body)).to.equal(201);

    const received = await eventually('the webhook at the endpoint', () =>
      Promise.resolve(endpoint.on('/hook')[0]),
    );
    const [, traceId, clientSpanId] = traceparentPattern.exec(received.headers.traceparent ?? '') ?? [];
    expect(traceId, `traceparent ${received.headers.traceparent}`).to.be.a('string');

    // The worker exports the HTTP client span once the request ended; wait for the whole chain.
    const spans = await eventually('the spans of the whole chain', () => {
      const trace = otlp.trace(traceId!);
      return Promise.resolve(
        // The process span ends last: after the attempt is recorded and the message acked.
        [clientSpanId, spanKind.server, spanKind.consumer].every((wanted) =>
          trace.some((s) => s.spanId === wanted || s.kind === wanted),
        )
          ? trace
          : undefined,
      );
    });
    const handler = only(spans, 'the API handler span', (s) => s.kind === spanKind.server);
    expect(handler).to.include({ service: 'tenantry-api', name: 'POST /api/users', parentSpanId: '' });
    expect(handler.attributes['http.route']).to.equal('/api/users');
    const outbox = only(spans, 'the outbox span', (s) => s.name === 'create user.created');
    expectChild(outbox, handler);
    expect(outbox).to.include({ service: 'tenantry-api', kind: spanKind.producer });
    // The database: the user's INSERT under the handler, the outbox row's INSERT under the outbox span.
    const queries = spans.filter(
      (s) => s.service === 'tenantry-api' && s.attributes['db.system.name'] === 'postgresql',
    );
    expect(queries.some((q) => q.parentSpanId === handler.spanId && /INSERT/i.test(q.name))).to.equal(true);
    expect(
      queries.some((q) => q.parentSpanId === outbox.spanId && /INSERT/i.test(q.name)),
      'the outbox INSERT under its span',
    ).to.equal(true);
    const publish = only(
      spans,
      'the publish span',
      (s) => s.kind === spanKind.producer && s.name.startsWith('send '),
    );
    expectChild(publish, outbox);
    expect(publish.service).to.equal('tenantry-worker');
    expect(publish.attributes).to.include({
      'messaging.system': 'rabbitmq',
      'messaging.operation.type': 'send',
    });
    const process = only(spans, 'the process span', (s) => s.kind === spanKind.consumer);
    expectChild(process, publish);
    expect(process.name).to.match(/^process tenant\..*\.work$/);
    expect(process.attributes['messaging.message.id']).to.equal(received.headers['webhook-id']);
    const client = only(spans, 'the outgoing request', (s) => s.spanId === clientSpanId);
    expectChild(client, process);
    expect(client).to.include({ service: 'tenantry-worker', kind: spanKind.client, name: 'POST' });
    // The worker's queries (loading the delivery, recording the attempt) join the trace too.
    expect(
      spans.filter((s) => s.service === 'tenantry-worker' && s.attributes['db.system.name'] === 'postgresql'),
    ).to.not.be.empty;
    console.log(
      `      trace ${traceId}:\n${spans
        .map((s) => {
          const parent = spans.find((p) => p.spanId === s.parentSpanId);
          return `        ${s.service}: ${s.name} (kind ${s.kind}) ← ${parent ? parent.name : 'root'}`;
        })
        .join('\n')}`,
    );

    // The API's access log line of the request carries its trace and span ids.
    const logged = await eventually('the access log line', () =>
      Promise.resolve(
        api!
          .logLines()
          .find((l) => l.msg === 'request completed' && (l.req as { url?: string })?.url === '/api/users'),
      ),
    );
    expect(logged).to.include({ trace_id: traceId, span_id: handler.spanId });
  });

  it('keeps the trace across a retry through a delay tier', async () => {
    endpoint.behaviours.set('/flaky', (_request, response, nth) =>
      response.writeHead(nth === 1 ? 503 : 200).end(),
    );
    const created = await call('POST', '/api/webhooks/endpoints', {
      url: endpoint.url('/flaky'),
      event_types: ['user.updated'],
    });
    expect(created.status).to.equal(201);
    const user = await call('POST', '/api/users', { email: `retried-${run}@example.com` });
    const updated = await call('PATCH', `/api/users/${user.body.id}`, { first_name: 'Renamed' });
    expect(updated.status, JSON.stringify(updated.body)).to.equal(200);
    const attempts = await eventually(
      'two attempts',
      () => Promise.resolve(endpoint.on('/flaky').length >= 2 ? endpoint.on('/flaky') : undefined),
      { timeoutMs: 60_000 },
    );
    const ids = attempts.map((a) => traceparentPattern.exec(a.headers.traceparent ?? '')?.[1]);
    expect(ids[0]).to.be.a('string');
    expect(ids[1], 'the retry is in the first attempt’s trace').to.equal(ids[0]);
    const handler = await eventually('the API span of the update', () =>
      Promise.resolve(otlp.trace(ids[0]!).find((s) => s.kind === spanKind.server)),
    );
    expect(handler.name).to.equal('PATCH /api/users/:id');
    // Both attempts are `process` spans under the one publish: the delay tier kept the headers.
    const processes = await eventually('both process spans', () => {
      const found = otlp.trace(ids[0]!).filter((s) => s.kind === spanKind.consumer);
      return Promise.resolve(found.length >= 2 ? found : undefined);
    });
    const publish = only(
      otlp.trace(ids[0]!),
      'the publish span',
      (s) => s.kind === spanKind.producer && s.name.startsWith('send '),
    );
    for (const process of processes) expectChild(process, publish);
    expect(processes.map((p) => p.attributes['messaging.rabbitmq.message.delivery_attempt'])).to.have.members(
      [1, 2],
    );
  });

  it('follows an incoming provider webhook into the sync handler', async () => {
    const secret = generateWebhookSecret();
    const organization = `org_trace_${run}`;
    const configured = await call('PUT', '/api/integrations/providers/communication-service', {
      organization_id: organization,
      secret,
    });
    expect(configured.status, JSON.stringify(configured.body)).to.be.oneOf([200, 201]);
    const event = {
      ...sampleEvents('communication-service')[0]!,
      event_id: `evt_trace_${run}`,
      organization_id: organization,
    };
    const accepted = await ProviderSimulator.send(
      `http://127.0.0.1:${api!.port}/api/integrations/webhooks/communication-service/${tenant}`,
      secret,
      event,
    );
    expect(accepted.status, JSON.stringify(accepted.body)).to.equal(202);

    const spans = await eventually('the trace of the intake and its sync', () => {
      const sync = otlp.spans.find((s) => s.name === 'sync message.delivered');
      if (!sync) return Promise.resolve(undefined);
      const trace = otlp.trace(sync.traceId);
      return Promise.resolve(trace.some((s) => s.kind === spanKind.server) ? trace : undefined);
    });
    const intake = only(spans, 'the intake span', (s) => s.kind === spanKind.server);
    expect(intake).to.include({
      service: 'tenantry-api',
      name: 'POST /api/integrations/webhooks/:provider/:tenant',
      parentSpanId: '',
    });
    const outbox = only(
      spans,
      'the outbox span',
      (s) => s.name === 'create integration.communication-service',
    );
    expectChild(outbox, intake);
    const publish = only(
      spans,
      'the publish span',
      (s) => s.kind === spanKind.producer && s.name.startsWith('send '),
    );
    expectChild(publish, outbox);
    const process = only(spans, 'the process span', (s) => s.kind === spanKind.consumer);
    expectChild(process, publish);
    expect(process.name).to.match(/integrations\.work$/);
    const sync = only(spans, 'the sync span', (s) => s.name === 'sync message.delivered');
    expectChild(sync, process);
    expect(sync.attributes['tenantry.integration.provider']).to.equal('communication-service');
    const syncQueries = spans.filter(
      (s) => s.parentSpanId === sync.spanId && s.attributes['db.system.name'] === 'postgresql',
    );
    expect(syncQueries, 'the sync handler’s queries').to.not.be.empty;
    expect(otlp.rejected).to.deep.equal([]);
  });

  it('stores only a small JSON object as an outbox row’s trace context', async () => {
    const insert = async (traceContext: string) => {
      const client = await db.connect();
      try {
        await client.query('BEGIN');
        // Rolled back either way, so the relay never sees the row.
        await client.query(
          `INSERT INTO app.outbox (topic, payload, trace_context) VALUES ('trace.check', '{}', $1)`,
          [traceContext],
        );
        return 'stored';
      } catch (error) {
        return (error as { code?: string }).code;
      } finally {
        await client.query('ROLLBACK');
        client.release();
      }
    };
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    expect(await insert(JSON.stringify({ traceparent, tracestate: 'vendor=value' }))).to.equal('stored');
    expect(await insert(JSON.stringify(traceparent))).to.equal('23514');
    expect(await insert(JSON.stringify([traceparent]))).to.equal('23514');
    expect(await insert(JSON.stringify({ traceparent, tracestate: 'x'.repeat(1100) }))).to.equal('23514');
  });

  it('traces the operator’s reconciles of the tenant', async () => {
    const reconcile = await eventually('a reconcile span of the tenant', () =>
      Promise.resolve(
        otlp.spans.find((s) => s.name === 'reconcile Tenant' && s.attributes['tenantry.tenant'] === tenant),
      ),
    );
    expect(reconcile).to.include({ service: 'tenantry-operator', parentSpanId: '', kind: spanKind.internal });
    // And its OTEL_* settings reach the tenant's worker Deployment.
    const deployment = JSON.parse(
      await platform.cp.kubectl([
        'get',
        'deployment',
        '-n',
        tenantNames(tenant).namespace,
        'tenantry-worker',
        '-o',
        'json',
      ]),
    ) as { spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } } };
    const env = deployment.spec.template.spec.containers[0]!.env;
    expect(env).to.deep.include({ name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: otlp.url });
    expect(env.map((e) => e.name)).to.not.include('OTEL_SERVICE_NAME');
  });
});
