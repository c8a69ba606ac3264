// Per-tenant OpenID Connect relying party: builds the authorization request
// (PKCE S256, state, nonce) and turns the provider's callback into an
// SsoIdentity. HTTP routes live elsewhere; this module only needs the tenant's
// settings, a shared expiring store and the outbound network.
//
// Both steps run through openid-client's passport Strategy, one instance per
// request on the tenant's configuration (its issuer's discovery and JWKS are
// cached here). The strategy keeps its pending state (PKCE verifier, state,
// nonce) in req.session; sign-in has no sessions, so that object lives only
// for the request and is moved to and from the shared store under the state.
// What the strategy does not check stays around it: the state's tenant and
// browser, RFC 9207 iss, nonce replay, the ID token's issuer and audience
// against the tenant's own settings, email_verified and the verified domains.
import * as client from 'openid-client';
import {
  Strategy,
  type AuthenticateOptions,
  type StrategyOptions,
  type VerifyFunction,
} from 'openid-client/passport';
import {
  guardedFetch,
  lookupHost,
  OutboundRefused,
  outboundRefusal,
  type OutboundPolicy,
  type ResolveHost,
} from './address.js';
import { mapRole, SsoError, type SsoErrorCode, type SsoIdentity } from './identity.js';
import type { TenantSpec } from '../../../lib/tenant/index.js';
import { newAuthenticator, runStrategy, type StrategyRequest } from './passport.js';
import type { ExpiringStore } from './store.js';

/** The Tenant's `spec.sso.oidc`. */
export type OidcSettings = NonNullable<NonNullable<TenantSpec['sso']>['oidc']>;

/** What the relying party needs to know about one tenant. */
export interface TenantOidcView {
  name: string;
  /** The Tenant's uid; a login started under an earlier Tenant of the name does not finish here. */
  uid: string;
  /** Verified email domains; a login must come from one of them. */
  domains: string[];
  oidc: OidcSettings;
  /** The value behind `oidc.clientSecretRef`; absent for a public client. */
  clientSecret?: string;
}

export interface OidcServiceOptions {
  /** Origin (and optional base path) the browser uses to reach the API, without a trailing slash. */
  publicBaseUrl: string;
  store: ExpiringStore;
  /** Allows http issuers and non-public addresses. Development and tests only. */
  allowPrivateIssuers?: boolean;
  /** Resolves issuer host names, both to check them and to connect (default: the system resolver). */
  resolveHost?: ResolveHost;
  /**
   * The HTTP client for discovery, token and JWKS requests; every call is checked first. The
   * default connects only to the addresses it checked (`guardedFetch`); tests may observe traffic.
   */
  fetch?: typeof globalThis.fetch;
  discoveryTtlMs?: number;
  timeoutSeconds?: number;
}

export interface OidcAuthorization {
  /** Where to send the browser. */
  url: URL;
  /** The state in `url`; bind it to the browser (e.g. an httpOnly cookie) and pass it back to `callback`. */
  state: string;
}

export interface OidcLogin {
  identity: SsoIdentity;
  /** The relative path given to `authorizationUrl`, if any. */
  returnTo: string | undefined;
}

/** What the callback needs from the request that started the login. */
interface PendingLogin {
  tenant: string;
  tenantUid: string;
  verifier: string;
  nonce: string;
  returnTo?: string;
}

interface DiscoveredIssuer {
  metadata: client.ServerMetadata;
  expiresAt: number;
  jwks?: client.ExportedJWKSCache;
}

const stateTtlMs = 10 * 60_000;
const defaultDiscoveryTtlMs = 60 * 60_000;
const defaultScopes = ['openid', 'email', 'profile'];
// Random states are 43 characters; anything much longer is not ours.
const maxStateLength = 256;
// Matches openid-client's default clock tolerance for exp.
const clockToleranceMs = 30_000;

// Where the strategy keeps its pending state in the per-request session.
const sessionKey = 'oidc';

const stateKey = (state: string): string => `oidc:state:${state}`;
const nonceKey = (nonce: string): string => `oidc:nonce:${nonce}`;

