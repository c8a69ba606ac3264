// Every credential check is limited, through the real API on Tenants provisioned by the real operator,
// with the Redis rate limits: the token endpoint per account (password grant by `username`, client
// credentials by `client_id`), checks of a current password per user, the organization lookup of
// incoming webhooks per address (and its rescans never evict a pool that serves traffic), and the
// password-hashing budget per tenant (one tenant's bulk imports do not hold up another's sign-in).
import { expect } from 'chai';
import { startTestApi, type TestApi } from '../../harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../../harness/platform.js';
import { seededPassword as password, readyTenants, seedTenants } from '../../harness/seeded-tenants.js';

describe('credential checks are limited (real API, PostgreSQL, Redis and operator)', function () {
  this.timeout(180_000);
  let platform: TestPlatform;
  let api: TestApi;
  let tenantA: string;
  let tenantB: string;
  let tokens: Record<string, string>;
  // Every test signs in from addresses of its own (trust proxy is on), so per-address budgets never mix.
  let addressCounter = 0;
  const nextAddress = () => {
    addressCounter += 1;
    return `198.51.${Math.floor(addressCounter / 250)}.${(addressCounter % 250) + 1}`;
  };
  const from = (address: string) => ({ 'x-forwarded-for': address });

  async function login(target: TestApi, tenant: string, email: string): Promise<string> {
    const res = await target.call('POST', '/api/auth/login', {
      body: { tenant, email, password },
      headers: from(nextAddress()),
    });
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    return res.body.access_token as string;
  }

  /** The draft-8 `RateLimit` policy names of a response. */
  const policies = (headers: Headers) =>
    [...(headers.get('ratelimit') ?? '').matchAll(/"([^"]+)"/g)].map((m) => m[1]);

  function expectTooMany(res: { status: number; headers: Headers; body: any }, detail: RegExp) {
    expect(res.status, JSON.stringify(res.body)).to.equal(429);
    expect(res.headers.get('content-type')).to.contain('application/problem+json');
    expect(Number(res.headers.get('retry-after'))).to.be.within(1, 60);
    expect(res.body.detail).to.match(detail);
  }

  before(async () => {
    platform = await startTestPlatform('climits');
    [tenantA, tenantB] = await readyTenants(platform, ['a', 'b']);
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace, { trustProxy: true });
    ({ access: tokens } = await seedTenants(api, [tenantA, tenantB], {
      profile: () => ({ first_name: null, last_name: null }),
      signInHeaders: () => from(nextAddress()),
    }));
  });

  after(async () => {
    await api?.close();
    await platform?.cleanup();
  });

  describe('the token endpoint counts per account', () => {
    it('counts the password grant by username together with logins by email', async () => {
      const address = nextAddress();
      const account = `member@${tenantA}.example`;
      const statuses: number[] = [];
      for (let i = 0; i < 10; i += 1) {
        const res =
          i % 2 === 0
            ? await api.call('POST', '/api/auth/token', {
                body: { grant_type: 'password', tenant: tenantA, username: account, password: 'wrong' },
                headers: from(address),
              })
            : await api.call('POST', '/api/auth/login', {
                body: { tenant: tenantA, email: account, password: 'wrong' },
                headers: from(address),
              });
        statuses.push(res.status);
      }
      // A wrong password is invalid_grant (400) at the token endpoint (RFC 6749 §5.2), 401 at login.
      expect(statuses).to.deep.equal(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? 400 : 401)));
      // The 11th guess at this account, as a form-encoded password grant with another spelling: refused.
      const form = new URLSearchParams({
        grant_type: 'password',
        tenant: tenantA,
        username: account.toUpperCase(),
        password,
      });
      const refused = await api.call('POST', '/api/auth/token', {
        body: form.toString(),
        headers: { ...from(address), 'content-type': 'application/x-www-form-urlencoded' },
      });
      expectTooMany(refused, /too many sign-in attempts for this account/);
      expect(policies(refused.headers)).to.include('auth-account');
      // The address itself is not blocked: another account still gets an answer.
      const other = await api.call('POST', '/api/auth/token', {
        body: {
          grant_type: 'password',
          tenant: tenantA,
          username: `admin@${tenantA}.example`,
          password: 'wrong',
        },
        headers: from(address),
      });
      expect(other.status).to.equal(400);
    });

    it('counts client_credentials by client_id', async () => {
      const created = await api.call('POST', '/api/clients', {
        token: tokens[`${tenantA}/owner`]!,
        body: { name: 'limits', role: 'member' },
      });
      expect(created.status, JSON.stringify(created.body)).to.equal(201);
      const { client_id: clientId, client_secret: clientSecret } = created.body as {
        client_id: string;
        client_secret: string;
      };
      const address = nextAddress();
      const grant = (id: string, secret: string) =>
        api.call('POST', '/api/auth/token', {
          body: { grant_type: 'client_credentials', client_id: id, client_secret: secret },
          headers: from(address),
        });
      // A machine client may fetch tokens often: successful grants are given back.
      const granted: number[] = [];
      for (let i = 0; i < 12; i += 1) granted.push((await grant(clientId, clientSecret)).status);
      expect(granted).to.deep.equal(Array<number>(12).fill(200));
      const statuses: number[] = [];
      for (let i = 0; i < 10; i += 1) statuses.push((await grant(clientId, `cs_wrong_${i}`)).status);
      expect(statuses).to.deep.equal(Array<number>(10).fill(401));
      // Even the right secret is refused now, from this address, for this client.
      const refused = await grant(clientId, clientSecret);
      expectTooMany(refused, /too many sign-in attempts for this account/);
      expect(policies(refused.headers)).to.include('auth-account');
      expect((await grant(`${tenantA}.cl_someoneelse`, 'cs_wrong')).status).to.equal(401);
    });
  });

  describe('checks of a current password count per user', () => {
    it('limits password change, and profile requests carrying a current password, per user', async () => {
      const token = tokens[`${tenantB}/member`]!;
      const change = (address: string) =>
        api.call('POST', '/api/auth/password/change', {
          token,
          body: { current_password: 'a wrong guess 123', new_password: 'a much better passphrase 2026' },
          headers: from(address),
        });
      const statuses: number[] = [];
      for (let i = 0; i < 5; i += 1) statuses.push((await change(nextAddress())).status);
      expect(statuses).to.deep.equal(Array<number>(5).fill(400));
      // Per user, not per address: a fresh address does not help.
      const refused = await change(nextAddress());
      expectTooMany(refused, /too many checks of your current password/);
      expect(policies(refused.headers)).to.include('current-password');
      const profile = await api.call('PATCH', '/api/auth/profile', {
        token,
        body: { first_name: 'Guess', current_password: 'another guess 456' },
        headers: from(nextAddress()),
      });
      expectTooMany(profile, /too many checks of your current password/);
      // Profile edits without a password, and other users, are not held up.
      const edit = await api.call('PATCH', '/api/auth/profile', { token, body: { first_name: 'Still' } });
      expect(edit.status, JSON.stringify(edit.body)).to.equal(200);
      const otherUser = await api.call('POST', '/api/auth/password/change', {
        token: tokens[`${tenantB}/admin`]!,
        body: { current_password: 'a wrong guess 123', new_password: 'a much better passphrase 2026' },
      });
      expect(otherUser.status).to.equal(400);
    });
  });

  describe('incoming webhooks naming an unknown organization', () => {
    let small: TestApi;
    let serving: string;

    before(async () => {
      // One tenant pool per replica: any pool the lookup opened would evict the one serving traffic.
      small = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace, {
        trustProxy: true,
        tenantPoolsMax: 1,
      });
      serving = await login(small, tenantA, `member@${tenantA}.example`);
    });

    after(async () => {
      await small?.close();
    });

    const unknownEvent = (i: number) =>
      JSON.stringify({
        event_type: 'user.created',
        event_id: `evt_unknown_${i}`,
        organization_id: `org_nobody_${i}_${Date.now()}`,
        data: {},
      });
    const post = (target: TestApi, i: number, address: string) =>
      target.call('POST', '/api/integrations/webhooks/user-service', {
        body: unknownEvent(i),
        headers: from(address),
      });
    const scans = async (target: TestApi) => {
      const text = await target.metrics();
      return [...text.matchAll(/^tenantry_api_organization_map_scans_total\{[^}]*\} (\d+)/gm)].reduce(
        (sum, m) => sum + Number(m[1]),
        0,
      );
    };

    it('limits the failed lookups of one address', async () => {
      const address = nextAddress();
      const statuses: number[] = [];
      for (let i = 0; i < 32; i += 1) statuses.push((await post(api, i, address)).status);
      expect(statuses.slice(0, 30)).to.deep.equal(Array<number>(30).fill(401));
      const refused = await post(api, 99, address);
      expectTooMany(refused, /too many failed webhooks from this address/);
      expect(policies(refused.headers)).to.include('webhook-lookup');
      expect((await post(api, 100, nextAddress())).status).to.equal(401);
    });

    it('rescans at most once per interval and never evicts the pool of a tenant serving traffic', async () => {
      const credentials = small.directory.servable(tenantA).credentials;
      const users = () => small.call('GET', '/api/users?page_size=1', { token: serving });
      expect((await users()).status).to.equal(200);
      const pool = small.databases.for(tenantA, credentials);
      const scansBefore = await scans(small);

      // 6 s of unknown organizations from ever new addresses, 8 in flight, while tenant A keeps working.
      const deadline = Date.now() + 6000;
      let sent = 0;
      const floodStatuses = new Set<number>();
      const flood = Array.from({ length: 8 }, async () => {
        while (Date.now() < deadline) {
          sent += 1;
          floodStatuses.add((await post(small, sent, nextAddress())).status);
        }
      });
      const servingStatuses: number[] = [];
      const traffic = (async () => {
        while (Date.now() < deadline) {
          servingStatuses.push((await users()).status);
          await new Promise((ok) => setTimeout(ok, 100));
        }
      })();
      await Promise.all([...flood, traffic]);

      expect(sent).to.be.above(20);
      expect([...floodStatuses]).to.deep.equal([401]);
      expect(
        servingStatuses.every((s) => s === 200),
        String(servingStatuses),
      ).to.equal(true);
      // The same pool object: it was never closed and reopened.
      expect(small.databases.for(tenantA, credentials)).to.equal(pool);
      expect(small.databases.size).to.equal(1);
      // A miss rescans at most every 15 s; 6 s leave room for one, and one rebuild by age.
      expect((await scans(small)) - scansBefore).to.be.within(0, 2);
    });
  });

  describe('the password-hashing budget', () => {
    it("lets another tenant sign in ahead of one tenant's backlog of password work", async () => {
      // Tenant A: two bulk imports with passwords, and a burst of 120 sign-in attempts (each an argon2
      // verification, like an imported password's hash), every one from an address of its own.
      const imports = [0, 1].map((i) =>
        api.call('POST', '/api/users/bulk', {
          token: tokens[`${tenantA}/admin`]!,
          body: {
            users: Array.from({ length: 20 }, (_, j) => ({
              email: `bulk-${i}-${j}@${tenantA}.example`,
              password,
            })),
          },
        }),
      );
      let answeredA = 0;
      const attemptsA = Array.from({ length: 120 }, (_, i) =>
        api
          .call('POST', '/api/auth/login', {
            body: { tenant: tenantA, email: `nobody-${i}@${tenantA}.example`, password: 'a wrong guess' },
            headers: from(nextAddress()),
          })
          .then((res) => {
            answeredA += 1;
            return res.status;
          }),
      );
      // Once A's first answers arrive, its attempts have been read and wait for their verification.
      while (answeredA < 3) await new Promise((ok) => setTimeout(ok, 10));

      // Three of B's users sign in at once. Count A's answers that arrive while each waits: first come,
      // first served, every sign-in of B would wait for nearly all of A's backlog.
      const signIns = ['owner', 'admin', 'member'].map(async (role) => {
        const before = answeredA;
        const res = await api.call('POST', '/api/auth/login', {
          body: { tenant: tenantB, email: `${role}@${tenantB}.example`, password },
          headers: from(nextAddress()),
        });
        return { status: res.status, answeredMeanwhile: answeredA - before };
      });
      const outcomes = await Promise.all(signIns);
      expect(outcomes.map((o) => o.status)).to.deep.equal([200, 200, 200]);
      const statusesA = await Promise.all(attemptsA);
      expect(new Set(statusesA)).to.deep.equal(new Set([401]));
      for (const res of await Promise.all(imports)) {
        expect(res.status, JSON.stringify(res.body)).to.equal(200);
        expect(res.body.created).to.equal(20);
      }
      // With the budget a sign-in of B takes the next free slot while A holds at most 2.
      const meanwhile = outcomes.map((o) => o.answeredMeanwhile);
      expect(
        Math.min(...meanwhile),
        `A's answers during each of B's sign-ins: ${meanwhile.join(', ')}`,
      ).to.be.below(40);
    });
  });
});
