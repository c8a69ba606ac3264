// The Express application: routes and middleware mounted on the dependencies
// it is given. build.ts builds those dependencies; this file constructs none.
import express, { type Express } from 'express';
import type { Registry } from 'prom-client';
import type { Logger } from '../../lib/logger.js';
import { planPolicies } from '../../lib/tenant/index.js';
import { authenticate, tenantScope } from './auth/context.js';
import { NoSigningKeyError, publicJwks, type KeySetSource } from './auth/keys.js';
import type { Sessions } from './auth/sessions.js';
import type { TokenService } from './auth/tokens.js';
import { accessLog } from './http/access-log.js';
import { healthSchema, jwksSchema, livenessSchema, readinessSchema } from './http/health.js';
import { encode, reply } from './http/responses.js';
import { errorHandler, notFoundHandler, problems } from './http/problem.js';
import { requestMetrics } from './http/request-metrics.js';
import { apiDocument } from './openapi/api-document.js';
import { noStore, oauthBodyErrors } from './oauth/errors.js';
import {
  authorizationServerMetadata,
  authorizationServerMetadataSchema,
  metadataPaths,
} from './oauth/metadata.js';
import type { TokenInspection } from './oauth/token-inspection.js';
import { clientCredentialsGrant, type RateLimits } from './ratelimit/rate-limits.js';
import { apiClientRoutes } from './routes/api-clients.js';
import { integrationRoutes, integrationWebhookRoutes, type IntegrationDeps } from './routes/integrations.js';
import { auditLogRoutes } from './routes/audit-logs.js';
import { authRoutes } from './routes/auth.js';
import { oauthRoutes } from './routes/oauth.js';
import { passwordResetRoutes } from './routes/password-reset.js';
import { signupRoutes } from './routes/signup.js';
import { tenantRoutes } from './routes/tenants.js';
import { ssoRoutes, type SsoSettings } from './routes/sso.js';
import { userRoutes } from './routes/users.js';
import { webhookRoutes } from './routes/webhooks.js';
import type { WebhookSettings } from './webhooks/endpoint-service.js';
import { isDatabaseUnavailable, type TenantDatabases } from './tenancy/tenant-databases.js';
import type { TenantDirectory } from './tenancy/tenant-directory.js';
import type { PasswordResets } from './auth/password-resets.js';
import type { Registrations } from './auth/registrations.js';
import type { Signups } from './signup/signups.js';
import { currentTenantSchema, type TenantAdmin } from './tenancy/tenant-admin.js';

export interface AppDeps {
  log: Logger;
  tokens: TokenService;
  keys: KeySetSource;
  sessions: Sessions;
  /** Revocation and introspection of access and refresh tokens (RFC 7009, RFC 7662). */
  tokenInspection: TokenInspection;
  directory: TenantDirectory;
  databases: TenantDatabases;
  /** The process's metrics; served on METRICS_PORT by main.ts, not by this app. */
  registry: Registry;
  rateLimits: RateLimits;
  trustProxy: boolean | number | string[];
  bodyLimitBytes: number;
  passwordResets: PasswordResets;
  /** Self-registration: mails a token, creates the member once it is verified. */
  registrations: Registrations;
  /** Self-service signup; undefined when SIGNUP_ENABLED is off (the routes answer 404). */
  signups: Signups | undefined;
  tenantAdmin: TenantAdmin;
  /** Per-tenant SAML and OIDC sign-in (routes/sso.ts). */
  sso: SsoSettings;
  /** Outgoing webhook endpoints: URL policy and replay bound. */
  webhooks: WebhookSettings;
  /** Incoming provider events: provider configurations, organization lookup and intake. */
  integrations: IntegrationDeps['integrations'];
  /** Checks the dependencies for /readyz and /health. */
  checkDependencies(): Promise<Record<string, { ok: boolean; detail?: string }>>;
}

