// Per-tenant SAML 2.0 service provider: SP metadata, the SP-initiated login
// redirect, and the ACS step that turns an IdP's POSTed response into an
// SsoIdentity. Routes stay thin: they look up the tenant, call one method and
// map SsoError to a problem response.
//
// Both steps run through passport-saml's MultiSamlStrategy (stateless: no
// session), whose getSamlOptions builds the tenant's node-saml settings from
// its IdP metadata. node-saml verifies signatures (only the bytes a trusted
// signature covers are read), InResponseTo, conditions and audience. The
// strategy cannot express the rest, so it stays here, before the strategy
// (the unverified envelope: size, status, algorithms, Destination) and in its
// verify callback (on the signed assertion): Recipient, an assertion replay
// cache shared by all replicas (IdP-initiated logins included),
// tenant-scoped request IDs, issuer, and the tenant's domain and role rules.
import { createHash } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import {
  MultiSamlStrategy,
  SamlStatusError,
  ValidateInResponseTo,
  generateServiceProviderMetadata,
  type CacheProvider,
  type PassportSamlConfig,
  type Profile,
} from '@node-saml/passport-saml';
import type { Element } from '@xmldom/xmldom';
import type passport from 'passport';
import type { TenantSpec } from '../../../lib/tenant/index.js';
import { guardedFetch, lookupHost, OutboundRefused, type OutboundPolicy } from './address.js';
import { mapRole, SsoError, type SsoIdentity } from './identity.js';
import { newAuthenticator, runStrategy, type StrategyRequest } from './passport.js';
import { parseIdpMetadata, type IdpMetadata } from './saml-metadata.js';
import { ExpiringStoreCacheProvider, type ExpiringStore } from './store.js';
import {
  attribute,
  childElements,
  descendants,
  ns,
  onlyChild,
  parseStrictXml,
  text,
  XmlRefused,
} from './xml.js';

export type TenantSamlSettings = NonNullable<NonNullable<TenantSpec['sso']>['saml']>;

/** What the SAML service needs to know about one tenant. */
export interface TenantSsoView {
  name: string;
  /**
   * The Tenant's uid. Pending request IDs are kept per name and uid, so a login
   * started under an earlier Tenant of the name is unknown to a later one.
   */
  uid: string;
  /** Verified email domains; a login must come from one of them, and none means no SSO. */
  domains: string[];
  saml?: TenantSamlSettings;
}

export interface SamlServiceOptions {
  /** Origin (and optional base path) the browser uses to reach the API, without a trailing slash. */
  publicBaseUrl: string;
  /** Shared by all replicas: pending request IDs and the assertion replay cache. */
  store: ExpiringStore;
  /** Tolerated clock difference with IdPs; default 60 s, at most 5 min. */
  clockSkewMs?: number;
  /**
   * Loads `idpMetadataUrl`. The default (`metadataFetcher`) refuses anything
   * but https to public addresses, follows no redirect and caps size and time.
   */
  fetchMetadata?: (url: string) => Promise<string>;
  /** Allows http metadata URLs and non-public addresses. Development and tests only. */
  allowPrivateIdps?: boolean;
  /** Resolves metadata host names, both to check them and to connect (default: the system resolver). */
  resolveHost?: OutboundPolicy['resolveHost'];
  /** How long a login may stay at the IdP; default 10 min. */
  requestTtlMs?: number;
  /** Assertions older than this (from IssueInstant) are refused whatever they claim; default 10 min. */
  maxAssertionAgeMs?: number;
  /** How long fetched metadata is used before it is fetched again; default 1 h. */
  metadataTtlMs?: number;
}

/** Where to send the browser, and the request to expect back. */
export interface SamlLoginRedirect {
  url: string;
  /**
   * The AuthnRequest ID. Binding it to the browser (an httpOnly cookie, which
   * must be SameSite=None because the IdP posts cross-site) and passing it to
   * `consume` stops login CSRF: a response obtained by someone else is refused.
   */
  requestId: string;
}

/** The ACS form as the browser posts it; `RelayState` is the route's business. */
export interface SamlAcsForm {
  SAMLResponse?: unknown;
  RelayState?: unknown;
}