export class OidcService {
  private readonly publicBaseUrl: string;
  private readonly store: ExpiringStore;
  private readonly allowPrivateIssuers: boolean;
  private readonly policy: OutboundPolicy;
  private readonly fetch: typeof globalThis.fetch;
  private readonly discoveryTtlMs: number;
  private readonly timeoutSeconds: number;
  private readonly issuers = new Map<string, DiscoveredIssuer>();
  private readonly discovering = new Map<string, Promise<DiscoveredIssuer>>();
  private readonly authenticator = newAuthenticator();

  constructor(options: OidcServiceOptions) {
    this.publicBaseUrl = options.publicBaseUrl.replace(/\/+$/, '');
    this.store = options.store;
    this.allowPrivateIssuers = options.allowPrivateIssuers ?? false;
    this.policy = { allowPrivate: this.allowPrivateIssuers, resolveHost: options.resolveHost ?? lookupHost };
    this.fetch = options.fetch ?? (guardedFetch(this.policy) as typeof globalThis.fetch);
    this.discoveryTtlMs = options.discoveryTtlMs ?? defaultDiscoveryTtlMs;
    this.timeoutSeconds = options.timeoutSeconds ?? 10;
  }

  redirectUri(tenant: string): string {
    return `${this.publicBaseUrl}/api/auth/sso/oidc/${encodeURIComponent(tenant)}/callback`;
  }

  async authorizationUrl(
    tenant: TenantOidcView,
    options: { returnTo?: string; loginHint?: string } = {},
  ): Promise<OidcAuthorization> {
    const returnTo = checkReturnTo(options.returnTo);
    const config = await this.configuration(tenant);
    const session: Record<string, unknown> = {};
    const outcome = await runStrategy(
      this.authenticator,
      this.strategy(tenant, config),
      stepRequest('/login', session),
      options.loginHint ? ({ loginHint: options.loginHint } satisfies AuthenticateOptions) : {},
    );
    const started = session[sessionKey] as { code_verifier?: string; state?: string; nonce?: string };
    if (outcome.kind !== 'redirect' || !started.code_verifier || !started.state || !started.nonce) {
      throw new Error('the OIDC strategy did not start a login');
    }
    const pending: PendingLogin = {
      tenant: tenant.name,
      tenantUid: tenant.uid,
      verifier: started.code_verifier,
      nonce: started.nonce,
      ...(returnTo ? { returnTo } : {}),
    };
    if (!(await this.store.putIfAbsent(stateKey(started.state), JSON.stringify(pending), stateTtlMs))) {
      // 256 random bits never collide; if they do, something is wrong with the store.
      throw new Error('OIDC state already exists');
    }
    return { url: new URL(outcome.url), state: started.state };
  }

