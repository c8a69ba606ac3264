// Every answer of a realistic scenario validates against the published
// OpenAPI document (JSON Schema 2020-12): a Tenant of every plan, created by
// the platform admin through the API, and in each its owner, admin and member
// doing what their role allows and being refused what it does not, with the
// OAuth endpoints, webhooks (and the deliveries the worker posts, against the
// document's `webhooks` section) and integrations. The status must be
// documented for the operation, and the body, errors included, must match.
import { expect } from 'chai';
import createClient from 'openapi-fetch';
import type { paths } from '../../api/openapi.js';
import { plans, roles, type Plan, type Role } from '../../lib/tenant/index.js';
import { platformAdminClient, startTestApi, type TestApi } from '../harness/api-server.js';
import { OpenApiContract, type CheckedAnswer } from '../harness/openapi-contract.js';
import { startTestPlatform, type TestPlatform } from '../harness/platform.js';
import { seedTenants, seededPassword, type SeededTenants } from '../harness/seeded-tenants.js';
import { eventually } from '../harness/wait.js';
import { startTestWorker, tenantAmqp, WebhookReceiver, type TestWorker } from '../harness/webhook-harness.js';

const missing = '00000000-0000-4000-8000-000000000000';

describe('OpenAPI: every answer of a scenario across plans and roles matches the document', function () {
  this.timeout(900_000);
  let platform: TestPlatform;
  let api: TestApi;
  let contract: OpenApiContract;
  let admin: string;
  let seeded: SeededTenants;
  let worker: TestWorker | undefined;
  const receiver = new WebhookReceiver();
  const tenantOf = {} as Record<Plan, string>;
  let addresses = 0;
  let address = '10.16.0.1';
  const nextAddress = () => `10.16.${Math.floor(++addresses / 250)}.${(addresses % 250) + 1}`;

  /** A call through the contract: JSON body, bearer token, and the status it must answer. */
  async function call(
    method: string,
    path: string,
    options: { token?: string; body?: unknown; form?: Record<string, string>; basic?: string } = {},
  ): Promise<CheckedAnswer> {
    const headers: Record<string, string> = { 'x-forwarded-for': address };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.basic) headers.authorization = `Basic ${options.basic}`;
    let body: string | undefined;
    if (options.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(options.form).toString();
    } else if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    return contract.fetch(`${api.url}${path}`, { method, headers, ...(body ? { body } : {}) });
  }

  async function expectStatus(answer: Promise<CheckedAnswer>, status: number): Promise<CheckedAnswer> {
    const got = await answer;
    expect(got.status, `${got.operation}: ${JSON.stringify(got.body)?.slice(0, 300)}`).to.equal(status);
    return got;
  }

  before(async () => {
    platform = await startTestPlatform('oasresp');
    // Each caller signs in from an address of its own, under the per-address sign-in limit.
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace, {
      webhooksAllowLoopback: true,
      trustProxy: true,
    });
    contract = await OpenApiContract.load(api.url);
    const token = await call('POST', '/api/auth/token', {
      form: {
        grant_type: 'client_credentials',
        client_id: platformAdminClient.clientId,
        client_secret: platformAdminClient.clientSecret,
      },
    });
    admin = (token.body as { access_token: string }).access_token;
    // The platform admin creates a Tenant of every plan.
    for (const plan of plans) {
      const name = platform.tenantName(plan.slice(0, 4));
      tenantOf[plan] = name;
      const created = await expectStatus(
        call('POST', '/api/tenants', {
          token: admin,
          body: { name, plan, owner_email: `boss@${name}.example` },
        }),
        201,
      );
      expect(created.body).to.include({ name, plan });
    }
    await Promise.all(plans.map((plan) => platform.waitReady(tenantOf[plan], 300_000)));
    await eventually('the API to see every tenant Ready', () =>
      Promise.resolve(plans.every((p) => api.directory.get(tenantOf[p])?.ready) || undefined),
    );
    seeded = await seedTenants(
      api,
      plans.map((p) => tenantOf[p]),
      { signInHeaders: () => ({ 'x-forwarded-for': nextAddress() }) },
    );
    await receiver.start();
  });

  after(async () => {
    await worker?.stop();
    await receiver.close();
    await api?.close();
    await platform?.cleanup();
  });

  it('answers the public and operational endpoints as documented', async () => {
    for (const path of ['/healthz', '/readyz', '/health', '/.well-known/jwks.json', '/api/openapi.json']) {
      await expectStatus(call('GET', path), 200);
    }
    await expectStatus(call('GET', '/.well-known/oauth-authorization-server'), 200);
    await expectStatus(call('POST', '/api/auth/sso/discover', { body: { email: 'x@nobody.example' } }), 200);
    await expectStatus(call('POST', '/api/auth/sso/discover', { body: { email: 'not an address' } }), 400);
    await expectStatus(
      call('POST', '/api/auth/password/reset', {
        body: { tenant: tenantOf.free, email: 'nobody@x.example' },
      }),
      202,
    );
    await expectStatus(call('POST', '/api/signup', { body: { tenant: 'x' } }), 404);
    await expectStatus(call('GET', '/api/users'), 401);
    await expectStatus(call('GET', '/api/users', { token: 'not.a.token' }), 401);
    await expectStatus(call('GET', `/api/auth/sso/saml/${tenantOf.free}/metadata`), 200);
    await expectStatus(call('GET', '/api/auth/sso/saml/no-such-tenant-here/metadata'), 404);
  });

  it('answers the platform admin as documented', async () => {
    const list = await expectStatus(call('GET', '/api/tenants?page_size=100', { token: admin }), 200);
    expect((list.body as { count: number }).count).to.be.at.least(plans.length);
    for (const plan of plans) {
      const one = await expectStatus(call('GET', `/api/tenants/${tenantOf[plan]}`, { token: admin }), 200);
      expect(one.body).to.include({ plan, ready: true });
    }
    await expectStatus(
      call('PATCH', `/api/tenants/${tenantOf.free}`, { token: admin, body: { display_name: 'Free one' } }),
      200,
    );
    // The change is reconciled before the tenant serves again.
    await platform.waitReady(tenantOf.free, 300_000);
    await eventually('the API to see the free tenant Ready again', () =>
      Promise.resolve(api.directory.get(tenantOf.free)?.ready || undefined),
    );
    await expectStatus(call('PATCH', `/api/tenants/${tenantOf.free}`, { token: admin, body: {} }), 400);
    await expectStatus(call('GET', '/api/tenants/no-such-tenant-here', { token: admin }), 404);
    await expectStatus(
      call('POST', '/api/tenants', {
        token: admin,
        body: { name: tenantOf.free, plan: 'free', owner_email: 'x@y.example' },
      }),
      409,
    );
    await expectStatus(call('GET', '/api/users', { token: admin }), 403);
  });

  for (const plan of plans) {
    for (const role of roles) {
      it(`answers a ${role} of a ${plan} tenant as documented`, async () => {
        await scenario(plan, role);
      });
    }
  }

  async function scenario(plan: Plan, role: Role): Promise<void> {
    address = nextAddress();
    const tenant = tenantOf[plan];
    const user = seeded.users[`${tenant}/${role}`]!;
    const token = user.access;
    const manages = role !== 'member';

    // Tokens: the password grant (form-urlencoded), refresh, and OAuth errors.
    const login = await expectStatus(
      call('POST', '/api/auth/login', { body: { tenant, email: user.email, password: seededPassword } }),
      200,
    );
    expect(login.body).to.have.nested.property('user.role', role);
    expect(JSON.stringify(login.body)).to.not.match(/password_hash|argon2/);
    const granted = await expectStatus(
      call('POST', '/api/auth/token', {
        form: { grant_type: 'password', tenant, username: user.email, password: seededPassword },
      }),
      200,
    );
    const refreshed = await expectStatus(
      call('POST', '/api/auth/token', {
        form: {
          grant_type: 'refresh_token',
          refresh_token: (granted.body as { refresh_token: string }).refresh_token,
        },
      }),
      200,
    );
    await expectStatus(
      call('POST', '/api/auth/token', {
        form: { grant_type: 'password', tenant, username: user.email, password: 'wrong password' },
      }),
      400,
    );
    await expectStatus(call('POST', '/api/auth/token', { form: { grant_type: 'implicit' } }), 400);
    await expectStatus(
      call('POST', '/api/auth/logout', {
        body: { refresh_token: (refreshed.body as { refresh_token: string }).refresh_token },
      }),
      204,
    );
    await expectStatus(call('POST', '/api/auth/login', { body: { tenant } }), 400);

    // Profile and the tenant.
    await expectStatus(call('GET', '/api/auth/profile', { token }), 200);
    await expectStatus(
      call('PATCH', '/api/auth/profile', { token, body: { department: `${role} desk` } }),
      200,
    );
    await expectStatus(call('PATCH', '/api/auth/profile', { token, body: { role: 'owner' } }), 400);
    const current = await expectStatus(call('GET', '/api/tenants/current', { token }), 200);
    expect(current.body).to.include({ name: tenant, plan });
    await expectStatus(call('GET', '/api/tenants', { token }), 403);

    // Users.
    const list = await expectStatus(call('GET', '/api/users?page_size=2&ordering=-email', { token }), 200);
    expect(JSON.stringify(list.body)).to.not.match(/password_hash|argon2/);
    await expectStatus(call('GET', `/api/users/${user.id}`, { token }), 200);
    await expectStatus(call('GET', `/api/users/${missing}`, { token }), 404);
    await expectStatus(call('GET', '/api/users?page=0', { token }), 400);
    const newEmail = `made-by-${role}-${Date.now()}@${tenant}.example`;
    const created = await expectStatus(
      call('POST', '/api/users', { token, body: { email: newEmail, role: 'member' } }),
      manages ? 201 : 403,
    );
    if (manages) {
      const id = (created.body as { id: string }).id;
      await expectStatus(call('POST', '/api/users', { token, body: { email: newEmail } }), 409);
      await expectStatus(call('POST', '/api/users', { token, body: { email: 'nope' } }), 400);
      await expectStatus(call('PATCH', `/api/users/${id}`, { token, body: { department: 'sales' } }), 200);
      await expectStatus(call('POST', `/api/users/${id}/deactivate`, { token }), 200);
      await expectStatus(call('POST', `/api/users/${id}/activate`, { token }), 200);
      await expectStatus(call('PATCH', `/api/users/${missing}`, { token, body: { department: 'x' } }), 404);
      const bulk = await expectStatus(
        call('POST', '/api/users/bulk', {
          token,
          body: { users: [{ email: `bulk-${role}-${Date.now()}@${tenant}.example` }, { email: 'bad' }] },
        }),
        200,
      );
      expect(bulk.body).to.include({ created: 1, failed: 1 });
      await expectStatus(call('DELETE', `/api/users/${id}`, { token }), 204);
      await expectStatus(call('DELETE', `/api/users/${id}`, { token }), 404);
    } else {
      await expectStatus(call('POST', `/api/users/${user.id}/deactivate`, { token }), 403);
      await expectStatus(call('POST', '/api/users/bulk', { token, body: { users: [{}] } }), 403);
    }

    // API clients, and the client_credentials grant, introspection and revocation.
    await expectStatus(call('GET', '/api/clients', { token }), manages ? 200 : 403);
    const client = await expectStatus(
      call('POST', '/api/clients', { token, body: { name: `${role} robot`, role: 'member' } }),
      manages ? 201 : 403,
    );
    if (manages) {
      const { id, client_id, client_secret } = client.body as {
        id: string;
        client_id: string;
        client_secret: string;
      };
      const basic = Buffer.from(
        `${encodeURIComponent(client_id)}:${encodeURIComponent(client_secret)}`,
      ).toString('base64');
      const cc = await expectStatus(
        call('POST', '/api/auth/token', { basic, form: { grant_type: 'client_credentials' } }),
        200,
      );
      const clientToken = (cc.body as { access_token: string }).access_token;
      const introspected = await expectStatus(
        call('POST', '/api/auth/introspect', { basic, form: { token: clientToken } }),
        200,
      );
      expect(introspected.body).to.include({ active: true });
      await expectStatus(call('POST', '/api/auth/introspect', { basic, form: { token: 'unknown' } }), 200);
      await expectStatus(call('POST', '/api/auth/introspect', { basic, form: {} }), 400);
      await expectStatus(call('POST', '/api/auth/revoke', { basic, form: { token: clientToken } }), 200);
      const wrong = Buffer.from(`${encodeURIComponent(client_id)}:wrong`).toString('base64');
      await expectStatus(call('POST', '/api/auth/introspect', { basic: wrong, form: { token: 'x' } }), 401);
      await expectStatus(call('DELETE', `/api/clients/${id}`, { token }), 204);
      await expectStatus(call('DELETE', `/api/clients/${missing}`, { token }), 404);
    }

    // The audit log.
    await expectStatus(call('GET', '/api/audit-logs?page_size=5', { token }), manages ? 200 : 403);
    await expectStatus(call('GET', '/api/audit-logs/verify', { token }), manages ? 200 : 403);
    if (manages) await expectStatus(call('GET', '/api/audit-logs?since=yesterday', { token }), 400);

    // Outgoing webhooks.
    await expectStatus(call('GET', '/api/webhooks/endpoints', { token }), manages ? 200 : 403);
    const endpoint = await expectStatus(
      call('POST', '/api/webhooks/endpoints', {
        token,
        body: { url: receiver.url(`/${tenant}/${role}`), event_types: ['user.*', 'webhook.*'] },
      }),
      manages ? 201 : 403,
    );
    if (manages) {
      const id = (endpoint.body as { id: string }).id;
      await expectStatus(call('GET', `/api/webhooks/endpoints/${id}`, { token }), 200);
      await expectStatus(call('GET', `/api/webhooks/endpoints/${missing}`, { token }), 404);
      await expectStatus(
        call('PATCH', `/api/webhooks/endpoints/${id}`, { token, body: { description: 'scenario' } }),
        200,
      );
      await expectStatus(
        call('POST', `/api/webhooks/endpoints/${id}/rotate-secret`, { token, body: { overlap_seconds: 60 } }),
        200,
      );
      const sent = await expectStatus(call('POST', `/api/webhooks/endpoints/${id}/test`, { token }), 202);
      const messageId = (sent.body as { message_id: string }).message_id;
      await expectStatus(
        call(
          'POST',
          `/api/webhooks/endpoints/${id}/replay?since=${encodeURIComponent('2020-01-01T00:00:00Z')}`,
          {
            token,
          },
        ),
        202,
      );
      await expectStatus(call('POST', `/api/webhooks/endpoints/${id}/replay?since=soon`, { token }), 400);
      await expectStatus(call('GET', '/api/webhooks/messages', { token }), 200);
      await expectStatus(call('GET', `/api/webhooks/messages/${messageId}`, { token }), 200);
      await expectStatus(call('GET', `/api/webhooks/messages/${messageId}/attempts`, { token }), 200);
      await expectStatus(call('GET', '/api/webhooks/messages/msg_nothinghere0', { token }), 404);
      await expectStatus(
        call('PATCH', `/api/webhooks/endpoints/${id}`, { token, body: { enabled: false } }),
        200,
      );
      await expectStatus(call('POST', `/api/webhooks/endpoints/${id}/test`, { token }), 409);
      await expectStatus(call('DELETE', `/api/webhooks/endpoints/${id}`, { token }), 204);
    }

    // Integrations.
    await expectStatus(call('GET', '/api/integrations/providers', { token }), manages ? 200 : 403);
    await expectStatus(call('GET', '/api/integrations/health', { token }), manages ? 200 : 403);
    await expectStatus(call('GET', '/api/integrations/events', { token }), manages ? 200 : 403);
    if (manages) {
      // The owner's scenario runs first in each tenant and configures the provider.
      await expectStatus(
        call('GET', '/api/integrations/providers/user-service', { token }),
        role === 'owner' ? 404 : 200,
      );
      const secret = `whsec_${Buffer.alloc(32, role.length).toString('base64')}`;
      await expectStatus(
        call('PUT', '/api/integrations/providers/user-service', {
          token,
          body: { organization_id: `org-${tenant}`, secret },
        }),
        role === 'owner' ? 201 : 200,
      );
      const provider = await expectStatus(
        call('GET', '/api/integrations/providers/user-service', { token }),
        200,
      );
      expect(JSON.stringify(provider.body)).to.not.contain(secret.slice(6));
      await expectStatus(call('GET', '/api/integrations/providers/nothing', { token }), 404);
      await expectStatus(call('GET', `/api/integrations/events/${missing}`, { token }), 404);
      await expectStatus(call('POST', `/api/integrations/events/${missing}/retry`, { token }), 404);
      await expectStatus(call('GET', '/api/integrations/health?window_minutes=0', { token }), 400);
    }
    // Unsigned provider events: refused, as documented, for want of a signature or of an organization.
    const unsigned = await call('POST', '/api/integrations/webhooks/user-service', {
      body: { event_type: 'user.created', organization_id: `org-${tenant}` },
    });
    expect(unsigned.status).to.be.oneOf([400, 401]);
    await expectStatus(
      call('POST', `/api/integrations/webhooks/user-service/${tenant}`, {
        body: { event_type: 'user.created' },
      }),
      401,
    );

    await expectStatus(
      call('POST', '/api/auth/password/change', { token, body: { current_password: 'x' } }),
      400,
    );
  }

  it('delivers webhooks whose bodies match the webhooks section of the document', async () => {
    const tenant = tenantOf.premium;
    const owner = seeded.users[`${tenant}/owner`]!.access;
    const amqp = await tenantAmqp(platform.cp, tenant);
    worker = startTestWorker({
      databaseUrl: api.directory.servable(tenant).credentials.uri,
      amqpUrl: amqp.url,
      queuePrefix: amqp.queuePrefix,
    });
    await worker.ready();
    const path = '/delivered';
    const endpoint = await expectStatus(
      call('POST', '/api/webhooks/endpoints', {
        token: owner,
        body: { url: receiver.url(path), event_types: [] },
      }),
      201,
    );
    const id = (endpoint.body as { id: string }).id;
    const created = await expectStatus(
      call('POST', '/api/users', { token: owner, body: { email: `hooked-${Date.now()}@${tenant}.example` } }),
      201,
    );
    const userId = (created.body as { id: string }).id;
    await expectStatus(
      call('PATCH', `/api/users/${userId}`, { token: owner, body: { first_name: 'Ada' } }),
      200,
    );
    await expectStatus(call('POST', `/api/users/${userId}/deactivate`, { token: owner }), 200);
    await expectStatus(call('POST', `/api/users/${userId}/activate`, { token: owner }), 200);
    await expectStatus(call('DELETE', `/api/users/${userId}`, { token: owner }), 204);
    await expectStatus(call('POST', `/api/webhooks/endpoints/${id}/test`, { token: owner }), 202);
    const expected = [
      'user.created',
      'user.updated',
      'user.deactivated',
      'user.activated',
      'user.deleted',
      'webhook.test',
    ];
    const delivered = await eventually(
      'every event delivered',
      () => Promise.resolve(receiver.on(path).length >= expected.length ? receiver.on(path) : undefined),
      { timeoutMs: 60_000 },
    );
    const types = new Set<string>();
    for (const hook of delivered) {
      const body = JSON.parse(hook.body) as { type: string };
      expect(() => contract.checkWebhook(body), hook.body).not.to.throw();
      for (const header of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
        expect(hook.headers, header).to.have.property(header);
      }
      expect(JSON.stringify(body)).to.not.match(/password_hash|argon2|whsec_/);
      types.add(body.type);
    }
    expect([...types].sort()).to.deep.equal([...expected].sort());
  });

  it('serves the client typed from api/openapi.d.ts (openapi-fetch), every answer checked', async () => {
    const tenant = tenantOf.professional;
    const headers = { authorization: `Bearer ${seeded.users[`${tenant}/admin`]!.access}` };
    const typed = createClient<paths>({
      baseUrl: api.url,
      fetch: async (request) => {
        const response = await fetch(request);
        const text = await response.clone().text();
        const type = response.headers.get('content-type');
        const body: unknown = text === '' ? undefined : /json/.test(type ?? '') ? JSON.parse(text) : text;
        contract.check(request.method, new URL(request.url).pathname, response.status, type, body);
        return response;
      },
    });
    const users = await typed.GET('/api/users', { params: { query: { page_size: 5 } }, headers });
    expect(users.response.status).to.equal(200);
    expect(users.data!.results.map((u) => u.role)).to.include('admin');
    const endpoint = await typed.POST('/api/webhooks/endpoints', {
      headers,
      body: { url: receiver.url('/typed'), event_types: ['user.*'] },
    });
    expect(endpoint.data!.secret).to.match(/^whsec_/);
    const missingUser = await typed.GET('/api/users/{id}', { params: { path: { id: missing } }, headers });
    expect(missingUser.response.status).to.equal(404);
    expect(missingUser.error).to.include({ status: 404, title: 'Not Found' });
  });

  it('reached every tenant-facing operation of the document', () => {
    const reached = new Set([...contract.covered].map((c) => c.split(' ').slice(0, 2).join(' ')));
    // Browser and provider flows have their own suites: SSO (test/api/sso), signup (tenancy),
    // self-registration and reset confirmation (auth), signed provider webhooks (integrations).
    const elsewhere = [
      /^GET \/api\/auth\/sso\/(saml|oidc)\/\{tenant\}\/(login|callback)$/,
      /^POST \/api\/auth\/sso\/(saml\/\{tenant\}\/acs|exchange)$/,
      /^GET \/api\/signup\/\{tenant\}$/,
      /^POST \/api\/auth\/(register|register\/verify|password\/reset\/confirm)$/,
      /^POST \/api\/integrations\/webhooks\/\{provider\}\/\{tenant\}$/,
      /^DELETE \/api\/tenants\/\{name\}$/,
    ];
    const documented = Object.entries(contract.document.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const unreached = documented.filter((op) => !reached.has(op) && !elsewhere.some((re) => re.test(op)));
    expect(unreached).to.deep.equal([]);
  });
});