/** Base64 characters of a SAMLResponse; real ones are a few KiB, group-heavy ones tens. */
export const maxSamlResponseLength = 256 * 1024;
// saml-bindings §3.4.3: RelayState MUST NOT exceed 80 bytes.
const maxRelayStateBytes = 80;
const maxClockSkewMs = 5 * 60_000;
// Fetched metadata is kept past its TTL only while the IdP cannot be reached.
const metadataStaleMs = 24 * 60 * 60_000;
const maxCachedTenants = 1000;

const nameIdFormat = {
  email: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
  transient: 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient',
};
const bearer = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';
const success = 'urn:oasis:names:tc:SAML:2.0:status:Success';
// SHA-1 is refused; these are the RSA algorithms xml-crypto verifies.
const allowedSignatureMethods = new Set([
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha512',
]);
const allowedDigestMethods = new Set([
  'http://www.w3.org/2001/04/xmlenc#sha256',
  'http://www.w3.org/2001/04/xmlenc#sha512',
]);

const emailAttributes = [
  'email',
  'mail',
  'emailAddress',
  'urn:oid:0.9.2342.19200300.100.1.3',
  'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress',
];
const firstNameAttributes = [
  'firstName',
  'givenName',
  'urn:oid:2.5.4.42',
  'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname',
];
const lastNameAttributes = [
  'lastName',
  'sn',
  'surname',
  'urn:oid:2.5.4.4',
  'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname',
];

const keys = {
  /** node-saml's pending AuthnRequest IDs, one namespace per tenant; taken when answered. */
  pending: (tenant: string): string => `saml:req:${tenant}:`,
  /** Kept after the ID is taken, so a second answer is told apart from a stranger's. */
  issuedHere: (tenant: string, id: string): string => `saml:req-issued:${tenant}:${id}`,
  issuedAnywhere: (id: string): string => `saml:req-issued-any:${id}`,
  assertion: (tenant: string, id: string): string =>
    `saml:assertion:${tenant}:${createHash('sha256').update(id).digest('hex')}`,
};

/** Where a tenant's pending request IDs are kept: its name (checked) and its Tenant's uid. */
function requestScope(tenant: TenantSsoView): string {
  return `${checkTenantName(tenant.name)}/${tenant.uid}`;
}

/** One login step as the strategy's callbacks see it; kept per request object. */
interface SamlStep {
  tenant: TenantSsoView;
  settings: TenantSamlSettings;
  /** ACS only: whether the Response carries a signature of its own, which must then verify too. */
  responseSigned?: boolean;
  /** ACS only: the request bound to this browser (see SamlLoginRedirect). */
  browserRequestId?: string;
  /** Set by getSamlOptions: the IdP the tenant's metadata describes. */
  idp?: IdpMetadata;
  /** How far the strategy got: only a failure while validating is node-saml's refusal of the response. */
  phase?: 'validating' | 'verifying';
  /** Ends the step with an error raised outside the strategy's own callbacks. */
  abort?: (error: unknown) => void;
}

const strategyName = 'saml';

export class SamlService {
  private readonly publicBaseUrl: string;
  private readonly store: ExpiringStore;
  private readonly clockSkewMs: number;
  private readonly requestTtlMs: number;
  private readonly maxAssertionAgeMs: number;
  private readonly metadataTtlMs: number;
  private readonly fetchMetadata: (url: string) => Promise<string>;
  private readonly authenticator = newAuthenticator();
  private readonly steps = new WeakMap<object, SamlStep>();
  private readonly idps = new Map<string, { digest: string; idp: IdpMetadata }>();
  private readonly fetched = new Map<string, { xml: string; fetchedAt: number }>();

