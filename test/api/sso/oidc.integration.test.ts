// The OIDC relying party against real oidc-provider instances on loopback and
// real Redis. Attacks are built from genuine provider responses: tokens issued
// to another client or by another provider, responses from the wrong issuer,
// replays. SSRF cases never leave the process: the resolver and fetch are fakes.
import { expect } from 'chai';
import * as oidcClient from 'openid-client';
import { SsoError, type SsoErrorCode } from '../../../api/src/sso/identity.js';
import { OidcService, type OidcSettings, type TenantOidcView } from '../../../api/src/sso/oidc.js';
import { RedisExpiringStore, type ExpiringStore } from '../../../api/src/sso/store.js';
import {
  browse,
  startTestIdp,
  type TestAccount,
  type TestClient,
  type TestIdp,
} from '../../harness/oidc-idp.js';
import { createTestRedis, type TestRedis } from '../../harness/services.js';

// The API mirrors the operator's type instead of importing it; keep them in step.

const publicBaseUrl = 'https://app.tenantry.test';
const urlOf = (input: string | URL | Request): string =>
  typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
const callbackFor = (tenant: string): string => `${publicBaseUrl}/api/auth/sso/oidc/${tenant}/callback`;

const accounts: Record<string, TestAccount> = {
  alice: {
    email: 'alice@acme.test',
    email_verified: true,
    given_name: 'Alice',
    family_name: 'Anders',
    groups: ['acme-admins', 'staff'],
  },
  olga: { email: 'Olga@ACME.test', email_verified: true, groups: ['staff', 'acme-owners', 'acme-admins'] },
  carol: { email: 'carol@acme.test', groups: ['staff'] },
  bob: { email: 'bob@acme.test', email_verified: false, groups: ['acme-admins'] },
  eve: { email: 'eve@evil.test', email_verified: true },
  mallory: { email: 'mallory@sub.acme.test', email_verified: true },
  nomail: { given_name: 'No', email_verified: true },
  gina: { email: 'gina@globex.test', email_verified: true },
};

const acmeClient: TestClient = {
  client_id: 'acme-client',
  client_secret: 'acme-secret-0123456789',
  redirect_uris: [callbackFor('acme')],
};
const globexClient: TestClient = {
  client_id: 'globex-client',
  client_secret: 'globex-secret-0123456789',
  redirect_uris: [callbackFor('globex')],
};
// Registered at the real provider with acme's redirect URI: a token for it has the wrong audience.
const otherClient: TestClient = {
  client_id: 'other-client',
  client_secret: 'other-secret-0123456789',
  redirect_uris: [callbackFor('acme')],
};