const probePaths = new Set(['/healthz', '/readyz', '/health']);

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  // No ETag hashing of every JSON body: API clients do not revalidate, and the hash costs on each response.
  app.set('etag', false);
  app.set('trust proxy', deps.trustProxy);
  app.set('query parser', 'simple');
  app.use(accessLog(deps.log, { skip: (path) => probePaths.has(path) }));
  app.use(requestMetrics(deps.registry));
  // Incoming provider webhooks are verified on the raw body, so they come before the JSON parser.
  // Without a tenant in the path the organization is looked up, and a miss makes the replica look again:
  // failures per address are limited (successes are given back), fail closed.
  app.post(
    '/api/integrations/webhooks/:provider',
    deps.rateLimits.failuresPerAddress({
      name: 'webhook-lookup',
      perIpPerMinute: 30,
      exceeded: 'too many failed webhooks from this address',
    }),
  );
  app.use('/api/integrations/webhooks', integrationWebhookRoutes(deps));
  // Token, revocation and introspection answers are never stored (RFC 6749 §5.1), refusals included, and a
  // body that cannot be parsed is their invalid_request.
  const oauthEndpoints = ['/api/auth/token', '/api/auth/revoke', '/api/auth/introspect'];
  app.use(oauthEndpoints, noStore);
  app.use(express.json({ limit: deps.bodyLimitBytes, strict: true }));
  app.use(express.urlencoded({ extended: false, limit: deps.bodyLimitBytes, parameterLimit: 100 }));
  app.use(oauthEndpoints, oauthBodyErrors);

  app.get('/healthz', (_req, res) => {
    reply(res, 200, livenessSchema, { status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const checks = await deps.checkDependencies();
    const ok = Object.values(checks).every((c) => c.ok);
    reply(res, ok ? 200 : 503, readinessSchema, { status: ok ? 'ok' : 'unavailable', checks });
  });
  app.get('/health', async (_req, res) => {
    const checks = await deps.checkDependencies();
    const ok = Object.values(checks).every((c) => c.ok);
    reply(res, ok ? 200 : 503, healthSchema, {
      status: ok ? 'healthy' : 'degraded',
      components: checks,
      tenants: { known: deps.directory.size, open_pools: deps.databases.size },
    });
  });
  const document = apiDocument();
  app.get('/api/openapi.json', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=300').json(document);
  });
  app.get('/.well-known/jwks.json', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=300').json(encode(jwksSchema, publicJwks(deps.keys.current())));
  });
  const metadata = encode(authorizationServerMetadataSchema, authorizationServerMetadata(deps.tokens.issuer));
  for (const path of metadataPaths(deps.tokens.issuer)) {
    app.get(path, (_req, res) => {
      res.set('Cache-Control', 'public, max-age=300').json(metadata);
    });
  }

  // Sign-in endpoints: per address, and per address and account (`email`, the token endpoint's `username`
  // or `client_id`, whose successful grants are given back); fail closed if Redis is down.
  // `/api/auth/register` also covers `/register/verify` (a prefix), which names no account: per address.
  app.use(
    ['/api/auth/login', '/api/auth/token', '/api/auth/register'],
    ...deps.rateLimits.authAttempts({
      perIpPerMinute: 60,
      perAccountPerMinute: 10,
      givesBackSuccess: clientCredentialsGrant,
    }),
  );
  // Revocation and introspection: a client with the right secret is no guesser (resource servers may
  // introspect often), so only failures count per client_id; per address, every request, to bound the load.
  app.use(
    ['/api/auth/revoke', '/api/auth/introspect'],
    ...deps.rateLimits.authAttempts({
      name: 'oauth-client',
      perIpPerMinute: 600,
      perAccountPerMinute: 10,
      givesBackSuccess: () => true,
    }),
  );
  // SSO: per address only (the IdP's answers name no account); its own counters, fail closed too.
  app.use(
    '/api/auth/sso',
    ...deps.rateLimits.authAttempts({
      name: 'sso',
      perIpPerMinute: 120,
      perAccountPerMinute: 120,
      account: () => undefined,
    }),
    ssoRoutes(deps),
  );
  // Password reset: each mail costs, so fewer per account than sign-in; confirm is limited per address.
  app.use(
    '/api/auth/password/reset',
    ...deps.rateLimits.authAttempts({ name: 'password-reset', perIpPerMinute: 30, perAccountPerMinute: 5 }),
  );
  // Checks of a current password: per user, so a stolen access token cannot guess the password behind it.
  app.use(
    ['/api/auth/password/change', '/api/auth/profile'],
    authenticate(deps.tokens),
    deps.rateLimits.currentPasswordChecks({ perUserPerMinute: 5 }),
  );
  app.use('/api/auth/password', passwordResetRoutes(deps));
  app.use('/api/auth', oauthRoutes(deps));
  app.use('/api/auth', authRoutes(deps));
  // Signup is public: only creating is limited, so polling the status URL is not.
  app.post(
    '/api/signup',
    ...deps.rateLimits.authAttempts({ name: 'signup', perIpPerMinute: 20, perAccountPerMinute: 5 }),
  );
  app.use('/api/signup', signupRoutes(deps));
  // Everything else needs a token, then counts against the tenant's plan and the caller's own budget.
  const requireAuth = [
    authenticate(deps.tokens),
    deps.rateLimits.together(
      deps.rateLimits.perTenant((_req, tenant) => {
        const spec = deps.directory.get(tenant)?.tenant.spec;
        return spec
          ? (spec.rateLimit?.requestsPerMinute ?? planPolicies[spec.plan].requestsPerMinute)
          : undefined;
      }),
      deps.rateLimits.perUser(600),
    ),
  ];
  app.use('/api/users', ...requireAuth, userRoutes(deps));
  app.use('/api/audit-logs', ...requireAuth, auditLogRoutes(deps));
  app.use('/api/clients', ...requireAuth, apiClientRoutes(deps));
  app.use('/api/integrations', ...requireAuth, integrationRoutes(deps));
  app.use('/api/webhooks', ...requireAuth, webhookRoutes(deps));
  app.get('/api/tenants/current', ...requireAuth, (_req, res) => {
    const { entry } = tenantScope(res, deps.directory, deps.databases);
    const spec = entry.tenant.spec;
    reply(res, 200, currentTenantSchema, {
      name: entry.name,
      display_name: spec.displayName ?? entry.name,
      plan: spec.plan,
      domains: spec.domains ?? [],
      phase: entry.tenant.status?.phase ?? 'Pending',
      ready: entry.ready,
      self_registration: spec.selfRegistration ?? false,
      rate_limit_per_minute: spec.rateLimit?.requestsPerMinute ?? planPolicies[spec.plan].requestsPerMinute,
    });
  });
  // The platform admin's tenant CRUD; tenant users get 403 there.
  app.use('/api/tenants', ...requireAuth, tenantRoutes(deps));

  app.use(notFoundHandler);
  app.use(
    errorHandler(deps.log, (error) => {
      if (isDatabaseUnavailable(error))
        return problems.unavailable('the tenant database cannot be reached; retry shortly', 5);
      // Keys come from the operator's Secret; until they arrive no token can be issued.
      if (error instanceof NoSigningKeyError)
        return problems.unavailable('the signing keys are not loaded yet; retry shortly', 5);
      return undefined;
    }),
  );
  return app;
}