  /**
   * Completes a login from the URL the provider redirected the browser to.
   * `expectedState`, when given, is the state bound to this browser at the
   * start; a different one means the callback was planted (login CSRF).
   */
  async callback(
    tenant: TenantOidcView,
    callbackUrl: URL,
    options: { expectedState?: string } = {},
  ): Promise<OidcLogin> {
    const params = callbackUrl.searchParams;
    const state = params.get('state');
    if (!state || state.length > maxStateLength) {
      throw new SsoError('invalid_state', 'the callback has no usable state');
    }
    // Taken before anything else so that a state works once, even when the login then fails.
    const pending = parsePending(await this.store.take(stateKey(state)));
    if (!pending) throw new SsoError('invalid_state', 'unknown, expired or already used state');
    if (options.expectedState !== undefined && options.expectedState !== state) {
      throw new SsoError('invalid_state', 'the state does not belong to this browser');
    }
    if (pending.tenant !== tenant.name || pending.tenantUid !== tenant.uid) {
      throw new SsoError('wrong_tenant', `the login was started for another tenant than ${tenant.name}`);
    }

    const config = await this.configuration(tenant);
    const metadata = config.serverMetadata();
    // RFC 9207: a response naming another issuer came from another provider (mix-up attack).
    const iss = params.get('iss');
    if (iss !== null && iss !== tenant.oidc.issuer) {
      throw new SsoError('issuer_mismatch', `the authorization response comes from ${iss}`);
    }
    if (iss === null && metadata.authorization_response_iss_parameter_supported) {
      throw new SsoError(
        'issuer_mismatch',
        'the authorization response lacks the iss its provider always sends',
      );
    }
    const error = params.get('error');
    if (error !== null) {
      const description = params.get('error_description');
      throw new SsoError(
        'idp_error',
        `the identity provider answered ${error}${description ? `: ${description}` : ''}`,
      );
    }

    // The strategy rebuilds the callback on our own redirect URI (its callbackURL),
    // so that what is sent as redirect_uri to the token endpoint is exactly what
    // the authorization request carried, whatever proxies did to the incoming URL.
    const session = { [sessionKey]: { code_verifier: pending.verifier, state, nonce: pending.nonce } };
    let verifying = false;
    let outcome: Awaited<ReturnType<typeof runStrategy>>;
    try {
      outcome = await runStrategy(
        this.authenticator,
        this.strategy(tenant, config, {
          callbackUrl,
          verify: (tokens) => {
            verifying = true;
            return this.signedIn(tenant, pending, tokens);
          },
        }),
        stepRequest('/callback', session),
      );
    } catch (failure) {
      // Past the token exchange, only our own refusals are SsoErrors; anything else failed on our side.
      if (verifying && !(failure instanceof SsoError)) throw failure;
      throw toSsoError(failure, 'idp_error');
    } finally {
      this.keepJwks(tenant.oidc.issuer, config);
    }
    if (outcome.kind === 'redirect') throw new Error('the OIDC strategy started a login at the callback');
    if (outcome.kind === 'fail') throw new SsoError('idp_error', 'the provider refused the login');
    return { identity: outcome.user as SsoIdentity, returnTo: pending.returnTo };
  }