async function expectSsoError(promise: Promise<unknown>, code: SsoErrorCode): Promise<SsoError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected SsoError ${code}`).to.be.instanceOf(SsoError);
  const error = caught as SsoError;
  expect(error.code, error.detail).to.equal(code);
  return error;
}

/** A real authorization-code flow run by the test itself, to obtain a genuine ID token. */
async function idTokenFrom(
  idp: TestIdp,
  client: TestClient,
  account: string,
  nonce: string,
): Promise<string> {
  const config = await oidcClient.discovery(
    new URL(idp.issuer),
    client.client_id,
    client.client_secret,
    oidcClient.ClientSecretBasic(client.client_secret),
    { execute: [oidcClient.allowInsecureRequests] },
  );
  const redirectUri = client.redirect_uris[0] ?? '';
  const verifier = oidcClient.randomPKCECodeVerifier();
  const state = oidcClient.randomState();
  idp.loginAs = account;
  const url = oidcClient.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid email profile groups',
    state,
    nonce,
    code_challenge: await oidcClient.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  const tokens = await oidcClient.authorizationCodeGrant(config, await browse(url, redirectUri), {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
  });
  if (!tokens.id_token) throw new Error('no id_token');
  return tokens.id_token;
}

describe('OIDC single sign-on (openid-client against oidc-provider)', function () {
  this.timeout(30_000);

  let redis: TestRedis;
  let store: ExpiringStore;
  let idp: TestIdp;
  let rogue: TestIdp;
  let acme: TenantOidcView;
  let globex: TenantOidcView;
  let service: OidcService;
  /** Token endpoint responses as the service received them, and an optional ID token to swap in. */
  const tokenTraffic: { idTokens: string[]; replaceIdToken?: string } = { idTokens: [] };

  // Instruments only the token endpoint; every other request passes through untouched.
  const instrumentedFetch: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    if (!urlOf(input).endsWith('/token') || !response.ok) return response;
    const body = (await response.json()) as Record<string, unknown>;
    tokenTraffic.idTokens.push(String(body.id_token));
    if (tokenTraffic.replaceIdToken) body.id_token = tokenTraffic.replaceIdToken;
    return new Response(JSON.stringify(body), {
      status: response.status,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    });
  };

  function newService(overrides: { store?: ExpiringStore; discoveryTtlMs?: number } = {}): OidcService {
    return new OidcService({
      publicBaseUrl,
      store: overrides.store ?? store,
      allowPrivateIssuers: true,
      fetch: instrumentedFetch,
      ...(overrides.discoveryTtlMs === undefined ? {} : { discoveryTtlMs: overrides.discoveryTtlMs }),
    });
  }

  async function login(tenant: TenantOidcView, account: string, svc = service): Promise<URL> {
    idp.loginAs = account;
    const { url } = await svc.authorizationUrl(tenant);
    return browse(url, callbackFor(tenant.name));
  }

  before(async () => {
    redis = await createTestRedis('sso-oidc');
    store = new RedisExpiringStore(redis.client, redis.prefix);
    idp = await startTestIdp({ clients: [acmeClient, globexClient, otherClient], accounts });
    // A second provider that knows acme's client id and redirect URI, as an attacker's would.
    rogue = await startTestIdp({ clients: [acmeClient], accounts });
    const settings = (client: TestClient): OidcSettings => ({
      issuer: idp.issuer,
      clientId: client.client_id,
      clientSecretRef: { name: 'sso', key: client.client_id },
      scopes: ['openid', 'email', 'profile', 'groups'],
      roleMapping: { 'acme-owners': 'owner', 'acme-admins': 'admin' },
      defaultRole: 'member',
    });
    acme = {
      name: 'acme',
      uid: 'uid-acme',
      domains: ['acme.test'],
      oidc: settings(acmeClient),
      clientSecret: acmeClient.client_secret,
    };
    globex = {
      name: 'globex',
      uid: 'uid-globex',
      domains: ['globex.test'],
      oidc: settings(globexClient),
      clientSecret: globexClient.client_secret,
    };
    service = newService();
  });

  after(async () => {
    await idp?.close();
    await rogue?.close();
    await redis?.drop();
  });

  beforeEach(() => {
    tokenTraffic.idTokens = [];
    delete tokenTraffic.replaceIdToken;
  });

  describe('a valid login', () => {
    it('sends PKCE S256, state and nonce, and returns the identity with its mapped role', async () => {
      idp.loginAs = 'alice';
      const { url, state } = await service.authorizationUrl(acme, { returnTo: '/settings?tab=sso' });
      expect(url.origin).to.equal(idp.issuer);
      expect(url.pathname).to.equal('/auth');
      const params = url.searchParams;
      expect(params.get('client_id')).to.equal('acme-client');
      expect(params.get('redirect_uri')).to.equal(callbackFor('acme'));
      expect(params.get('response_type')).to.equal('code');
      expect(params.get('scope')).to.equal('openid email profile groups');
      expect(params.get('code_challenge_method')).to.equal('S256');
      expect(params.get('code_challenge')).to.match(/^[\w-]{43}$/);
      expect(params.get('state')).to.equal(state);
      expect(params.get('nonce')).to.match(/^[\w-]{43}$/);

      const callback = await browse(url, callbackFor('acme'));
      const result = await service.callback(acme, callback, { expectedState: state });
      expect(result.returnTo).to.equal('/settings?tab=sso');
      expect(result.identity).to.deep.equal({
        provider: 'oidc',
        subject: 'alice',
        email: 'alice@acme.test',
        firstName: 'Alice',
        lastName: 'Anders',
        groups: ['acme-admins', 'staff'],
        role: 'admin',
      });
    });

    it('gives the most privileged mapped role and matches domains case-insensitively', async () => {
      const { identity } = await service.callback(acme, await login(acme, 'olga'));
      expect(identity.role).to.equal('owner');
      expect(identity.email).to.equal('olga@acme.test');
    });

    it('uses the default role when no group maps', async () => {
      // carol's ID token has no email_verified claim: acme vouches for its provider here.
      const trusting = { ...acme, oidc: { ...acme.oidc, assumeEmailVerified: true } };
      const { identity } = await service.callback(trusting, await login(trusting, 'carol'));
      expect(identity.groups).to.deep.equal(['staff']);
      expect(identity.role).to.equal('member');
    });

    it('reads groups from the configured claim', async () => {
      const rolesClaim = { ...acme, oidc: { ...acme.oidc, groupsClaim: 'roles' } };
      const { identity } = await service.callback(rolesClaim, await login(rolesClaim, 'alice'));
      // alice's "groups" claim maps to admin, but this tenant reads "roles", which she lacks.
      expect(identity.groups).to.deep.equal([]);
      expect(identity.role).to.equal('member');
    });

    it('discovers each issuer once while the cache is fresh', async () => {
      const discoveries = (): number =>
        idp.requests.filter((path) => path === '/.well-known/openid-configuration').length;
      const cached = newService();
      const before = discoveries();
      await cached.authorizationUrl(acme);
      await cached.authorizationUrl(globex);
      await cached.authorizationUrl(acme);
      expect(discoveries() - before).to.equal(1);

      const uncached = newService({ discoveryTtlMs: 0 });
      await uncached.authorizationUrl(acme);
      await uncached.authorizationUrl(acme);
      expect(discoveries() - before).to.equal(3);
    });
  });

  describe('state', () => {
    it('rejects a callback whose state was never issued, or that has none', async () => {
      const callback = await login(acme, 'alice');
      const forged = new URL(callback);
      forged.searchParams.set('state', oidcClient.randomState());
      await expectSsoError(service.callback(acme, forged), 'invalid_state');
      const stateless = new URL(callback);
      stateless.searchParams.delete('state');
      await expectSsoError(service.callback(acme, stateless), 'invalid_state');
    });

    it('accepts a state once: a replayed callback is rejected', async () => {
      const callback = await login(acme, 'alice');
      await service.callback(acme, callback);
      await expectSsoError(service.callback(acme, callback), 'invalid_state');
      // The second attempt never reached the provider's token endpoint.
      expect(tokenTraffic.idTokens).to.have.length(1);
    });

    it('rejects a state that is not the one bound to this browser', async () => {
      const callback = await login(acme, 'alice');
      await expectSsoError(
        service.callback(acme, callback, { expectedState: oidcClient.randomState() }),
        'invalid_state',
      );
    });

    it("rejects tenant A's callback at tenant B's endpoint, and burns the state", async () => {
      const callback = await login(acme, 'alice');
      await expectSsoError(service.callback(globex, callback), 'wrong_tenant');
      expect(tokenTraffic.idTokens).to.have.length(0);
      await expectSsoError(service.callback(acme, callback), 'invalid_state');
    });

    it('rejects a login started under an earlier Tenant of the same name', async () => {
      const callback = await login(acme, 'alice');
      await expectSsoError(
        service.callback({ ...acme, uid: 'uid-acme-recreated' }, callback),
        'wrong_tenant',
      );
      expect(tokenTraffic.idTokens).to.have.length(0);
    });
  });

  describe('nonce', () => {
    it('rejects an ID token replayed into another login', async () => {
      await service.callback(acme, await login(acme, 'alice'));
      const [earlier] = tokenTraffic.idTokens;
      tokenTraffic.replaceIdToken = earlier;
      await expectSsoError(service.callback(acme, await login(acme, 'alice')), 'unsolicited');
    });

    it('rejects a fresh ID token whose nonce was already used', async () => {
      const first = await service.authorizationUrl(acme);
      const usedNonce = first.url.searchParams.get('nonce') ?? '';
      idp.loginAs = 'alice';
      await service.callback(acme, await browse(first.url, callbackFor('acme')));

      // Make a second login expect the used nonce: another replica sharing the
      // same Redis, whose pending-login record and request carry that nonce.
      const reusing: ExpiringStore = {
        putIfAbsent: (key, value, ttl) => {
          const record = JSON.parse(value) as Record<string, unknown>;
          return store.putIfAbsent(key, JSON.stringify({ ...record, nonce: usedNonce }), ttl);
        },
        take: (key) => store.take(key),
        has: (key) => store.has(key),
      };
      const replica = newService({ store: reusing });
      const second = await replica.authorizationUrl(acme);
      second.url.searchParams.set('nonce', usedNonce);
      const callback = await browse(second.url, callbackFor('acme'));
      await expectSsoError(service.callback(acme, callback), 'replayed');
      // The provider did issue a genuine token with that nonce; only the replay check refused it.
      const [, replayed = ''] = tokenTraffic.idTokens;
      expect(JSON.parse(Buffer.from(replayed.split('.')[1] ?? '', 'base64url').toString())).to.include({
        nonce: usedNonce,
        aud: 'acme-client',
      });
    });
  });

  describe('issuer and audience', () => {
    it('rejects an authorization response from another issuer (mix-up)', async () => {
      const { url } = await service.authorizationUrl(acme);
      const atRogue = new URL(url.pathname + url.search, rogue.issuer);
      rogue.loginAs = 'alice';
      const callback = await browse(atRogue, callbackFor('acme'));
      expect(callback.searchParams.get('iss')).to.equal(rogue.issuer);
      const tokenRequests = idp.requests.length;
      await expectSsoError(service.callback(acme, callback), 'issuer_mismatch');
      // The rogue's code was never sent anywhere.
      expect(idp.requests.slice(tokenRequests)).to.not.include('/token');
      expect(rogue.requests).to.not.include('/token');
    });

    it('rejects a mix-up response whose iss parameter was stripped', async () => {
      const { url } = await service.authorizationUrl(acme);
      rogue.loginAs = 'alice';
      const callback = await browse(new URL(url.pathname + url.search, rogue.issuer), callbackFor('acme'));
      callback.searchParams.delete('iss');
      await expectSsoError(service.callback(acme, callback), 'issuer_mismatch');
    });

    it('rejects an ID token signed by another provider', async () => {
      const { url } = await service.authorizationUrl(acme);
      const nonce = url.searchParams.get('nonce') ?? '';
      tokenTraffic.replaceIdToken = await idTokenFrom(rogue, acmeClient, 'alice', nonce);
      idp.loginAs = 'alice';
      await expectSsoError(service.callback(acme, await browse(url, callbackFor('acme'))), 'issuer_mismatch');
    });

    it('rejects an ID token issued by the right provider to another client', async () => {
      const { url } = await service.authorizationUrl(acme);
      const nonce = url.searchParams.get('nonce') ?? '';
      tokenTraffic.replaceIdToken = await idTokenFrom(idp, otherClient, 'alice', nonce);
      idp.loginAs = 'alice';
      await expectSsoError(
        service.callback(acme, await browse(url, callbackFor('acme'))),
        'audience_mismatch',
      );
    });

    it('reports an error answer from the provider', async () => {
      const { state } = await service.authorizationUrl(acme);
      const callback = new URL(callbackFor('acme'));
      callback.search = new URLSearchParams({ error: 'access_denied', state, iss: idp.issuer }).toString();
      const error = await expectSsoError(service.callback(acme, callback), 'idp_error');
      expect(error.detail).to.include('access_denied');
    });
  });

  describe('email and domain', () => {
    it('rejects an email the provider marks unverified, even where the tenant trusts the provider', async () => {
      await expectSsoError(service.callback(acme, await login(acme, 'bob')), 'email_not_verified');
      const trusting = { ...acme, oidc: { ...acme.oidc, assumeEmailVerified: true } };
      await expectSsoError(service.callback(trusting, await login(trusting, 'bob')), 'email_not_verified');
    });

    it('rejects an ID token without email_verified unless the tenant sets assumeEmailVerified', async () => {
      const error = await expectSsoError(
        service.callback(acme, await login(acme, 'carol')),
        'email_not_verified',
      );
      expect(error.detail).to.include('assumeEmailVerified');
      const trusting = { ...acme, oidc: { ...acme.oidc, assumeEmailVerified: true } };
      const { identity } = await service.callback(trusting, await login(trusting, 'carol'));
      expect(identity.email).to.equal('carol@acme.test');
    });

    it("rejects an email outside the tenant's verified domains", async () => {
      await expectSsoError(service.callback(acme, await login(acme, 'eve')), 'domain_not_verified');
      // A subdomain is another domain.
      await expectSsoError(service.callback(acme, await login(acme, 'mallory')), 'domain_not_verified');
      // gina's domain is verified, but for globex, not acme.
      await expectSsoError(service.callback(acme, await login(acme, 'gina')), 'domain_not_verified');
    });

    it('rejects a login without an email', async () => {
      await expectSsoError(service.callback(acme, await login(acme, 'nomail')), 'email_missing');
    });
  });

  describe('returnTo', () => {
    for (const returnTo of [
      'https://evil.test/',
      '//evil.test/x',
      '/\\evil.test',
      'javascript:alert(1)',
      'settings',
    ]) {
      it(`refuses ${returnTo}`, async () => {
        await expectSsoError(service.authorizationUrl(acme, { returnTo }), 'invalid_return_to');
      });
    }
  });
});

describe('OIDC issuer guard (no network)', () => {
  const resolved: Record<string, string[]> = {
    'idp.public.test': ['93.184.216.34', '2606:2800:220:1::1'],
    'internal.corp.test': ['10.1.2.3'],
    'dual.corp.test': ['93.184.216.34', 'fd00::5'],
    'metadata.internal.test': ['169.254.169.254'],
  };
  let resolverCalls: string[];
  let fetchCalls: string[];
  let discoveryDocument: Record<string, unknown>;

  const resolveHost = (host: string): Promise<string[]> => {
    resolverCalls.push(host);
    const addresses = resolved[host];
    return addresses ? Promise.resolve(addresses) : Promise.reject(new Error(`ENOTFOUND ${host}`));
  };
  // Answers in-process; nothing is ever sent to a non-loopback address.
  const fetchSpy: typeof fetch = (input) => {
    fetchCalls.push(urlOf(input));
    return Promise.resolve(
      Response.json(urlOf(input).endsWith('/.well-known/openid-configuration') ? discoveryDocument : {}),
    );
  };

  function tenant(issuer: string): TenantOidcView {
    return {
      name: 'acme',
      uid: 'uid-acme',
      domains: ['acme.test'],
      oidc: { issuer, clientId: 'acme-client' },
    };
  }

  function guarded(store: ExpiringStore): OidcService {
    return new OidcService({ publicBaseUrl, store, resolveHost, fetch: fetchSpy });
  }

  const memory = new Map<string, string>();
  const memoryStore: ExpiringStore = {
    putIfAbsent: (key, value) => {
      if (memory.has(key)) return Promise.resolve(false);
      memory.set(key, value);
      return Promise.resolve(true);
    },
    take: (key) => {
      const value = memory.get(key) ?? null;
      memory.delete(key);
      return Promise.resolve(value);
    },
    has: (key) => Promise.resolve(memory.has(key)),
  };

  beforeEach(() => {
    resolverCalls = [];
    fetchCalls = [];
    discoveryDocument = {
      issuer: 'https://idp.public.test',
      authorization_endpoint: 'https://idp.public.test/auth',
      token_endpoint: 'https://idp.public.test/token',
      jwks_uri: 'https://idp.public.test/jwks',
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
    };
  });

  it('lets a public https issuer through (control for the cases below)', async () => {
    const { url } = await guarded(memoryStore).authorizationUrl(tenant('https://idp.public.test'));
    expect(url.origin + url.pathname).to.equal('https://idp.public.test/auth');
    expect(fetchCalls).to.deep.equal(['https://idp.public.test/.well-known/openid-configuration']);
  });

  const refusedIssuers: Array<[string, string[]]> = [
    ['http://10.0.0.1/', []],
    ['https://10.0.0.1/', []],
    ['https://127.0.0.1', []],
    ['https://[::1]:8443/', []],
    ['https://[::ffff:169.254.169.254]/', []],
    ['https://0x7f.1/', []],
    ['http://idp.public.test/', []], // public, but not https
    ['https://internal.corp.test/realms/acme', ['internal.corp.test']],
    ['https://dual.corp.test/', ['dual.corp.test']],
    ['https://nowhere.test/', ['nowhere.test']],
    ['https://idp.public.test/.well-known/openid-configuration', []],
  ];
  for (const [issuer, resolvedHosts] of refusedIssuers) {
    it(`refuses ${issuer} before any request`, async () => {
      await expectSsoError(guarded(memoryStore).authorizationUrl(tenant(issuer)), 'issuer_not_allowed');
      expect(fetchCalls).to.deep.equal([]);
      expect(resolverCalls).to.deep.equal(resolvedHosts);
    });
  }

  it('refuses the real loopback provider when private issuers are not allowed', async () => {
    const idp = await startTestIdp({ clients: [acmeClient], accounts });
    try {
      const service = new OidcService({ publicBaseUrl, store: memoryStore });
      await expectSsoError(service.authorizationUrl(tenant(idp.issuer)), 'issuer_not_allowed');
      expect(idp.requests).to.deep.equal([]);
    } finally {
      await idp.close();
    }
  });

  const badEndpoints: Array<[string, string]> = [
    ['token_endpoint', 'https://metadata.internal.test/token'],
    ['jwks_uri', 'https://10.0.0.8/jwks'],
    ['userinfo_endpoint', 'https://[fd00::1]/userinfo'],
    ['authorization_endpoint', 'http://idp.public.test/auth'],
  ];
  for (const [field, value] of badEndpoints) {
    it(`refuses metadata advertising ${field} ${value}`, async () => {
      discoveryDocument[field] = value;
      await expectSsoError(
        guarded(memoryStore).authorizationUrl(tenant('https://idp.public.test')),
        'issuer_not_allowed',
      );
      // Only the discovery document was fetched; the advertised endpoint never was.
      expect(fetchCalls).to.deep.equal(['https://idp.public.test/.well-known/openid-configuration']);
    });
  }

  it('refuses a discovery document that names another issuer', async () => {
    discoveryDocument.issuer = 'https://idp.public.test/other';
    await expectSsoError(
      guarded(memoryStore).authorizationUrl(tenant('https://idp.public.test')),
      'issuer_mismatch',
    );
  });

  it('compares the issuer exactly, trailing slash included', async () => {
    await expectSsoError(
      guarded(memoryStore).authorizationUrl(tenant('https://idp.public.test/')),
      'issuer_mismatch',
    );
  });
});
