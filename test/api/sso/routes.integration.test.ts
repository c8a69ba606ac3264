// SSO through HTTP: Tenants provisioned by the real operator, the shared API
// in-process, a signing SAML IdP (samlify) and a real OpenID Provider
// (oidc-provider) on loopback, Redis for request IDs, states and hand-off
// codes. The test plays the browser: it follows redirects itself and sends
// back the cookies the API set.
import { expect } from 'chai';
import { AuditLog } from '../../../api/src/audit/audit-log.js';
import { hashPassword } from '../../../api/src/auth/passwords.js';
import { emailVerifiedAt } from '../../../api/src/users/email-verification.js';
import { startTestApi, type TestApi } from '../../harness/api-server.js';
import { browse, startTestIdp, type TestAccount, type TestIdp } from '../../harness/oidc-idp.js';
import { startTestPlatform, type TestPlatform } from '../../harness/platform.js';
import { generateSigningKey, TestSamlIdp, type ResponseOptions } from '../../harness/saml-idp.js';

// startTestApi's default public origin; nothing listens there.
const publicBaseUrl = 'https://app.tenantry.test';
const problemType = (code: string) => `https://tenantry.io/problems/sso-${code}`;

interface Reply {
  status: number;
  headers: Headers;
  body: any;
}

async function reply(response: Response): Promise<Reply> {
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON; keep the text
  }
  return { status: response.status, headers: response.headers, body };
}

/** `name=value` from a Set-Cookie header, with the whole header for attribute checks. */
function setCookie(headers: Headers, name: string): { pair: string; header: string } {
  const header = headers.getSetCookie().find((c) => c.startsWith(`${name}=`));
  expect(header, `Set-Cookie ${name}`).to.be.a('string');
  return { pair: header!.split(';')[0]!, header: header! };
}

function fieldsOf(res: Reply): string[] {
  return (res.body.errors as { field: string }[]).map((e) => e.field);
}

function expectSsoProblem(res: Reply, status: number, code: string): void {
  expect(res.status, JSON.stringify(res.body)).to.equal(status);
  expect(res.headers.get('content-type')).to.contain('application/problem+json');
  expect(res.body.type).to.equal(problemType(code));
  expect(res.body.status).to.equal(status);
}

