// /api/webhooks against Tenants provisioned by the real operator: endpoints
// CRUD, secrets shown once and rotated with overlap, SSRF refusal, test sends,
// domain events from /api/users and replay, delivered by the tenant worker
// (relay and deliverer in-process, as the tenant's own RabbitMQ user) to a
// loopback receiver and checked with the `standardwebhooks` package.
import { expect } from 'chai';
import { QueryTypes } from 'sequelize';
import { Webhook } from 'standardwebhooks';
import { startTestApi, type TestApi } from '../../harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../../harness/platform.js';
import { seededPassword as password, readyTenants, seedTenants } from '../../harness/seeded-tenants.js';
import { eventually } from '../../harness/wait.js';
import {
  startTestWorker,
  tenantAmqp,
  WebhookReceiver,
  type ReceivedWebhook,
  type TestWorker,
} from '../../harness/webhook-harness.js';

interface EndpointBody {
  id: string;
  url: string;
  event_types: string[];
  description: string | null;
  enabled: boolean;
  secret?: string;
}

function verify(secret: string, received: ReceivedWebhook): unknown {
  return new Webhook(secret).verify(received.body, {
    'webhook-id': received.headers['webhook-id']!,
    'webhook-timestamp': received.headers['webhook-timestamp']!,
    'webhook-signature': received.headers['webhook-signature']!,
  });
}

