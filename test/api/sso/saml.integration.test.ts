// The SAML service provider against a real signing IdP (samlify, keys made by
// openssl for this run) and real Redis. Every attack is built from a genuinely
// signed response, then altered the way an attacker could.
import { DOMParser, XMLSerializer, type Document, type Element } from '@xmldom/xmldom';
import { expect } from 'chai';
import { SsoError, type SsoErrorCode } from '../../../api/src/sso/identity.js';
import { SamlService, maxSamlResponseLength, type TenantSsoView } from '../../../api/src/sso/saml.js';
import { RedisExpiringStore } from '../../../api/src/sso/store.js';
import { createTestRedis, type TestRedis } from '../../harness/services.js';
import {
  generateSigningKey,
  TestSamlIdp,
  type ResponseOptions,
  type SigningKey,
} from '../../harness/saml-idp.js';

const publicBaseUrl = 'https://app.tenantry.test';
const samlNs = 'urn:oasis:names:tc:SAML:2.0:assertion';
const samlpNs = 'urn:oasis:names:tc:SAML:2.0:protocol';
const dsNs = 'http://www.w3.org/2000/09/xmldsig#';

async function rejection(promise: Promise<unknown>): Promise<SsoError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(SsoError);
    return error as SsoError;
  }
  throw new Error('expected an SsoError, but the call succeeded');
}

async function expectCode(promise: Promise<unknown>, code: SsoErrorCode): Promise<SsoError> {
  const error = await rejection(promise);
  expect(error.code, error.detail).to.equal(code);
  return error;
}

const decode = (base64: string): string => Buffer.from(base64, 'base64').toString('utf8');
const encode = (xml: string): string => Buffer.from(xml, 'utf8').toString('base64');
const parse = (xml: string): Document => new DOMParser().parseFromString(xml, 'text/xml');
const serialize = (doc: Document): string => new XMLSerializer().serializeToString(doc);

function only(root: Document | Element, namespace: string, localName: string): Element {
  const found = Array.from(root.getElementsByTagNameNS(namespace, localName));
  expect(found, `${localName} elements`).to.have.length(1);
  return found[0] as Element;
}

/** A copy of the signed assertion without its signature, for someone else. */
function forgedCopy(assertion: Element, email: string, id: string): Element {
  const forged = assertion.cloneNode(true) as Element;
  forged.setAttribute('ID', id);
  for (const signature of Array.from(forged.getElementsByTagNameNS(dsNs, 'Signature'))) {
    forged.removeChild(signature);
  }
  only(forged, samlNs, 'NameID').textContent = email;
  return forged;
}