  constructor(options: SamlServiceOptions) {
    this.publicBaseUrl = new URL(options.publicBaseUrl).toString().replace(/\/+$/, '');
    this.store = options.store;
    this.clockSkewMs = Math.min(Math.max(options.clockSkewMs ?? 60_000, 0), maxClockSkewMs);
    this.requestTtlMs = options.requestTtlMs ?? 10 * 60_000;
    this.maxAssertionAgeMs = options.maxAssertionAgeMs ?? 10 * 60_000;
    this.metadataTtlMs = options.metadataTtlMs ?? 60 * 60_000;
    this.fetchMetadata =
      options.fetchMetadata ??
      metadataFetcher({
        allowPrivate: options.allowPrivateIdps ?? false,
        resolveHost: options.resolveHost ?? lookupHost,
      });
    const strategy = new MultiSamlStrategy(
      {
        passReqToCallback: true,
        getSamlOptions: (req, done) => {
          const step = this.stepOf(req);
          this.samlOptions(step).then(
            (options) => {
              // The strategy constructs its SAML client inside this call, then
              // validates asynchronously: a throw here is ours, later failures are
              // node-saml's verdict on the response.
              try {
                done(null, options);
              } catch (error) {
                step.abort?.(error);
                return;
              }
              step.phase = 'validating';
            },
            (error: unknown) => done(error instanceof Error ? error : new Error(String(error))),
          );
        },
      },
      (req, profile, done) => {
        this.signedIn(this.stepOf(req), profile).then(
          (identity) => done(null, { ...identity }),
          (error: unknown) => done(error instanceof Error ? error : new Error(String(error))),
        );
      },
      // Single logout is not offered; the ACS only ever passes a Response on.
      (_req, _profile, done) => done(new SsoError('malformed', 'single logout is not supported')),
    );
    // passport-saml is typed against its own copy of @types/express (v4), which ours does not match.
    this.authenticator.use(strategyName, strategy as unknown as passport.Strategy);
  }

  /** The SP entityID for `tenant`; also the Audience its assertions must name. */
  entityId(tenant: string): string {
    return `${this.publicBaseUrl}/api/auth/sso/saml/${checkTenantName(tenant)}/metadata`;
  }

  /** The Assertion Consumer Service URL for `tenant`. */
  acsUrl(tenant: string): string {
    return `${this.publicBaseUrl}/api/auth/sso/saml/${checkTenantName(tenant)}/acs`;
  }

  /** SP metadata XML for the tenant's IdP administrator; needs no IdP configuration yet. */
  spMetadata(tenant: string): string {
    return generateServiceProviderMetadata({
      issuer: this.entityId(tenant),
      callbackUrl: this.acsUrl(tenant),
      identifierFormat: nameIdFormat.email,
      wantAssertionsSigned: true,
    });
  }

  /**
   * The IdP URL to redirect the browser to (HTTP-Redirect binding). The
   * AuthnRequest ID is stored for this tenant only, for `requestTtlMs`.
   * `relayState` comes back untouched in the ACS form; at most 80 bytes.
   */
  async loginUrl(tenant: TenantSsoView, options: { relayState?: string } = {}): Promise<SamlLoginRedirect> {
    const relayState = options.relayState ?? '';
    if (Buffer.byteLength(relayState) > maxRelayStateBytes) {
      throw new SsoError('malformed', `RelayState is longer than ${maxRelayStateBytes} bytes`);
    }
    const outcome = await this.run(
      { tenant, settings: requireSaml(tenant) },
      {
        method: 'GET',
        url: '/login',
        headers: {},
        query: relayState ? { RelayState: relayState } : {},
        body: {},
      },
    );
    if (outcome.kind !== 'redirect') throw new Error('the SAML strategy did not redirect to the IdP');
    return { url: outcome.url, requestId: authnRequestId(outcome.url) };
  }

