// Incoming integrations end to end: Tenants provisioned by the real operator,
// the API in-process, the integration engine (relay + processor) per tenant on
// a private RabbitMQ vhost, and the provider simulator on loopback sending
// signed events built from the sample payloads and serving the providers' APIs.
import { expect } from 'chai';
import pg from 'pg';
import type { Provider } from '../../../lib/integrations/catalog.js';
import { createLogger } from '../../../lib/logger.js';
import { generateWebhookSecret } from '../../../lib/webhooks/standard-webhooks.js';
import {
  createIntegrationEngine,
  type IntegrationEngine,
} from '../../../worker/src/integrations/integration-engine.js';
import { startTestApi, type TestApi } from '../../harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../../harness/platform.js';
import { ProviderSimulator, sampleEvents, type SampleEvent } from '../../harness/provider-simulator.js';
import { readyTenants, seedTenants } from '../../harness/seeded-tenants.js';
import { createTestVhost, serviceUrls, uniqueSuffix, type TestVhost } from '../../harness/services.js';
import { eventually } from '../../harness/wait.js';

interface ProviderHealth {
  provider: string;
  circuit: { state: string; consecutive_failures: number };
  last_error: { message: string } | null;
  queue_depth: number;
  success_rate: { completed: number };
}

function fields(body: unknown): string[] {
  return (body as { errors: { field: string }[] }).errors.map((e) => e.field);
}

function providerOf(body: unknown, provider: string): ProviderHealth | undefined {
  return (body as { providers: ProviderHealth[] }).providers.find((p) => p.provider === provider);
}
const logger = createLogger('integrations-test', process.env.TEST_LOG_LEVEL ?? 'silent');

interface EventRow {
  id: string;
  event_id: string;
  status: string;
  attempts: number;
  last_error: string | null;
}

