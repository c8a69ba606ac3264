import { z } from 'zod';
import { env, parseConfig } from '../../lib/config.js';
import { defaultServiceUrls } from '../../lib/services.js';
import { plans } from '../../lib/tenant/index.js';

const trustProxy = z
  .string()
  .default('false')
  .transform((value, ctx) => {
    if (value === 'false') return false;
    if (/^\d+$/.test(value)) return Number(value);
    const parts = value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const valid = parts.every(
      (p) => ['loopback', 'linklocal', 'uniquelocal'].includes(p) || /^[0-9a-fA-F:.]+(\/\d+)?$/.test(p),
    );
    if (!valid) {
      ctx.addIssue({
        code: 'custom',
        message: 'must be false, a hop count, or a comma list of addresses/CIDRs',
      });
      return z.NEVER;
    }
    return parts;
  });

const schema = z.object({
  HOST: env.string('0.0.0.0'),
  PORT: env.int(8080, 0, 65535),
  // /metrics is served here only, never on the public port.
  METRICS_HOST: env.string('0.0.0.0'),
  METRICS_PORT: env.int(9090, 0, 65535),
  PUBLIC_BASE_URL: env.url('http://127.0.0.1:8080', ['http', 'https']),
  PLATFORM_NAMESPACE: env.string('tenantry-system'),
  // Where the Secrets the API reads live (tenant database copies, signing keys, OIDC client secrets);
  // the operator reads the same variable. Defaults to PLATFORM_NAMESPACE.
  PLATFORM_SECRETS_NAMESPACE: z.string().min(1).optional(),
  REDIS_URL: env.url(defaultServiceUrls.redis, ['redis', 'rediss']),
  JWT_AUDIENCE: env.string('tenantry-api'),
  JWT_KEYS_FILE: z.string().optional(),
  ACCESS_TOKEN_TTL_SECONDS: env.int(900, 60, 86_400),
  REFRESH_TOKEN_TTL_DAYS: env.int(30, 1, 365),
  TRUST_PROXY: trustProxy,
  TENANT_POOL_MAX: env.int(5, 1, 100),
  TENANT_POOLS_MAX: env.int(15, 1, 10_000),
  API_REPLICAS: env.int(1, 1, 1000),
  DB_MAX_CONNECTIONS: env.int(100, 1, 100_000),
  DB_RESERVED_CONNECTIONS: env.int(20, 0, 100_000),
  BODY_LIMIT_BYTES: env.int(1_048_576, 1024, 64 * 1_048_576),
  // How long an idle keep-alive connection stays open. Longer than the idle timeout of the proxy in front
  // (ingress-nginx and most cloud load balancers: 60 s), or the proxy may send a request on a connection the
  // API is closing and answer 502. Node's own default is 5 s.
  HTTP_KEEP_ALIVE_SECONDS: env.int(65, 1, 3600),
  SIGNUP_ENABLED: env.bool(false),
  // The plan of tenants created by self-service signup.
  SIGNUP_PLAN: z.enum(plans).default('free'),
  // How long a signup's pending owner (password hash) waits in Redis for the tenant to become Ready.
  SIGNUP_PENDING_TTL_HOURS: env.int(24, 1, 720),
  // Development mail transport: every message is written as a JSON file into this directory.
  MAIL_OUTBOX_DIR: z.string().min(1).optional(),
  MAIL_FROM: env.string('Tenantry <no-reply@tenantry.invalid>'),
  PASSWORD_RESET_TTL_MINUTES: env.int(30, 5, 1440),
  OWNER_INVITE_TTL_HOURS: env.int(72, 1, 720),
  REGISTRATION_TTL_HOURS: env.int(24, 1, 168),
  PLATFORM_ADMIN_CLIENT_ID: z.string().min(8).optional(),
  PLATFORM_ADMIN_CLIENT_SECRET: z.string().min(24).optional(),
  RESYNC_SECONDS: env.int(300, 1, 86_400),
  // The client page a browser lands on after SSO, with a one-time `code` to exchange; default <PUBLIC_BASE_URL>/sso/complete.
  SSO_RETURN_URL: z
    .string()
    .optional()
    .refine((value) => value === undefined || /^https?:$/.test(URL.parse(value)?.protocol ?? ''), {
      message: 'must be a URL with scheme http or https',
    }),
  // Lets OIDC issuers use http and private addresses: development only.
  SSO_ALLOW_PRIVATE_IDPS: env.bool(false),
  // Lets outgoing webhook endpoints use http and loopback addresses: development only.
  WEBHOOKS_ALLOW_LOOPBACK: env.bool(false),
  // Most messages one POST /api/webhooks/endpoints/{id}/replay re-enqueues.
  WEBHOOKS_REPLAY_LIMIT: env.int(1000, 1, 100_000),
  // argon2 hashes and verifications at once per replica (they run on libuv's pool of UV_THREADPOOL_SIZE,
  // 4 by default, which DNS lookups share), and how many of them one tenant may hold.
  PASSWORD_HASH_CONCURRENCY: env.int(3, 1, 64),
  PASSWORD_HASH_CONCURRENCY_PER_TENANT: env.int(2, 1, 64),
});

export type ApiConfig = ReturnType<typeof loadApiConfig>;