  /**
   * Validates the SAMLResponse posted to the tenant's ACS and returns who
   * logged in. Throws SsoError; nothing is stored unless the login succeeds,
   * except that the answered request ID is used up either way. With
   * `browser.requestId` (see SamlLoginRedirect) an SP-initiated response must
   * answer that very request.
   */
  async consume(
    tenant: TenantSsoView,
    form: SamlAcsForm,
    browser: { requestId?: string } = {},
  ): Promise<SsoIdentity> {
    const settings = requireSaml(tenant);
    const encoded = form.SAMLResponse;
    if (typeof encoded !== 'string' || encoded.length === 0) {
      throw new SsoError('malformed', 'no SAMLResponse');
    }
    if (encoded.length > maxSamlResponseLength) {
      throw new SsoError('too_large', `SAMLResponse has ${encoded.length} characters`);
    }
    // Buffer.from would skip stray characters; refuse them instead (line breaks are common and fine).
    if (!/^[A-Za-z0-9+/=\s]+$/.test(encoded)) throw new SsoError('malformed', 'SAMLResponse is not base64');
    const envelope = readEnvelope(Buffer.from(encoded, 'base64').toString('utf8'));

    const acs = this.acsUrl(tenant.name);
    if (envelope.destination !== undefined && envelope.destination !== acs) {
      throw new SsoError('destination_mismatch', `Destination is ${envelope.destination}`);
    }

    const step: SamlStep = {
      tenant,
      settings,
      responseSigned: envelope.signed,
      ...(browser.requestId === undefined ? {} : { browserRequestId: browser.requestId }),
    };
    let outcome: Awaited<ReturnType<typeof runStrategy>>;
    try {
      outcome = await this.run(step, {
        method: 'POST',
        url: '/acs',
        headers: {},
        query: {},
        body: { SAMLResponse: encoded },
      });
    } catch (error) {
      // Only node-saml's refusals are classified; anything else failed on our side.
      if (error instanceof SsoError || step.phase !== 'validating') throw error;
      throw await this.rejection(error, requestScope(tenant), envelope.inResponseTo);
    }
    if (outcome.kind !== 'success') throw new SsoError('malformed', 'not a login response');
    return outcome.user as SsoIdentity;
  }

  /**
   * The strategy's verify callback: who logged in, from the assertion node-saml
   * extracted from the signed bytes. Last, and atomic, the replay cache: of two
   * replicas handed the same assertion, one wins.
   */
  private async signedIn(step: SamlStep, profile: Profile | null): Promise<SsoIdentity> {
    step.phase = 'verifying';
    const { tenant, settings, idp } = step;
    const signedXml = profile?.getAssertionXml?.();
    if (!profile || !signedXml || !idp) throw new SsoError('malformed', 'not a login response');
    const assertion = readAssertion(signedXml);
    if (assertion.issuer !== idp.entityId) {
      throw new SsoError('issuer_mismatch', `assertion issued by ${assertion.issuer}`);
    }
    const requestId = typeof profile.inResponseTo === 'string' ? profile.inResponseTo : undefined;
    if (requestId === undefined && !settings.allowIdpInitiated) {
      throw new SsoError('unsolicited', 'IdP-initiated login is not allowed for this tenant');
    }
    if (
      requestId !== undefined &&
      step.browserRequestId !== undefined &&
      requestId !== step.browserRequestId
    ) {
      throw new SsoError('unsolicited', 'the response answers a login started in another browser');
    }
    const expiresAt = this.checkSubjectConfirmation(assertion, this.acsUrl(tenant.name), requestId);
    const identity = identityFrom(assertion, tenant, settings);

    const ttlMs = expiresAt + this.clockSkewMs - Date.now();
    if (
      !(await this.store.putIfAbsent(keys.assertion(tenant.name, assertion.id), '1', Math.max(ttlMs, 1000)))
    ) {
      throw new SsoError('replayed', `assertion ${assertion.id} was already consumed`);
    }
    return identity;
  }

  /** Runs the strategy on `req` for `step`. */
  private run(step: SamlStep, req: StrategyRequest): Promise<Awaited<ReturnType<typeof runStrategy>>> {
    return new Promise((resolve, reject) => {
      step.abort = reject;
      this.steps.set(req, step);
      runStrategy(this.authenticator, strategyName, req).then(resolve, reject);
    });
  }

  private stepOf(req: object): SamlStep {
    const step = this.steps.get(req);
    if (!step) throw new Error('a SAML request reached the strategy without its tenant');
    return step;
  }