  /** The strategy's verify step: who logged in, from the ID token openid-client validated. */
  private async signedIn(
    tenant: TenantOidcView,
    pending: PendingLogin,
    tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers,
  ): Promise<SsoIdentity> {
    const claims = tokens.claims();
    if (!claims) throw new SsoError('malformed', 'the token response has no ID token');
    // openid-client checks these too; repeated here against the tenant's own
    // settings so that a change in the library cannot loosen them.
    if (claims.iss !== tenant.oidc.issuer) {
      throw new SsoError('issuer_mismatch', `the ID token was issued by ${claims.iss}`);
    }
    const audience = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audience.includes(tenant.oidc.clientId)) {
      throw new SsoError('audience_mismatch', 'the ID token was issued to another client');
    }
    if (claims.nonce !== pending.nonce) {
      throw new SsoError('unsolicited', 'the ID token nonce belongs to another login');
    }
    // A nonce is accepted once while a token carrying it could still be valid.
    const remainingMs = claims.exp * 1000 - Date.now() + clockToleranceMs;
    if (
      !(await this.store.putIfAbsent(nonceKey(pending.nonce), '1', Math.max(remainingMs, clockToleranceMs)))
    ) {
      throw new SsoError('replayed', 'the ID token nonce was already used');
    }
    return identityFrom(tenant, claims);
  }

  /**
   * openid-client's strategy for one step of a tenant's login: the start
   * without `callback`, else the callback at `callback.callbackUrl`, whose
   * tokens `callback.verify` turns into an identity.
   */
  private strategy(
    tenant: TenantOidcView,
    config: client.Configuration,
    callback?: {
      callbackUrl: URL;
      verify: (
        tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers,
      ) => Promise<SsoIdentity>;
    },
  ): TenantStrategy {
    return new TenantStrategy(
      {
        config,
        sessionKey,
        callbackURL: this.redirectUri(tenant.name),
        scope: [...new Set(['openid', ...(tenant.oidc.scopes ?? defaultScopes)])].join(' '),
      },
      (tokens, done) => {
        if (!callback) {
          done(new Error('the OIDC strategy verified tokens while starting a login'));
          return;
        }
        callback.verify(tokens).then(
          (identity) => {
            done(null, identity);
          },
          (error: unknown) => {
            done(error);
          },
        );
      },
      callback?.callbackUrl,
    );
  }

  /** A client configuration for the tenant on top of its issuer's (cached) metadata. */
  private async configuration(tenant: TenantOidcView): Promise<client.Configuration> {
    const discovered = await this.discovered(tenant.oidc.issuer);
    const secret = tenant.clientSecret || undefined;
    const config = new client.Configuration(
      discovered.metadata,
      tenant.oidc.clientId,
      secret ? { client_secret: secret } : undefined,
      clientAuthentication(discovered.metadata, secret),
    );
    config[client.customFetch] = this.guardedFetch;
    config.timeout = this.timeoutSeconds;
    // Marked deprecated upstream only to stand out; needed for http issuers in development and tests.
    if (this.allowPrivateIssuers) client.allowInsecureRequests(config);
    if (discovered.jwks) client.setJwksCache(config, discovered.jwks);
    return config;
  }

  private keepJwks(issuer: string, config: client.Configuration): void {
    const discovered = this.issuers.get(issuer);
    const jwks = client.getJwksCache(config);
    if (discovered && jwks) discovered.jwks = jwks;
  }

  private async discovered(issuer: string): Promise<DiscoveredIssuer> {
    const cached = this.issuers.get(issuer);
    if (cached && cached.expiresAt > Date.now()) return cached;
    // Concurrent logins for one issuer share a single discovery request.
    let inflight = this.discovering.get(issuer);
    if (!inflight) {
      inflight = this.discover(issuer).finally(() => this.discovering.delete(issuer));
      this.discovering.set(issuer, inflight);
    }
    return inflight;
  }

  private async discover(issuer: string): Promise<DiscoveredIssuer> {
    const url = await this.checkIssuer(issuer);
    let config: client.Configuration;
    try {
      // Discovery does not depend on the client; the placeholder id is never sent.
      config = await client.discovery(url, 'discovery', undefined, undefined, {
        [client.customFetch]: this.guardedFetch,
        timeout: this.timeoutSeconds,
        execute: this.allowPrivateIssuers ? [client.allowInsecureRequests] : [],
      });
    } catch (failure) {
      throw toSsoError(failure, 'metadata_invalid');
    }
    const metadata = { ...config.serverMetadata() };
    // openid-client compares normalised URLs; tokens carry the issuer verbatim, so compare exactly.
    if (metadata.issuer !== issuer) {
      throw new SsoError('issuer_mismatch', `the discovery document names issuer ${metadata.issuer}`);
    }
    const endpoints = {
      authorization_endpoint: metadata.authorization_endpoint,
      token_endpoint: metadata.token_endpoint,
      jwks_uri: metadata.jwks_uri,
    };
    for (const [name, value] of Object.entries(endpoints)) {
      if (!value) throw new SsoError('metadata_invalid', `the discovery document has no ${name}`);
    }
    // The provider chooses these URLs; they get the same scrutiny as the issuer.
    const advertised = { ...endpoints, userinfo_endpoint: metadata.userinfo_endpoint };
    for (const [name, value] of Object.entries(advertised)) {
      if (value === undefined) continue;
      const refusal = await outboundRefusal(parseUrl(value), this.policy);
      if (refusal) throw refused(`${name} ${value}`, refusal);
    }
    const discovered: DiscoveredIssuer = { metadata, expiresAt: Date.now() + this.discoveryTtlMs };
    this.issuers.set(issuer, discovered);
    return discovered;
  }

  /** Refuses issuers the API must not contact, before any request is made. */
  private async checkIssuer(issuer: string): Promise<URL> {
    const url = parseUrl(issuer);
    // An OIDC issuer has no query or fragment; a .well-known path would make
    // openid-client skip its own issuer check.
    if (url.search || url.hash || url.pathname.includes('/.well-known/')) {
      throw new SsoError('issuer_not_allowed', `${issuer} is not an issuer identifier`);
    }
    const refusal = await outboundRefusal(url, this.policy);
    if (refusal) throw refused(issuer, refusal);
    return url;
  }

  /** Every request openid-client makes goes through here, so no URL escapes the guard. */
  private readonly guardedFetch: client.CustomFetch = async (url, options) => {
    const refusal = await outboundRefusal(parseUrl(url), this.policy);
    if (refusal) throw refused(`request to ${url}`, refusal);
    try {
      // openid-client's body type is wider than RequestInit's; it only sends strings and form data.
      return await this.fetch(url, options as RequestInit);
    } catch (error) {
      // Refused when connecting: the name was rebound to a non-public address after the check.
      if (error instanceof OutboundRefused) throw refused(`request to ${url}`, error);
      throw error;
    }
  };
}