describe('incoming integrations: signed webhooks, dedup, sync, retries and health', function () {
  this.timeout(180_000);
  let platform: TestPlatform;
  let api: TestApi;
  let vhost: TestVhost;
  let simulator: ProviderSimulator;
  let tenantA: string;
  let tenantB: string;
  let tokens: Record<string, string>;
  const pools: pg.Pool[] = [];
  const engines: IntegrationEngine[] = [];
  const db: Record<string, pg.Pool> = {};
  // Each tenant's secret per provider.
  const secrets: Record<string, string> = {};
  const run = uniqueSuffix().slice(-6);
  const org = { a: `org_001`, b: `org_002` };

  const hook = (provider: Provider, tenant?: string) =>
    `${api.url}/api/integrations/webhooks/${provider}${tenant ? `/${tenant}` : ''}`;

  async function configure(tenant: string, provider: Provider, organizationId: string, extra = {}) {
    secrets[`${tenant}/${provider}`] = generateWebhookSecret();
    const res = await api.call('PUT', `/api/integrations/providers/${provider}`, {
      token: tokens[`${tenant}/owner`]!,
      body: {
        organization_id: organizationId,
        secret: secrets[`${tenant}/${provider}`],
        api_base_url: simulator.apiBaseUrl(provider),
        ...extra,
      },
    });
    expect(res.status, JSON.stringify(res.body)).to.be.oneOf([200, 201]);
    return res;
  }

  function send(
    tenant: string,
    provider: Provider,
    payload: unknown,
    options: { id?: string; timestamp?: number } = {},
  ) {
    return ProviderSimulator.send(
      hook(provider, tenant),
      secrets[`${tenant}/${provider}`]!,
      payload,
      options,
    );
  }

  async function eventRow(tenant: string, provider: string, eventId: string): Promise<EventRow | undefined> {
    const { rows } = await db[tenant]!.query<EventRow>(
      'SELECT id, event_id, status, attempts, last_error FROM app.integration_events WHERE provider = $1 AND event_id = $2',
      [provider, eventId],
    );
    return rows[0];
  }

  function settled(
    tenant: string,
    provider: string,
    eventId: string,
    status = 'completed',
    timeoutMs = 20_000,
  ) {
    return eventually(
      `${provider} ${eventId} to be ${status}`,
      async () => {
        const row = await eventRow(tenant, provider, eventId);
        return row?.status === status ? row : undefined;
      },
      { timeoutMs },
    );
  }

  async function one<T>(tenant: string, sql: string, params: unknown[] = []): Promise<T | undefined> {
    return (await db[tenant]!.query(sql, params)).rows[0] as T | undefined;
  }

  function uniqueEvent(event: SampleEvent): SampleEvent {
    return { ...event, event_id: `${event.event_id ?? 'evt'}_${uniqueSuffix()}` };
  }

  before(async () => {
    platform = await startTestPlatform('integr');
    [tenantA, tenantB] = await readyTenants(platform, ['a', 'b']);
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace);
    vhost = await createTestVhost('integr');
    simulator = await ProviderSimulator.start();
    ({ access: tokens } = await seedTenants(api, [tenantA, tenantB]));
    for (const tenant of [tenantA, tenantB]) {
      const entry = api.directory.servable(tenant);
      const pool = new pg.Pool({ connectionString: entry.credentials.uri, max: 6 });
      pools.push(pool);
      db[tenant] = pool;
      const engine = createIntegrationEngine({
        tenant,
        pool,
        amqpUrl: vhost.url,
        queuePrefix: `tenant.${tenant}.t${run}.`,
        settings: {
          // Tenant B parks after three attempts. Tenant A has attempts to spare: while its circuit is open, a
          // half-open probe spends one, and the circuit test must not park an event before the provider
          // recovers, however slowly a loaded machine gets there.
          schedule: tenant === tenantA ? [0, 300, ...Array<number>(14).fill(600)] : [0, 300, 600],
          prefetch: 20,
          api: {
            // Generous for a loopback simulator: a loaded machine can stall an answer for a second, and
            // a timeout counts as a failure towards tenant A's breaker. Failures here are the simulator's
            // own 5xx and 429 answers, never timeouts.
            timeoutMs: 5000,
            retries: 1,
            baseDelayMs: 20,
            // Tenant A's breaker opens quickly; tenant B's never, so its retries reach the schedule's end.
            breakerThreshold: tenant === tenantA ? 3 : 1000,
            breakerCooldownMs: 1500,
            allowLoopback: true,
          },
          outbox: { batchSize: 100, pollIntervalMs: 50 },
        },
        logger,
      });
      engine.start();
      engines.push(engine);
    }
    await eventually('the integration engines to connect', () =>
      Promise.resolve(engines.every((e) => e.ready) ? true : undefined),
    );
    for (const provider of ['user-service', 'payment-service', 'communication-service'] as const) {
      await configure(tenantA, provider, org.a);
    }
    await configure(tenantB, 'payment-service', org.b);
    await configure(tenantB, 'communication-service', org.b);
  });

  after(async () => {
    await Promise.allSettled(engines.map((e) => e.stop(2_000)));
    await Promise.allSettled(pools.map((p) => p.end()));
    await simulator?.close();
    await api?.close();
    await vhost?.drop().catch(() => undefined);
    await platform?.cleanup();
  });

  beforeEach(() => simulator.reset());

  describe('provider configuration', () => {
    it('never returns the secret or credentials, and audits changes without them', async () => {
      const res = await configure(tenantA, 'communication-service', org.a, {
        credentials: { api_key: 'ak-top-secret' },
      });
      expect(JSON.stringify(res.body)).not.to.match(/whsec_|ak-top-secret/);
      expect(res.body).to.include({
        provider: 'communication-service',
        organization_id: org.a,
        has_credentials: true,
      });
      const list = await api.call('GET', '/api/integrations/providers/', {
        token: tokens[`${tenantA}/admin`]!,
      });
      expect(list.status).to.equal(200);
      expect((list.body.results as { provider: string }[]).map((p) => p.provider)).to.have.members([
        'communication-service',
        'payment-service',
        'user-service',
      ]);
      expect(JSON.stringify(list.body)).not.to.match(/whsec_|ak-top-secret/);
      const audit = await db[tenantA]!.query(
        "SELECT diff FROM app.audit_log WHERE resource_type = 'integration_provider' ORDER BY id DESC LIMIT 1",
      );
      expect(audit.rows).to.have.length(1);
      expect(JSON.stringify(audit.rows[0])).not.to.match(/whsec_|ak-top-secret/);
      expect(JSON.stringify(audit.rows[0])).to.include('credentials_updated_at');
    });

    it('validates the body naming the field, and is for owners and admins only', async () => {
      const bad = await api.call('PUT', '/api/integrations/providers/user-service', {
        token: tokens[`${tenantA}/owner`]!,
        body: { organization_id: org.a, secret: 'user_webhook_secret_123' },
      });
      expect(bad.status).to.equal(400);
      expect(bad.headers.get('content-type')).to.match(/problem\+json/);
      expect(fields(bad.body)).to.include('secret');
      const missing = await api.call('PUT', '/api/integrations/providers/user-service', {
        token: tokens[`${tenantA}/owner`]!,
        body: { secret: generateWebhookSecret() },
      });
      expect(fields(missing.body)).to.include('organization_id');
      const url = await api.call('PUT', '/api/integrations/providers/user-service', {
        token: tokens[`${tenantA}/owner`]!,
        body: { organization_id: org.a, api_base_url: 'ftp://example.com' },
      });
      expect(fields(url.body)).to.include('api_base_url');
      const member = await api.call('GET', '/api/integrations/providers', {
        token: tokens[`${tenantA}/member`]!,
      });
      expect(member.status).to.equal(403);
      const unknown = await api.call('GET', '/api/integrations/providers/fax-service', {
        token: tokens[`${tenantA}/owner`]!,
      });
      expect(unknown.status).to.equal(404);
      // Another tenant cannot claim the same organization for the same provider.
      const clash = await api.call('PUT', '/api/integrations/providers/user-service', {
        token: tokens[`${tenantB}/owner`]!,
        body: { organization_id: org.a, secret: generateWebhookSecret() },
      });
      expect(clash.status).to.equal(409);
    });

    it('keeps the previous secret valid during a rotation overlap', async () => {
      const old = secrets[`${tenantB}/communication-service`]!;
      await configure(tenantB, 'communication-service', org.b, { secret_overlap_seconds: 3600 });
      const event = uniqueEvent(sampleEvents('communication-service')[1]!);
      const withOld = await ProviderSimulator.send(hook('communication-service', tenantB), old, event);
      expect(withOld.status, JSON.stringify(withOld.body)).to.equal(202);
      const fresh = await send(tenantB, 'communication-service', uniqueEvent(event));
      expect(fresh.status).to.equal(202);
    });
  });

  describe('receiving', () => {
    it('answers 401 for bad, missing or stale signatures and never a 5xx', async () => {
      const event = uniqueEvent(sampleEvents('user-service')[0]!);
      const body = JSON.stringify(event);
      const wrong = await ProviderSimulator.send(
        hook('user-service', tenantA),
        generateWebhookSecret(),
        body,
      );
      expect(wrong.status).to.equal(401);
      expect(wrong.body.detail).to.match(/signature/);
      const tampered = ProviderSimulator.sign(secrets[`${tenantA}/user-service`]!, body);
      const res = await fetch(hook('user-service', tenantA), {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...tampered },
        body: body.replace('Alice', 'Mallory'),
      });
      expect(res.status).to.equal(401);
      const missing = await fetch(hook('user-service', tenantA), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      expect(missing.status).to.equal(401);
      const stale = await send(tenantA, 'user-service', event, {
        timestamp: Math.floor(Date.now() / 1000) - 301,
      });
      expect(stale.status).to.equal(401);
      expect(stale.body.detail).to.match(/seconds away/);
      const future = await send(tenantA, 'user-service', event, {
        timestamp: Math.floor(Date.now() / 1000) + 400,
      });
      expect(future.status).to.equal(401);
      // B has no user-service configuration: nothing can verify the request.
      const unconfigured = await ProviderSimulator.send(
        hook('user-service', tenantB),
        generateWebhookSecret(),
        body,
      );
      expect(unconfigured.status).to.equal(401);
      expect(await eventRow(tenantA, 'user-service', event.event_id!)).to.equal(undefined);
      const unknownProvider = await ProviderSimulator.send(
        `${api.url}/api/integrations/webhooks/fax-service`,
        generateWebhookSecret(),
        body,
      );
      expect(unknownProvider.status).to.equal(404);
    });

    it('answers 400 for malformed JSON, an unknown event type or a missing id, naming the field', async () => {
      const malformed = await send(tenantA, 'user-service', '{"event_type": "user.created",');
      expect(malformed.status).to.equal(400);
      expect(malformed.body.detail).to.match(/JSON/);
      const unknown = await send(tenantA, 'user-service', {
        ...uniqueEvent(sampleEvents('user-service')[0]!),
        event_type: 'user.exploded',
      });
      expect(unknown.status).to.equal(400);
      expect(unknown.body.errors[0].field).to.equal('event_type');
      // A payment type is unknown to the user service.
      const foreign = await send(tenantA, 'user-service', uniqueEvent(sampleEvents('payment-service')[1]!));
      expect(foreign.status).to.equal(400);
      const noId = uniqueEvent(sampleEvents('user-service')[0]!);
      delete noId.data.user_id;
      const missingId = await send(tenantA, 'user-service', noId);
      expect(missingId.status).to.equal(400);
      expect(missingId.body.errors[0].field).to.equal('data.user_id');
      const otherOrg = await send(tenantA, 'user-service', {
        ...uniqueEvent(sampleEvents('user-service')[0]!),
        organization_id: 'org_999',
      });
      expect(otherOrg.status).to.equal(400);
      expect(otherOrg.body.errors[0].field).to.equal('organization_id');
      const noData = await send(tenantA, 'user-service', {
        event_type: 'user.created',
        event_id: `x_${run}`,
      });
      expect(noData.status).to.equal(400);
      expect(noData.body.errors[0].field).to.equal('data');
      const notObject = await send(tenantA, 'user-service', '[1,2]');
      expect(notObject.status).to.equal(400);
    });

    it('deduplicates: the second copy gets 200 and causes no second effect', async () => {
      const event = uniqueEvent(sampleEvents('communication-service')[0]!);
      const first = await send(tenantA, 'communication-service', event);
      expect(first.status).to.equal(202);
      expect(first.body).to.include({ status: 'accepted', event_id: event.event_id, tenant: tenantA });
      // A provider retry is a new delivery (new webhook-id) of the same event.
      const second = await send(tenantA, 'communication-service', event);
      expect(second.status).to.equal(200);
      expect(second.body).to.include({ status: 'duplicate', event_id: event.event_id });
      await settled(tenantA, 'communication-service', event.event_id!);
      const count = await one<{ events: string; outbox: string }>(
        tenantA,
        `SELECT (SELECT count(*) FROM app.integration_events WHERE event_id = $1) AS events,
                (SELECT count(*) FROM app.outbox WHERE payload->>'event' = $2) AS outbox`,
        [event.event_id, first.body.id],
      );
      expect(count).to.deep.equal({ events: '1', outbox: '1' });
    });

    it('uses webhook-id for deduplication when the event has no event_id', async () => {
      const event = uniqueEvent(sampleEvents('communication-service')[0]!);
      delete event.event_id;
      const id = `msg_${uniqueSuffix()}`;
      const first = await send(tenantA, 'communication-service', event, { id });
      expect(first.status).to.equal(202);
      expect(first.body.event_id).to.equal(id);
      const again = await send(tenantA, 'communication-service', event, { id });
      expect(again.status).to.equal(200);
    });

    it('answers a batch with per-event results', async () => {
      const [delivered, bounced] = sampleEvents('communication-service').map(uniqueEvent);
      await send(tenantA, 'communication-service', delivered);
      const res = await send(tenantA, 'communication-service', {
        events: [
          { ...bounced!, organization_id: org.a },
          delivered,
          { ...uniqueEvent(delivered!), event_type: 'message.teleported' },
        ],
      });
      expect(res.status).to.equal(202);
      expect(res.body).to.include({ accepted: 1, duplicates: 1, rejected: 1 });
      expect((res.body.results as { status: string }[]).map((r) => r.status)).to.deep.equal([
        'accepted',
        'duplicate',
        'rejected',
      ]);
      expect(res.body.results[2].errors[0].field).to.equal('events.2.event_type');
      const allBad = await send(tenantA, 'communication-service', {
        events: [{ event_type: 'nope', data: {} }],
      });
      expect(allBad.status).to.equal(400);
      const empty = await send(tenantA, 'communication-service', { events: [] });
      expect(empty.status).to.equal(400);
      expect(empty.body.errors[0].field).to.equal('events');
    });

    it('answers 400, not a 5xx, for values the database could not store', async () => {
      const event = uniqueEvent(sampleEvents('communication-service')[0]!);
      const nul = await send(tenantA, 'communication-service', {
        ...event,
        data: { ...event.data, note: 'a\u0000b' },
      });
      expect(nul.status).to.equal(400);
      expect(fields(nul.body)).to.deep.equal(['data.note']);
      // JSON.stringify would not write an unpaired surrogate escape; the raw text does.
      const surrogate = await send(
        tenantA,
        'communication-service',
        JSON.stringify(event).replace('"data":{', '"data":{"note":"\\ud800",'),
      );
      expect(surrogate.status).to.equal(400);
      expect(fields(surrogate.body)).to.deep.equal(['data.note']);
      let deep: unknown = 'bottom';
      for (let i = 0; i < 40; i += 1) deep = { d: deep };
      const nested = await send(tenantA, 'communication-service', {
        ...event,
        data: { ...event.data, deep },
      });
      expect(nested.status).to.equal(400);
      expect(fields(nested.body)[0]).to.match(/^data\.deep(\.d)+$/);
      const noEventId: SampleEvent = { ...event };
      delete noEventId.event_id;
      const longId = await send(tenantA, 'communication-service', noEventId, { id: 'x'.repeat(300) });
      expect(longId.status).to.equal(400);
      expect(fields(longId.body)).to.deep.equal(['event_id']);
      expect(await eventRow(tenantA, 'communication-service', event.event_id!)).to.equal(undefined);
    });

    it('accepts each event exactly once among many concurrent requests with overlapping event_ids', async () => {
      const events = Array.from({ length: 12 }, () => uniqueEvent(sampleEvents('communication-service')[0]!));
      // Four deliveries of each event (each its own webhook-id), and batches repeating some of them.
      const singles = events.flatMap((e) => [e, e, e, e]);
      const batches = [0, 1, 2].map((b) => ({ events: [events[b]!, events[b + 3]!, events[b]!] }));
      const answers = await Promise.all(
        [...singles, ...batches].map((payload) => send(tenantA, 'communication-service', payload)),
      );
      expect(answers.every((a) => a.status === 200 || a.status === 202)).to.equal(true);
      const accepted = new Map<string, string[]>();
      type Result = { status: string; event_id: string; id?: string };
      const results = answers.flatMap(({ body }) => (body.results ?? [body]) as Result[]);
      for (const r of results) {
        if (r.status === 'accepted') accepted.set(r.event_id, [...(accepted.get(r.event_id) ?? []), r.id!]);
        else expect(r.status).to.equal('duplicate');
      }
      const ids = events.map((e) => e.event_id!);
      expect(ids.map((id) => accepted.get(id)?.length)).to.deep.equal(ids.map(() => 1));
      const { rows } = await db[tenantA]!.query<{ id: string; event_id: string; outbox: number }>(
        `SELECT e.id, e.event_id,
                (SELECT count(*)::int FROM app.outbox o WHERE o.payload->>'event' = e.id::text) AS outbox
           FROM app.integration_events e WHERE e.provider = 'communication-service' AND e.event_id = ANY($1)`,
        [ids],
      );
      expect(rows).to.have.length(ids.length);
      for (const row of rows) {
        expect(accepted.get(row.event_id)).to.deep.equal([row.id]);
        expect(row.outbox).to.equal(1);
      }
    });

    it('answers 503 problem+json for the requests of a statement that failed, storing none of them', async () => {
      // An insider's trigger makes one event fail the statement it shares with others.
      const url = new URL(serviceUrls.postgres);
      url.pathname = new URL(api.directory.servable(tenantA).credentials.uri).pathname;
      const superuser = new pg.Client({ connectionString: url.toString() });
      await superuser.connect();
      const poison = `poison_${uniqueSuffix()}`;
      await superuser.query(`
        CREATE FUNCTION app.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.event_id = '${poison}' THEN RAISE EXCEPTION 'refused'; END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_poison AFTER INSERT ON app.integration_events
          FOR EACH ROW EXECUTE FUNCTION app.refuse_poison();`);
      try {
        const events = Array.from({ length: 16 }, () =>
          uniqueEvent(sampleEvents('communication-service')[0]!),
        );
        events[8] = { ...events[8]!, event_id: poison };
        const answers = await Promise.all(
          events.map(async (event) => {
            const body = JSON.stringify(event);
            const res = await fetch(hook('communication-service', tenantA), {
              method: 'POST',
              headers: {
                'content-type': 'application/json',
                ...ProviderSimulator.sign(secrets[`${tenantA}/communication-service`]!, body),
              },
              body,
            });
            return { event, res, body: (await res.json()) as { status: number | string } };
          }),
        );
        const failed = answers.filter((a) => a.res.status === 503);
        expect(failed.map((a) => a.event.event_id)).to.include(poison);
        for (const { res, body } of failed) {
          expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
          expect(res.headers.get('retry-after')).to.match(/^\d+$/);
          expect(body.status).to.equal(503);
        }
        expect(answers.every((a) => a.res.status === 202 || a.res.status === 503)).to.equal(true);
        for (const { event, res } of answers) {
          const row = await eventRow(tenantA, 'communication-service', event.event_id!);
          expect(row === undefined, `${event.event_id} answered ${res.status}`).to.equal(res.status === 503);
        }
      } finally {
        await superuser.query('DROP TRIGGER refuse_poison ON app.integration_events');
        await superuser.query('DROP FUNCTION app.refuse_poison()');
        await superuser.end();
      }
    });
  });

  describe('sync effects', () => {
    it('applies every sample event, routed by organization_id, to the right tenant database', async () => {
      // The deleted sample names a user the tenant already has.
      await db[tenantA]!.query(
        "INSERT INTO app.users (email, role, external_id) VALUES ('former.employee@techcorp.com', 'member', 'ext_user_99999')",
      );
      const all: [Provider, SampleEvent][] = [
        ...sampleEvents('user-service').map((e): [Provider, SampleEvent] => ['user-service', e]),
        ...sampleEvents('payment-service').map((e): [Provider, SampleEvent] => ['payment-service', e]),
        ...sampleEvents('communication-service').map((e): [Provider, SampleEvent] => [
          'communication-service',
          e,
        ]),
      ];
      for (const [provider, event] of all) {
        const res = await ProviderSimulator.send(
          hook(provider),
          secrets[`${event.organization_id === org.a ? tenantA : tenantB}/${provider}`]!,
          event,
        );
        expect(res.status, `${event.event_id}: ${JSON.stringify(res.body)}`).to.equal(202);
        expect(res.body.tenant).to.equal(event.organization_id === org.a ? tenantA : tenantB);
      }
      for (const [provider, event] of all) {
        await settled(event.organization_id === org.a ? tenantA : tenantB, provider, event.event_id!);
      }
      // user.created: visible through /api/users?search=<email>, a member with the external id.
      const search = await api.call('GET', '/api/users?search=new.employee@techcorp.com', {
        token: tokens[`${tenantA}/admin`]!,
      });
      expect(search.body.count).to.equal(1);
      expect(search.body.results[0]).to.include({
        email: 'new.employee@techcorp.com',
        role: 'member',
        first_name: 'Alice',
      });
      const created = await one<Record<string, unknown>>(
        tenantA,
        "SELECT * FROM app.users WHERE external_id = 'ext_user_new_123'",
      );
      expect(created).to.include({
        title: 'Product Manager',
        department: 'Product',
        is_active: true,
        password_hash: null,
      });
      // user.updated for a user the tenant did not have: fetched from the provider's API, then the changes.
      const updated = await one<Record<string, unknown>>(
        tenantA,
        "SELECT * FROM app.users WHERE external_id = 'ext_user_12345'",
      );
      expect(updated).to.include({
        email: 'sarah.johnson@techcorp.com',
        department: 'Engineering',
        title: 'Senior Software Engineer',
        manager_external_id: 'ext_user_67890',
        role: 'member',
      });
      expect(simulator.requests.some((r) => r.path === '/user-service/users/ext_user_12345')).to.equal(true);
      // user.deleted
      expect(await one(tenantA, "SELECT 1 FROM app.users WHERE external_id = 'ext_user_99999'")).to.equal(
        undefined,
      );
      // subscription.created went to tenant B (org_002), with the mapped plan.
      const sub = await one<Record<string, unknown>>(
        tenantB,
        "SELECT * FROM app.subscriptions WHERE external_id = 'sub_new_789'",
      );
      expect(sub).to.include({
        plan: 'professional',
        platform_plan: 'professional',
        status: 'active',
        currency: 'USD',
      });
      expect(Number(sub!.amount)).to.equal(299.99);
      expect(
        await one(tenantA, "SELECT 1 FROM app.subscriptions WHERE external_id = 'sub_new_789'"),
      ).to.equal(undefined);
      // payment.failed: recorded, its subscription fetched from the API and now past due.
      const payment = await one<Record<string, unknown>>(
        tenantA,
        "SELECT * FROM app.payments WHERE external_id = 'pay_failed_789'",
      );
      expect(payment).to.include({
        status: 'failed',
        failure_code: 'card_declined',
        attempt_number: 2,
        subscription_external_id: 'sub_enterprise_456',
      });
      const fetched = await one<Record<string, unknown>>(
        tenantA,
        "SELECT * FROM app.subscriptions WHERE external_id = 'sub_enterprise_456'",
      );
      expect(fetched).to.include({ plan: 'enterprise', platform_plan: 'enterprise', status: 'past_due' });
      // message.delivered (A) and message.bounced (B)
      const delivered = await one<Record<string, unknown>>(
        tenantA,
        "SELECT * FROM app.message_deliveries WHERE message_id = 'msg_welcome_001'",
      );
      expect(delivered).to.include({
        status: 'delivered',
        recipient: 'new.employee@techcorp.com',
        template: 'employee_welcome',
      });
      const bounced = await one<{ status: string; detail: Record<string, unknown> }>(
        tenantB,
        "SELECT * FROM app.message_deliveries WHERE message_id = 'msg_notification_002'",
      );
      expect(bounced?.status).to.equal('bounced');
      expect(bounced?.detail).to.include({ bounce_type: 'permanent', bounce_reason: 'recipient_not_found' });
    });

    it('applies the other event types: activation, cancellation, payment success, invoices, message order', async () => {
      const base = sampleEvents('user-service')[0]!;
      const userId = `ext_${uniqueSuffix()}`;
      const ev = (type: string, data: Record<string, unknown>, timestamp?: string): SampleEvent => ({
        event_type: type,
        event_id: `evt_${uniqueSuffix()}`,
        organization_id: org.a,
        ...(timestamp ? { timestamp } : {}),
        data,
      });
      const steps: [Provider, SampleEvent][] = [
        [
          'user-service',
          ev('user.created', { ...base.data, user_id: userId, email: `${userId}@techcorp.com` }),
        ],
        ['user-service', ev('user.deactivated', { user_id: userId })],
        [
          'payment-service',
          ev('subscription.created', { subscription_id: 'sub_x', plan: 'starter', status: 'active' }),
        ],
        ['payment-service', ev('subscription.canceled', { subscription_id: 'sub_x' })],
        ['payment-service', ev('payment.succeeded', { payment_id: 'pay_ok', amount: 10, currency: 'EUR' })],
        [
          'payment-service',
          ev('invoice.created', {
            invoice_id: 'inv_1',
            subscription_id: 'sub_x',
            amount_due: 12.5,
            currency: 'EUR',
          }),
        ],
        [
          'communication-service',
          ev('message.opened', { message_id: 'msg_o', recipient: 'a@b.example' }, '2024-02-15T10:00:00Z'),
        ],
        // Older than the open: it must not move the status back.
        ['communication-service', ev('message.sent', { message_id: 'msg_o' }, '2024-02-15T09:00:00Z')],
      ];
      for (const [provider, event] of steps) {
        const res = await send(tenantA, provider, event);
        expect(res.status, JSON.stringify(res.body)).to.equal(202);
        await settled(tenantA, provider, event.event_id!);
      }
      expect(
        await one(tenantA, 'SELECT is_active FROM app.users WHERE external_id = $1', [userId]),
      ).to.deep.equal({ is_active: false });
      const activated = ev('user.activated', { user_id: userId });
      await send(tenantA, 'user-service', activated);
      await settled(tenantA, 'user-service', activated.event_id!);
      expect(
        await one(tenantA, 'SELECT is_active FROM app.users WHERE external_id = $1', [userId]),
      ).to.deep.equal({ is_active: true });
      const sub = await one<{ status: string; canceled_at: Date | null }>(
        tenantA,
        "SELECT status, canceled_at FROM app.subscriptions WHERE external_id = 'sub_x'",
      );
      expect(sub?.status).to.equal('canceled');
      expect(sub?.canceled_at).to.be.instanceOf(Date);
      expect(
        await one(tenantA, "SELECT status FROM app.payments WHERE external_id = 'pay_ok'"),
      ).to.deep.equal({ status: 'succeeded' });
      expect(
        await one(tenantA, "SELECT status, amount::text FROM app.invoices WHERE external_id = 'inv_1'"),
      ).to.deep.equal({ status: 'open', amount: '12.50' });
      expect(
        await one(tenantA, "SELECT status FROM app.message_deliveries WHERE message_id = 'msg_o'"),
      ).to.deep.equal({ status: 'opened' });
      // Subscription changes become domain events for the tenant's outgoing webhooks.
      expect(
        await one(
          tenantA,
          "SELECT 1 AS x FROM app.outbox WHERE topic = 'subscription.changed' AND payload->>'subscription_id' = 'sub_x' LIMIT 1",
        ),
      ).to.deep.equal({ x: 1 });
    });

    it('never lets a payload set role, password, tenant or ids, nor take over an existing account', async () => {
      const userId = `ext_${uniqueSuffix()}`;
      const create: SampleEvent = {
        event_type: 'user.created',
        event_id: `evt_${uniqueSuffix()}`,
        data: {
          user_id: userId,
          email: `${userId}@techcorp.com`,
          role: 'owner',
          password_hash: 'x',
          is_superuser: true,
        },
      };
      await send(tenantA, 'user-service', create);
      await settled(tenantA, 'user-service', create.event_id!);
      const malicious: SampleEvent = {
        event_type: 'user.updated',
        event_id: `evt_${uniqueSuffix()}`,
        data: {
          user_id: userId,
          changes: {
            role: 'owner',
            password_hash: '$argon2id$v=19$m=65536,t=3,p=4$forged',
            tenant: tenantB,
            external_id: 'hijacked',
            id: '00000000-0000-0000-0000-000000000000',
            created_at: '2000-01-01T00:00:00Z',
            title: 'Still a member',
          },
        },
      };
      const res = await send(tenantA, 'user-service', malicious);
      expect(res.status).to.equal(202);
      await settled(tenantA, 'user-service', malicious.event_id!);
      const user = await one<Record<string, unknown>>(
        tenantA,
        'SELECT * FROM app.users WHERE external_id = $1',
        [userId],
      );
      expect(user).to.include({ role: 'member', password_hash: null, title: 'Still a member' });
      expect((user!.created_at as Date).getFullYear()).to.be.at.least(2025);
      expect(await one(tenantA, "SELECT 1 FROM app.users WHERE external_id = 'hijacked'")).to.equal(
        undefined,
      );
      // Claiming the owner's address parks the event; the owner is untouched.
      const takeover: SampleEvent = {
        event_type: 'user.created',
        event_id: `evt_${uniqueSuffix()}`,
        data: { user_id: `ext_${uniqueSuffix()}`, email: `owner@${tenantA}.example`, first_name: 'Mallory' },
      };
      await send(tenantA, 'user-service', takeover);
      const parked = await settled(tenantA, 'user-service', takeover.event_id!, 'failed');
      expect(parked.last_error).to.match(/does not manage/);
      expect(
        await one(tenantA, 'SELECT role, first_name, external_id FROM app.users WHERE email = $1', [
          `owner@${tenantA}.example`,
        ]),
      ).to.deep.equal({
        role: 'owner',
        first_name: 'owner',
        external_id: null,
      });
    });
  });

  describe('proven addresses', () => {
    it('forgets that an address was proven when the provider changes it', async () => {
      const userId = `ext_${uniqueSuffix()}`;
      const create: SampleEvent = {
        event_type: 'user.created',
        event_id: `evt_${uniqueSuffix()}`,
        data: { user_id: userId, email: `${userId}@techcorp.com` },
      };
      await send(tenantA, 'user-service', create);
      await settled(tenantA, 'user-service', create.event_id!);
      // As if the holder had since proven it (a password reset, an SSO sign-in).
      await one(tenantA, 'UPDATE app.users SET email_verified_at = now() WHERE external_id = $1', [userId]);
      const moved: SampleEvent = {
        event_type: 'user.updated',
        event_id: `evt_${uniqueSuffix()}`,
        data: { user_id: userId, changes: { email: `moved-${userId}@techcorp.com` } },
      };
      await send(tenantA, 'user-service', moved);
      await settled(tenantA, 'user-service', moved.event_id!);
      expect(
        await one(tenantA, 'SELECT email, email_verified_at FROM app.users WHERE external_id = $1', [userId]),
      ).to.deep.equal({ email: `moved-${userId}@techcorp.com`.toLowerCase(), email_verified_at: null });
    });
  });

  describe('failures', () => {
    it('opens the circuit when the provider API keeps failing, shows it in health, and recovers', async () => {
      simulator.behaviour['user-service'].failures = Infinity;
      const events = [1, 2, 3].map((): SampleEvent => ({
        event_type: 'user.updated',
        event_id: `evt_${uniqueSuffix()}`,
        data: { user_id: 'ext_user_12345_x', changes: { title: 'x' } },
      }));
      simulator.users.set('ext_user_12345_x', {
        user_id: 'ext_user_12345_x',
        email: `cb-${run}@techcorp.com`,
      });
      for (const e of events) expect((await send(tenantA, 'user-service', e)).status).to.equal(202);
      const health = await eventually('the circuit to open in health', async () => {
        const res = await api.call('GET', '/api/integrations/health/', {
          token: tokens[`${tenantA}/admin`]!,
        });
        const user = providerOf(res.body, 'user-service');
        return user?.circuit.state === 'open' ? user : undefined;
      });
      expect(health.last_error?.message).to.match(/503/);
      expect(health.queue_depth).to.be.at.least(1);
      expect(health.circuit.consecutive_failures).to.be.at.least(3);
      const retrying = await eventRow(tenantA, 'user-service', events[0]!.event_id!);
      expect(retrying?.status).to.be.oneOf(['retrying', 'processing', 'pending']);
      // The provider recovers: the probe closes the circuit and every event completes.
      simulator.behaviour['user-service'].failures = 0;
      for (const e of events) await settled(tenantA, 'user-service', e.event_id!, 'completed', 60_000);
      const after = await api.call('GET', '/api/integrations/health', { token: tokens[`${tenantA}/admin`]! });
      const user = providerOf(after.body, 'user-service')!;
      expect(user.circuit.state).to.equal('closed');
      expect(user.success_rate.completed).to.be.at.least(3);
      expect(user.queue_depth).to.equal(0);
    });

    it('retries through the delay tiers, then parks; the retry endpoint sends it through again', async () => {
      simulator.behaviour['payment-service'].failures = Infinity;
      const event: SampleEvent = {
        event_type: 'payment.succeeded',
        event_id: `evt_${uniqueSuffix()}`,
        organization_id: org.b,
        data: { payment_id: `pay_${uniqueSuffix()}`, subscription_id: 'sub_unknown', amount: 5 },
      };
      expect((await send(tenantB, 'payment-service', event)).status).to.equal(202);
      const parked = await settled(tenantB, 'payment-service', event.event_id!, 'failed');
      expect(parked.attempts).to.equal(3);
      expect(parked.last_error).to.match(/503/);
      const token = tokens[`${tenantB}/admin`]!;
      const list = await api.call(
        'GET',
        '/api/integrations/events?status=failed&provider=payment-service&event_type=payment.succeeded',
        { token },
      );
      expect(list.status).to.equal(200);
      expect(list.body).to.have.keys('count', 'next', 'previous', 'results');
      const item = (list.body.results as { event_id: string; id: string; last_error: string }[]).find(
        (r) => r.event_id === event.event_id,
      )!;
      expect(item).to.include({
        status: 'failed',
        attempts: 3,
        provider: 'payment-service',
        event_type: 'payment.succeeded',
      });
      expect(item.last_error).to.match(/503/);
      const got = await api.call('GET', `/api/integrations/events/${item.id}`, { token });
      expect(got.body.payload.data.payment_id).to.equal(event.data.payment_id);
      simulator.behaviour['payment-service'].failures = 0;
      const retry = await api.call('POST', `/api/integrations/events/${item.id}/retry`, { token });
      expect(retry.status, JSON.stringify(retry.body)).to.equal(202);
      const done = await settled(tenantB, 'payment-service', event.event_id!);
      expect(done.attempts).to.equal(4);
      const again = await api.call('POST', `/api/integrations/events/${item.id}/retry`, { token });
      expect(again.status).to.equal(409);
    });

    it('honours a provider 429 Retry-After', async () => {
      simulator.behaviour['payment-service'].rateLimited = 1;
      simulator.behaviour['payment-service'].retryAfterSeconds = 1;
      const event: SampleEvent = {
        event_type: 'payment.failed',
        event_id: `evt_${uniqueSuffix()}`,
        data: { payment_id: `pay_${uniqueSuffix()}`, subscription_id: 'sub_enterprise_456', amount: 1 },
      };
      await db[tenantB]!.query("DELETE FROM app.subscriptions WHERE external_id = 'sub_enterprise_456'");
      await send(tenantB, 'payment-service', event);
      await settled(tenantB, 'payment-service', event.event_id!);
      const calls = simulator.requests.filter(
        (r) => r.path === '/payment-service/subscriptions/sub_enterprise_456',
      );
      expect(calls.map((c) => c.status)).to.deep.equal([429, 200]);
      expect(calls[1]!.at - calls[0]!.at).to.be.at.least(950);
    });

    it('lists events with filters and validates them', async () => {
      const token = tokens[`${tenantA}/admin`]!;
      const list = await api.call(
        'GET',
        '/api/integrations/events/?provider=communication-service&page_size=2',
        { token },
      );
      expect(list.status).to.equal(200);
      expect(list.body.results.length).to.be.at.most(2);
      for (const r of list.body.results) {
        expect(r).to.include.keys(
          'id',
          'event_id',
          'provider',
          'event_type',
          'status',
          'attempts',
          'last_error',
        );
        expect(r.provider).to.equal('communication-service');
      }
      if (list.body.count > 2) expect(list.body.next).to.match(/page=2/);
      const bad = await api.call('GET', '/api/integrations/events?status=exploded', { token });
      expect(bad.status).to.equal(400);
      expect(bad.body.errors[0].field).to.equal('status');
      const missing = await api.call('GET', '/api/integrations/events/not-a-uuid', { token });
      expect(missing.status).to.equal(404);
      const member = await api.call('GET', '/api/integrations/events', {
        token: tokens[`${tenantA}/member`]!,
      });
      expect(member.status).to.equal(403);
    });
  });
});