  /**
   * Requires a bearer confirmation addressed to this ACS, inside its time
   * window and bound to the request this response answers (none for an
   * IdP-initiated login). Returns until when the assertion may be used.
   */
  private checkSubjectConfirmation(
    assertion: SignedAssertion,
    acs: string,
    requestId: string | undefined,
  ): number {
    const now = Date.now();
    const bearers = assertion.confirmations.filter((c) => c.method === bearer);
    if (bearers.length === 0) throw new SsoError('malformed', 'no bearer SubjectConfirmation');
    const toUs = bearers.filter((c) => c.recipient === acs);
    if (toUs.length === 0) {
      throw new SsoError(
        'destination_mismatch',
        `Recipient is ${bearers.map((c) => c.recipient).join(', ')}`,
      );
    }
    const limits = [assertion.issueInstant + this.maxAssertionAgeMs];
    if (assertion.notOnOrAfter !== undefined) limits.push(assertion.notOnOrAfter);
    const current = toUs.filter(
      (c) =>
        // saml-profiles §4.1.4.2: a bearer confirmation must carry NotOnOrAfter.
        c.notOnOrAfter !== undefined &&
        now - this.clockSkewMs < Math.min(c.notOnOrAfter, ...limits) &&
        (c.notBefore === undefined || c.notBefore <= now + this.clockSkewMs),
    );
    if (current.length === 0) throw new SsoError('expired', 'no SubjectConfirmation is currently valid');
    const answering = current.find((c) => c.inResponseTo === requestId);
    if (!answering?.notOnOrAfter) {
      throw new SsoError('unsolicited', 'the assertion is not bound to the request this response answers');
    }
    return Math.min(answering.notOnOrAfter, ...limits);
  }

  /** The SsoError for a node-saml failure. */
  private async rejection(
    error: unknown,
    tenant: string,
    inResponseTo: string | undefined,
  ): Promise<SsoError> {
    if (error instanceof SsoError) return error;
    const detail = error instanceof Error ? error.message : String(error);
    const reject = (code: ConstructorParameters<typeof SsoError>[0]): SsoError =>
      new SsoError(code, detail, { cause: error });
    if (error instanceof SamlStatusError) return reject('idp_error');
    if (/InResponseTo is missing/.test(detail)) return reject('unsolicited');
    if (/InResponseTo/.test(detail)) {
      if (!inResponseTo) return reject('unsolicited');
      if (await this.store.has(keys.issuedHere(tenant, inResponseTo))) return reject('replayed');
      if (await this.store.has(keys.issuedAnywhere(inResponseTo))) return reject('wrong_tenant');
      return reject('unsolicited');
    }
    if (/signature|signed|Cannot obtain assertion/i.test(detail)) return reject('signature_invalid');
    if (/expired|not yet valid|subject confirmation/i.test(detail)) return reject('expired');
    if (/audience/i.test(detail)) return reject('audience_mismatch');
    return reject('malformed');
  }

  /** getSamlOptions: the node-saml settings for the step's tenant, from its (cached) IdP metadata. */
  private async samlOptions(step: SamlStep): Promise<Partial<PassportSamlConfig>> {
    const { tenant, settings } = step;
    const xml = await this.idpMetadataXml(tenant.name, settings);
    const idp = this.parsedIdp(tenant.name, xml);
    step.idp = idp;
    return {
      issuer: this.entityId(tenant.name),
      audience: this.entityId(tenant.name),
      callbackUrl: this.acsUrl(tenant.name),
      entryPoint: idp.ssoUrl,
      idpCert: idp.signingCerts,
      idpIssuer: idp.entityId,
      // The SPEC requires signed assertions, so the assertion's own signature
      // is always required. A response signature is not: Entra ID and ADFS
      // sign only the assertion by default. A response that does carry one must
      // verify as well, so a bad one is never ignored.
      wantAssertionsSigned: true,
      wantAuthnResponseSigned: step.responseSigned === true,
      validateInResponseTo:
        settings.allowIdpInitiated === true ? ValidateInResponseTo.ifPresent : ValidateInResponseTo.always,
      requestIdExpirationPeriodMs: this.requestTtlMs,
      cacheProvider: this.requestIdCache(requestScope(tenant)),
      acceptedClockSkewMs: this.clockSkewMs,
      maxAssertionAgeMs: this.maxAssertionAgeMs,
      // We send unsigned AuthnRequests; these pin the algorithms should that change.
      signatureAlgorithm: 'sha256',
      digestAlgorithm: 'sha256',
      // Let the IdP pick the NameID format and authentication method: asking for
      // password authentication breaks MFA and passwordless IdP policies.
      identifierFormat: null,
      disableRequestedAuthnContext: true,
      authnRequestBinding: 'HTTP-Redirect',
    };
  }

