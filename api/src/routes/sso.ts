// /api/auth/sso: per-tenant SAML and OIDC sign-in, the one-time code exchange
// and home-realm discovery. Thin handlers over SamlService, OidcService,
// signInWithSso and SsoHandoff; docs/sso.md describes the flows.
//
// A finished login ends in our own tokens. A browser gets a 303 to the
// configured return URL with a one-time `code` (60 s, stored hashed) that the
// client exchanges at POST /exchange; a client that asks for JSON
// (`Accept: application/json`) gets the token response directly. Tokens are
// never put in a URL.
//
// Refusals answer problem+json with type `.../problems/sso-<code>` and the
// code's fixed wording; the reason behind it is logged and the refusal audited.
import { STATUS_CODES } from 'node:http';
import { Router, type CookieOptions, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import type { Logger } from '../../../lib/logger.js';
import { tenantName, type Sessions } from '../auth/sessions.js';
import { parse, ProblemError, problems } from '../http/problem.js';
import { named, reply } from '../http/responses.js';
import { tokenResponseSchema } from '../auth/sessions.js';
import type { ClientSecretSource } from '../sso/client-secrets.js';
import type { SsoHandoff } from '../sso/handoff.js';
import { SsoError, type SsoIdentity } from '../sso/identity.js';
import { checkReturnTo, type OidcService, type TenantOidcView } from '../sso/oidc.js';
import { auditSsoFailure, signInWithSso } from '../sso/provisioning.js';
import type { SamlService, TenantSsoView } from '../sso/saml.js';
import type { TenantDatabases } from '../tenancy/tenant-databases.js';
import type { TenantCredentials, TenantDirectory, TenantEntry } from '../tenancy/tenant-directory.js';
import { email } from '../users/users.js';

export interface SsoSettings {
  saml: SamlService;
  oidc: OidcService;
  handoff: SsoHandoff;
  clientSecrets: ClientSecretSource;
  /** Origin (and optional base path) the browser uses to reach the API, without a trailing slash. */
  publicBaseUrl: string;
  /** The client page a browser lands on after sign-in, with `code` (and `return_to`) in its query. */
  returnUrl: string;
}

export interface SsoRouteDeps {
  log: Logger;
  sessions: Sessions;
  directory: TenantDirectory;
  databases: TenantDatabases;
  sso: SsoSettings;
}

type Provider = 'saml' | 'oidc';
type ServableTenant = TenantEntry & { credentials: TenantCredentials };

const problemTypeBase = 'https://tenantry.io/problems/sso-';
const samlCookie = 'tenantry_saml_request';
const oidcCookie = 'tenantry_oidc_state';
// As long as the SAML request ID and the OIDC state live in the store.
const loginCookieMaxAgeMs = 10 * 60_000;
// saml-bindings §3.4.3 caps RelayState, which carries return_to, at 80 bytes.
const maxSamlReturnToBytes = 80;

const tenantParams = z.object({ tenant: tenantName });
export const loginQuery = z.strictObject({
  return_to: z.string().max(512).optional(),
  login_hint: email.optional(),
});
export const ssoDiscoverySchema = named(
  'SsoDiscovery',
  z.object({
    domain: z.string(),
    tenants: z.array(
      z.object({
        tenant: z.string(),
        display_name: z.string(),
        methods: z.array(z.object({ protocol: z.enum(['saml', 'oidc']), login_url: z.url() })),
      }),
    ),
  }),
  "The tenants that claim the email's domain and offer single sign-on; empty when none does.",
);

/** SAML service provider metadata (XML), for the identity provider's configuration. */
export const samlMetadataSchema = named('SamlMetadata', z.string(), 'A SAML 2.0 EntityDescriptor (XML).');

export const discoverSchema = z.strictObject({ email });
export const exchangeSchema = z.strictObject({
  code: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'not a sign-in code'),
});

/** The problem+json error for a refused SSO step: a stable code, no detail beyond its fixed wording. */
export function ssoProblem(error: SsoError): ProblemError {
  return new ProblemError(error.status, STATUS_CODES[error.status] ?? 'Error', error.message, {
    type: `${problemTypeBase}${error.code}`,
  });
}

