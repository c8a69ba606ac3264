// The whole platform as its users meet it, against a running `make dev` stack
// (`make e2e` starts one): a platform engineer applies Tenants with kubectl,
// owners sign up or set their password from the invite mail, create users and
// webhook endpoints, providers send signed events through the simulator, the
// tenant's worker syncs them and delivers signed outgoing webhooks, and
// deleting a Tenant removes or keeps its data as its deletionPolicy says.
//
// E2E_API_URL (default http://127.0.0.1:8080), E2E_KUBECONFIG (.dev/kubeconfig)
// and E2E_MAIL_DIR (.dev/mail) point at the stack.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import createClient from 'openapi-fetch';
import { Webhook } from 'standardwebhooks';
import type { paths } from '../../api/openapi.js';
import { generateWebhookSecret } from '../../lib/webhooks/standard-webhooks.js';
import { tenantNames } from '../../lib/tenant/index.js';
import { toolPath } from '../harness/control-plane.js';
import { ProviderSimulator, sampleEvents, type SampleEvent } from '../harness/provider-simulator.js';
import { rabbitManagement, uniqueSuffix, withPostgresAdmin } from '../harness/services.js';
import { eventually } from '../harness/wait.js';

const root = resolve(import.meta.dirname, '../..');
const apiUrl = (process.env.E2E_API_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
const kubeconfig = process.env.E2E_KUBECONFIG ?? join(root, '.dev/kubeconfig');
const mailDir = process.env.E2E_MAIL_DIR ?? join(root, '.dev/mail');
/** Where `make dev` keeps the Secrets the API reads (PLATFORM_SECRETS_NAMESPACE). */
const secretsNamespace = 'tenantry-secrets';
/** Provisioning, deletion and namespace finalization each get this long. */
const slow = { timeoutMs: 120_000, intervalMs: 500 };

// ---- the stack's interfaces, as a user reaches them

// The API through a client typed from its OpenAPI document (openapi-typescript's
// api/openapi.d.ts with openapi-fetch): the contract users code against.
const api = createClient<paths>({
  baseUrl: apiUrl,
  fetch: (request) => fetch(request, { signal: AbortSignal.timeout(15_000) }),
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function kubectl(args: readonly string[], input?: string): Promise<string> {
  return new Promise((ok, fail) => {
    const child = execFile(
      toolPath('kubectl'),
      [`--kubeconfig=${kubeconfig}`, ...args],
      { timeout: 30_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) =>
        error ? fail(new Error(`kubectl ${args.join(' ')}: ${stderr || error.message}`)) : ok(stdout),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

function applyTenant(name: string, spec: Record<string, unknown>): Promise<string> {
  const manifest = { apiVersion: 'tenantry.io/v1alpha1', kind: 'Tenant', metadata: { name }, spec };
  return kubectl(['apply', '-f', '-'], JSON.stringify(manifest));
}

async function tenantExists(name: string): Promise<boolean> {
  const out = await kubectl(['get', 'tenant', name, '--ignore-not-found', '-o', 'name']);
  return out.trim() !== '';
}

function waitUntilReady(name: string): Promise<true> {
  return eventually(
    `Tenant ${name} to be Ready`,
    async () => {
      const ready = await kubectl([
        'get',
        'tenant',
        name,
        '-o',
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
      ]);
      return ready.trim() === 'True' ? true : undefined;
    },
    slow,
  );
}

async function deleteTenant(name: string): Promise<void> {
  await kubectl(['delete', 'tenant', name, '--ignore-not-found', '--wait=false']);
  await eventually(
    `Tenant ${name} to be gone`,
    async () => ((await tenantExists(name)) ? undefined : true),
    slow,
  );
}

function waitNamespaceGone(namespace: string): Promise<true> {
  return eventually(
    `namespace ${namespace} to be gone`,
    async () => {
      const out = await kubectl(['get', 'namespace', namespace, '--ignore-not-found', '-o', 'name']);
      return out.trim() === '' ? true : undefined;
    },
    slow,
  );
}

async function namespaceExists(namespace: string): Promise<boolean> {
  return (await kubectl(['get', 'namespace', namespace, '--ignore-not-found', '-o', 'name'])).trim() !== '';
}

async function databaseExists(database: string): Promise<boolean> {
  const { rowCount } = await withPostgresAdmin((c) =>
    c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]),
  );
  return rowCount === 1;
}

/** The tenant's roles (owner and both logins) and whether each may log in. */
async function tenantRoles(name: string): Promise<Record<string, boolean>> {
  const names = tenantNames(name);
  const { rows } = await withPostgresAdmin((c) =>
    c.query<{ rolname: string; rolcanlogin: boolean }>(
      'SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY ($1::text[])',
      [[names.ownerRole, ...names.loginRoles]],
    ),
  );
  return Object.fromEntries(rows.map((r) => [r.rolname, r.rolcanlogin]));
}

/** The operator's copy of the tenant's database Secret, which the API reads. */
async function platformSecretExists(name: string): Promise<boolean> {
  const secret = `${tenantNames(name).namespace}-db`;
  const out = await kubectl([
    'get',
    'secret',
    '-n',
    secretsNamespace,
    secret,
    '--ignore-not-found',
    '-o',
    'name',
  ]);
  return out.trim() !== '';
}

async function rabbitUserExists(user: string): Promise<boolean> {
  const response = await rabbitManagement('GET', `/users/${encodeURIComponent(user)}`);
  return response.status === 200;
}

/** Removes whatever a failed run left of a Tenant: the resource (under Delete), then any remains. */
async function purgeTenant(name: string): Promise<void> {
  const names = tenantNames(name);
  if (await tenantExists(name)) {
    await kubectl([
      'patch',
      'tenant',
      name,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { database: { deletionPolicy: 'Delete' } } }),
    ]);
    await deleteTenant(name).catch(() => undefined);
  }
  await withPostgresAdmin(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS "${names.database}" WITH (FORCE)`);
    for (const role of [...names.loginRoles, names.ownerRole]) {
      const { rowCount } = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
      if (rowCount) {
        await c.query(`DROP OWNED BY "${role}"`);
        await c.query(`DROP ROLE "${role}"`);
      }
    }
  });
  await kubectl(['delete', 'secret', '-n', secretsNamespace, `${names.namespace}-db`, '--ignore-not-found']);
  await rabbitManagement('DELETE', `/users/${encodeURIComponent(names.amqpUser)}`);
}

/** The one-time token of the newest mail of `kind` to `to` in the stack's mail folder. */
async function mailedToken(to: string, kind: string): Promise<string> {
  return eventually(
    `a ${kind} mail to ${to} in ${mailDir}`,
    async () => {
      const files = (await readdir(mailDir)).filter((f) => f.endsWith('.json')).sort();
      for (const file of files.reverse()) {
        const mail = JSON.parse(await readFile(join(mailDir, file), 'utf8')) as {
          to: string;
          kind: string;
          text: string;
        };
        if (mail.to === to && mail.kind === kind) return /\bpr_[A-Za-z0-9_-]+/.exec(mail.text)?.[0];
      }
      return undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
}

async function logIn(tenant: string, email: string, password: string): Promise<string> {
  const { data, error, response } = await api.POST('/api/auth/login', { body: { tenant, email, password } });
  expect(response.status, JSON.stringify(error)).to.equal(200);
  expect(data?.access_token).to.be.a('string');
  return data!.access_token;
}

async function findUser(token: string, email: string) {
  const { data, error, response } = await api.GET('/api/users', {
    params: { query: { search: email } },
    headers: bearer(token),
  });
  expect(response.status, JSON.stringify(error)).to.equal(200);
  return data!.results.find((u) => u.email === email);
}

/** A local endpoint that records every delivery, as a customer's server would receive it. */
interface Receiver {
  url: string;
  deliveries: { headers: IncomingHttpHeaders; body: string }[];
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const deliveries: Receiver['deliveries'] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      deliveries.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    deliveries,
    close: async () => {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    },
  };
}

/** The deliveries' messages of one type, parsed. */
function received<T>(receiver: Receiver, type: string): T[] {
  return receiver.deliveries
    .map((d) => JSON.parse(d.body) as { type: string; data: T })
    .filter((m) => m.type === type)
    .map((m) => m.data);
}

const signatureHeaders = (headers: IncomingHttpHeaders) => ({
  'webhook-id': String(headers['webhook-id']),
  'webhook-timestamp': String(headers['webhook-timestamp']),
  'webhook-signature': String(headers['webhook-signature']),
});

// ---- the scenarios

describe('the platform end to end (running make dev stack)', function () {
  this.timeout(300_000);

  before(async function () {
    const ready = await fetch(`${apiUrl}/readyz`, { signal: AbortSignal.timeout(5000) }).catch(
      (error: unknown) => {
        throw new Error(`the API at ${apiUrl} does not answer (start it with make dev): ${String(error)}`);
      },
    );
    expect(ready.status, `${apiUrl}/readyz`).to.equal(200);
    await kubectl(['get', 'crd', 'tenants.tenantry.io']);
  });

  describe('a Tenant under Delete: provisioning, users, provider sync, outgoing webhooks, deletion', () => {
    const suffix = uniqueSuffix();
    const tenant = `e2e-del-${suffix}`;
    const names = tenantNames(tenant);
    const ownerEmail = `owner@${tenant}.example`;
    const password = 'Quartz-Meadow-Lantern-91';
    const organization = `org_e2e_${suffix}`;
    const created = [`dana@${tenant}.example`, `eli@${tenant}.example`];
    let token = '';
    let endpointSecret = '';
    let receiver: Receiver;
    let simulator: ProviderSimulator;

    before(async () => {
      receiver = await startReceiver();
      // The test's own simulator serves the providers' APIs, so it can see the worker's calls.
      simulator = await ProviderSimulator.start();
    });

    after(async function () {
      this.timeout(180_000);
      await purgeTenant(tenant).catch((error: unknown) => console.error(`cleanup of ${tenant}:`, error));
      await receiver?.close();
      await simulator?.close();
    });

    it('becomes Ready after kubectl apply', async () => {
      await applyTenant(tenant, {
        plan: 'starter',
        displayName: 'E2E Delete',
        owner: { email: ownerEmail },
        database: { deletionPolicy: 'Delete' },
      });
      await waitUntilReady(tenant);
      const status = JSON.parse(await kubectl(['get', 'tenant', tenant, '-o', 'json'])).status;
      expect(status.phase).to.equal('Ready');
      expect(status.namespace).to.equal(names.namespace);
      expect(status.database.name).to.equal(names.database);
    });

    it('lets the owner set a password from the invite mail and log in', async () => {
      const invite = await mailedToken(ownerEmail, 'owner-invite');
      const confirm = await api.POST('/api/auth/password/reset/confirm', {
        body: { tenant, token: invite, password },
      });
      expect(confirm.response.status, JSON.stringify(confirm.error)).to.equal(204);
      token = await logIn(tenant, ownerEmail, password);
      const current = await api.GET('/api/tenants/current', { headers: bearer(token) });
      expect(current.response.status).to.equal(200);
      expect(current.data?.name).to.equal(tenant);
    });

    it('registers a webhook endpoint on a local receiver and creates users', async () => {
      const endpoint = await api.POST('/api/webhooks/endpoints', {
        headers: bearer(token),
        body: { url: receiver.url, event_types: ['user.*', 'subscription.*'], description: 'e2e' },
      });
      expect(endpoint.response.status, JSON.stringify(endpoint.error)).to.equal(201);
      expect(endpoint.data?.secret).to.match(/^whsec_/);
      endpointSecret = endpoint.data!.secret;

      for (const email of created) {
        const res = await api.POST('/api/users', {
          headers: bearer(token),
          body: {
            email,
            first_name: email.split('@')[0]!,
            role: 'member',
            password: 'Orchid-Tunnel-Marble-77',
          },
        });
        expect(res.response.status, JSON.stringify(res.error)).to.equal(201);
      }
      for (const email of created) expect((await findUser(token, email))?.role).to.equal('member');
      // The users' own credentials work too.
      await logIn(tenant, created[0]!, 'Orchid-Tunnel-Marble-77');
    });

    it('syncs the user-service sample events the simulator sends into the tenant database', async () => {
      const secret = generateWebhookSecret();
      const configured = await api.PUT('/api/integrations/providers/{provider}', {
        params: { path: { provider: 'user-service' } },
        headers: bearer(token),
        body: { organization_id: organization, secret, api_base_url: simulator.apiBaseUrl('user-service') },
      });
      expect(configured.response.status, JSON.stringify(configured.error)).to.equal(201);
      expect(JSON.stringify(configured.data)).not.to.contain(secret);

      // The provider's API knows ext_user_12345 in another department than the sample
      // user.updated moves them to, so the result shows both the fetch and the change.
      simulator.users.get('ext_user_12345')!.department = 'Research';
      const url = `${apiUrl}/api/integrations/webhooks/user-service/${tenant}`;
      const events = sampleEvents('user-service').map((e): SampleEvent => ({
        ...e,
        organization_id: organization,
      }));
      const deleted = events.find((e) => e.event_type === 'user.deleted')!;
      // A user the sample user.deleted then removes: created first, and synced before the samples go.
      const leaving = {
        event_type: 'user.created',
        event_id: `evt_e2e_${suffix}`,
        organization_id: organization,
        data: { user_id: deleted.data.user_id, email: deleted.data.email, first_name: 'Leaving' },
      };
      expect((await ProviderSimulator.send(url, secret, leaving)).status).to.equal(202);
      await eventually(
        'the leaving user to be synced',
        () => findUser(token, String(deleted.data.email)),
        slow,
      );

      for (const event of events) {
        const res = await ProviderSimulator.send(url, secret, event);
        expect(res.status, `${event.event_type}: ${JSON.stringify(res.body)}`).to.equal(202);
      }
      // A provider's retry of the same event is a duplicate; a wrong signature is refused.
      expect((await ProviderSimulator.send(url, secret, events[0])).status).to.equal(200);
      expect((await ProviderSimulator.send(url, generateWebhookSecret(), events[0])).status).to.equal(401);

      const statuses = await eventually(
        'the user-service events to be processed',
        async () => {
          const res = await api.GET('/api/integrations/events', {
            params: { query: { provider: 'user-service', page_size: 100 } },
            headers: bearer(token),
          });
          const results = res.data?.results ?? [];
          const done = results.every((r) => r.status === 'completed' || r.status === 'failed');
          return results.length === 4 && done ? results : undefined;
        },
        slow,
      );
      expect(statuses.map((r) => r.status)).to.deep.equal([
        'completed',
        'completed',
        'completed',
        'completed',
      ]);

      const hired = await findUser(token, 'new.employee@techcorp.com');
      expect(hired).to.include({
        first_name: 'Alice',
        last_name: 'Williams',
        external_id: 'ext_user_new_123',
        role: 'member',
      });
      // user.updated for a user not here yet: fetched from the provider's API, then changed.
      const updated = await findUser(token, 'sarah.johnson@techcorp.com');
      expect(updated).to.include({
        external_id: 'ext_user_12345',
        first_name: 'Sarah',
        last_name: 'Johnson',
        department: 'Engineering',
        role: 'member',
      });
      expect(simulator.requests.map((r) => r.path)).to.include('/user-service/users/ext_user_12345');
      expect(await findUser(token, String(deleted.data.email))).to.equal(undefined);
    });

    it('syncs the payment-service sample events and emits subscription.changed', async () => {
      const secret = generateWebhookSecret();
      const configured = await api.PUT('/api/integrations/providers/{provider}', {
        params: { path: { provider: 'payment-service' } },
        headers: bearer(token),
        body: {
          organization_id: organization,
          secret,
          api_base_url: simulator.apiBaseUrl('payment-service'),
        },
      });
      expect(configured.response.status, JSON.stringify(configured.error)).to.equal(201);
      // Without the tenant in the path, the organization_id routes the event.
      const url = `${apiUrl}/api/integrations/webhooks/payment-service`;
      for (const event of sampleEvents('payment-service')) {
        const res = await ProviderSimulator.send(url, secret, { ...event, organization_id: organization });
        expect(res.status, `${event.event_type}: ${JSON.stringify(res.body)}`).to.equal(202);
      }
      const statuses = await eventually(
        'the payment-service events to be processed',
        async () => {
          const res = await api.GET('/api/integrations/events', {
            params: { query: { provider: 'payment-service' } },
            headers: bearer(token),
          });
          const results = res.data?.results ?? [];
          const done = results.every((r) => r.status === 'completed' || r.status === 'failed');
          return results.length === 2 && done ? results : undefined;
        },
        slow,
      );
      expect(statuses.map((r) => r.status)).to.deep.equal(['completed', 'completed']);
      // payment.failed names a subscription not here yet: fetched from the provider's API.
      expect(simulator.requests.map((r) => r.path)).to.include(
        '/payment-service/subscriptions/sub_enterprise_456',
      );

      const changed = await eventually(
        'subscription.changed deliveries for both subscriptions',
        () => {
          const data = received<Record<string, unknown>>(receiver, 'subscription.changed');
          const ids = new Set(data.map((d) => d.subscription_id));
          return Promise.resolve(ids.has('sub_new_789') && ids.has('sub_enterprise_456') ? data : undefined);
        },
        slow,
      );
      expect(changed).to.deep.include({
        subscription_id: 'sub_new_789',
        status: 'active',
        platform_plan: 'professional',
      });
      expect(changed.find((d) => d.subscription_id === 'sub_enterprise_456')).to.include({
        platform_plan: 'enterprise',
      });
    });

    it('delivers user.created webhooks to the receiver, signed with the endpoint secret', async () => {
      const users = await eventually(
        'user.created deliveries for the users created through the API',
        () => {
          const emails = received<{ user?: { email?: string } }>(receiver, 'user.created').map(
            (d) => d.user?.email,
          );
          return Promise.resolve(created.every((e) => emails.includes(e)) ? emails : undefined);
        },
        slow,
      );
      expect(users).to.include.members(created);

      const verifier = new Webhook(endpointSecret);
      for (const delivery of receiver.deliveries) {
        const headers = signatureHeaders(delivery.headers);
        const verified = verifier.verify(delivery.body, headers) as { type: string };
        expect(verified.type).to.match(/^(user|subscription)\./);
        // The signature covers the body and holds only for this endpoint's secret.
        expect(() => verifier.verify(delivery.body.replace('"type"', '"typ"'), headers)).to.throw();
        expect(() => new Webhook(generateWebhookSecret()).verify(delivery.body, headers)).to.throw();
      }
      const ids = receiver.deliveries.map((d) => d.headers['webhook-id']);
      expect(new Set(ids).size, 'one webhook-id per message').to.equal(ids.length);
    });

    it('drops the database, the roles, the namespace and the RabbitMQ user when deleted', async () => {
      expect(await databaseExists(names.database)).to.equal(true);
      expect(Object.keys(await tenantRoles(tenant))).to.have.members([names.ownerRole, ...names.loginRoles]);
      expect(await namespaceExists(names.namespace)).to.equal(true);
      expect(await rabbitUserExists(names.amqpUser)).to.equal(true);
      expect(await platformSecretExists(tenant)).to.equal(true);

      await deleteTenant(tenant);
      expect(await databaseExists(names.database)).to.equal(false);
      expect(await platformSecretExists(tenant)).to.equal(false);
      expect(await tenantRoles(tenant)).to.deep.equal({});
      expect(await rabbitUserExists(names.amqpUser)).to.equal(false);
      await waitNamespaceGone(names.namespace);
      await eventually(
        'the API to forget the tenant',
        async () => {
          const res = await api.POST('/api/auth/login', {
            body: { tenant, email: ownerEmail, password },
          });
          return res.response.status === 404 ? true : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 500 },
      );
    });
  });

  describe('a Tenant under Retain: signup, deletion keeps the data, re-creation brings it back', () => {
    const suffix = uniqueSuffix();
    const tenant = `e2e-ret-${suffix}`;
    const names = tenantNames(tenant);
    const ownerEmail = `founder@${tenant}.example`;
    const password = 'Copper-Harbor-Willow-58';
    const member = `kai@${tenant}.example`;
    let token = '';
    let endpointId = '';

    after(async function () {
      this.timeout(180_000);
      await purgeTenant(tenant).catch((error: unknown) => console.error(`cleanup of ${tenant}:`, error));
    });

    it('signs up, waits at the status URL until ready, and logs the owner in', async () => {
      const signup = await api.POST('/api/signup', {
        body: { tenant, display_name: 'E2E Retain', email: ownerEmail, password },
      });
      expect(signup.response.status, JSON.stringify(signup.error)).to.equal(202);
      expect(new URL(signup.data!.status_url).pathname).to.equal(`/api/signup/${tenant}`);
      await eventually(
        `signup ${tenant} to be ready`,
        async () => {
          const status = await api.GET('/api/signup/{tenant}', { params: { path: { tenant } } });
          return status.data?.ready === true ? true : undefined;
        },
        slow,
      );
      const spec = JSON.parse(await kubectl(['get', 'tenant', tenant, '-o', 'json'])).spec;
      expect(spec.database.deletionPolicy).to.equal('Retain');
      token = await logIn(tenant, ownerEmail, password);
    });

    it('creates a user and a webhook endpoint', async () => {
      const user = await api.POST('/api/users', {
        headers: bearer(token),
        body: { email: member, first_name: 'Kai', role: 'admin', department: 'Ops' },
      });
      expect(user.response.status, JSON.stringify(user.error)).to.equal(201);
      const endpoint = await api.POST('/api/webhooks/endpoints', {
        headers: bearer(token),
        body: { url: 'http://127.0.0.1:9/hooks', event_types: ['user.*'] },
      });
      expect(endpoint.response.status, JSON.stringify(endpoint.error)).to.equal(201);
      endpointId = endpoint.data!.id;
    });

    it('keeps the database and disables its login when deleted; the namespace and RabbitMQ user go', async () => {
      expect(await rabbitUserExists(names.amqpUser)).to.equal(true);
      await deleteTenant(tenant);
      expect(await databaseExists(names.database)).to.equal(true);
      const roles = await tenantRoles(tenant);
      expect(Object.keys(roles)).to.have.members([names.ownerRole, ...names.loginRoles]);
      expect(Object.values(roles), 'no tenant role may log in').to.deep.equal([false, false, false]);
      expect(await rabbitUserExists(names.amqpUser)).to.equal(false);
      expect(await platformSecretExists(tenant), 'the platform copy of the database Secret').to.equal(true);
      await waitNamespaceGone(names.namespace);
      await eventually(
        'the API to forget the tenant',
        async () => {
          const res = await api.POST('/api/auth/login', {
            body: { tenant, email: ownerEmail, password },
          });
          return res.response.status === 404 ? true : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 500 },
      );
    });

    it('brings the owner, users and webhook endpoint back when the Tenant is applied again', async () => {
      await applyTenant(tenant, {
        plan: 'free',
        displayName: 'E2E Retain',
        owner: { email: ownerEmail },
        database: { deletionPolicy: 'Retain' },
      });
      await waitUntilReady(tenant);
      expect(Object.values(await tenantRoles(tenant))).to.include(true);
      expect(await rabbitUserExists(names.amqpUser)).to.equal(true);
      const again = await eventually(
        'the owner to log in again with the signup password',
        async () => {
          const res = await api.POST('/api/auth/login', {
            body: { tenant, email: ownerEmail, password },
          });
          return res.data?.access_token;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      expect(await findUser(again, member)).to.include({
        role: 'admin',
        department: 'Ops',
        first_name: 'Kai',
      });
      const endpoint = await api.GET('/api/webhooks/endpoints/{id}', {
        params: { path: { id: endpointId } },
        headers: bearer(again),
      });
      expect(endpoint.response.status).to.equal(200);
      expect(endpoint.data?.url).to.equal('http://127.0.0.1:9/hooks');
    });
  });
});