  /** The tenant's IdP metadata, parsed once per version of it. */
  private parsedIdp(tenant: string, xml: string): IdpMetadata {
    const digest = createHash('sha256').update(xml).digest('hex');
    const cached = this.idps.get(tenant);
    if (cached?.digest === digest) return cached.idp;
    const idp = parseIdpMetadata(xml);
    if (!cached && this.idps.size >= maxCachedTenants) this.idps.delete(this.idps.keys().next().value ?? '');
    this.idps.set(tenant, { digest, idp });
    return idp;
  }

  /**
   * node-saml's request ID cache for one tenant (`requestScope`: its name and
   * uid), also recording where each ID was issued.
   */
  private requestIdCache(tenant: string): CacheProvider {
    const pending = new ExpiringStoreCacheProvider(this.store, keys.pending(tenant), this.requestTtlMs);
    return {
      saveAsync: async (id, value) => {
        await this.store.putIfAbsent(keys.issuedHere(tenant, id), '1', this.requestTtlMs);
        await this.store.putIfAbsent(keys.issuedAnywhere(id), '1', this.requestTtlMs);
        return await pending.saveAsync(id, value);
      },
      getAsync: (id) => pending.getAsync(id),
      removeAsync: (id) => pending.removeAsync(id),
    };
  }

  private async idpMetadataXml(tenant: string, settings: TenantSamlSettings): Promise<string> {
    if (settings.idpMetadataXml) return settings.idpMetadataXml;
    const url = settings.idpMetadataUrl;
    if (!url) throw new SsoError('not_configured', 'no IdP metadata');
    const key = `${tenant}\0${url}`;
    const cached = this.fetched.get(key);
    const now = Date.now();
    if (cached && now - cached.fetchedAt < this.metadataTtlMs) return cached.xml;
    try {
      const xml = await this.fetchMetadata(url);
      if (!cached && this.fetched.size >= maxCachedTenants) {
        this.fetched.delete(this.fetched.keys().next().value ?? '');
      }
      this.fetched.set(key, { xml, fetchedAt: now });
      return xml;
    } catch (error) {
      // A brief IdP outage should not stop logins that the cached metadata can still check.
      if (cached && now - cached.fetchedAt < metadataStaleMs) return cached.xml;
      if (error instanceof SsoError) throw error;
      throw new SsoError('metadata_invalid', `fetching ${url} failed`, { cause: error });
    }
  }
}

/** The ID of the AuthnRequest node-saml put in `url`. */
function authnRequestId(url: string): string {
  const request = new URL(url).searchParams.get('SAMLRequest') ?? '';
  const xml = inflateRawSync(Buffer.from(request, 'base64')).toString('utf8');
  const id = attribute(parseStrictXml(xml).documentElement as Element, 'ID');
  if (!id) throw new Error('node-saml built an AuthnRequest without an ID');
  return id;
}

function checkTenantName(name: string): string {
  // Tenant names are DNS labels; anything else must not reach URLs or store keys.
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name)) {
    throw new SsoError('not_configured', 'not a tenant name');
  }
  return name;
}

function requireSaml(tenant: TenantSsoView): TenantSamlSettings {
  checkTenantName(tenant.name);
  const settings = tenant.saml;
  if (!settings || (!settings.idpMetadataXml && !settings.idpMetadataUrl)) {
    throw new SsoError('not_configured', `tenant ${tenant.name} has no SAML identity provider`);
  }
  // Without a verified domain any IdP user could claim any address.
  if (tenant.domains.length === 0) {
    throw new SsoError('domain_not_verified', `tenant ${tenant.name} has no verified domain`);
  }
  return settings;
}

/** What is read from the outer, unverified Response before node-saml checks it. */
interface Envelope {
  signed: boolean;
  inResponseTo: string | undefined;
  destination: string | undefined;
}