describe('SSO routes (real operator, Redis, SAML IdP and OpenID Provider)', function () {
  this.timeout(180_000);

  let platform: TestPlatform;
  let api: TestApi;
  let samlIdp: TestSamlIdp;
  let oidcIdp: TestIdp;
  let tenantA: string;
  let tenantB: string;
  let domainA: string;
  let domainB: string;
  let ownerA: string;

  const base = () => api.publicBaseUrl;
  const sp = (tenant: string) => ({
    entityId: `${base()}/api/auth/sso/saml/${tenant}/metadata`,
    acsUrl: `${base()}/api/auth/sso/saml/${tenant}/acs`,
  });
  const callbackFor = (tenant: string) => `${base()}/api/auth/sso/oidc/${tenant}/callback`;
  const dbOf = (tenant: string) => api.databases.for(tenant, api.directory.servable(tenant).credentials);

  const get = async (path: string, headers: Record<string, string> = {}) =>
    fetch(`${api.url}${path}`, { redirect: 'manual', headers });
  const postJson = async (path: string, body: unknown) =>
    reply(
      await fetch(`${api.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }),
    );

  /** Starts an SP-initiated login: the AuthnRequest ID as the IdP reads it, and the login cookie. */
  async function samlLogin(tenant: string, returnTo?: string) {
    const query = returnTo ? `?return_to=${encodeURIComponent(returnTo)}` : '';
    const res = await get(`/api/auth/sso/saml/${tenant}/login${query}`);
    expect(res.status, await res.clone().text()).to.equal(302);
    const location = res.headers.get('location') ?? '';
    const metadata = await (await get(`/api/auth/sso/saml/${tenant}/metadata`)).text();
    return {
      location,
      cookie: setCookie(res.headers, 'tenantry_saml_request'),
      requestId: await samlIdp.requestId(location, metadata),
    };
  }

  /** A signed response from the IdP for `tenant`'s ACS. */
  const samlResponse = (tenant: string, options: ResponseOptions) => samlIdp.respond(sp(tenant), options);

  async function postAcs(
    tenant: string,
    samlResponseValue: string,
    options: { cookie?: string; json?: boolean; relayState?: string; trailingSlash?: boolean } = {},
  ): Promise<Reply> {
    const form = new URLSearchParams({ SAMLResponse: samlResponseValue });
    if (options.relayState) form.set('RelayState', options.relayState);
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (options.cookie) headers.cookie = options.cookie;
    headers.accept = options.json ? 'application/json' : 'text/html,application/xhtml+xml,*/*;q=0.8';
    return reply(
      await fetch(`${api.url}/api/auth/sso/saml/${tenant}/acs${options.trailingSlash ? '/' : ''}`, {
        method: 'POST',
        redirect: 'manual',
        headers,
        body: form.toString(),
      }),
    );
  }

  /** A full SP-initiated SAML sign-in answered as JSON. */
  async function samlSignIn(tenant: string, nameId: string, attributes: Record<string, string[]> = {}) {
    const login = await samlLogin(tenant);
    const response = await samlResponse(tenant, { inResponseTo: login.requestId, nameId, attributes });
    return postAcs(tenant, response, { cookie: login.cookie.pair, json: true });
  }

  /** Starts an OIDC login and lets the provider sign `account` in; returns where it sends the browser back. */
  async function oidcLogin(tenant: string, account: string, returnTo?: string) {
    const query = returnTo ? `?return_to=${encodeURIComponent(returnTo)}` : '';
    const res = await get(`/api/auth/sso/oidc/${tenant}/login${query}`);
    expect(res.status, await res.clone().text()).to.equal(302);
    const location = new URL(res.headers.get('location') ?? '');
    oidcIdp.loginAs = account;
    return {
      location,
      cookie: setCookie(res.headers, 'tenantry_oidc_state'),
      callback: await browse(location, callbackFor(tenant)),
    };
  }

  async function oidcCallback(
    tenant: string,
    search: string,
    options: { cookie?: string; json?: boolean } = {},
  ): Promise<Reply> {
    const headers: Record<string, string> = {
      accept: options.json ? 'application/json' : 'text/html,*/*;q=0.8',
    };
    if (options.cookie) headers.cookie = options.cookie;
    return reply(await get(`/api/auth/sso/oidc/${tenant}/callback${search}`, headers));
  }

  async function audit(tenant: string, action: string) {
    const { results } = await AuditLog.list(dbOf(tenant).sequelize, { action }, { page: 1, pageSize: 100 });
    return results;
  }

  before(async () => {
    platform = await startTestPlatform('ssoroute');
    tenantA = platform.tenantName('a');
    tenantB = platform.tenantName('b');
    domainA = `${tenantA}.example`;
    domainB = `${tenantB}.example`;
    samlIdp = new TestSamlIdp('https://idp.sso-routes.example/metadata', await generateSigningKey('sso-idp'));
    const accounts: Record<string, TestAccount> = {
      alice: {
        email: `alice@${domainA}`,
        email_verified: true,
        given_name: 'Alice',
        family_name: 'Anders',
        groups: ['a-admins'],
      },
      eve: { email: 'eve@evil.example', email_verified: true, groups: ['a-admins'] },
      gina: { email: `gina@${domainB}`, email_verified: true },
      // For the account tests: addresses someone registers, or an admin created, before their holder.
      pat: { email: `pat@${domainA}`, email_verified: true },
      lena: { email: `lena@${domainA}`, email_verified: true },
      vic: { email: `vic@${domainA}`, email_verified: true },
      nick: { email: `nick@${domainA}` },
      fay: { email: `fay@${domainA}`, email_verified: false },
      nell: { email: `nell@${domainB}` },
    };
    // Registered with the public callback URLs: the provider redirects there, the test forwards to the API.
    oidcIdp = await startTestIdp({
      clients: [
        {
          client_id: 'client-a',
          client_secret: 'client-a-secret-0123456789',
          redirect_uris: [`${publicBaseUrl}/api/auth/sso/oidc/${tenantA}/callback`],
        },
        {
          client_id: 'client-b',
          client_secret: 'client-b-secret-0123456789',
          redirect_uris: [`${publicBaseUrl}/api/auth/sso/oidc/${tenantB}/callback`],
        },
      ],
      accounts,
    });
    const oidc = (clientId: string, secretName: string, roleMapping: Record<string, string>) => ({
      issuer: oidcIdp.issuer,
      clientId,
      clientSecretRef: { name: secretName, key: 'client-secret' },
      scopes: ['openid', 'email', 'profile', 'groups'],
      roleMapping,
    });
    const specA = {
      saml: {
        idpMetadataXml: samlIdp.metadataXml(),
        roleMapping: { 'a-admins': 'admin', 'a-owners': 'owner' },
      },
      oidc: oidc('client-a', `${tenantA}-oidc`, { 'a-admins': 'admin' }),
    };
    // B trusts the same SAML IdP (so its signatures verify there too) and allows IdP-initiated login.
    // B also vouches for its OIDC provider's addresses when the ID token does not say.
    const specB = {
      saml: { idpMetadataXml: samlIdp.metadataXml(), allowIdpInitiated: true },
      oidc: { ...oidc('client-b', `${tenantB}-oidc`, {}), assumeEmailVerified: true },
    };
    await Promise.all([
      platform.applyTenant(
        tenantA,
        `  selfRegistration: true\n  domains: [${domainA}]\n  sso: ${JSON.stringify(specA)}\n`,
      ),
      platform.applyTenant(tenantB, `  domains: [${domainB}]\n  sso: ${JSON.stringify(specB)}\n`),
    ]);
    await Promise.all([platform.waitReady(tenantA), platform.waitReady(tenantB)]);
    for (const [tenant, secret] of [
      [tenantA, 'client-a-secret-0123456789'],
      [tenantB, 'client-b-secret-0123456789'],
    ] as const) {
      await platform.cp.kubectl(
        ['apply', '-f', '-'],
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: {
            name: `${tenant}-oidc`,
            namespace: platform.platformNamespace,
            labels: { 'tenantry.io/tenant': tenant, 'tenantry.io/secret-kind': 'oidc-client' },
          },
          stringData: { 'client-secret': secret },
        }),
      );
    }
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace);
    expect(api.publicBaseUrl).to.equal(publicBaseUrl);
    // An owner who signs in with a password, so the IdP mapping may demote SSO owners.
    const password = await hashPassword('correct horse battery staple 42');
    const common = { first_name: null, last_name: null, department: null, external_id: null };
    ownerA = (
      await dbOf(tenantA).models.User.create({
        ...common,
        email: `root@${domainA}`,
        role: 'owner',
        password_hash: password,
      })
    ).id;
    await dbOf(tenantA).models.User.create({
      ...common,
      email: `bob@${domainA}`,
      role: 'member',
      password_hash: password,
    });
  });

  after(async () => {
    await api?.close();
    await oidcIdp?.close();
    await platform?.cleanup();
  });

  describe('SAML', () => {
    it('serves SP metadata per tenant, with or without the trailing slash', async () => {
      for (const path of [
        `/api/auth/sso/saml/${tenantA}/metadata`,
        `/api/auth/sso/saml/${tenantA}/metadata/`,
      ]) {
        const res = await get(path);
        expect(res.status).to.equal(200);
        expect(res.headers.get('content-type')).to.contain('application/samlmetadata+xml');
        const xml = await res.text();
        expect(xml).to.contain(`entityID="${sp(tenantA).entityId}"`);
        expect(xml).to.contain(`Location="${sp(tenantA).acsUrl}"`);
      }
      const unknown = await reply(await get('/api/auth/sso/saml/no-such-tenant/metadata'));
      expect(unknown.status).to.equal(404);
      expect(unknown.headers.get('content-type')).to.contain('application/problem+json');
      const bad = await reply(await get('/api/auth/sso/saml/Bad_Name/metadata'));
      expect(bad.status).to.equal(400);
      expect(fieldsOf(bad)).to.deep.equal(['tenant']);
    });

    it('signs in end to end: redirect with an AuthnRequest, signed response at the ACS, our tokens', async () => {
      const login = await samlLogin(tenantA);
      const location = new URL(login.location);
      expect(location.origin + location.pathname).to.equal(samlIdp.ssoUrl);
      expect(location.searchParams.get('SAMLRequest')).to.be.a('string');
      // The IdP posts back cross-site: only a Secure SameSite=None cookie, scoped to this tenant, returns.
      expect(login.cookie.header).to.match(/; HttpOnly/i);
      expect(login.cookie.header).to.match(/; Secure/i);
      expect(login.cookie.header).to.match(/; SameSite=None/i);
      expect(login.cookie.header).to.contain(`; Path=/api/auth/sso/saml/${tenantA}`);

      const response = await samlResponse(tenantA, {
        inResponseTo: login.requestId,
        nameId: `Carol@${domainA.toUpperCase()}`,
        attributes: { groups: ['staff', 'a-admins'], givenName: ['Carol'], sn: ['Cole'] },
      });
      const res = await postAcs(tenantA, response, { cookie: login.cookie.pair, json: true });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.headers.get('cache-control')).to.equal('no-store');
      expect(res.body).to.have.keys('access_token', 'refresh_token', 'token_type', 'expires_in', 'user');
      expect(res.body.token_type).to.equal('Bearer');
      expect(res.body.user).to.include({
        email: `carol@${domainA}`,
        role: 'admin',
        first_name: 'Carol',
        last_name: 'Cole',
        external_id: `saml:carol@${domainA}`,
      });
      const profile = await api.call('GET', '/api/auth/profile', { token: res.body.access_token });
      expect(profile.status).to.equal(200);
      expect(profile.body.id).to.equal(res.body.user.id);
      const claims = await api.tokens.verifyAccessToken(res.body.access_token as string);
      expect(claims).to.include({ tid: tenantA, sub: res.body.user.id, role: 'admin' });
    });

    it('creates the user just in time, maps groups to roles at every sign-in and audits it', async () => {
      const email = `dave@${domainA}`;
      const first = await samlSignIn(tenantA, email, { groups: ['staff'] });
      expect(first.status, JSON.stringify(first.body)).to.equal(200);
      // No mapped group: the default role, never owner.
      expect(first.body.user.role).to.equal('member');
      const id = first.body.user.id as string;

      const created = (await audit(tenantA, 'create')).filter((r) => r.resourceId === id);
      expect(created).to.have.length(1);
      expect(created[0]!.actor).to.equal(null);
      expect(created[0]!.diff?.after).to.include({ email, role: 'member', provisioned_by: 'sso:saml' });
      const logins = (await audit(tenantA, 'login')).filter((r) => r.resourceId === id);
      expect(logins).to.have.length(1);
      expect(logins[0]!.actor).to.equal(id);
      expect(logins[0]!.diff?.after).to.deep.equal({ method: 'sso:saml' });

      // Only the mapping grants owner; the next sign-in without that group takes it away again.
      const second = await samlSignIn(tenantA, email, { groups: ['a-owners'] });
      expect(second.body.user).to.include({ id, role: 'owner' });
      const third = await samlSignIn(tenantA, email, { groups: ['a-admins'] });
      expect(third.body.user).to.include({ id, role: 'admin' });
      const updates = (await audit(tenantA, 'update'))
        .filter((r) => r.resourceId === id)
        .sort((a, b) => Number(a.id) - Number(b.id));
      expect(updates.map((r) => [r.diff?.before?.role, r.diff?.after?.role])).to.deep.equal([
        ['member', 'owner'],
        ['owner', 'admin'],
      ]);
      expect(await dbOf(tenantA).models.User.count({ where: { email } })).to.equal(1);
      // The password owner is untouched by all of this.
      expect((await dbOf(tenantA).models.User.findByPk(ownerA))?.role).to.equal('owner');
    });

    it('links an existing password account on its first SSO sign-in', async () => {
      const before = await dbOf(tenantA).models.User.findOne({ where: { email: `bob@${domainA}` } });
      const res = await samlSignIn(tenantA, `bob@${domainA}`);
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.body.user).to.include({
        id: before!.id,
        external_id: `saml:bob@${domainA}`,
        role: 'member',
      });
    });

    it('refuses a deactivated account, at the ACS with a trailing slash too', async () => {
      const email = `ivy@${domainA}`;
      const first = await samlSignIn(tenantA, email);
      expect(first.status, JSON.stringify(first.body)).to.equal(200);
      await dbOf(tenantA).models.User.update({ is_active: false }, { where: { email } });
      const login = await samlLogin(tenantA);
      const response = await samlResponse(tenantA, { inResponseTo: login.requestId, nameId: email });
      const res = await postAcs(tenantA, response, {
        cookie: login.cookie.pair,
        json: true,
        trailingSlash: true,
      });
      expectSsoProblem(res, 403, 'account_disabled');
      const failures = await audit(tenantA, 'login_failed');
      expect(failures.map((r) => r.diff?.after)).to.deep.include({
        method: 'sso:saml',
        error: 'account_disabled',
      });
    });

    it('hands a browser a one-time code that is exchanged once for our tokens', async () => {
      const login = await samlLogin(tenantA, '/dashboard?tab=1');
      const response = await samlResponse(tenantA, {
        inResponseTo: login.requestId,
        nameId: `erin@${domainA}`,
      });
      const res = await postAcs(tenantA, response, {
        cookie: login.cookie.pair,
        relayState: '/dashboard?tab=1',
      });
      expect(res.status, JSON.stringify(res.body)).to.equal(303);
      expect(res.headers.get('cache-control')).to.equal('no-store');
      expect(res.headers.get('referrer-policy')).to.equal('no-referrer');
      const target = new URL(res.headers.get('location') ?? '');
      expect(target.origin + target.pathname).to.equal(`${base()}/sso/complete`);
      expect([...target.searchParams.keys()].sort()).to.deep.equal(['code', 'return_to']);
      expect(target.searchParams.get('return_to')).to.equal('/dashboard?tab=1');
      // The login cookie is spent.
      expect(setCookie(res.headers, 'tenantry_saml_request').header).to.match(/Expires=Thu, 01 Jan 1970/);

      const code = target.searchParams.get('code');
      const exchanged = await postJson('/api/auth/sso/exchange/', { code });
      expect(exchanged.status, JSON.stringify(exchanged.body)).to.equal(200);
      expect(exchanged.headers.get('cache-control')).to.equal('no-store');
      expect(exchanged.body).to.have.keys(
        'access_token',
        'refresh_token',
        'token_type',
        'expires_in',
        'user',
      );
      expect(exchanged.body.user.email).to.equal(`erin@${domainA}`);

      expectSsoProblem(await postJson('/api/auth/sso/exchange', { code }), 401, 'invalid_code');
      const guessed = await postJson('/api/auth/sso/exchange', { code: 'A'.repeat(43) });
      expectSsoProblem(guessed, 401, 'invalid_code');
      const bad = await postJson('/api/auth/sso/exchange', { code: 'short', extra: 1 });
      expect(bad.status).to.equal(400);
      expect(fieldsOf(bad).sort()).to.deep.equal(['body', 'code']);
    });

    it('refuses a replayed response and audits the refusal without detail', async () => {
      const login = await samlLogin(tenantA);
      const response = await samlResponse(tenantA, {
        inResponseTo: login.requestId,
        nameId: `finn@${domainA}`,
      });
      expect((await postAcs(tenantA, response, { cookie: login.cookie.pair, json: true })).status).to.equal(
        200,
      );
      const replay = await postAcs(tenantA, response, { cookie: login.cookie.pair, json: true });
      expectSsoProblem(replay, 401, 'replayed');
      expect(replay.body.detail).to.equal('The SSO response was already used.');
      const failures = await audit(tenantA, 'login_failed');
      expect(failures.map((r) => r.diff?.after)).to.deep.include({ method: 'sso:saml', error: 'replayed' });
    });

    it('refuses an email outside the verified domains, and creates nobody', async () => {
      const res = await samlSignIn(tenantA, 'eve@evil.example', { groups: ['a-owners'] });
      expectSsoProblem(res, 403, 'domain_not_verified');
      expect(JSON.stringify(res.body)).not.to.contain('evil');
      expect(await dbOf(tenantA).models.User.count({ where: { email: 'eve@evil.example' } })).to.equal(0);
    });

    it("refuses tenant A's request ID in a response to tenant B", async () => {
      const login = await samlLogin(tenantA);
      const response = await samlResponse(tenantB, {
        inResponseTo: login.requestId,
        nameId: `gina@${domainB}`,
      });
      expectSsoProblem(await postAcs(tenantB, response, { json: true }), 401, 'wrong_tenant');
      // Nor does A's login cookie, scoped to A's path, help at B.
      const again = await samlResponse(tenantB, { inResponseTo: login.requestId, nameId: `gina@${domainB}` });
      expectSsoProblem(
        await postAcs(tenantB, again, { cookie: login.cookie.pair, json: true }),
        401,
        'wrong_tenant',
      );
    });

    it('refuses a response to a login started in another browser (no login cookie)', async () => {
      const login = await samlLogin(tenantA);
      const response = await samlResponse(tenantA, {
        inResponseTo: login.requestId,
        nameId: `gus@${domainA}`,
      });
      expectSsoProblem(await postAcs(tenantA, response, { json: true }), 401, 'unsolicited');
    });

    it('takes IdP-initiated responses only where the tenant allows them, once', async () => {
      const toA = await samlResponse(tenantA, { nameId: `hana@${domainA}` });
      expectSsoProblem(await postAcs(tenantA, toA, { json: true }), 401, 'unsolicited');

      const toB = await samlResponse(tenantB, { nameId: `gina@${domainB}` });
      const ok = await postAcs(tenantB, toB, { json: true });
      expect(ok.status, JSON.stringify(ok.body)).to.equal(200);
      expect(ok.body.user).to.include({ email: `gina@${domainB}`, role: 'member' });
      expectSsoProblem(await postAcs(tenantB, toB, { json: true }), 401, 'replayed');
    });

    it('refuses a bad ACS form and bad login parameters, naming the field', async () => {
      expectSsoProblem(await postAcs(tenantA, 'not base64 !', { json: true }), 400, 'malformed');
      const offSite = await reply(
        await get(`/api/auth/sso/saml/${tenantA}/login?return_to=${encodeURIComponent('//evil.example/')}`),
      );
      expect(offSite.status).to.equal(400);
      expect(fieldsOf(offSite)).to.deep.equal(['return_to']);
      const long = await reply(
        await get(`/api/auth/sso/saml/${tenantA}/login?return_to=/${'x'.repeat(100)}`),
      );
      expect(long.status).to.equal(400);
      expect(fieldsOf(long)).to.deep.equal(['return_to']);
      const unknown = await reply(await get(`/api/auth/sso/saml/${tenantA}/login/?next=/x`));
      expect(unknown.status).to.equal(400);
    });
  });

  describe('OIDC', () => {
    it('signs in end to end with PKCE S256, state and nonce, and hands off a one-time code', async () => {
      const login = await oidcLogin(tenantA, 'alice', '/home');
      const params = login.location.searchParams;
      expect(login.location.origin).to.equal(oidcIdp.issuer);
      expect(params.get('code_challenge_method')).to.equal('S256');
      expect(params.get('code_challenge')).to.match(/^[A-Za-z0-9_-]{43}$/);
      expect(params.get('nonce')).to.be.a('string');
      expect(params.get('redirect_uri')).to.equal(callbackFor(tenantA));
      expect(login.cookie.pair).to.equal(`tenantry_oidc_state=${params.get('state')}`);
      expect(login.cookie.header).to.match(/; HttpOnly/i);
      expect(login.cookie.header).to.match(/; Secure/i);
      expect(login.cookie.header).to.match(/; SameSite=Lax/i);
      expect(login.cookie.header).to.contain(`; Path=/api/auth/sso/oidc/${tenantA}`);
      expect(login.cookie.header).to.match(/Max-Age=600/);

      const res = await oidcCallback(tenantA, login.callback.search, { cookie: login.cookie.pair });
      expect(res.status, JSON.stringify(res.body)).to.equal(303);
      const target = new URL(res.headers.get('location') ?? '');
      expect(target.searchParams.get('return_to')).to.equal('/home');
      const exchanged = await postJson('/api/auth/sso/exchange', { code: target.searchParams.get('code') });
      expect(exchanged.status, JSON.stringify(exchanged.body)).to.equal(200);
      expect(exchanged.body.user).to.include({
        email: `alice@${domainA}`,
        role: 'admin',
        first_name: 'Alice',
        external_id: 'oidc:alice',
      });
    });

    it('answers with our tokens as JSON when the client asks for JSON (trailing slash too)', async () => {
      const login = await oidcLogin(tenantB, 'gina');
      const json = await reply(
        await get(`/api/auth/sso/oidc/${tenantB}/callback/${login.callback.search}`, {
          cookie: login.cookie.pair,
          accept: 'application/json',
        }),
      );
      expect(json.status, JSON.stringify(json.body)).to.equal(200);
      expect(json.body).to.have.keys('access_token', 'refresh_token', 'token_type', 'expires_in', 'user');
      // B maps no groups, so roles stay Tenantry's: a new user gets the default.
      expect(json.body.user).to.include({ email: `gina@${domainB}`, role: 'member' });
    });

    it('refuses a bad state, a missing state cookie and a replayed callback', async () => {
      const login = await oidcLogin(tenantA, 'alice');
      const tampered = new URLSearchParams(login.callback.search);
      tampered.set('state', 'x'.repeat(43));
      const bad = await oidcCallback(tenantA, `?${tampered.toString()}`, {
        cookie: login.cookie.pair,
        json: true,
      });
      expectSsoProblem(bad, 401, 'invalid_state');

      const noCookie = await oidcCallback(tenantA, login.callback.search, { json: true });
      expectSsoProblem(noCookie, 401, 'invalid_state');

      const ok = await oidcCallback(tenantA, login.callback.search, {
        cookie: login.cookie.pair,
        json: true,
      });
      expect(ok.status, JSON.stringify(ok.body)).to.equal(200);
      const replay = await oidcCallback(tenantA, login.callback.search, {
        cookie: login.cookie.pair,
        json: true,
      });
      expectSsoProblem(replay, 401, 'invalid_state');
      const failures = await audit(tenantA, 'login_failed');
      expect(failures.map((r) => r.diff?.after)).to.deep.include({
        method: 'sso:oidc',
        error: 'invalid_state',
      });
    });

    it("refuses tenant A's state at tenant B's callback", async () => {
      const login = await oidcLogin(tenantA, 'alice');
      const res = await oidcCallback(tenantB, login.callback.search, {
        cookie: login.cookie.pair,
        json: true,
      });
      expectSsoProblem(res, 401, 'wrong_tenant');
    });

    it('refuses an email outside the verified domains', async () => {
      const login = await oidcLogin(tenantA, 'eve');
      const res = await oidcCallback(tenantA, login.callback.search, {
        cookie: login.cookie.pair,
        json: true,
      });
      expectSsoProblem(res, 403, 'domain_not_verified');
      expect(await dbOf(tenantA).models.User.count({ where: { email: 'eve@evil.example' } })).to.equal(0);
    });
  });

  describe('accounts: pre-registered addresses and unverified emails', () => {
    const strangerPassword = 'the stranger chose this 42!';
    const oidcSignIn = async (tenant: string, account: string) => {
      const login = await oidcLogin(tenant, account);
      return oidcCallback(tenant, login.callback.search, { cookie: login.cookie.pair, json: true });
    };
    const passwordLogin = (email: string, password: string) =>
      api.call('POST', '/api/auth/login', { body: { tenant: tenantA, email, password } });
    const refresh = (token: string) =>
      api.call('POST', '/api/auth/token', { body: { grant_type: 'refresh_token', refresh_token: token } });

    it("does not let a stranger's registration pre-claim an address that SSO signs in later", async () => {
      const email = `pat@${domainA}`;
      const registered = await postJson('/api/auth/register', {
        tenant: tenantA,
        email,
        password: strangerPassword,
      });
      expect(registered.status, JSON.stringify(registered.body)).to.equal(202);
      expect(registered.body).not.to.have.property('access_token');

      const res = await oidcSignIn(tenantA, 'pat');
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.body.user).to.include({ email, external_id: 'oidc:pat' });
      expect((await passwordLogin(email, strangerPassword)).status).to.equal(401);
      // The registration, verified late by whoever holds the mail, leaves the SSO account alone.
      const token = await api.mailer.tokenFor(email, 'registration');
      const late = await postJson('/api/auth/register/verify', {
        tenant: tenantA,
        token,
        password: strangerPassword,
      });
      expect(late.status, JSON.stringify(late.body)).to.equal(409);
      expect((await passwordLogin(email, strangerPassword)).status).to.equal(401);
      const row = await dbOf(tenantA).models.User.findOne({ where: { email } });
      expect(row?.password_hash).to.equal(null);
      expect(await emailVerifiedAt(dbOf(tenantA), row!.id)).to.be.instanceOf(Date);
    });

    it('takes over an account whose address was never proven: its password and sessions end', async () => {
      // As the old self-registration (or an admin) left it: a password, the address never proven.
      const email = `lena@${domainA}`;
      const claimed = await dbOf(tenantA).models.User.create({
        email,
        role: 'member',
        first_name: 'Not Lena',
        last_name: null,
        department: null,
        external_id: null,
        password_hash: await hashPassword(strangerPassword),
      });
      const session = await passwordLogin(email, strangerPassword);
      expect(session.status).to.equal(200);

      const res = await oidcSignIn(tenantA, 'lena');
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.body.user).to.include({ id: claimed.id, external_id: 'oidc:lena' });
      expect((await passwordLogin(email, strangerPassword)).status).to.equal(401);
      // RFC 6749 §5.2: a revoked refresh token is invalid_grant, 400.
      expect((await refresh(session.body.refresh_token as string)).status).to.equal(400);
      // The SSO sign-in's own session is alive.
      expect((await refresh(res.body.refresh_token as string)).status).to.equal(200);
      const after = await dbOf(tenantA).models.User.findByPk(claimed.id);
      expect(after?.password_hash).to.equal(null);
      expect(await emailVerifiedAt(dbOf(tenantA), claimed.id)).to.be.instanceOf(Date);
      const updates = (await audit(tenantA, 'update')).filter((r) => r.resourceId === claimed.id);
      expect(updates.map((r) => r.diff?.after?.unverified_account_taken_over)).to.include(true);
    });

    it('links a verified account and leaves its password and sessions alone', async () => {
      const email = `vic@${domainA}`;
      const password = 'a verified holder chose this 42!';
      const registered = await postJson('/api/auth/register', { tenant: tenantA, email, password });
      expect(registered.status, JSON.stringify(registered.body)).to.equal(202);
      const token = await api.mailer.tokenFor(email, 'registration');
      const verified = await postJson('/api/auth/register/verify', { tenant: tenantA, token, password });
      expect(verified.status, JSON.stringify(verified.body)).to.equal(201);
      const session = await passwordLogin(email, password);
      expect(session.status).to.equal(200);

      const res = await oidcSignIn(tenantA, 'vic');
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.body.user).to.include({ id: verified.body.id, external_id: 'oidc:vic' });
      expect((await passwordLogin(email, password)).status).to.equal(200);
      expect((await refresh(session.body.refresh_token as string)).status).to.equal(200);
    });

    it('refuses an ID token whose email_verified is missing or false, unless the tenant trusts the provider', async () => {
      for (const account of ['nick', 'fay']) {
        expectSsoProblem(await oidcSignIn(tenantA, account), 403, 'email_not_verified');
        const email = `${account}@${domainA}`;
        expect(await dbOf(tenantA).models.User.count({ where: { email } })).to.equal(0);
      }
      // B sets assumeEmailVerified: a missing claim is its provider's word.
      const trusted = await oidcSignIn(tenantB, 'nell');
      expect(trusted.status, JSON.stringify(trusted.body)).to.equal(200);
      expect(trusted.body.user).to.include({ email: `nell@${domainB}` });
    });
  });

  describe('home-realm discovery', () => {
    it("names the tenant and its sign-in methods for a verified domain's email", async () => {
      for (const path of ['/api/auth/sso/discover', '/api/auth/sso/discover/']) {
        const res = await postJson(path, { email: `Someone@${domainA.toUpperCase()}` });
        expect(res.status, JSON.stringify(res.body)).to.equal(200);
        expect(res.body).to.deep.equal({
          domain: domainA,
          tenants: [
            {
              tenant: tenantA,
              display_name: tenantA,
              methods: [
                { protocol: 'saml', login_url: `${base()}/api/auth/sso/saml/${tenantA}/login` },
                { protocol: 'oidc', login_url: `${base()}/api/auth/sso/oidc/${tenantA}/login` },
              ],
            },
          ],
        });
      }
    });

    it('answers an unknown domain with the same shape and no tenant', async () => {
      const res = await postJson('/api/auth/sso/discover', { email: 'someone@unknown-domain.example' });
      expect(res.status).to.equal(200);
      expect(res.body).to.deep.equal({ domain: 'unknown-domain.example', tenants: [] });
    });

    it('refuses a bad body, naming the field', async () => {
      const res = await postJson('/api/auth/sso/discover', { email: 'not-an-email', tenant: tenantA });
      expect(res.status).to.equal(400);
      expect(res.headers.get('content-type')).to.contain('application/problem+json');
      expect(fieldsOf(res).sort()).to.deep.equal(['body', 'email']);
    });
  });
});
