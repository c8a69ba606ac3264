// What sign-in through the passport strategies must keep that the attack
// suites (test/integration/sso-*.test.ts) do not look at: one shared SAML
// strategy serving tenants side by side, and the OIDC strategy's pending state
// moved to the shared store instead of a session. Real Redis, a signing SAML
// IdP and a real OpenID Provider on loopback.
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { SsoError } from '../../../api/src/sso/identity.js';
import { OidcService, type TenantOidcView } from '../../../api/src/sso/oidc.js';
import { SamlService, type TenantSsoView } from '../../../api/src/sso/saml.js';
import { RedisExpiringStore, type ExpiringStore } from '../../../api/src/sso/store.js';
import { browse, startTestIdp, type TestClient, type TestIdp } from '../../harness/oidc-idp.js';
import { generateSigningKey, TestSamlIdp } from '../../harness/saml-idp.js';
import { createTestRedis, type TestRedis } from '../../harness/services.js';

const publicBaseUrl = 'https://app.tenantry.test';

describe('sign-in through passport strategies (real Redis and IdPs)', function () {
  this.timeout(60_000);

  let redis: TestRedis;
  let store: RedisExpiringStore;

  before(async () => {
    redis = await createTestRedis('sso-passport');
    store = new RedisExpiringStore(redis.client, redis.prefix);
  });

  after(async () => {
    await redis?.drop();
  });

  describe('SAML: one MultiSamlStrategy for every tenant', () => {
    let service: SamlService;
    let idpA: TestSamlIdp;
    let idpB: TestSamlIdp;
    let acme: TenantSsoView;
    let globex: TenantSsoView;

    before(async () => {
      service = new SamlService({ publicBaseUrl, store });
      const [keyA, keyB] = await Promise.all([generateSigningKey('idp-a'), generateSigningKey('idp-b')]);
      idpA = new TestSamlIdp('https://idp-a.example/metadata', keyA);
      idpB = new TestSamlIdp('https://idp-b.example/metadata', keyB);
      acme = {
        name: 'acme',
        uid: 'uid-acme',
        domains: ['acme.example'],
        saml: { idpMetadataXml: idpA.metadataXml() },
      };
      globex = {
        name: 'globex',
        uid: 'uid-globex',
        domains: ['globex.example'],
        saml: { idpMetadataXml: idpB.metadataXml() },
      };
    });

    const sp = (tenant: TenantSsoView) => ({
      entityId: service.entityId(tenant.name),
      acsUrl: service.acsUrl(tenant.name),
    });

    it("gives each of two simultaneous logins its own tenant's IdP and settings", async () => {
      const [toA, toB] = await Promise.all([service.loginUrl(acme), service.loginUrl(globex)]);
      expect(`${new URL(toA.url).origin}${new URL(toA.url).pathname}`).to.equal(idpA.ssoUrl);
      expect(`${new URL(toB.url).origin}${new URL(toB.url).pathname}`).to.equal(idpB.ssoUrl);
      const [idA, idB] = await Promise.all([
        idpA.requestId(toA.url, service.spMetadata('acme')),
        idpB.requestId(toB.url, service.spMetadata('globex')),
      ]);
      expect([idA, idB]).to.deep.equal([toA.requestId, toB.requestId]);

      const [responseA, responseB] = await Promise.all([
        idpA.respond(sp(acme), { inResponseTo: idA, nameId: 'ann@acme.example' }),
        idpB.respond(sp(globex), { inResponseTo: idB, nameId: 'ben@globex.example' }),
      ]);
      const [ann, ben] = await Promise.all([
        service.consume(acme, { SAMLResponse: responseA }, { requestId: idA }),
        service.consume(globex, { SAMLResponse: responseB }, { requestId: idB }),
      ]);
      expect(ann.email).to.equal('ann@acme.example');
      expect(ben.email).to.equal('ben@globex.example');
    });

    it('checks each response with the certificates of the tenant whose ACS got it, side by side', async () => {
      const idA = await idpA.requestId((await service.loginUrl(acme)).url, service.spMetadata('acme'));
      const idB = await idpB.requestId((await service.loginUrl(globex)).url, service.spMetadata('globex'));
      // A genuine answer at acme, and, at the same time, one signed with acme's IdP key
      // but otherwise a perfect answer to globex's pending request.
      const [genuine, forged] = await Promise.all([
        idpA.respond(sp(acme), { inResponseTo: idA, nameId: 'ann@acme.example' }),
        idpA.respond(sp(globex), { inResponseTo: idB, nameId: 'ben@globex.example' }),
      ]);
      const [atAcme, atGlobex] = await Promise.allSettled([
        service.consume(acme, { SAMLResponse: genuine }),
        service.consume(globex, { SAMLResponse: forged }),
      ]);
      expect(atAcme.status).to.equal('fulfilled');
      expect((atAcme as PromiseFulfilledResult<{ email: string }>).value.email).to.equal('ann@acme.example');
      expect(atGlobex.status).to.equal('rejected');
      const refusal = (atGlobex as PromiseRejectedResult).reason as SsoError;
      expect(refusal).to.be.instanceOf(SsoError);
      expect(refusal.code, refusal.detail).to.equal('signature_invalid');
    });
  });

  describe('OIDC: the strategy keeps no session', () => {
    let idp: TestIdp;
    let acme: TenantOidcView;
    const client: TestClient = {
      client_id: 'acme-client',
      client_secret: 'acme-secret-0123456789',
      redirect_uris: [`${publicBaseUrl}/api/auth/sso/oidc/acme/callback`],
    };

    before(async () => {
      idp = await startTestIdp({
        clients: [client],
        accounts: { alice: { email: 'alice@acme.test', email_verified: true } },
      });
      acme = {
        name: 'acme',
        uid: 'uid-acme',
        domains: ['acme.test'],
        oidc: { issuer: idp.issuer, clientId: client.client_id, clientSecretRef: { name: 'sso', key: 'x' } },
        clientSecret: client.client_secret,
      };
    });

    after(async () => {
      await idp?.close();
    });

    it('stores the verifier and nonce the strategy sent under the state, and passes login_hint on', async () => {
      const stored = new Map<string, string>();
      const recording: ExpiringStore = {
        putIfAbsent: (key, value, ttl) => {
          stored.set(key, value);
          return store.putIfAbsent(key, value, ttl);
        },
        take: (key) => store.take(key),
        has: (key) => store.has(key),
      };
      const service = new OidcService({ publicBaseUrl, store: recording, allowPrivateIssuers: true });
      const { url, state } = await service.authorizationUrl(acme, { loginHint: 'alice@acme.test' });
      expect(url.searchParams.get('login_hint')).to.equal('alice@acme.test');
      const pending = JSON.parse(stored.get(`oidc:state:${state}`) ?? '{}') as Record<string, string>;
      expect(pending).to.include({
        tenant: 'acme',
        tenantUid: 'uid-acme',
        nonce: url.searchParams.get('nonce'),
      });
      const challenge = createHash('sha256')
        .update(pending.verifier ?? '')
        .digest('base64url');
      expect(url.searchParams.get('code_challenge')).to.equal(challenge);

      idp.loginAs = 'alice';
      const login = await service.callback(acme, await browse(url, client.redirect_uris[0] ?? ''), {
        expectedState: state,
      });
      expect(login.identity.email).to.equal('alice@acme.test');
    });

    it('refuses a callback without a code instead of starting another login', async () => {
      const service = new OidcService({ publicBaseUrl, store, allowPrivateIssuers: true });
      const { state } = await service.authorizationUrl(acme);
      const callback = new URL(client.redirect_uris[0] ?? '');
      callback.search = new URLSearchParams({ state, iss: idp.issuer }).toString();
      const tokenRequests = idp.requests.filter((path) => path === '/token').length;
      let caught: unknown;
      try {
        await service.callback(acme, callback, { expectedState: state });
      } catch (error) {
        caught = error;
      }
      expect(caught).to.be.instanceOf(SsoError);
      expect((caught as SsoError).code).to.equal('idp_error');
      expect((caught as SsoError).detail).to.match(/no authorization code/);
      expect(idp.requests.filter((path) => path === '/token').length).to.equal(tokenRequests);
    });
  });
});