function readEnvelope(xml: string): Envelope {
  let response: Element;
  try {
    response = parseStrictXml(xml).documentElement as Element;
  } catch (error) {
    if (error instanceof XmlRefused) throw new SsoError('malformed', error.message, { cause: error });
    throw error;
  }
  if (response.namespaceURI !== ns.protocol || response.localName !== 'Response') {
    throw new SsoError('malformed', 'not a SAML Response');
  }
  const status = onlyChild(response, ns.protocol, 'Status');
  const statusCode = status && onlyChild(status, ns.protocol, 'StatusCode');
  const statusValue = statusCode && attribute(statusCode, 'Value');
  if (statusValue !== success) throw new SsoError('idp_error', `status ${statusValue ?? '(none)'}`);
  if (descendants(response, ns.assertion, 'EncryptedAssertion').length > 0) {
    throw new SsoError('malformed', 'encrypted assertions are not supported');
  }
  for (const method of descendants(response, ns.dsig, 'SignatureMethod')) {
    if (!allowedSignatureMethods.has(method.getAttribute('Algorithm') ?? '')) {
      throw new SsoError('signature_invalid', `signature algorithm ${method.getAttribute('Algorithm')}`);
    }
  }
  for (const method of descendants(response, ns.dsig, 'DigestMethod')) {
    if (!allowedDigestMethods.has(method.getAttribute('Algorithm') ?? '')) {
      throw new SsoError('signature_invalid', `digest algorithm ${method.getAttribute('Algorithm')}`);
    }
  }
  const inResponseTo = attribute(response, 'InResponseTo');
  if (inResponseTo !== undefined && inResponseTo.length > 256) {
    throw new SsoError('malformed', 'InResponseTo too long');
  }
  return {
    signed: childElements(response, ns.dsig, 'Signature').length > 0,
    inResponseTo,
    destination: attribute(response, 'Destination'),
  };
}

interface SubjectConfirmation {
  method: string | undefined;
  recipient: string | undefined;
  inResponseTo: string | undefined;
  notBefore: number | undefined;
  notOnOrAfter: number | undefined;
}

interface SignedAssertion {
  id: string;
  issuer: string;
  issueInstant: number;
  notOnOrAfter: number | undefined;
  nameId: { value: string; format: string | undefined } | undefined;
  confirmations: SubjectConfirmation[];
  attributes: Map<string, string[]>;
}

function readAssertion(xml: string): SignedAssertion {
  let root: Element;
  try {
    root = parseStrictXml(xml).documentElement as Element;
  } catch (error) {
    throw new SsoError('malformed', 'the signed assertion does not parse', { cause: error });
  }
  if (root.namespaceURI !== ns.assertion || root.localName !== 'Assertion') {
    throw new SsoError('malformed', 'the signed element is not an Assertion');
  }
  const id = attribute(root, 'ID');
  const issuerElement = onlyChild(root, ns.assertion, 'Issuer');
  const issueInstant = time(attribute(root, 'IssueInstant'));
  if (!id || !issuerElement || issueInstant === undefined) {
    throw new SsoError('malformed', 'the assertion lacks ID, Issuer or IssueInstant');
  }
  const subject = onlyChild(root, ns.assertion, 'Subject');
  const nameIdElement = subject && onlyChild(subject, ns.assertion, 'NameID');
  const conditions = onlyChild(root, ns.assertion, 'Conditions');

  const attributes = new Map<string, string[]>();
  for (const statement of childElements(root, ns.assertion, 'AttributeStatement')) {
    for (const element of childElements(statement, ns.assertion, 'Attribute')) {
      const name = attribute(element, 'Name');
      if (!name) continue;
      const values = childElements(element, ns.assertion, 'AttributeValue')
        // A structured value has no single string meaning; skip it.
        .filter((value) => !Array.from(value.childNodes).some((node) => node.nodeType === 1))
        .map(text)
        .filter((value) => value.length > 0);
      attributes.set(name, [...(attributes.get(name) ?? []), ...values]);
    }
  }

  return {
    id,
    issuer: text(issuerElement),
    issueInstant,
    notOnOrAfter: conditions && time(attribute(conditions, 'NotOnOrAfter')),
    nameId: nameIdElement && {
      value: text(nameIdElement),
      format: attribute(nameIdElement, 'Format'),
    },
    confirmations: (subject ? childElements(subject, ns.assertion, 'SubjectConfirmation') : []).map(
      (confirmation) => {
        const data = onlyChild(confirmation, ns.assertion, 'SubjectConfirmationData');
        return {
          method: attribute(confirmation, 'Method'),
          recipient: data && attribute(data, 'Recipient'),
          inResponseTo: data && attribute(data, 'InResponseTo'),
          notBefore: data && time(attribute(data, 'NotBefore')),
          notOnOrAfter: data && time(attribute(data, 'NotOnOrAfter')),
        };
      },
    ),
    attributes,
  };
}