export function ssoRoutes(deps: SsoRouteDeps): Router {
  const { log, sessions, directory, databases, sso } = deps;
  const router = Router();
  const base = new URL(sso.publicBaseUrl);
  const basePath = base.pathname.replace(/\/+$/, '');
  const https = base.protocol === 'https:';

  const requestContext = (req: Request, res: Response) => ({
    ip: req.ip ?? null,
    requestId: String(res.locals.requestId ?? '') || null,
  });
  const cookie = (tenant: string, provider: Provider, sameSite: 'lax' | 'none'): CookieOptions => ({
    httpOnly: true,
    secure: https,
    sameSite,
    path: `${basePath}/api/auth/sso/${provider}/${tenant}`,
    maxAge: loginCookieMaxAgeMs,
  });
  const clearCookie = (res: Response, name: string, tenant: string, provider: Provider) => {
    const { maxAge: _maxAge, ...options } = cookie(tenant, provider, 'lax');
    res.clearCookie(name, options);
  };

  /** The tenant named in the path, servable now (else its 400, 404, 403 or 503). */
  const tenantOf = (req: Request): ServableTenant => {
    const { tenant } = parse(tenantParams, req.params);
    return directory.servable(tenant);
  };

  /** Runs a step that turns an IdP answer into a sign-in; a refusal is logged, audited and mapped. */
  const signInStep =
    (provider: Provider, run: (req: Request, res: Response, entry: ServableTenant) => Promise<void>) =>
    async (req: Request, res: Response) => {
      const entry = tenantOf(req);
      try {
        await run(req, res, entry);
      } catch (error) {
        if (!(error instanceof SsoError)) throw error;
        const context = requestContext(req, res);
        log.warn(
          {
            tenant: entry.name,
            provider,
            code: error.code,
            reason: error.detail,
            requestId: context.requestId,
          },
          'SSO sign-in refused',
        );
        const db = databases.for(entry.name, entry.credentials);
        await auditSsoFailure(db, provider, error.code, context).catch((failure: unknown) =>
          log.error({ tenant: entry.name, err: String(failure) }, 'could not audit a refused SSO sign-in'),
        );
        throw ssoProblem(error);
      }
    };

  /** Any other SSO step: refusals are mapped, not audited (nobody tried to sign in yet). */
  const step =
    (handler: (req: Request, res: Response) => Promise<void>): RequestHandler =>
    async (req, res) => {
      try {
        await handler(req, res);
      } catch (error) {
        if (error instanceof SsoError) {
          log.info({ code: error.code, reason: error.detail }, 'SSO request refused');
          throw ssoProblem(error);
        }
        throw error;
      }
    };

  /** Our tokens for `identity`: as JSON when asked for, else a one-time code for the client page. */
  const finish = async (
    req: Request,
    res: Response,
    entry: ServableTenant,
    identity: SsoIdentity,
    rolesFromIdp: boolean,
    returnTo: string | undefined,
  ) => {
    const db = databases.for(entry.name, entry.credentials);
    const { user, tookOver } = await signInWithSso(db, identity, {
      rolesFromIdp,
      ...requestContext(req, res),
    });
    // The cleared password's sessions end too; tokens for this sign-in are issued after.
    if (tookOver) await sessions.revokeAllForUser(db, user.id);
    res.set('Cache-Control', 'no-store');
    if (req.accepts(['html', 'json']) === 'json') {
      reply(res, 200, tokenResponseSchema, await sessions.issueFor(entry, db, user, clientContext(req)));
      return;
    }
    const code = await sso.handoff.issue({
      tenant: entry.name,
      tenantUid: entry.uid,
      userId: user.id,
      provider: identity.provider,
    });
    const target = new URL(sso.returnUrl);
    target.searchParams.set('code', code);
    if (returnTo) target.searchParams.set('return_to', returnTo);
    res.set('Referrer-Policy', 'no-referrer').redirect(303, target.href);
  };

  // SAML ------------------------------------------------------------------

  const samlView = (entry: TenantEntry): TenantSsoView => {
    const saml = entry.tenant.spec.sso?.saml;
    return {
      name: entry.name,
      uid: entry.uid,
      domains: entry.tenant.spec.domains ?? [],
      ...(saml ? { saml } : {}),
    };
  };

  router.get('/saml/:tenant/metadata', (req, res) => {
    const entry = tenantOf(req);
    res
      .type('application/samlmetadata+xml')
      .set('Cache-Control', 'public, max-age=300')
      .send(sso.saml.spMetadata(entry.name));
  });

  router.get(
    '/saml/:tenant/login',
    step(async (req, res) => {
      const entry = tenantOf(req);
      const query = parse(loginQuery, req.query);
      const returnTo = returnPath(query.return_to);
      if (returnTo && Buffer.byteLength(returnTo) > maxSamlReturnToBytes) {
        throw problems.validation([
          { field: 'return_to', message: `at most ${maxSamlReturnToBytes} bytes for SAML` },
        ]);
      }
      const login = await sso.saml.loginUrl(samlView(entry), returnTo ? { relayState: returnTo } : {});
      // The IdP posts back cross-site, so only SameSite=None (which needs Secure) reaches the ACS.
      res.cookie(samlCookie, login.requestId, cookie(entry.name, 'saml', https ? 'none' : 'lax'));
      res.set('Cache-Control', 'no-store').redirect(302, login.url);
    }),
  );

  router.post(
    '/saml/:tenant/acs',
    signInStep('saml', async (req, res, entry) => {
      const form = (req.body ?? {}) as { SAMLResponse?: unknown; RelayState?: unknown };
      const bound = readCookie(req, samlCookie);
      clearCookie(res, samlCookie, entry.name, 'saml');
      // Over https the login cookie always comes back, so an SP-initiated response
      // without it was not started in this browser (login CSRF); '' matches no request.
      const requestId = bound ?? (https ? '' : undefined);
      const view = samlView(entry);
      const identity = await sso.saml.consume(view, form, requestId === undefined ? {} : { requestId });
      // RelayState is not signed: it is only used when it is a path on this site.
      const relayState = typeof form.RelayState === 'string' ? form.RelayState : undefined;
      let returnTo: string | undefined;
      try {
        returnTo = checkReturnTo(relayState);
      } catch {
        returnTo = undefined;
      }
      await finish(req, res, entry, identity, hasMapping(view.saml?.roleMapping), returnTo);
    }),
  );

  // OIDC ------------------------------------------------------------------

  const oidcView = async (entry: TenantEntry): Promise<TenantOidcView> => {
    const oidc = entry.tenant.spec.sso?.oidc;
    if (!oidc) throw new SsoError('not_configured', `tenant ${entry.name} has no OIDC provider`);
    const clientSecret = await sso.clientSecrets(entry.name, oidc.clientSecretRef);
    return {
      name: entry.name,
      uid: entry.uid,
      domains: entry.tenant.spec.domains ?? [],
      oidc,
      ...(clientSecret === undefined ? {} : { clientSecret }),
    };
  };

  router.get(
    '/oidc/:tenant/login',
    step(async (req, res) => {
      const entry = tenantOf(req);
      const query = parse(loginQuery, req.query);
      const returnTo = returnPath(query.return_to);
      const { url, state } = await sso.oidc.authorizationUrl(await oidcView(entry), {
        ...(returnTo ? { returnTo } : {}),
        ...(query.login_hint ? { loginHint: query.login_hint } : {}),
      });
      // The IdP redirects back with a top-level GET, which SameSite=Lax lets through.
      res.cookie(oidcCookie, state, cookie(entry.name, 'oidc', 'lax'));
      res.set('Cache-Control', 'no-store').redirect(302, url.href);
    }),
  );

  router.get(
    '/oidc/:tenant/callback',
    signInStep('oidc', async (req, res, entry) => {
      const expectedState = readCookie(req, oidcCookie);
      clearCookie(res, oidcCookie, entry.name, 'oidc');
      if (expectedState === undefined) {
        throw new SsoError('invalid_state', 'no state cookie: the login was not started in this browser');
      }
      const view = await oidcView(entry);
      const callbackUrl = new URL(req.originalUrl, base);
      const login = await sso.oidc.callback(view, callbackUrl, { expectedState });
      await finish(req, res, entry, login.identity, hasMapping(view.oidc.roleMapping), login.returnTo);
    }),
  );

  // Hand-off and discovery ------------------------------------------------

  router.post(
    '/exchange',
    step(async (req, res) => {
      const body = parse(exchangeSchema, req.body);
      const grant = await sso.handoff.redeem(body.code);
      if (!grant) throw new SsoError('invalid_code', 'unknown, expired or already used code');
      const entry = directory.servable(grant.tenant);
      // The code was issued by an earlier Tenant of this name: nobody signed in here.
      if (grant.tenantUid !== entry.uid)
        throw new SsoError('invalid_code', `the code was issued to an earlier tenant ${grant.tenant}`);
      const db = databases.for(grant.tenant, entry.credentials);
      const user = await db.models.User.findByPk(grant.userId);
      if (!user?.is_active) throw new SsoError('invalid_code', `user ${grant.userId} is gone or deactivated`);
      res.set('Cache-Control', 'no-store');
      reply(res, 200, tokenResponseSchema, await sessions.issueFor(entry, db, user, clientContext(req)));
    }),
  );

  const methodsOf = (entry: TenantEntry) => {
    const configured = entry.tenant.spec.sso ?? {};
    const login = (provider: Provider) => `${sso.publicBaseUrl}/api/auth/sso/${provider}/${entry.name}/login`;
    return [
      ...(configured.saml ? [{ protocol: 'saml' as const, login_url: login('saml') }] : []),
      ...(configured.oidc ? [{ protocol: 'oidc' as const, login_url: login('oidc') }] : []),
    ];
  };

  // Answers only for the email's own domain, with the same shape whether or not
  // any tenant claims it: the caller learns nothing the domain does not imply.
  router.post('/discover', (req, res) => {
    const body = parse(discoverSchema, req.body);
    const domain = body.email.slice(body.email.lastIndexOf('@') + 1);
    const tenants = directory
      .list()
      .filter(
        (entry) =>
          entry.ready &&
          !entry.suspended &&
          !entry.tenant.metadata.deletionTimestamp &&
          (entry.tenant.spec.domains ?? []).includes(domain),
      )
      .map((entry) => ({ entry, methods: methodsOf(entry) }))
      .filter(({ methods }) => methods.length > 0)
      .sort((a, b) => a.entry.name.localeCompare(b.entry.name))
      .map(({ entry, methods }) => ({
        tenant: entry.name,
        display_name: entry.tenant.spec.displayName ?? entry.name,
        methods,
      }));
    res.set('Cache-Control', 'no-store');
    reply(res, 200, ssoDiscoverySchema, { domain, tenants });
  });

  return router;
}

function clientContext(req: Request) {
  return { ...(req.ip ? { ip: req.ip } : {}), client: (req.get('user-agent') ?? '').slice(0, 200) };
}

function hasMapping(mapping: Record<string, unknown> | undefined): boolean {
  return mapping !== undefined && Object.keys(mapping).length > 0;
}

/** A same-site path, or a 400 naming `return_to`. */
function returnPath(value: string | undefined): string | undefined {
  try {
    return checkReturnTo(value);
  } catch (error) {
    if (error instanceof SsoError)
      throw problems.validation([{ field: 'return_to', message: error.message }]);
    throw error;
  }
}

/** One cookie from the Cookie header; undefined when absent or not decodable. */
function readCookie(req: Request, name: string): string | undefined {
  for (const part of (req.get('cookie') ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at < 0 || part.slice(0, at).trim() !== name) continue;
    try {
      return decodeURIComponent(part.slice(at + 1).trim());
    } catch {
      return undefined;
    }
  }
  return undefined;
}
