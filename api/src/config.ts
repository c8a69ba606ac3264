import { z } from 'zod';
import { env, parseConfig } from '../../lib/config.js';
import { defaultServiceUrls } from '../../lib/services.js';

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
  PUBLIC_BASE_URL: env.url('http://127.0.0.1:8080', ['http', 'https']),
  PLATFORM_NAMESPACE: env.string('tenantry-system'),
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
  SIGNUP_ENABLED: env.bool(false),
  PLATFORM_ADMIN_CLIENT_ID: z.string().min(8).optional(),
  PLATFORM_ADMIN_CLIENT_SECRET: z.string().min(24).optional(),
  RESYNC_SECONDS: env.int(300, 1, 86_400),
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
    publicBaseUrl: raw.PUBLIC_BASE_URL.replace(/\/$/, ''),
    platformNamespace: raw.PLATFORM_NAMESPACE,
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
    signupEnabled: raw.SIGNUP_ENABLED,
    platformAdmin:
      raw.PLATFORM_ADMIN_CLIENT_ID && raw.PLATFORM_ADMIN_CLIENT_SECRET
        ? { clientId: raw.PLATFORM_ADMIN_CLIENT_ID, clientSecret: raw.PLATFORM_ADMIN_CLIENT_SECRET }
        : undefined,
    resyncMs: raw.RESYNC_SECONDS * 1000,
  };
}