/**
 * openid-client's Strategy for one request. Its own choices are kept (PKCE
 * S256, redirect_uri and the token exchange); it is told which step it is in,
 * the URL the provider redirected to, and to send state and nonce always
 * (by default it sends neither to a provider that supports PKCE).
 */
class TenantStrategy extends Strategy {
  constructor(
    options: StrategyOptions,
    verify: VerifyFunction,
    private readonly callbackUrl: URL | undefined,
  ) {
    super(options, verify);
  }

  override authorizationRequestParams<TOptions extends AuthenticateOptions>(
    req: Parameters<Strategy['authorizationRequestParams']>[0],
    options: TOptions,
  ): URLSearchParams {
    const params = new URLSearchParams(super.authorizationRequestParams(req, options));
    params.set('state', client.randomState());
    params.set('nonce', client.randomNonce());
    return params;
  }

  // The URL the provider redirected to. Only the callback reads it; the start needs none.
  override currentUrl(): URL {
    return this.callbackUrl ?? new URL('about:blank');
  }

  override shouldInitiateAuthRequest(): boolean {
    return this.callbackUrl === undefined;
  }
}

/** The request a strategy step sees: a GET with the step's own pending state as its session. */
function stepRequest(path: string, session: Record<string, unknown>): StrategyRequest {
  return { method: 'GET', url: path, headers: {}, query: {}, body: {}, session };
}

/** The client sees the fixed wording of `issuer_not_allowed`; the log gets the resolved addresses. */
function refused(what: string, refusal: OutboundRefused): SsoError {
  return new SsoError('issuer_not_allowed', `${what} is refused: ${refusal.detail}`, { cause: refusal });
}

function parseUrl(value: string): URL {
  try {
    return new URL(value);
  } catch {
    throw new SsoError('issuer_not_allowed', `${value} is not a URL`);
  }
}

/** Only a same-origin path may be a post-login destination (no open redirect). */
export function checkReturnTo(returnTo: string | undefined): string | undefined {
  if (returnTo === undefined || returnTo === '') return undefined;
  const base = new URL('https://tenantry.invalid');
  let resolved: URL;
  try {
    resolved = new URL(returnTo, base);
  } catch {
    throw new SsoError('invalid_return_to', 'returnTo is not a path');
  }
  // "//evil.example" and "/\evil.example" resolve to another origin, which this catches.
  if (!returnTo.startsWith('/') || resolved.origin !== base.origin) {
    throw new SsoError('invalid_return_to', 'returnTo must be a path on this site');
  }
  return `${resolved.pathname}${resolved.search}${resolved.hash}`;
}

/** Prefers client_secret_basic, the default when a provider lists no methods. */
function clientAuthentication(
  metadata: client.ServerMetadata,
  secret: string | undefined,
): client.ClientAuth {
  if (!secret) return client.None();
  const methods = metadata.token_endpoint_auth_methods_supported;
  if (methods && !methods.includes('client_secret_basic') && methods.includes('client_secret_post')) {
    return client.ClientSecretPost(secret);
  }
  return client.ClientSecretBasic(secret);
}

function parsePending(raw: string | null): PendingLogin | undefined {
  if (raw === null) return undefined;
  try {
    const value = JSON.parse(raw) as Partial<PendingLogin>;
    if (
      typeof value.tenant !== 'string' ||
      typeof value.tenantUid !== 'string' ||
      typeof value.verifier !== 'string' ||
      typeof value.nonce !== 'string'
    ) {
      return undefined;
    }
    return value as PendingLogin;
  } catch {
    return undefined;
  }
}

