// The API as an OAuth 2.0 authorization server, driven the way our users drive it: with openid-client
// for discovery (RFC 8414), the client_credentials grant, introspection (RFC 7662) and revocation
// (RFC 7009), and with raw HTTP for what a well-behaved client never sends. Real API, PostgreSQL,
// Redis and operator-provisioned Tenants.
import { expect } from 'chai';
import * as oidc from 'openid-client';
import { platformAdminClient, startTestApi, type TestApi } from '../../harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../../harness/platform.js';
import { readyTenants, seedTenants, type SeededTenants } from '../../harness/seeded-tenants.js';

interface CreatedClient {
  client_id: string;
  client_secret: string;
}

describe('OAuth 2.0 authorization server (openid-client, real API, PostgreSQL, Redis and operator)', function () {
  this.timeout(180_000);
  let platform: TestPlatform;
  let api: TestApi;
  let tenantA: string;
  let tenantB: string;
  let seeded: SeededTenants;
  // Raw requests come from addresses of their own (trust proxy is on), so rate limits never mix.
  let addressCounter = 0;
  const nextAddress = () => {
    addressCounter += 1;
    return `203.0.${Math.floor(addressCounter / 250)}.${(addressCounter % 250) + 1}`;
  };

  async function createClient(tenant: string, role: 'admin' | 'member'): Promise<CreatedClient> {
    const res = await api.call('POST', '/api/clients', {
      token: seeded.access[`${tenant}/owner`]!,
      body: { name: `${role} oauth`, role },
    });
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    return res.body as CreatedClient;
  }

  /** What our users write: discovery from the issuer; plain http is allowed only because the test API is on loopback. */
  function discover(clientId: string, clientSecret: string, auth?: oidc.ClientAuth) {
    return oidc.discovery(new URL(api.url), clientId, clientSecret, auth, {
      algorithm: 'oauth2',
      execute: [oidc.allowInsecureRequests],
    });
  }

  /** A raw form-encoded POST. */
  function post(path: string, params: Record<string, string>, headers: Record<string, string> = {}) {
    return api.call('POST', path, {
      body: new URLSearchParams(params).toString(),
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-forwarded-for': nextAddress(),
        ...headers,
      },
    });
  }

  const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

  function expectOAuthError(
    res: { status: number; headers: Headers; body: any },
    status: number,
    error: string,
  ): void {
    expect(res.status, JSON.stringify(res.body)).to.equal(status);
    expect(res.headers.get('content-type')).to.match(/^application\/json/);
    expect(res.body.error).to.equal(error);
    expect(res.body.error_description).to.be.a('string').and.not.equal('');
    expect(res.headers.get('cache-control')).to.equal('no-store');
    expect(res.headers.get('pragma')).to.equal('no-cache');
  }

  before(async () => {
    platform = await startTestPlatform('oauthsrv');
    [tenantA, tenantB] = await readyTenants(platform, ['a', 'b']);
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace, { trustProxy: true });
    seeded = await seedTenants(api, [tenantA, tenantB]);
  });

  after(async () => {
    await api?.close();
    await platform?.cleanup();
  });

  describe('with openid-client', () => {
    it('discovers the metadata: the issuer is the tokens’ iss, and every endpoint is listed', async () => {
      const client = await createClient(tenantA, 'member');
      const config = await discover(client.client_id, client.client_secret);
      const metadata = config.serverMetadata();
      expect(metadata.issuer).to.equal(api.url);
      expect(metadata).to.deep.include({
        token_endpoint: `${api.url}/api/auth/token`,
        jwks_uri: `${api.url}/.well-known/jwks.json`,
        revocation_endpoint: `${api.url}/api/auth/revoke`,
        introspection_endpoint: `${api.url}/api/auth/introspect`,
        response_types_supported: [],
      });
      expect(metadata.grant_types_supported).to.have.members([
        'password',
        'refresh_token',
        'client_credentials',
      ]);
      for (const member of [
        'token_endpoint_auth_methods_supported',
        'revocation_endpoint_auth_methods_supported',
        'introspection_endpoint_auth_methods_supported',
      ] as const) {
        expect(metadata[member]).to.deep.equal(['client_secret_basic', 'client_secret_post']);
      }
      const token = await oidc.clientCredentialsGrant(config);
      const [, payload] = token.access_token.split('.');
      expect(JSON.parse(Buffer.from(payload!, 'base64url').toString()).iss).to.equal(metadata.issuer);
    });

    it('gets a token by client_credentials with the default (client_secret_post) and with client_secret_basic', async () => {
      const client = await createClient(tenantA, 'member');
      for (const auth of [undefined, oidc.ClientSecretBasic(client.client_secret)]) {
        const config = await discover(client.client_id, client.client_secret, auth);
        const token = await oidc.clientCredentialsGrant(config);
        expect(token.token_type.toLowerCase()).to.equal('bearer');
        expect(token.expiresIn()).to.be.within(1, 900);
        expect(token.refresh_token).to.equal(undefined);
        const users = await api.call('GET', '/api/users', { token: token.access_token });
        expect(users.status, JSON.stringify(users.body)).to.equal(200);
      }
    });

    it('gets invalid_client (401, with a challenge) for a wrong secret, by either method', async () => {
      const client = await createClient(tenantA, 'member');
      for (const auth of [undefined, oidc.ClientSecretBasic('cs_wrong')]) {
        const config = await discover(client.client_id, 'cs_wrong', auth);
        const error = await oidc.clientCredentialsGrant(config).then(
          () => expect.fail('a wrong secret got a token'),
          (e: unknown) => e,
        );
        // A 401 carries a challenge (RFC 9110), which openid-client reports ahead of the body's error.
        expect(error).to.be.instanceOf(oidc.WWWAuthenticateChallengeError);
        const challenge = error as oidc.WWWAuthenticateChallengeError;
        expect(challenge.status).to.equal(401);
        expect(challenge.cause.map((c) => c.scheme)).to.deep.equal(['basic']);
        expect(await challenge.response.json()).to.include({ error: 'invalid_client' });
        expect(challenge.response.headers.get('cache-control')).to.equal('no-store');
      }
    });

    it('introspects and revokes an access token, which is refused at once by the API too', async () => {
      const client = await createClient(tenantA, 'member');
      const config = await discover(client.client_id, client.client_secret);
      const { access_token: token } = await oidc.clientCredentialsGrant(config);
      const active = await oidc.tokenIntrospection(config, token);
      expect(active).to.include({
        active: true,
        token_type: 'Bearer',
        client_id: client.client_id,
        iss: api.url,
        tid: tenantA,
        role: 'member',
      });
      expect(active.sub).to.be.a('string');
      expect(active.exp! - active.iat!).to.equal(900);
      expect((await api.call('GET', '/api/users', { token })).status).to.equal(200);

      await oidc.tokenRevocation(config, token, { token_type_hint: 'access_token' });
      expect(await oidc.tokenIntrospection(config, token)).to.deep.equal({ active: false });
      const refused = await api.call('GET', '/api/users', { token });
      expect(refused.status).to.equal(401);
      expect(refused.body.detail).to.match(/revoked/);
      // Revoking again, or revoking garbage, is no error (RFC 7009 §2.2).
      await oidc.tokenRevocation(config, token);
      await oidc.tokenRevocation(config, 'not a token at all');
      expect(await oidc.tokenIntrospection(config, 'not a token at all')).to.deep.equal({ active: false });
    });

    it('introspects and revokes a refresh token (admin client); the refresh grant then fails', async () => {
      const session = await api.call('POST', '/api/auth/login', {
        body: {
          tenant: tenantA,
          email: `member@${tenantA}.example`,
          password: 'correct horse battery staple 42',
        },
      });
      expect(session.status).to.equal(200);
      const refresh = session.body.refresh_token as string;
      const admin = await createClient(tenantA, 'admin');
      const config = await discover(
        admin.client_id,
        admin.client_secret,
        oidc.ClientSecretBasic(admin.client_secret),
      );
      const active = await oidc.tokenIntrospection(config, refresh, { token_type_hint: 'refresh_token' });
      expect(active).to.include({
        active: true,
        token_type: 'refresh_token',
        sub: seeded.users[`${tenantA}/member`]!.id,
        tid: tenantA,
        iss: api.url,
      });
      // A user's access token is visible to the tenant's client too.
      expect(await oidc.tokenIntrospection(config, session.body.access_token as string)).to.include({
        active: true,
        sub: seeded.users[`${tenantA}/member`]!.id,
        role: 'member',
      });

      await oidc.tokenRevocation(config, refresh);
      expect(await oidc.tokenIntrospection(config, refresh)).to.deep.equal({ active: false });
      const grant = await post('/api/auth/token', { grant_type: 'refresh_token', refresh_token: refresh });
      expectOAuthError(grant, 400, 'invalid_grant');
    });

    it('lets a member client revoke only its own tokens', async () => {
      const member = await createClient(tenantA, 'member');
      const config = await discover(member.client_id, member.client_secret);
      const userToken = (
        await api.call('POST', '/api/auth/login', {
          body: {
            tenant: tenantA,
            email: `admin@${tenantA}.example`,
            password: 'correct horse battery staple 42',
          },
        })
      ).body.access_token as string;
      const error = await oidc.tokenRevocation(config, userToken).then(
        () => expect.fail('a member client revoked a user’s token'),
        (e: unknown) => e,
      );
      expect((error as oidc.ResponseBodyError).error).to.equal('unauthorized_client');
      expect((await api.call('GET', '/api/auth/profile', { token: userToken })).status).to.equal(200);
    });

    it('keeps tenants apart: a client of B learns nothing of A’s tokens and cannot revoke them', async () => {
      const clientA = await createClient(tenantA, 'admin');
      const clientB = await createClient(tenantB, 'admin');
      const configA = await discover(clientA.client_id, clientA.client_secret);
      const configB = await discover(clientB.client_id, clientB.client_secret);
      const { access_token: tokenA } = await oidc.clientCredentialsGrant(configA);
      const userA = seeded.users[`${tenantA}/owner`]!;
      const session = await api.call('POST', '/api/auth/login', {
        body: { tenant: tenantA, email: userA.email, password: 'correct horse battery staple 42' },
      });
      const refreshA = session.body.refresh_token as string;
      for (const token of [tokenA, refreshA, userA.access]) {
        expect(await oidc.tokenIntrospection(configB, token)).to.deep.equal({ active: false });
        await oidc.tokenRevocation(configB, token);
        expect((await oidc.tokenIntrospection(configA, token)).active, token.slice(0, 12)).to.equal(true);
      }
      expect((await api.call('GET', '/api/users', { token: tokenA })).status).to.equal(200);
    });

    it('serves the platform admin: it sees and revokes tokens of every tenant', async () => {
      const config = await discover(platformAdminClient.clientId, platformAdminClient.clientSecret);
      const { access_token: adminToken } = await oidc.clientCredentialsGrant(config);
      expect(await oidc.tokenIntrospection(config, adminToken)).to.include({
        active: true,
        platform_admin: true,
        client_id: platformAdminClient.clientId,
      });
      const session = await api.call('POST', '/api/auth/login', {
        body: {
          tenant: tenantB,
          email: `member@${tenantB}.example`,
          password: 'correct horse battery staple 42',
        },
      });
      const userToken = session.body.access_token as string;
      expect(await oidc.tokenIntrospection(config, userToken)).to.include({ active: true, tid: tenantB });
      // A tenant's client never sees the platform admin's token.
      const clientB = await createClient(tenantB, 'admin');
      const configB = await discover(clientB.client_id, clientB.client_secret);
      expect(await oidc.tokenIntrospection(configB, adminToken)).to.deep.equal({ active: false });

      await oidc.tokenRevocation(config, userToken);
      expect((await api.call('GET', '/api/auth/profile', { token: userToken })).status).to.equal(401);
      await oidc.tokenRevocation(config, adminToken);
      expect((await api.call('GET', '/api/tenants', { token: adminToken })).status).to.equal(401);
    });
  });

  describe('with raw HTTP', () => {
    let client: CreatedClient;
    before(async () => {
      client = await createClient(tenantA, 'member');
    });

    it('serves the metadata at the RFC 8414 location, cacheable', async () => {
      const res = await api.call('GET', '/.well-known/oauth-authorization-server');
      expect(res.status).to.equal(200);
      expect(res.body.issuer).to.equal(api.url);
      expect(res.headers.get('cache-control')).to.match(/public/);
    });

    it('refuses two client authentication methods at once', async () => {
      const res = await post(
        '/api/auth/token',
        {
          grant_type: 'client_credentials',
          client_id: client.client_id,
          client_secret: client.client_secret,
        },
        { authorization: basic(client.client_id, client.client_secret) },
      );
      expectOAuthError(res, 400, 'invalid_request');
      expect(res.body.error_description).to.match(/one client authentication method/);
    });

    it('decodes Basic credentials as RFC 6749 §2.3.1 says: form-urlencoded id and secret', async () => {
      const encodedId = client.client_id.replace('.', '%2E');
      const res = await post(
        '/api/auth/token',
        { grant_type: 'client_credentials' },
        { authorization: basic(encodedId, client.client_secret) },
      );
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.headers.get('cache-control')).to.equal('no-store');
      expect(res.headers.get('pragma')).to.equal('no-cache');
    });

    it('ignores unknown parameters', async () => {
      const res = await post('/api/auth/token', {
        grant_type: 'client_credentials',
        client_id: client.client_id,
        client_secret: client.client_secret,
        resource_hint: 'whatever',
        foo: 'bar',
      });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.body.access_token).to.be.a('string');
    });

    it('answers each malformed request with its RFC 6749 error code', async () => {
      const creds = { client_id: client.client_id, client_secret: client.client_secret };
      expectOAuthError(
        await post('/api/auth/token', { grant_type: 'authorization_code', ...creds }),
        400,
        'unsupported_grant_type',
      );
      expectOAuthError(await post('/api/auth/token', { ...creds }), 400, 'invalid_request');
      expectOAuthError(
        await post('/api/auth/token', {
          grant_type: 'password',
          tenant: tenantA,
          username: `member@${tenantA}.example`,
        }),
        400,
        'invalid_request',
      );
      expectOAuthError(
        await post('/api/auth/token', { grant_type: 'refresh_token' }),
        400,
        'invalid_request',
      );
      expectOAuthError(
        await post('/api/auth/token', { grant_type: 'client_credentials', ...creds, scope: 'users:read' }),
        400,
        'invalid_scope',
      );
      expectOAuthError(
        await post('/api/auth/token', {
          grant_type: 'password',
          tenant: tenantA,
          username: `member@${tenantA}.example`,
          password: 'wrong',
        }),
        400,
        'invalid_grant',
      );
      expectOAuthError(
        await post('/api/auth/token', {
          grant_type: 'refresh_token',
          refresh_token: `${tenantA}.rt_nothing`,
        }),
        400,
        'invalid_grant',
      );
      // An API client may not use a user's grant.
      expectOAuthError(
        await post('/api/auth/token', {
          grant_type: 'password',
          tenant: tenantA,
          username: `member@${tenantA}.example`,
          password: 'correct horse battery staple 42',
          ...creds,
        }),
        400,
        'unauthorized_client',
      );
      // A client_id alone is no authentication.
      const bare = await post('/api/auth/token', {
        grant_type: 'client_credentials',
        client_id: client.client_id,
      });
      expectOAuthError(bare, 401, 'invalid_client');
      expect(bare.headers.get('www-authenticate')).to.match(/^Basic /);
      const wrongBasic = await post(
        '/api/auth/token',
        { grant_type: 'client_credentials' },
        { authorization: basic(client.client_id, 'cs_wrong') },
      );
      expectOAuthError(wrongBasic, 401, 'invalid_client');
      expect(wrongBasic.headers.get('www-authenticate')).to.match(/^Basic realm="/);
      // A repeated parameter (RFC 6749 §3.2).
      const repeated = await api.call('POST', '/api/auth/token', {
        body: `grant_type=client_credentials&grant_type=password&client_id=${client.client_id}&client_secret=${client.client_secret}`,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': nextAddress() },
      });
      expectOAuthError(repeated, 400, 'invalid_request');
      const broken = await api.call('POST', '/api/auth/token', {
        body: '{"grant_type": "client_credentials",',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': nextAddress() },
      });
      expectOAuthError(broken, 400, 'invalid_request');
    });

    it('keeps JSON bodies working for existing callers', async () => {
      const res = await api.call('POST', '/api/auth/token', {
        body: {
          grant_type: 'client_credentials',
          client_id: client.client_id,
          client_secret: client.client_secret,
        },
        headers: { 'x-forwarded-for': nextAddress() },
      });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
    });

    it('needs client authentication for introspection and revocation, and a token', async () => {
      for (const path of ['/api/auth/introspect', '/api/auth/revoke']) {
        const anonymous = await post(path, { token: 'x' });
        expectOAuthError(anonymous, 401, 'invalid_client');
        expectOAuthError(
          await post(path, { token: 'x' }, { authorization: basic(client.client_id, 'cs_wrong') }),
          401,
          'invalid_client',
        );
        expectOAuthError(
          await post(path, {}, { authorization: basic(client.client_id, client.client_secret) }),
          400,
          'invalid_request',
        );
      }
    });

    it('counts Basic-authenticated guesses against the client_id, like body ones', async () => {
      const target = await createClient(tenantA, 'member');
      const address = nextAddress();
      const statuses: number[] = [];
      for (let i = 0; i < 10; i += 1) {
        const res = await post(
          '/api/auth/token',
          { grant_type: 'client_credentials' },
          { authorization: basic(target.client_id, `cs_wrong_${i}`), 'x-forwarded-for': address },
        );
        statuses.push(res.status);
      }
      expect(statuses).to.deep.equal(Array<number>(10).fill(401));
      // The 11th attempt at this client from this address, now with the right secret in the body: refused.
      const refused = await post(
        '/api/auth/token',
        {
          grant_type: 'client_credentials',
          client_id: target.client_id,
          client_secret: target.client_secret,
        },
        { 'x-forwarded-for': address },
      );
      expect(refused.status, JSON.stringify(refused.body)).to.equal(429);
      expect(refused.headers.get('cache-control')).to.equal('no-store');
    });
  });
});