describe('SAML service provider (integration, real Redis and a signing IdP)', function () {
  this.timeout(60_000);

  let redis: TestRedis;
  let store: RedisExpiringStore;
  let service: SamlService;
  let keyA: SigningKey;
  let keyB: SigningKey;
  let keyAttacker: SigningKey;
  let idpA: TestSamlIdp;
  let idpB: TestSamlIdp;
  let acme: TenantSsoView;
  let globex: TenantSsoView;
  let initech: TenantSsoView;

  before(async () => {
    redis = await createTestRedis('sso-saml');
    store = new RedisExpiringStore(redis.client, redis.prefix);
    service = new SamlService({ publicBaseUrl, store, clockSkewMs: 60_000 });
    [keyA, keyB, keyAttacker] = await Promise.all([
      generateSigningKey('idp-a'),
      generateSigningKey('idp-b'),
      generateSigningKey('attacker'),
    ]);
    idpA = new TestSamlIdp('https://idp-a.example/metadata', keyA);
    idpB = new TestSamlIdp('https://idp-b.example/metadata', keyB);
    acme = {
      name: 'acme',
      uid: 'uid-acme',
      domains: ['corp.example'],
      saml: {
        idpMetadataXml: idpA.metadataXml(),
        roleMapping: { 'acme-admins': 'admin', 'acme-owners': 'owner' },
        defaultRole: 'member',
      },
    };
    globex = {
      name: 'globex',
      uid: 'uid-globex',
      domains: ['globex.example'],
      saml: { idpMetadataXml: idpB.metadataXml() },
    };
    initech = {
      name: 'initech',
      uid: 'uid-initech',
      domains: ['corp.example'],
      saml: { idpMetadataXml: idpA.metadataXml(), allowIdpInitiated: true },
    };
  });

  after(async () => {
    await redis?.drop();
  });

  const sp = (tenant: TenantSsoView) => ({
    entityId: service.entityId(tenant.name),
    acsUrl: service.acsUrl(tenant.name),
  });

  /** Starts an SP-initiated login and returns the AuthnRequest ID as the IdP reads it. */
  async function startLogin(tenant: TenantSsoView, idp: TestSamlIdp = idpA): Promise<string> {
    return await idp.requestId((await service.loginUrl(tenant)).url, service.spMetadata(tenant.name));
  }

  /** A signed response answering a fresh login at `tenant`. */
  async function answer(
    tenant: TenantSsoView,
    options: Partial<ResponseOptions> = {},
    idp: TestSamlIdp = idpA,
  ): Promise<string> {
    const inResponseTo = await startLogin(tenant, idp);
    return await idp.respond(sp(tenant), { inResponseTo, nameId: 'alice@corp.example', ...options });
  }

  describe('a valid SP-initiated login', () => {
    it('redirects to the IdP with an AuthnRequest whose ID is stored for this tenant only', async () => {
      const login = await service.loginUrl(acme, { relayState: '/dashboard' });
      const url = new URL(login.url);
      expect(url.origin + url.pathname).to.equal(idpA.ssoUrl);
      expect(url.searchParams.get('RelayState')).to.equal('/dashboard');
      const id = await idpA.requestId(login.url, service.spMetadata('acme'));
      expect(login.requestId).to.equal(id);
      // Kept per tenant name and Tenant uid.
      expect(await redis.client.exists(`${redis.prefix}saml:req:acme/uid-acme:${id}`)).to.equal(1);
      expect(await redis.client.exists(`${redis.prefix}saml:req:globex/uid-globex:${id}`)).to.equal(0);
    });

    it('returns the identity with names, groups and the highest mapped role', async () => {
      const response = await answer(acme, {
        nameId: 'Alice.Smith@Corp.Example',
        attributes: {
          groups: ['staff', 'acme-admins', 'acme-owners'],
          givenName: ['Alice'],
          sn: ['Smith'],
        },
      });
      expect(await service.consume(acme, { SAMLResponse: response, RelayState: '/dashboard' })).to.deep.equal(
        {
          provider: 'saml',
          subject: 'Alice.Smith@Corp.Example',
          email: 'alice.smith@corp.example',
          firstName: 'Alice',
          lastName: 'Smith',
          groups: ['staff', 'acme-admins', 'acme-owners'],
          role: 'owner',
        },
      );
    });

    it('uses the default role when no group is mapped, and reads the configured groups attribute', async () => {
      const tenant: TenantSsoView = {
        ...acme,
        saml: {
          ...acme.saml,
          groupsAttribute: 'memberOf',
          roleMapping: { ops: 'admin' },
          defaultRole: 'member',
        },
      };
      const unmapped = await service.consume(tenant, {
        SAMLResponse: await answer(tenant, { attributes: { memberOf: ['staff'], groups: ['ops'] } }),
      });
      expect(unmapped).to.include({ role: 'member' });
      expect(unmapped.groups).to.deep.equal(['staff']);
      const mapped = await service.consume(tenant, {
        SAMLResponse: await answer(tenant, { attributes: { memberOf: ['ops'] } }),
      });
      expect(mapped).to.include({ role: 'admin' });
    });

    it('takes the email from an attribute when the NameID is a persistent identifier', async () => {
      const identity = await service.consume(acme, {
        SAMLResponse: await answer(acme, {
          nameId: 'u-4711',
          nameIdFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
          attributes: {
            'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress': ['bob@corp.example'],
          },
        }),
      });
      expect(identity).to.include({ subject: 'u-4711', email: 'bob@corp.example' });
    });

    it('does not take a transient NameID as the subject', async () => {
      const identity = await service.consume(acme, {
        SAMLResponse: await answer(acme, {
          nameId: '_t-8c1f',
          nameIdFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient',
          attributes: { mail: ['Bob@corp.example'] },
        }),
      });
      expect(identity).to.include({ subject: 'bob@corp.example', email: 'bob@corp.example' });
    });

    it('refuses a login without any email address', async () => {
      const response = await answer(acme, {
        nameId: 'u-4712',
        nameIdFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
      });
      await expectCode(service.consume(acme, { SAMLResponse: response }), 'email_missing');
    });

    it('accepts a response signed only on the assertion, as many IdPs send', async () => {
      const identity = await service.consume(acme, {
        SAMLResponse: await answer(acme, { sign: 'assertion' }),
      });
      expect(identity.email).to.equal('alice@corp.example');
    });

    it('works across replicas: the login starts on one and completes on another', async () => {
      const other = new SamlService({
        publicBaseUrl,
        store: new RedisExpiringStore(redis.client, redis.prefix),
      });
      const inResponseTo = await startLogin(acme);
      const response = await idpA.respond(sp(acme), { inResponseTo, nameId: 'carol@corp.example' });
      expect((await other.consume(acme, { SAMLResponse: response })).email).to.equal('carol@corp.example');
    });

    it('accepts signatures from every certificate in the metadata while the IdP rotates keys', async () => {
      const next = await generateSigningKey('idp-a-next');
      const rotating: TenantSsoView = {
        ...acme,
        saml: {
          ...acme.saml,
          idpMetadataXml: new TestSamlIdp(idpA.entityId, keyA, { extraCerts: [next.cert] }).metadataXml(),
        },
      };
      const nextIdp = new TestSamlIdp(idpA.entityId, next);
      expect((await service.consume(rotating, { SAMLResponse: await answer(rotating) })).email).to.equal(
        'alice@corp.example',
      );
      const signedWithNext = await answer(rotating, {}, nextIdp);
      expect((await service.consume(rotating, { SAMLResponse: signedWithNext })).email).to.equal(
        'alice@corp.example',
      );
      // The old metadata does not know the new key.
      await expectCode(
        service.consume(acme, { SAMLResponse: await answer(acme, {}, nextIdp) }),
        'signature_invalid',
      );
    });
  });

  describe('IdP metadata from a URL', () => {
    it('fetches it once per TTL and keeps using the last copy while the IdP is unreachable', async () => {
      let calls = 0;
      let up = true;
      const byUrl = new SamlService({
        publicBaseUrl,
        store,
        // Long enough that two logins in a row fit inside it on a loaded machine.
        metadataTtlMs: 1_000,
        fetchMetadata: (url) => {
          calls += 1;
          expect(url).to.equal('https://idp-a.example/metadata');
          return up ? Promise.resolve(idpA.metadataXml()) : Promise.reject(new Error('connection refused'));
        },
      });
      const tenant: TenantSsoView = { ...acme, saml: { idpMetadataUrl: 'https://idp-a.example/metadata' } };
      await byUrl.loginUrl(tenant);
      await byUrl.loginUrl(tenant);
      expect(calls).to.equal(1);
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      up = false;
      const { requestId } = await byUrl.loginUrl(tenant);
      expect(calls).to.equal(2);
      const response = await idpA.respond(sp(tenant), {
        inResponseTo: requestId,
        nameId: 'alice@corp.example',
      });
      expect((await byUrl.consume(tenant, { SAMLResponse: response })).email).to.equal('alice@corp.example');

      const fresh = new SamlService({
        publicBaseUrl,
        store,
        fetchMetadata: () => Promise.reject(new Error('down')),
      });
      await expectCode(fresh.loginUrl(tenant), 'metadata_invalid');
    });

    it('refuses a tenant without SAML settings', async () => {
      await expectCode(
        service.loginUrl({ name: 'acme', uid: 'uid-acme', domains: ['corp.example'] }),
        'not_configured',
      );
    });
  });

  describe('signatures', () => {
    it('rejects an unsigned assertion inside a signed response', async () => {
      await expectCode(
        service.consume(acme, { SAMLResponse: await answer(acme, { sign: 'response' }) }),
        'signature_invalid',
      );
    });

    it('rejects a response where neither the response nor the assertion is signed', async () => {
      await expectCode(
        service.consume(acme, { SAMLResponse: await answer(acme, { sign: 'none' }) }),
        'signature_invalid',
      );
    });

    it('rejects a response whose own signature is broken even though the assertion signature holds', async () => {
      const doc = parse(decode(await answer(acme, { sign: 'both' })));
      doc.documentElement?.setAttribute('IssueInstant', new Date(Date.now() - 1000).toISOString());
      await expectCode(service.consume(acme, { SAMLResponse: encode(serialize(doc)) }), 'signature_invalid');
    });

    it('rejects a response re-signed with the attacker’s own certificate in KeyInfo', async () => {
      const attacker = new TestSamlIdp(idpA.entityId, keyAttacker);
      const response = await answer(acme, { nameId: 'ceo@corp.example' }, attacker);
      expect(decode(response)).to.contain(keyAttacker.cert.split('\n')[1]);
      await expectCode(service.consume(acme, { SAMLResponse: response }), 'signature_invalid');
    });

    it('rejects SHA-1 signatures', async () => {
      const sha1 = new TestSamlIdp(idpA.entityId, keyA, {
        signatureAlgorithm: 'http://www.w3.org/2000/09/xmldsig#rsa-sha1',
      });
      const response = await answer(acme, {}, sha1);
      expect(decode(response)).to.contain('xmldsig#rsa-sha1');
      await expectCode(service.consume(acme, { SAMLResponse: response }), 'signature_invalid');
    });

    it('rejects an assertion signed with the right key under another issuer', async () => {
      const impostor = new TestSamlIdp('https://elsewhere.example/metadata', keyA);
      await expectCode(
        service.consume(acme, { SAMLResponse: await answer(acme, {}, impostor) }),
        'issuer_mismatch',
      );
    });
  });

  describe('XML signature wrapping', () => {
    /** A response answering a fresh login, signed on the assertion only, as DOM. */
    async function signedDocument(): Promise<{ doc: Document; response: Element; assertion: Element }> {
      const doc = parse(decode(await answer(acme, { sign: 'assertion' })));
      const response = doc.documentElement as Element;
      return { doc, response, assertion: only(doc, samlNs, 'Assertion') };
    }

    it('rejects a forged unsigned assertion injected before the signed one', async () => {
      const { doc, response, assertion } = await signedDocument();
      response.insertBefore(forgedCopy(assertion, 'ceo@corp.example', '_forged'), assertion);
      await expectCode(service.consume(acme, { SAMLResponse: encode(serialize(doc)) }), 'signature_invalid');
    });

    it('rejects a forged unsigned assertion injected after the signed one', async () => {
      const { doc, response, assertion } = await signedDocument();
      response.appendChild(forgedCopy(assertion, 'ceo@corp.example', '_forged'));
      await expectCode(service.consume(acme, { SAMLResponse: encode(serialize(doc)) }), 'signature_invalid');
    });

    it('rejects the signed assertion moved into Extensions with a forged one, same ID and signature, in its place', async () => {
      const { doc, response, assertion } = await signedDocument();
      const forged = assertion.cloneNode(true) as Element;
      only(forged, samlNs, 'NameID').textContent = 'ceo@corp.example';
      const extensions = doc.createElementNS(samlpNs, 'samlp:Extensions');
      response.replaceChild(forged, assertion);
      extensions.appendChild(assertion);
      response.insertBefore(extensions, only(doc, samlpNs, 'Status'));
      await expectCode(service.consume(acme, { SAMLResponse: encode(serialize(doc)) }), 'signature_invalid');
    });

    it('rejects the signed assertion hidden in the forged one’s ds:Object', async () => {
      const { doc, response, assertion } = await signedDocument();
      const forged = forgedCopy(assertion, 'ceo@corp.example', '_forged');
      // The original signature moves to the forged assertion; the original goes into its
      // ds:Object without it, which leaves the signed digest unchanged (enveloped transform).
      const signature = only(assertion, dsNs, 'Signature');
      assertion.removeChild(signature);
      const object = doc.createElementNS(dsNs, 'ds:Object');
      signature.appendChild(object);
      forged.insertBefore(signature, only(forged, samlNs, 'Subject'));
      response.replaceChild(forged, assertion);
      object.appendChild(assertion);
      await expectCode(service.consume(acme, { SAMLResponse: encode(serialize(doc)) }), 'signature_invalid');
    });
  });

  describe('the NameID', () => {
    it('is read whole when a comment is injected, so it cannot be truncated into another identity', async () => {
      const response = decode(await answer(acme, { nameId: 'admin@corp.example.evil.example' }));
      const injected = response.replace(
        '>admin@corp.example.evil.example<',
        '>admin@corp.example<!---->.evil.example<',
      );
      expect(injected).to.not.equal(response);
      const error = await expectCode(
        service.consume(acme, { SAMLResponse: encode(injected) }),
        'domain_not_verified',
      );
      expect(error.detail).to.contain('corp.example.evil.example');
    });

    it('keeps the signature valid and the value intact when the comment splits a legitimate address', async () => {
      const response = decode(await answer(acme, { nameId: 'admin@corp.example' }));
      const injected = response.replace('>admin@corp.example<', '>adm<!---->in@corp.example<');
      expect(injected).to.not.equal(response);
      const identity = await service.consume(acme, { SAMLResponse: encode(injected) });
      expect(identity).to.include({ subject: 'admin@corp.example', email: 'admin@corp.example' });
    });
  });

  describe('replay and request binding', () => {
    it('rejects a response consumed a second time', async () => {
      const response = await answer(acme);
      await service.consume(acme, { SAMLResponse: response });
      await expectCode(service.consume(acme, { SAMLResponse: response }), 'replayed');
    });

    it('lets exactly one of two simultaneous submissions through', async () => {
      const response = await answer(acme);
      const outcomes = await Promise.allSettled([
        service.consume(acme, { SAMLResponse: response }),
        new SamlService({ publicBaseUrl, store }).consume(acme, { SAMLResponse: response }),
      ]);
      expect(outcomes.filter((o) => o.status === 'fulfilled')).to.have.length(1);
      const failed = outcomes.find((o) => o.status === 'rejected');
      expect((failed?.reason as SsoError | undefined)?.code).to.equal('replayed');
    });

    it('binds the login to the browser that started it, when the route passes its request ID', async () => {
      const victim = await service.loginUrl(acme);
      const attackersRequest = await startLogin(acme);
      const attackersResponse = await idpA.respond(sp(acme), {
        inResponseTo: attackersRequest,
        nameId: 'mallory@corp.example',
      });
      await expectCode(
        service.consume(acme, { SAMLResponse: attackersResponse }, { requestId: victim.requestId }),
        'unsolicited',
      );
      const own = await idpA.respond(sp(acme), {
        inResponseTo: victim.requestId,
        nameId: 'alice@corp.example',
      });
      const identity = await service.consume(acme, { SAMLResponse: own }, { requestId: victim.requestId });
      expect(identity.email).to.equal('alice@corp.example');
    });

    it('refuses a RelayState longer than the 80 bytes SAML allows', async () => {
      await expectCode(service.loginUrl(acme, { relayState: `/${'x'.repeat(80)}` }), 'malformed');
    });

    it('rejects a response to a request ID that was never issued', async () => {
      const response = await idpA.respond(sp(acme), {
        inResponseTo: '_never-issued',
        nameId: 'alice@corp.example',
      });
      await expectCode(service.consume(acme, { SAMLResponse: response }), 'unsolicited');
    });

    it('rejects a request ID issued for tenant A answered at tenant B', async () => {
      const acmeRequest = await startLogin(acme);
      const response = await idpB.respond(sp(globex), {
        inResponseTo: acmeRequest,
        nameId: 'dave@globex.example',
      });
      await expectCode(service.consume(globex, { SAMLResponse: response }), 'wrong_tenant');
      // The ID is still good where it was issued.
      expect(await redis.client.exists(`${redis.prefix}saml:req:acme/uid-acme:${acmeRequest}`)).to.equal(1);
    });

    it('rejects a request ID issued under an earlier Tenant of the same name', async () => {
      const earlier = await startLogin(acme);
      const response = await idpA.respond(sp(acme), { inResponseTo: earlier, nameId: 'alice@corp.example' });
      const recreated = { ...acme, uid: 'uid-acme-recreated' };
      await expectCode(service.consume(recreated, { SAMLResponse: response }), 'wrong_tenant');
    });

    it("rejects tenant A's IdP (A's certificate) posting to tenant B", async () => {
      const globexRequest = await startLogin(globex, idpB);
      const response = await idpA.respond(sp(globex), {
        inResponseTo: globexRequest,
        issuer: idpB.entityId,
        nameId: 'dave@globex.example',
      });
      await expectCode(service.consume(globex, { SAMLResponse: response }), 'signature_invalid');
    });

    it('rejects an IdP-initiated assertion smuggled into an unsigned response to a pending request', async () => {
      const doc = parse(
        decode(await idpA.respond(sp(acme), { nameId: 'alice@corp.example', sign: 'assertion' })),
      );
      doc.documentElement?.setAttribute('InResponseTo', await startLogin(acme));
      await expectCode(service.consume(acme, { SAMLResponse: encode(serialize(doc)) }), 'unsolicited');
    });

    it('rejects an unsolicited response while IdP-initiated login is off', async () => {
      const response = await idpA.respond(sp(acme), { nameId: 'alice@corp.example' });
      await expectCode(service.consume(acme, { SAMLResponse: response }), 'unsolicited');
    });

    it('accepts an unsolicited response once when IdP-initiated login is on, and rejects its replay', async () => {
      const response = await idpA.respond(sp(initech), { nameId: 'erin@corp.example' });
      expect((await service.consume(initech, { SAMLResponse: response })).email).to.equal(
        'erin@corp.example',
      );
      await expectCode(service.consume(initech, { SAMLResponse: response }), 'replayed');
    });
  });

  describe('audience, recipient and time', () => {
    it('rejects an assertion without a bearer SubjectConfirmation', async () => {
      const response = await answer(acme, {
        confirmationMethod: 'urn:oasis:names:tc:SAML:2.0:cm:holder-of-key',
      });
      await expectCode(service.consume(acme, { SAMLResponse: response }), 'malformed');
    });

    it('rejects an assertion for another audience', async () => {
      const response = await answer(acme, { audience: service.entityId('globex') });
      await expectCode(service.consume(acme, { SAMLResponse: response }), 'audience_mismatch');
    });

    it('rejects a SubjectConfirmation Recipient other than this ACS', async () => {
      const response = await answer(acme, { recipient: service.acsUrl('globex') });
      await expectCode(service.consume(acme, { SAMLResponse: response }), 'destination_mismatch');
    });

    it('rejects a response Destination other than this ACS', async () => {
      const response = await answer(acme, { destination: service.acsUrl('globex') });
      await expectCode(service.consume(acme, { SAMLResponse: response }), 'destination_mismatch');
    });

    it('rejects an expired assertion', async () => {
      const response = await answer(acme, {
        issueInstant: new Date(Date.now() - 7 * 60_000),
        notOnOrAfter: new Date(Date.now() - 2 * 60_000),
      });
      await expectCode(service.consume(acme, { SAMLResponse: response }), 'expired');
    });

    it('rejects an expired IdP-initiated assertion too', async () => {
      const response = await idpA.respond(sp(initech), {
        nameId: 'erin@corp.example',
        issueInstant: new Date(Date.now() - 7 * 60_000),
        notOnOrAfter: new Date(Date.now() - 2 * 60_000),
      });
      await expectCode(service.consume(initech, { SAMLResponse: response }), 'expired');
    });

    it('rejects an IdP-initiated assertion whose bearer confirmation expired while its Conditions did not', async () => {
      const response = await idpA.respond(sp(initech), {
        nameId: 'erin@corp.example',
        issueInstant: new Date(Date.now() - 4 * 60_000),
        notOnOrAfter: new Date(Date.now() + 60 * 60_000),
        confirmationNotOnOrAfter: new Date(Date.now() - 2 * 60_000),
      });
      await expectCode(service.consume(initech, { SAMLResponse: response }), 'expired');
    });

    it('rejects an assertion that is not valid yet', async () => {
      const response = await answer(acme, { notBefore: new Date(Date.now() + 3 * 60_000) });
      await expectCode(service.consume(acme, { SAMLResponse: response }), 'expired');
    });

    it('tolerates clock skew within the bound', async () => {
      const response = await answer(acme, {
        issueInstant: new Date(Date.now() - 60_000),
        notOnOrAfter: new Date(Date.now() - 20_000),
      });
      expect((await service.consume(acme, { SAMLResponse: response })).email).to.equal('alice@corp.example');
    });
  });

  describe('hostile payloads', () => {
    it('rejects an oversized payload before parsing it', async () => {
      const response = 'A'.repeat(maxSamlResponseLength + 4);
      await expectCode(service.consume(acme, { SAMLResponse: response }), 'too_large');
    });

    it('rejects an XXE payload with a DOCTYPE', async () => {
      const signed = decode(await answer(acme));
      const xxe =
        '<?xml version="1.0"?><!DOCTYPE samlp:Response [<!ENTITY xxe SYSTEM "file:///etc/hostname">]>' +
        signed.replace('>alice@corp.example<', '>&xxe;<');
      await expectCode(service.consume(acme, { SAMLResponse: encode(xxe) }), 'malformed');
    });

    it('rejects a validly signed response that merely carries a DOCTYPE', async () => {
      const withDoctype = '<!DOCTYPE samlp:Response>' + decode(await answer(acme));
      await expectCode(service.consume(acme, { SAMLResponse: encode(withDoctype) }), 'malformed');
    });

    it('rejects input that is not base64 or not a SAML Response', async () => {
      await expectCode(service.consume(acme, { SAMLResponse: '<xml/>' }), 'malformed');
      await expectCode(service.consume(acme, { SAMLResponse: encode('<a/>') }), 'malformed');
      await expectCode(service.consume(acme, {}), 'malformed');
    });

    it('reports an IdP error status as such', async () => {
      const failed = decode(await answer(acme)).replace(
        'urn:oasis:names:tc:SAML:2.0:status:Success',
        'urn:oasis:names:tc:SAML:2.0:status:Responder',
      );
      await expectCode(service.consume(acme, { SAMLResponse: encode(failed) }), 'idp_error');
    });
  });

  describe('verified domains', () => {
    it('rejects an email outside the tenant’s verified domains', async () => {
      const response = await answer(acme, { nameId: 'mallory@other.example' });
      await expectCode(service.consume(acme, { SAMLResponse: response }), 'domain_not_verified');
    });

    it('refuses SSO entirely while the tenant has no verified domain', async () => {
      const unverified: TenantSsoView = { ...acme, domains: [] };
      await expectCode(service.loginUrl(unverified), 'domain_not_verified');
      const response = await idpA.respond(sp(acme), {
        inResponseTo: await startLogin(acme),
        nameId: 'alice@corp.example',
      });
      await expectCode(service.consume(unverified, { SAMLResponse: response }), 'domain_not_verified');
    });
  });
});