function identityFrom(tenant: TenantOidcView, claims: client.IDToken): SsoIdentity {
  const email = typeof claims.email === 'string' ? claims.email.trim().toLowerCase() : '';
  const at = email.lastIndexOf('@');
  if (at <= 0 || at === email.length - 1) {
    throw new SsoError('email_missing', 'the ID token carries no email address');
  }
  // An unproven address could sign in to (or be linked with) someone else's account, so only
  // `email_verified: true` counts; a missing claim only where the Tenant says this provider issues
  // verified addresses alone (`assumeEmailVerified`). An explicit false is refused either way.
  const verified = claims.email_verified;
  const proven =
    verified === true ||
    verified === 'true' ||
    (verified === undefined && tenant.oidc.assumeEmailVerified === true);
  if (!proven) {
    throw new SsoError(
      'email_not_verified',
      verified === undefined
        ? 'the ID token has no email_verified claim, and the tenant does not set assumeEmailVerified'
        : 'the identity provider has not verified the email address',
    );
  }
  const domain = email.slice(at + 1);
  if (!tenant.domains.some((allowed) => allowed.toLowerCase() === domain)) {
    throw new SsoError('domain_not_verified', `${domain} is not a verified domain of ${tenant.name}`);
  }
  const groups = groupsFrom(claims[tenant.oidc.groupsClaim ?? 'groups']);
  return {
    provider: 'oidc',
    subject: claims.sub,
    email,
    ...(typeof claims.given_name === 'string' ? { firstName: claims.given_name } : {}),
    ...(typeof claims.family_name === 'string' ? { lastName: claims.family_name } : {}),
    groups,
    role: mapRole(groups, tenant.oidc.roleMapping, tenant.oidc.defaultRole),
  };
}

function groupsFrom(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((group): group is string => typeof group === 'string');
  return [];
}

/** Turns an openid-client failure into a coded SsoError, keeping the original as the cause. */
function toSsoError(failure: unknown, fallback: SsoErrorCode): SsoError {
  for (let at: unknown = failure; at instanceof Error; at = at.cause) {
    if (at instanceof SsoError) return at;
  }
  const detail = failure instanceof Error ? failure.message : String(failure);
  if (failure instanceof client.ResponseBodyError) {
    const description = failure.error_description ? `: ${failure.error_description}` : '';
    return new SsoError(fallback, `the identity provider answered ${failure.error}${description}`, {
      cause: failure,
    });
  }
  if (!(failure instanceof client.ClientError)) return new SsoError(fallback, detail, { cause: failure });
  switch (failure.code) {
    case 'OAUTH_JWT_CLAIM_COMPARISON_FAILED': {
      const claim = comparedClaim(failure);
      const code: SsoErrorCode =
        claim === 'iss'
          ? 'issuer_mismatch'
          : claim === 'aud' || claim === 'azp'
            ? 'audience_mismatch'
            : claim === 'nonce'
              ? 'unsolicited'
              : 'malformed';
      return new SsoError(code, `ID token claim ${claim ?? '(unknown)'} does not match`, { cause: failure });
    }
    case 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED':
      return new SsoError('issuer_mismatch', detail, { cause: failure });
    case 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED':
      return new SsoError('expired', detail, { cause: failure });
    case 'OAUTH_KEY_SELECTION_FAILED':
      return new SsoError('signature_invalid', detail, { cause: failure });
    case 'OAUTH_INVALID_RESPONSE': {
      // oauth4webapi reports a bad JWS signature as an invalid response.
      const reason = failure.cause instanceof Error ? failure.cause.message : '';
      const code = /signature/i.test(reason) ? 'signature_invalid' : fallback;
      return new SsoError(code, reason || detail, { cause: failure });
    }
    default:
      return new SsoError(fallback, detail, { cause: failure });
  }
}

/** The claim name oauth4webapi records on a failed claim comparison. */
function comparedClaim(failure: Error): string | undefined {
  for (
    let at: unknown = failure.cause;
    at && typeof at === 'object';
    at = (at as { cause?: unknown }).cause
  ) {
    const claim = (at as { claim?: unknown }).claim;
    if (typeof claim === 'string') return claim;
  }
  return undefined;
}