function time(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Date.parse(value);
  if (Number.isNaN(parsed)) throw new SsoError('malformed', `unparseable time ${value}`);
  return parsed;
}

function identityFrom(
  assertion: SignedAssertion,
  tenant: TenantSsoView,
  settings: TenantSamlSettings,
): SsoIdentity {
  const { nameId, attributes } = assertion;
  const first = (names: string[]): string | undefined =>
    names.flatMap((name) => attributes.get(name) ?? [])[0]?.slice(0, 256);
  const claimed = nameId?.format === nameIdFormat.email ? nameId.value : first(emailAttributes);
  if (!claimed) throw new SsoError('email_missing', 'neither an emailAddress NameID nor an email attribute');
  const email = normalizeEmail(claimed);
  if (!email) throw new SsoError('email_missing', `${claimed} is not an email address`);

  const domain = email.slice(email.lastIndexOf('@') + 1);
  const verified = tenant.domains.map((d) => d.toLowerCase().replace(/\.$/, ''));
  if (!verified.includes(domain)) {
    throw new SsoError('domain_not_verified', `${domain} is not a verified domain of ${tenant.name}`);
  }

  const groups = [...new Set(attributes.get(settings.groupsAttribute ?? 'groups') ?? [])];
  const firstName = first(firstNameAttributes);
  const lastName = first(lastNameAttributes);
  return {
    provider: 'saml',
    // A transient NameID changes every login, so it cannot identify the user.
    subject: nameId && nameId.value && nameId.format !== nameIdFormat.transient ? nameId.value : email,
    email,
    ...(firstName ? { firstName } : {}),
    ...(lastName ? { lastName } : {}),
    groups,
    role: mapRole(groups, settings.roleMapping, settings.defaultRole),
  };
}

/** The lower-cased address, or undefined unless it is one plain `local@domain.tld`. */
function normalizeEmail(value: string): string | undefined {
  const email = value.trim().toLowerCase();
  const match =
    /^([^\s@"(),:;<>[\\\]\p{Cc}]{1,64})@((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63})$/u.exec(
      email,
    );
  return match && email.length <= 254 ? email : undefined;
}

const maxMetadataBytes = 1024 * 1024;

/**
 * Fetches IdP metadata over https from a public address only (tenants choose
 * the URL), without redirects, within 10 s and 1 MiB. The connection goes
 * through the guarded lookup, so the checked name cannot be rebound.
 */
export function metadataFetcher(policy: OutboundPolicy): (url: string) => Promise<string> {
  const fetchGuarded = guardedFetch(policy, { maxResponseBytes: maxMetadataBytes });
  return async (url) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new SsoError('metadata_invalid', `${url} is not a URL`);
    }
    let response: Response;
    try {
      response = await fetchGuarded(parsed, {
        signal: AbortSignal.timeout(10_000),
        headers: { accept: 'application/samlmetadata+xml, application/xml, text/xml' },
      });
    } catch (error) {
      // The client sees metadata_invalid's fixed wording; the log gets the resolved addresses.
      if (error instanceof OutboundRefused) {
        throw new SsoError('metadata_invalid', `request to ${url} refused: ${error.detail}`, {
          cause: error,
        });
      }
      throw new SsoError('metadata_invalid', `fetching ${url} failed`, { cause: error });
    }
    if (!response.ok) throw new SsoError('metadata_invalid', `${url} answered ${response.status}`);
    return await response.text();
  };
}
