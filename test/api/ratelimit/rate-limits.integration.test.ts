// Rate limits on a tiny Express 5 app against real Redis. Every test gets its
// own key prefix, so counts never leak between tests; all requests come from
// 127.0.0.1 unless `trust proxy` lets X-Forwarded-For say otherwise.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import express from 'express';
import { Redis } from 'ioredis';
import { errorHandler } from '../../../api/src/http/problem.js';
import { RateLimits, type RateLimitLog } from '../../../api/src/ratelimit/rate-limits.js';
import { createTestRedis, serviceUrls, type TestRedis } from '../../harness/services.js';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.js';

interface LogLine {
  level: 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string;
}

interface Replica {
  url: string;
  logs: LogLine[];
  close(): Promise<void>;
}

interface ReplicaOptions {
  redis: Redis;
  prefix: string;
  trustProxy?: boolean | number;
  commandTimeoutMs?: number;
}

const tenantLimits: Record<string, number | undefined> = { unlimited: undefined };
/** Plan default 3; a tenant named `gold-*` has a Tenant spec override of 5. */
function tenantLimit(tenant: string): number | undefined {
  if (tenant in tenantLimits) return tenantLimits[tenant];
  return tenant.startsWith('gold-') ? 5 : 3;
}

async function startReplica(options: ReplicaOptions): Promise<Replica> {
  const logs: LogLine[] = [];
  const log: RateLimitLog = {
    warn: (obj, msg) => logs.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
    error: (obj, msg) => logs.push({ level: 'error', obj: obj as Record<string, unknown>, msg }),
  };
  const limits = new RateLimits({
    redis: options.redis,
    prefix: options.prefix,
    log,
    ...(options.commandTimeoutMs ? { commandTimeoutMs: options.commandTimeoutMs } : {}),
  });
  const app = express();
  app.set('trust proxy', options.trustProxy ?? false);
  // Stands in for the authentication middleware: the test picks the verified caller.
  app.use((req, res, next) => {
    const tenant = req.get('x-test-tenant');
    const platform = req.get('x-test-platform');
    if (tenant && req.get('x-test-shape') === 'kind') {
      // The shape api/src/auth/context.ts sets.
      res.locals.auth = {
        kind: 'tenant',
        tenant,
        userId: req.get('x-test-user') ?? 'u-1',
        role: 'member',
        jti: 'j',
      };
    } else if (tenant) {
      res.locals.auth = {
        tenant,
        userId: req.get('x-test-user') ?? 'u-1',
        role: 'member',
        platformAdmin: false,
      };
    } else if (platform) {
      res.locals.auth = { kind: 'platform', clientId: platform, jti: 'j' };
    }
    next();
  });
  const ok = (_req: express.Request, res: express.Response) => {
    res.json({ ok: true });
  };
  app.get(
    '/tenant',
    limits.perTenant((_req, tenant) => tenantLimit(tenant)),
    ok,
  );
  app.get('/user', limits.perUser(2), ok);
  app.get(
    '/both',
    limits.together(
      limits.perTenant(() => 3, { name: 'both-tenant' }),
      limits.perUser(2, { name: 'both-user' }),
    ),
    ok,
  );
  app.post(
    '/login',
    express.json(),
    ...limits.authAttempts({ perIpPerMinute: 5, perAccountPerMinute: 2 }),
    (_req, res) => {
      res.status(401).json({ ok: false });
    },
  );
  app.use(errorHandler({ error: (obj, msg) => log.error(obj, msg) }));

  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    logs,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function get(replica: Replica, path: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${replica.url}${path}`, { headers });
}

function login(
  replica: Replica,
  body: { tenant?: string; email?: string; password?: string },
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${replica.url}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ password: 'wrong', ...body }),
  });
}

async function statuses(requests: (() => Promise<Response>)[]): Promise<number[]> {
  const out: number[] = [];
  // One after another, so the order of counting is the order of the array.
  for (const request of requests) {
    const response = await request();
    await response.arrayBuffer();
    out.push(response.status);
  }
  return out;
}

function repeat<T>(times: number, make: (i: number) => T): T[] {
  return Array.from({ length: times }, (_, i) => make(i));
}

/** The draft-8 `RateLimit` entries by policy name: remaining and seconds to reset. */
function rateLimitEntries(response: Response): Record<string, { r: number; t: number }> {
  const header = response.headers.get('ratelimit') ?? '';
  const entries: Record<string, { r: number; t: number }> = {};
  for (const match of header.matchAll(/"([^"]+)"; r=(\d+); t=(\d+)/g)) {
    entries[match[1]!] = { r: Number(match[2]), t: Number(match[3]) };
  }
  return entries;
}

describe('rate limits (Redis)', function () {
  this.timeout(30_000);

  let redis: TestRedis;
  let testNumber = 0;
  let prefix: string;
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    redis = await createTestRedis('ratelimit');
  });

  beforeEach(() => {
    testNumber += 1;
    prefix = `${redis.prefix}${testNumber}:`;
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  after(async () => {
    await redis?.drop();
  });

  async function replica(options: Partial<ReplicaOptions> = {}): Promise<Replica> {
    const started = await startReplica({ redis: redis.client, prefix, ...options });
    cleanups.push(() => started.close());
    return started;
  }

  describe('per tenant', () => {
    it("holds each tenant to its plan's limit without touching the others", async () => {
      const api = await replica();
      const a = { 'x-test-tenant': 'acme' };
      const b = { 'x-test-tenant': 'globex' };
      // Different users of one tenant share its budget.
      expect(
        await statuses([
          () => get(api, '/tenant', { ...a, 'x-test-user': 'u-1' }),
          () => get(api, '/tenant', { ...a, 'x-test-user': 'u-2' }),
          () => get(api, '/tenant', { ...a, 'x-test-user': 'u-3', 'x-test-shape': 'kind' }),
          () => get(api, '/tenant', { ...a, 'x-test-user': 'u-4' }),
          () => get(api, '/tenant', a),
        ]),
      ).to.deep.equal([200, 200, 200, 429, 429]);
      expect(await statuses(repeat(3, () => () => get(api, '/tenant', b)))).to.deep.equal([200, 200, 200]);
      expect(await statuses([() => get(api, '/tenant', b)])).to.deep.equal([429]);
    });

    it("uses the tenant's own limit, and counts no one when there is none", async () => {
      const api = await replica();
      const gold = { 'x-test-tenant': 'gold-initech' };
      expect(await statuses(repeat(6, () => () => get(api, '/tenant', gold)))).to.deep.equal([
        200, 200, 200, 200, 200, 429,
      ]);
      const unlimited = await statuses(
        repeat(8, () => () => get(api, '/tenant', { 'x-test-tenant': 'unlimited' })),
      );
      expect(unlimited.every((s) => s === 200)).to.be.true;
      const response = await get(api, '/tenant', { 'x-test-tenant': 'unlimited' });
      expect(response.headers.get('ratelimit')).to.be.null;
    });

    it('does not count anonymous or platform-admin requests', async () => {
      const api = await replica();
      const anonymous = await statuses(repeat(5, () => () => get(api, '/tenant')));
      const platform = await statuses(
        repeat(5, () => () => get(api, '/tenant', { 'x-test-platform': 'ops' })),
      );
      expect([...anonymous, ...platform].every((s) => s === 200)).to.be.true;
      expect((await get(api, '/tenant')).headers.get('ratelimit')).to.be.null;
    });
  });

  describe('per user', () => {
    it('counts each user of each tenant separately', async () => {
      const api = await replica();
      const ada = { 'x-test-tenant': 'acme', 'x-test-user': 'ada' };
      expect(await statuses(repeat(3, () => () => get(api, '/user', ada)))).to.deep.equal([200, 200, 429]);
      // Another user of the tenant, and the same user id in another tenant, are untouched.
      expect(
        await statuses([
          () => get(api, '/user', { 'x-test-tenant': 'acme', 'x-test-user': 'bob' }),
          () => get(api, '/user', { 'x-test-tenant': 'globex', 'x-test-user': 'ada' }),
          () => get(api, '/user', { 'x-test-platform': 'ada' }),
        ]),
      ).to.deep.equal([200, 200, 200]);
    });
  });

  describe('sign-in attempts', () => {
    it('limits an address however many accounts it tries', async () => {
      const api = await replica();
      const attempts = repeat(6, (i) => () => login(api, { tenant: 'acme', email: `user${i}@example.com` }));
      expect(await statuses(attempts)).to.deep.equal([401, 401, 401, 401, 401, 429]);
      const refused = await login(api, { tenant: 'acme', email: 'fresh@example.com' });
      expect(refused.status).to.equal(429);
      expect(((await refused.json()) as { detail: string }).detail).to.match(/from this address/);
    });

    it('limits one account from one address, whatever the case of its e-mail', async () => {
      const api = await replica();
      expect(
        await statuses([
          () => login(api, { tenant: 'acme', email: 'ada@example.com' }),
          () => login(api, { tenant: 'ACME', email: ' Ada@Example.COM ' }),
          () => login(api, { tenant: 'acme', email: 'ADA@example.com' }),
          // The same e-mail in another tenant is another account.
          () => login(api, { tenant: 'globex', email: 'ada@example.com' }),
        ]),
      ).to.deep.equal([401, 401, 429, 401]);
      const refused = await login(api, { tenant: 'acme', email: 'ada@example.com' });
      expect(((await refused.json()) as { detail: string }).detail).to.match(/for this account/);
    });

    it('is not fooled by a rotating X-Forwarded-For when no proxy is trusted', async () => {
      const api = await replica({ trustProxy: false });
      const attempts = repeat(
        6,
        (i) => () =>
          login(
            api,
            { tenant: 'acme', email: `rotate${i}@example.com` },
            { 'x-forwarded-for': `198.51.100.${i + 1}` },
          ),
      );
      expect(await statuses(attempts)).to.deep.equal([401, 401, 401, 401, 401, 429]);
      // Nor for one account: its bucket is keyed by the real peer address.
      const account = repeat(
        3,
        (i) => () =>
          login(
            api,
            { tenant: 'acme', email: 'victim@example.com' },
            { 'x-forwarded-for': `203.0.113.${i}` },
          ),
      );
      expect(await statuses(account)).to.deep.equal([429, 429, 429]);
      expect(api.logs).to.deep.equal([]);
    });

    it('uses the right-most X-Forwarded-For address behind one trusted proxy', async () => {
      const api = await replica({ trustProxy: 1 });
      const from = (client: string, spoofed: string) => ({ 'x-forwarded-for': `${spoofed}, ${client}` });
      // What the client writes to the left of the proxy's entry changes nothing.
      const attempts = repeat(
        6,
        (i) => () =>
          login(api, { tenant: 'acme', email: `u${i}@example.com` }, from('203.0.113.10', `10.0.0.${i}`)),
      );
      expect(await statuses(attempts)).to.deep.equal([401, 401, 401, 401, 401, 429]);
      // Another client behind the proxy has its own budget.
      expect(
        (await login(api, { email: 'x@example.com' }, from('203.0.113.11', '10.0.0.1'))).status,
      ).to.equal(401);
    });

    it('puts the addresses of one IPv6 /56 in one bucket', async () => {
      const api = await replica({ trustProxy: 1 });
      const via = (address: string) => ({ 'x-forwarded-for': address });
      const sameSite = [
        '2001:db8:0:1::1',
        '2001:db8:0:2::abcd',
        '2001:db8:0:ff::1',
        '2001:db8:0:10::2',
        '2001:db8::5',
      ];
      const attempts = sameSite.map(
        (address, i) => () => login(api, { email: `v6-${i}@example.com` }, via(address)),
      );
      expect(await statuses(attempts)).to.deep.equal([401, 401, 401, 401, 401]);
      expect((await login(api, { email: 'v6-x@example.com' }, via('2001:db8:0:3::9'))).status).to.equal(429);
      expect((await login(api, { email: 'v6-y@example.com' }, via('2001:db8:0:100::1'))).status).to.equal(
        401,
      );
    });
  });

  it('shares counts between replicas through Redis', async () => {
    const second = new Redis(serviceUrls.redis, { maxRetriesPerRequest: 1 });
    cleanups.push(() => Promise.resolve(second.disconnect()));
    const one = await replica();
    const two = await replica({ redis: second });
    const acme = { 'x-test-tenant': 'acme' };

    const first = await get(one, '/tenant', acme);
    const then = await get(two, '/tenant', acme);
    expect(rateLimitEntries(first).tenant?.r).to.equal(2);
    expect(rateLimitEntries(then).tenant?.r).to.equal(1);
    expect(await statuses([() => get(one, '/tenant', acme), () => get(two, '/tenant', acme)])).to.deep.equal([
      200, 429,
    ]);
    expect(
      await statuses([
        () => login(two, { email: 'a@example.com' }),
        () => login(one, { email: 'a@example.com' }),
      ]),
    ).to.deep.equal([401, 401]);
    expect((await login(two, { email: 'a@example.com' })).status).to.equal(429);
  });

  it('sends draft-8 RateLimit and RateLimit-Policy headers, one entry per limiter', async () => {
    const api = await replica();
    const response = await get(api, '/both', { 'x-test-tenant': 'acme', 'x-test-user': 'ada' });
    expect(response.status).to.equal(200);
    const entries = rateLimitEntries(response);
    expect(entries['both-tenant']?.r).to.equal(2);
    expect(entries['both-user']?.r).to.equal(1);
    for (const { t } of Object.values(entries)) expect(t).to.be.within(1, 60);
    const policy = response.headers.get('ratelimit-policy') ?? '';
    expect(policy).to.match(/"both-tenant"; q=3; w=60; pk=:[A-Za-z0-9+/=]+:/);
    expect(policy).to.match(/"both-user"; q=2; w=60; pk=:[A-Za-z0-9+/=]+:/);
    expect(response.headers.get('x-ratelimit-limit')).to.be.null;
    expect(response.headers.get('x-ratelimit-remaining')).to.be.null;
    // No misconfiguration reported by express-rate-limit's own checks.
    expect(api.logs).to.deep.equal([]);
  });

  it('counts side-by-side limiters together, and answers with the first refusal in order', async () => {
    // The API's client: commands of concurrent limiters leave in one write.
    const pipelined = new Redis(serviceUrls.redis, { maxRetriesPerRequest: 1, enableAutoPipelining: true });
    cleanups.push(() => Promise.resolve(pipelined.disconnect()));
    const api = await replica({ redis: pipelined });
    const ada = { 'x-test-tenant': 'acme', 'x-test-user': 'ada' };
    const bob = { 'x-test-tenant': 'acme', 'x-test-user': 'bob' };
    const detail = async (response: Response) => ((await response.json()) as { detail: string }).detail;

    expect(await statuses(repeat(2, () => () => get(api, '/both', ada)))).to.deep.equal([200, 200]);
    // Ada's own limit (2) is spent; the tenant (3) still has room, and counts this request too.
    const third = await get(api, '/both', ada);
    expect(third.status).to.equal(429);
    expect(await detail(third)).to.match(/^you have made too many requests/);
    expect(rateLimitEntries(third)['both-tenant']?.r).to.equal(0);
    // So Bob, within his own limit, finds the tenant's budget spent.
    const fourth = await get(api, '/both', bob);
    expect(fourth.status).to.equal(429);
    expect(await detail(fourth)).to.match(/^this tenant has made too many requests/);
    expect(rateLimitEntries(fourth)['both-user']?.r).to.equal(1);
    // Both refuse Ada now: the tenant's refusal, first in order, is the answer.
    const fifth = await get(api, '/both', ada);
    expect(fifth.status).to.equal(429);
    expect(await detail(fifth)).to.match(/^this tenant has made too many requests/);
    expect(fifth.headers.get('retry-after')).to.match(/^\d+$/);
  });

  it('answers 429 as problem+json with Retry-After', async () => {
    const api = await replica();
    const ada = { 'x-test-tenant': 'acme', 'x-test-user': 'ada' };
    await statuses(repeat(2, () => () => get(api, '/user', ada)));
    const response = await get(api, '/user', ada);
    expect(response.status).to.equal(429);
    expect(response.headers.get('content-type')).to.match(/^application\/problem\+json/);
    const retryAfter = Number(response.headers.get('retry-after'));
    expect(retryAfter).to.be.within(1, 60);
    expect(rateLimitEntries(response).user?.r).to.equal(0);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).to.include({
      type: 'https://tenantry.io/problems/too-many-requests',
      title: 'Too Many Requests',
      status: 429,
      instance: '/user',
    });
    expect(body.detail).to.match(/limit is 2 per minute/);
  });

  describe('when Redis is down', () => {
    let proxy: TcpProxy;
    let proxied: Redis;

    beforeEach(async () => {
      proxy = await startTcpProxy(Number(new URL(serviceUrls.redis).port || 6379));
      proxied = new Redis({
        host: '127.0.0.1',
        port: proxy.port,
        maxRetriesPerRequest: 1,
        lazyConnect: true,
      });
      proxied.on('error', () => undefined);
      cleanups.push(async () => {
        proxied.disconnect();
        await proxy.close();
      });
    });

    async function redisReachable(): Promise<void> {
      for (let i = 0; i < 100; i += 1) {
        if (
          await proxied.ping().then(
            () => true,
            () => false,
          )
        )
          return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      throw new Error('the proxied Redis never came back');
    }

    it('lets tenant traffic through with a warning, refuses sign-in with 503, and recovers', async () => {
      await proxied.connect();
      const api = await replica({ redis: proxied, commandTimeoutMs: 300 });
      const acme = { 'x-test-tenant': 'acme' };
      expect((await get(api, '/tenant', acme)).status).to.equal(200);

      await proxy.pause();
      // Over acme's limit of 3, yet let through: the tenant limiter fails open.
      expect(await statuses(repeat(4, () => () => get(api, '/tenant', acme)))).to.deep.equal([
        200, 200, 200, 200,
      ]);
      const warnings = api.logs.filter((l) => l.level === 'warn' && l.obj.limiter === 'tenant');
      // Logged once, not once per request.
      expect(warnings).to.have.length(1);
      expect(warnings[0]?.msg).to.match(/unavailable/);

      const refused = await login(api, { tenant: 'acme', email: 'ada@example.com' });
      expect(refused.status).to.equal(503);
      expect(refused.headers.get('content-type')).to.match(/^application\/problem\+json/);
      expect(refused.headers.get('retry-after')).to.equal('5');
      expect(((await refused.json()) as { status: number }).status).to.equal(503);
      expect(api.logs.some((l) => l.level === 'error' && l.obj.limiter === 'auth-ip')).to.be.true;

      await proxy.resume();
      await redisReachable();
      const fresh = { 'x-test-tenant': 'acme-after' };
      expect(await statuses(repeat(4, () => () => get(api, '/tenant', fresh)))).to.deep.equal([
        200, 200, 200, 429,
      ]);
      expect((await login(api, { tenant: 'acme', email: 'ada@example.com' })).status).to.equal(401);
    });

    it('starts limiting once Redis appears after an outage at start-up', async () => {
      await proxy.pause();
      const api = await replica({ redis: proxied, commandTimeoutMs: 300 });
      const acme = { 'x-test-tenant': 'acme' };
      expect((await get(api, '/tenant', acme)).status).to.equal(200);

      await proxy.resume();
      await redisReachable();
      expect(await statuses(repeat(4, () => () => get(api, '/tenant', acme)))).to.deep.equal([
        200, 200, 200, 429,
      ]);
    });
  });

  it('refuses a second limiter with the same name, which would count requests twice', () => {
    const limits = new RateLimits({ redis: redis.client, prefix, log: { warn: () => {}, error: () => {} } });
    limits.perUser(1);
    expect(() => limits.perUser(5)).to.throw(/already exists/);
    expect(() => limits.perUser(-1, { name: 'other' })).to.throw(RangeError);
  });
});