export function loadApiConfig(environment: NodeJS.ProcessEnv = process.env) {
  const raw = parseConfig(
    schema.superRefine((c, ctx) => {
      // The connection budget: every replica may hold a full pool for every cached tenant.
      const needed = c.TENANT_POOLS_MAX * c.TENANT_POOL_MAX * c.API_REPLICAS;
      if (needed > c.DB_MAX_CONNECTIONS - c.DB_RESERVED_CONNECTIONS) {
        ctx.addIssue({
          code: 'custom',
          path: ['TENANT_POOLS_MAX'],
          message: `TENANT_POOLS_MAX × TENANT_POOL_MAX × API_REPLICAS = ${needed} exceeds DB_MAX_CONNECTIONS − DB_RESERVED_CONNECTIONS = ${c.DB_MAX_CONNECTIONS - c.DB_RESERVED_CONNECTIONS}`,
        });
      }
      if (c.PASSWORD_HASH_CONCURRENCY_PER_TENANT > c.PASSWORD_HASH_CONCURRENCY) {
        ctx.addIssue({
          code: 'custom',
          path: ['PASSWORD_HASH_CONCURRENCY_PER_TENANT'],
          message: `must not exceed PASSWORD_HASH_CONCURRENCY (${c.PASSWORD_HASH_CONCURRENCY})`,
        });
      }
      if (c.METRICS_PORT !== 0 && c.METRICS_PORT === c.PORT) {
        ctx.addIssue({ code: 'custom', path: ['METRICS_PORT'], message: 'must differ from PORT' });
      }
      if ((c.PLATFORM_ADMIN_CLIENT_ID === undefined) !== (c.PLATFORM_ADMIN_CLIENT_SECRET === undefined)) {
        ctx.addIssue({
          code: 'custom',
          path: ['PLATFORM_ADMIN_CLIENT_SECRET'],
          message: 'set both PLATFORM_ADMIN_CLIENT_ID and PLATFORM_ADMIN_CLIENT_SECRET, or neither',
        });
      }
    }),
    environment,
  );
  return {
    host: raw.HOST,
    port: raw.PORT,
    metrics: { host: raw.METRICS_HOST, port: raw.METRICS_PORT },
    publicBaseUrl: raw.PUBLIC_BASE_URL.replace(/\/$/, ''),
    platformNamespace: raw.PLATFORM_NAMESPACE,
    /** The only namespace whose Secrets the API reads. */
    secretsNamespace: raw.PLATFORM_SECRETS_NAMESPACE ?? raw.PLATFORM_NAMESPACE,
    redisUrl: raw.REDIS_URL,
    jwt: {
      issuer: raw.PUBLIC_BASE_URL.replace(/\/$/, ''),
      audience: raw.JWT_AUDIENCE,
      keysFile: raw.JWT_KEYS_FILE,
      accessTokenTtlSeconds: raw.ACCESS_TOKEN_TTL_SECONDS,
      refreshTokenTtlMs: raw.REFRESH_TOKEN_TTL_DAYS * 86_400_000,
    },
    trustProxy: raw.TRUST_PROXY,
    pools: {
      maxTenants: raw.TENANT_POOLS_MAX,
      poolMax: raw.TENANT_POOL_MAX,
      idleMs: 30_000,
      acquireTimeoutMs: 5_000,
      statementTimeoutMs: 15_000,
    },
    bodyLimitBytes: raw.BODY_LIMIT_BYTES,
    keepAliveMs: raw.HTTP_KEEP_ALIVE_SECONDS * 1000,
    signupEnabled: raw.SIGNUP_ENABLED,
    signup: { plan: raw.SIGNUP_PLAN, pendingTtlMs: raw.SIGNUP_PENDING_TTL_HOURS * 3_600_000 },
    mail: { outboxDir: raw.MAIL_OUTBOX_DIR, from: raw.MAIL_FROM },
    passwordReset: {
      ttlMs: raw.PASSWORD_RESET_TTL_MINUTES * 60_000,
      inviteTtlMs: raw.OWNER_INVITE_TTL_HOURS * 3_600_000,
    },
    registration: { ttlMs: raw.REGISTRATION_TTL_HOURS * 3_600_000 },
    platformAdmin:
      raw.PLATFORM_ADMIN_CLIENT_ID && raw.PLATFORM_ADMIN_CLIENT_SECRET
        ? { clientId: raw.PLATFORM_ADMIN_CLIENT_ID, clientSecret: raw.PLATFORM_ADMIN_CLIENT_SECRET }
        : undefined,
    resyncMs: raw.RESYNC_SECONDS * 1000,
    sso: {
      returnUrl: raw.SSO_RETURN_URL ?? `${raw.PUBLIC_BASE_URL.replace(/\/$/, '')}/sso/complete`,
      allowPrivateIdps: raw.SSO_ALLOW_PRIVATE_IDPS,
    },
    webhooks: { allowLoopback: raw.WEBHOOKS_ALLOW_LOOPBACK, replayLimit: raw.WEBHOOKS_REPLAY_LIMIT },
    passwordHashing: {
      concurrency: raw.PASSWORD_HASH_CONCURRENCY,
      perTenant: raw.PASSWORD_HASH_CONCURRENCY_PER_TENANT,
    },
  };
}
