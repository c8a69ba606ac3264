// The Express application, built from its dependencies so tests can run it
// in-process against real services. main.ts is the only place that reads
// configuration and opens connections.
import { randomUUID } from 'node:crypto';
import express, { type Express, type RequestHandler } from 'express';
import { pinoHttp } from 'pino-http';
import type { Registry } from 'prom-client';
import type { Logger } from '../../lib/logger.js';
import { planPolicies } from '../../operator/src/api/tenant.js';
import { authenticate, tenantScope } from './auth/context.js';
import { publicJwks, type KeySetSource } from './auth/keys.js';
import type { Sessions } from './auth/sessions.js';
import type { TokenService } from './auth/tokens.js';
import { errorHandler, notFoundHandler, problems } from './http/problem.js';
import type { RateLimits } from './ratelimit/rate-limits.js';
import { auditLogRoutes } from './routes/audit-logs.js';
import { authRoutes } from './routes/auth.js';
import { userRoutes } from './routes/users.js';
import { isDatabaseUnavailable, type TenantDatabases } from './tenancy/tenant-databases.js';
import type { TenantDirectory } from './tenancy/tenant-directory.js';

export interface AppDeps {
  log: Logger;
  tokens: TokenService;
  keys: KeySetSource;
  sessions: Sessions;
  directory: TenantDirectory;
  databases: TenantDatabases;
  registry: Registry;
  rateLimits: RateLimits;
  trustProxy: boolean | number | string[];
  bodyLimitBytes: number;
  /** Checks the dependencies for /readyz and /health. */
  checkDependencies(): Promise<Record<string, { ok: boolean; detail?: string }>>;
}

const probePaths = new Set(['/healthz', '/readyz', '/health', '/metrics']);

const requestId: RequestHandler = (req, res, next) => {
  const incoming = req.get('x-request-id');
  const id = incoming && /^[A-Za-z0-9._-]{1,128}$/.test(incoming) ? incoming : randomUUID();
  res.setHeader('x-request-id', id);
  res.locals.requestId = id;
  next();
};

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', deps.trustProxy);
  app.set('query parser', 'simple');
  app.use(requestId);
  app.use(
    pinoHttp({
      logger: deps.log,
      genReqId: (_req, res) => String(res.getHeader('x-request-id')),
      autoLogging: { ignore: (req) => probePaths.has((req.url ?? '').split('?')[0]!.replace(/\/$/, '')) },
      serializers: {
        req: (req: { id: string; method: string; url: string }) => ({
          id: req.id,
          method: req.method,
          url: req.url.split('?')[0],
        }),
      },
    }),
  );
  app.use(express.json({ limit: deps.bodyLimitBytes, strict: true }));
  app.use(express.urlencoded({ extended: false, limit: deps.bodyLimitBytes, parameterLimit: 100 }));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const checks = await deps.checkDependencies();
    const ok = Object.values(checks).every((c) => c.ok);
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable', checks });
  });
  app.get('/health', async (_req, res) => {
    const checks = await deps.checkDependencies();
    const ok = Object.values(checks).every((c) => c.ok);
    res.status(ok ? 200 : 503).json({
      status: ok ? 'healthy' : 'degraded',
      components: checks,
      tenants: { known: deps.directory.size, open_pools: deps.databases.size },
    });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(deps.registry.contentType).send(await deps.registry.metrics());
  });
  app.get('/.well-known/jwks.json', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=300').json(publicJwks(deps.keys.current()));
  });

  // Sign-in endpoints: per address, and per address and account; fail closed if Redis is down.
  app.use(
    ['/api/auth/login', '/api/auth/token', '/api/auth/register'],
    ...deps.rateLimits.authAttempts({ perIpPerMinute: 60, perAccountPerMinute: 10 }),
  );
  app.use('/api/auth', authRoutes(deps));
  // Everything else needs a token, then counts against the tenant's plan and the caller's own budget.
  const requireAuth = [
    authenticate(deps.tokens),
    deps.rateLimits.perTenant((_req, tenant) => {
      const spec = deps.directory.get(tenant)?.tenant.spec;
      return spec
        ? (spec.rateLimit?.requestsPerMinute ?? planPolicies[spec.plan].requestsPerMinute)
        : undefined;
    }),
    deps.rateLimits.perUser(600),
  ];
  app.use('/api/users', ...requireAuth, userRoutes(deps));
  app.use('/api/audit-logs', ...requireAuth, auditLogRoutes(deps));
  app.get('/api/tenants/current', ...requireAuth, (_req, res) => {
    const { entry } = tenantScope(res, deps.directory, deps.databases);
    const spec = entry.tenant.spec;
    res.json({
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

  app.use(notFoundHandler);
  app.use(
    errorHandler(deps.log, (error) =>
      isDatabaseUnavailable(error)
        ? problems.unavailable('the tenant database cannot be reached; retry shortly', 5)
        : undefined,
    ),
  );
  return app;
}