describe('/api/webhooks: endpoints, messages, test sends, domain events and replay', function () {
  this.timeout(180_000);
  let platform: TestPlatform;
  let api: TestApi;
  let strictApi: TestApi;
  let worker: TestWorker;
  let tenantA: string;
  let tenantB: string;
  const receiver = new WebhookReceiver();
  let access: Record<string, string>;
  let paths = 0;

  const owner = () => access[`${tenantA}/owner`]!;
  const newPath = () => `/hook-${++paths}`;

  function tenantDb(tenant: string) {
    return api.databases.for(tenant, api.directory.servable(tenant).credentials).sequelize;
  }

  async function createEndpoint(body: Record<string, unknown>, token = owner()): Promise<EndpointBody> {
    const res = await api.call('POST', '/api/webhooks/endpoints', { token, body });
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    return res.body as EndpointBody;
  }

  function arrivals(path: string, count: number, what = `${count} webhook(s) on ${path}`) {
    return eventually(
      what,
      () => Promise.resolve(receiver.on(path).length >= count ? receiver.on(path) : undefined),
      {
        timeoutMs: 20_000,
      },
    );
  }

  before(async () => {
    platform = await startTestPlatform('webhooksapi');
    [tenantA, tenantB] = await readyTenants(platform, ['a', 'b']);
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace, {
      webhooksAllowLoopback: true,
      webhooksReplayLimit: 3,
    });
    // The production default: loopback refused.
    strictApi = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace);
    ({ access } = await seedTenants(api, [tenantA, tenantB]));
    await receiver.start();
    const amqp = await tenantAmqp(platform.cp, tenantA);
    worker = startTestWorker({
      databaseUrl: api.directory.servable(tenantA).credentials.uri,
      amqpUrl: amqp.url,
      queuePrefix: amqp.queuePrefix,
    });
    await worker.ready();
  });

  after(async () => {
    await worker?.stop();
    await receiver.close();
    await strictApi?.close();
    await api?.close();
    await platform?.cleanup();
  });

  it('creates an endpoint (with or without a trailing slash) and shows its secret only once', async () => {
    const res = await api.call('POST', '/api/webhooks/endpoints/', {
      token: owner(),
      body: { url: receiver.url('/created'), event_types: ['user.*'], description: 'CRM sync' },
    });
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    expect(res.headers.get('cache-control')).to.equal('no-store');
    const created = res.body as EndpointBody;
    expect(created).to.include({ url: receiver.url('/created'), description: 'CRM sync', enabled: true });
    expect(created.event_types).to.deep.equal(['user.*']);
    expect(created.secret).to.match(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(res.headers.get('location')).to.equal(`/api/webhooks/endpoints/${created.id}`);

    const one = await api.call('GET', `/api/webhooks/endpoints/${created.id}/`, { token: owner() });
    expect(one.status).to.equal(200);
    expect(one.body).to.not.have.property('secret');
    expect(JSON.stringify(one.body)).to.not.contain(created.secret!.slice(6));
    const list = await api.call('GET', '/api/webhooks/endpoints?page_size=100', { token: owner() });
    expect(list.status).to.equal(200);
    expect(list.body).to.have.keys('count', 'next', 'previous', 'results');
    expect((list.body.results as EndpointBody[]).map((e) => e.id)).to.include(created.id);
    expect(JSON.stringify(list.body)).to.not.contain(created.secret!.slice(6));

    // The audit log has the creation, and never the secret.
    const audit = await tenantDb(tenantA).query<{ action: string; diff: unknown }>(
      `SELECT action, diff FROM app.audit_log WHERE resource_type = 'webhook_endpoint' AND resource_id = $1`,
      { bind: [created.id], type: QueryTypes.SELECT },
    );
    expect(audit.map((a) => a.action)).to.deep.equal(['create']);
    expect(JSON.stringify(audit)).to.not.contain(created.secret!.slice(6));
  });

  it('updates, disables, enables and deletes an endpoint, audited', async () => {
    const created = await createEndpoint({ url: receiver.url('/crud'), event_types: [] });
    const patched = await api.call('PATCH', `/api/webhooks/endpoints/${created.id}`, {
      token: access[`${tenantA}/admin`]!,
      body: { event_types: ['user.created', 'user.deleted'], description: 'changed', enabled: false },
    });
    expect(patched.status, JSON.stringify(patched.body)).to.equal(200);
    expect(patched.body).to.include({ description: 'changed', enabled: false });
    expect(patched.body.disabled_reason).to.be.a('string');
    expect(patched.body.event_types).to.deep.equal(['user.created', 'user.deleted']);
    const enabled = await api.call('PATCH', `/api/webhooks/endpoints/${created.id}/`, {
      token: owner(),
      body: { enabled: true, description: null },
    });
    expect(enabled.body).to.include({
      enabled: true,
      disabled_reason: null,
      disabled_at: null,
      description: null,
    });

    const deleted = await api.call('DELETE', `/api/webhooks/endpoints/${created.id}`, { token: owner() });
    expect(deleted.status).to.equal(204);
    const gone = await api.call('GET', `/api/webhooks/endpoints/${created.id}`, { token: owner() });
    expect(gone.status).to.equal(404);
    expect(gone.headers.get('content-type')).to.match(/^application\/problem\+json/);

    const audit = await tenantDb(tenantA).query<{ action: string }>(
      `SELECT action FROM app.audit_log WHERE resource_type = 'webhook_endpoint' AND resource_id = $1 ORDER BY id`,
      { bind: [created.id], type: QueryTypes.SELECT },
    );
    expect(audit.map((a) => a.action)).to.deep.equal(['create', 'update', 'update', 'delete']);
  });

  it('refuses private, metadata and non-http URLs, and loopback unless allowed', async () => {
    const refused = [
      'http://10.0.0.7/hook',
      'http://192.168.1.20/hook',
      'http://169.254.169.254/latest/meta-data/',
      'https://[::ffff:169.254.169.254]/',
      'https://[fd00::1]/hook',
      'ftp://example.com/hook',
      'file:///etc/passwd',
      'javascript:alert(1)',
      'https://user:pass@example.com/hook',
      'not a url',
    ];
    for (const url of refused) {
      const res = await api.call('POST', '/api/webhooks/endpoints', {
        token: owner(),
        body: { url, event_types: [] },
      });
      expect(res.status, `${url}: ${JSON.stringify(res.body)}`).to.equal(400);
      expect(res.body.errors[0].field).to.equal('url');
    }
    // Tokens are signed per API instance in tests: sign in to the strict one.
    const signIn = await strictApi.call('POST', '/api/auth/login', {
      body: { tenant: tenantA, email: `owner@${tenantA}.example`, password },
    });
    const strictToken = signIn.body.access_token as string;
    for (const url of [
      receiver.url('/strict'),
      'https://127.0.0.1/hook',
      'https://localhost/hook',
      'https://[::1]/hook',
      'http://0x7f000001/hook',
      'http://example.com/hook',
    ]) {
      const res = await strictApi.call('POST', '/api/webhooks/endpoints', {
        token: strictToken,
        body: { url, event_types: [] },
      });
      expect(res.status, `${url}: ${JSON.stringify(res.body)}`).to.equal(400);
      expect(res.body.errors[0].field).to.equal('url');
      expect(res.body.errors[0].message).to.match(/^refused: /);
      // What a name resolves to is for the server log, not for whoever registers endpoints.
      if (url.includes('localhost')) expect(JSON.stringify(res.body)).not.to.match(/127\.0\.0\.1|::1/);
    }
    // A URL change goes through the same check.
    const created = await createEndpoint({ url: receiver.url('/ssrf-patch'), event_types: [] });
    const patch = await api.call('PATCH', `/api/webhooks/endpoints/${created.id}`, {
      token: owner(),
      body: { url: 'http://169.254.169.254/' },
    });
    expect(patch.status).to.equal(400);
    expect(patch.body.errors[0].field).to.equal('url');
    await api.call('DELETE', `/api/webhooks/endpoints/${created.id}`, { token: owner() });
  });

  it('answers 400 naming the field for bad bodies and queries', async () => {
    const cases: [string, string, unknown, string][] = [
      ['POST', '/api/webhooks/endpoints', { event_types: [] }, 'url'],
      ['POST', '/api/webhooks/endpoints', { url: receiver.url('/x') }, 'event_types'],
      [
        'POST',
        '/api/webhooks/endpoints',
        { url: receiver.url('/x'), event_types: 'user.created' },
        'event_types',
      ],
      [
        'POST',
        '/api/webhooks/endpoints',
        { url: receiver.url('/x'), event_types: ['User Created'] },
        'event_types.0',
      ],
      ['POST', '/api/webhooks/endpoints', { url: receiver.url('/x'), event_types: [], secret: 'x' }, 'body'],
      ['POST', '/api/webhooks/endpoints', { url: 42, event_types: [] }, 'url'],
    ];
    for (const [method, path, body, field] of cases) {
      const res = await api.call(method, path, { token: owner(), body });
      expect(res.status, `${JSON.stringify(body)}: ${JSON.stringify(res.body)}`).to.equal(400);
      expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
      expect((res.body.errors as { field: string }[]).map((e) => e.field)).to.include(field);
    }
    const notJson = await api.call('POST', '/api/webhooks/endpoints', { token: owner(), body: '{"url":' });
    expect(notJson.status).to.equal(400);

    const created = await createEndpoint({ url: receiver.url('/bad-bodies'), event_types: [] });
    const empty = await api.call('PATCH', `/api/webhooks/endpoints/${created.id}`, {
      token: owner(),
      body: {},
    });
    expect(empty.status).to.equal(400);
    const badEnabled = await api.call('PATCH', `/api/webhooks/endpoints/${created.id}`, {
      token: owner(),
      body: { enabled: 'yes' },
    });
    expect(badEnabled.body.errors[0].field).to.equal('enabled');
    const badOverlap = await api.call('POST', `/api/webhooks/endpoints/${created.id}/rotate-secret`, {
      token: owner(),
      body: { overlap_seconds: -1 },
    });
    expect(badOverlap.status).to.equal(400);
    expect(badOverlap.body.errors[0].field).to.equal('overlap_seconds');
    for (const [query, field] of [
      ['', 'since'],
      ['?since=yesterday', 'since'],
      [`?since=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`, 'since'],
    ] as const) {
      const res = await api.call('POST', `/api/webhooks/endpoints/${created.id}/replay${query}`, {
        token: owner(),
      });
      expect(res.status, query).to.equal(400);
      expect(res.body.errors[0].field).to.equal(field);
    }
    for (const [query, field] of [
      ['?status=lost', 'status'],
      ['?endpoint_id=nope', 'endpoint_id'],
      ['?page_size=1000', 'page_size'],
      ['?colour=red', 'body'],
    ] as const) {
      const res = await api.call('GET', `/api/webhooks/messages${query}`, { token: owner() });
      expect(res.status, query).to.equal(400);
      expect(res.body.errors[0].field).to.equal(field);
    }
    await api.call('DELETE', `/api/webhooks/endpoints/${created.id}`, { token: owner() });
  });

  it('forbids members, and answers 404 for another tenant’s endpoints and messages', async () => {
    const member = access[`${tenantA}/member`]!;
    for (const [method, path] of [
      ['GET', '/api/webhooks/endpoints'],
      ['POST', '/api/webhooks/endpoints'],
      ['GET', '/api/webhooks/messages'],
    ] as const) {
      const res = await api.call(method, path, {
        token: member,
        ...(method === 'POST' ? { body: { url: receiver.url('/m'), event_types: [] } } : {}),
      });
      expect(res.status, `${method} ${path}`).to.equal(403);
    }
    const noToken = await api.call('GET', '/api/webhooks/endpoints');
    expect(noToken.status).to.equal(401);

    const mine = await createEndpoint({ url: receiver.url('/cross'), event_types: [] });
    const test = await api.call('POST', `/api/webhooks/endpoints/${mine.id}/test`, { token: owner() });
    expect(test.status).to.equal(202);
    const other = access[`${tenantB}/owner`]!;
    const since = encodeURIComponent(new Date(0).toISOString());
    for (const [method, path] of [
      ['GET', `/api/webhooks/endpoints/${mine.id}`],
      ['PATCH', `/api/webhooks/endpoints/${mine.id}`],
      ['DELETE', `/api/webhooks/endpoints/${mine.id}`],
      ['POST', `/api/webhooks/endpoints/${mine.id}/rotate-secret`],
      ['POST', `/api/webhooks/endpoints/${mine.id}/test`],
      ['POST', `/api/webhooks/endpoints/${mine.id}/replay?since=${since}`],
      ['GET', `/api/webhooks/messages/${test.body.message_id as string}`],
      ['GET', `/api/webhooks/messages/${test.body.message_id as string}/attempts`],
      ['GET', '/api/webhooks/endpoints/not-a-uuid'],
      ['GET', '/api/webhooks/messages/not-a-message'],
    ] as const) {
      const res = await api.call(method, path, {
        token: other,
        ...(method === 'PATCH' ? { body: { enabled: false } } : {}),
      });
      expect(res.status, `${method} ${path}`).to.equal(404);
    }
    const still = await api.call('GET', `/api/webhooks/endpoints/${mine.id}`, { token: owner() });
    expect(still.body.enabled).to.equal(true);
    await arrivals('/cross', 1);
    await api.call('DELETE', `/api/webhooks/endpoints/${mine.id}`, { token: owner() });
  });

  it('sends a signed webhook.test through the pipeline and records its attempt', async () => {
    const path = newPath();
    const created = await createEndpoint({ url: receiver.url(path), event_types: ['user.created'] });
    const res = await api.call('POST', `/api/webhooks/endpoints/${created.id}/test/`, { token: owner() });
    expect(res.status, JSON.stringify(res.body)).to.equal(202);
    const messageId = res.body.message_id as string;
    expect(messageId).to.match(/^msg_/);

    const [got] = await arrivals(path, 1);
    expect(got!.headers['webhook-id']).to.equal(messageId);
    const payload = verify(created.secret!, got!) as { type: string; data: { endpoint_id: string } };
    expect(payload.type).to.equal('webhook.test');
    expect(payload.data.endpoint_id).to.equal(created.id);
    // A wrong secret does not verify.
    expect(() => verify('whsec_' + Buffer.alloc(32, 7).toString('base64'), got!)).to.throw();

    const message = await eventually('the test message to be recorded as delivered', async () => {
      const m = await api.call('GET', `/api/webhooks/messages/${messageId}`, { token: owner() });
      const body = m.body as { deliveries: { status: string }[] } & Record<string, any>;
      return body.deliveries[0]?.status === 'succeeded' ? body : undefined;
    });
    expect(message).to.include({ id: messageId, event_type: 'webhook.test' });
    expect(message.deliveries).to.have.length(1);
    expect(message.deliveries[0]).to.include({
      endpoint_id: created.id,
      attempts: 1,
      last_response_status: 200,
    });
    const attempts = await api.call('GET', `/api/webhooks/messages/${messageId}/attempts/`, {
      token: owner(),
    });
    expect(attempts.status).to.equal(200);
    expect(attempts.body.count).to.equal(1);
    expect(attempts.body.results[0]).to.include({ attempt: 1, response_status: 200, outcome: 'succeeded' });

    // Nothing else received it: a test send goes to its endpoint only.
    const filtered = await api.call(
      'GET',
      `/api/webhooks/messages?event_type=webhook.test&endpoint_id=${created.id}`,
      {
        token: owner(),
      },
    );
    expect((filtered.body.results as { id: string }[]).map((m) => m.id)).to.deep.equal([messageId]);
    const succeeded = await api.call(
      'GET',
      `/api/webhooks/messages?status=succeeded&endpoint_id=${created.id}`,
      {
        token: owner(),
      },
    );
    expect(succeeded.body.count).to.equal(1);
    const failed = await api.call('GET', `/api/webhooks/messages?status=failed&endpoint_id=${created.id}`, {
      token: owner(),
    });
    expect(failed.body.count).to.equal(0);

    // A disabled endpoint gets no test send.
    await api.call('PATCH', `/api/webhooks/endpoints/${created.id}`, {
      token: owner(),
      body: { enabled: false },
    });
    const refused = await api.call('POST', `/api/webhooks/endpoints/${created.id}/test`, { token: owner() });
    expect(refused.status).to.equal(409);
  });

  it('turns user changes made through /api/users into signed domain events without secrets', async () => {
    const path = newPath();
    const created = await createEndpoint({ url: receiver.url(path), event_types: ['user.*'] });
    const email = `events-${paths}@${tenantA}.example`;
    const made = await api.call('POST', '/api/users', {
      token: owner(),
      body: { email, first_name: 'Eve', role: 'member', password: 'a much longer passphrase 77' },
    });
    expect(made.status, JSON.stringify(made.body)).to.equal(201);
    const userId = made.body.id as string;
    expect(
      (await api.call('PATCH', `/api/users/${userId}`, { token: owner(), body: { department: 'Sales' } }))
        .status,
    ).to.equal(200);
    expect((await api.call('POST', `/api/users/${userId}/deactivate`, { token: owner() })).status).to.equal(
      200,
    );
    expect((await api.call('POST', `/api/users/${userId}/activate`, { token: owner() })).status).to.equal(
      200,
    );
    expect((await api.call('DELETE', `/api/users/${userId}`, { token: owner() })).status).to.equal(204);

    const got = await arrivals(path, 5);
    const events = got.map((r) => verify(created.secret!, r) as { type: string; data: Record<string, any> });
    expect(events.map((e) => e.type).sort()).to.deep.equal(
      ['user.activated', 'user.created', 'user.deactivated', 'user.deleted', 'user.updated'].sort(),
    );
    for (const event of events) {
      expect(event.data.user).to.include({ id: userId, email });
      expect(JSON.stringify(event)).to.not.match(/password|hash|passphrase/i);
    }
    const updated = events.find((e) => e.type === 'user.updated')!;
    expect(updated.data.changed_fields).to.deep.equal(['department']);
    expect(updated.data.user.department).to.equal('Sales');
    expect(new Set(got.map((r) => r.headers['webhook-id'])).size).to.equal(5);
  });

  it('rotates the secret: both signatures during the overlap, only the new one without it', async () => {
    const path = newPath();
    const created = await createEndpoint({ url: receiver.url(path), event_types: ['webhook.test'] });
    const rotated = await api.call('POST', `/api/webhooks/endpoints/${created.id}/rotate-secret`, {
      token: owner(),
    });
    expect(rotated.status, JSON.stringify(rotated.body)).to.equal(200);
    expect(rotated.headers.get('cache-control')).to.equal('no-store');
    const newSecret = rotated.body.secret as string;
    expect(newSecret)
      .to.match(/^whsec_/)
      .and.not.equal(created.secret);
    expect(Date.parse(rotated.body.previous_secret_expires_at as string)).to.be.greaterThan(
      Date.now() + 86_000_000,
    );

    await api.call('POST', `/api/webhooks/endpoints/${created.id}/test`, { token: owner() });
    const [during] = await arrivals(path, 1);
    expect(during!.headers['webhook-signature']!.split(' ')).to.have.length(2);
    verify(newSecret, during!);
    verify(created.secret!, during!);

    const again = await api.call('POST', `/api/webhooks/endpoints/${created.id}/rotate-secret/`, {
      token: owner(),
      body: { overlap_seconds: 0 },
    });
    expect(again.status).to.equal(200);
    expect(again.body.previous_secret_expires_at).to.equal(null);
    await api.call('POST', `/api/webhooks/endpoints/${created.id}/test`, { token: owner() });
    const after = (await arrivals(path, 2))[1]!;
    expect(after.headers['webhook-signature']!.split(' ')).to.have.length(1);
    verify(again.body.secret as string, after);
    expect(() => verify(newSecret, after)).to.throw();

    const audit = await tenantDb(tenantA).query<{ action: string; diff: unknown }>(
      `SELECT action, diff FROM app.audit_log WHERE resource_id = $1 AND action = 'rotate_secret'`,
      { bind: [created.id], type: QueryTypes.SELECT },
    );
    expect(audit).to.have.length(2);
    const text = JSON.stringify(audit);
    for (const secret of [created.secret!, newSecret, again.body.secret as string])
      expect(text).to.not.contain(secret.slice(6));
  });

  it('replays an endpoint’s messages since a time as new deliveries with the same webhook-ids, bounded', async () => {
    const path = newPath();
    const created = await createEndpoint({ url: receiver.url(path), event_types: ['user.*'] });
    const since = new Date(Date.now() - 1000).toISOString();
    const emails: string[] = [];
    for (let i = 0; i < 4; i++) {
      const email = `replay-${paths}-${i}@${tenantA}.example`;
      emails.push(email);
      const res = await api.call('POST', '/api/users', { token: owner(), body: { email } });
      expect(res.status).to.equal(201);
    }
    const first = await arrivals(path, 4);
    const ids = first.map((r) => r.headers['webhook-id']!);

    // The API was started with a replay limit of 3: the first call takes the oldest three.
    const replay = await api.call(
      'POST',
      `/api/webhooks/endpoints/${created.id}/replay?since=${encodeURIComponent(since)}`,
      {
        token: owner(),
      },
    );
    expect(replay.status, JSON.stringify(replay.body)).to.equal(202);
    expect(replay.body).to.include({ enqueued: 3, limit: 3 });
    expect(replay.body.next_since).to.be.a('string');
    const rest = await api.call(
      'POST',
      `/api/webhooks/endpoints/${created.id}/replay/?since=${encodeURIComponent(replay.body.next_since as string)}`,
      { token: owner() },
    );
    expect(rest.body).to.include({ enqueued: 1, next_since: null });

    const all = await arrivals(path, 8);
    const counts = new Map<string, number>();
    for (const r of all)
      counts.set(r.headers['webhook-id']!, (counts.get(r.headers['webhook-id']!) ?? 0) + 1);
    for (const id of ids) expect(counts.get(id), id).to.equal(2);
    for (const r of all) verify(created.secret!, r);

    const message = await api.call('GET', `/api/webhooks/messages/${ids[0]!}`, { token: owner() });
    const deliveries = message.body.deliveries as { endpoint_id: string }[];
    expect(deliveries.filter((d) => d.endpoint_id === created.id)).to.have.length(2);
    const audit = await tenantDb(tenantA).query<{ action: string }>(
      `SELECT action FROM app.audit_log WHERE resource_id = $1 AND action = 'replay'`,
      { bind: [created.id], type: QueryTypes.SELECT },
    );
    expect(audit).to.have.length(2);
  });
});
