// The worker's configuration, read once from the environment. The operator's
// Deployment sets TENANTRY_TENANT, DATABASE_URL, AMQP_URL and AMQP_QUEUE_PREFIX.
import { z } from 'zod';
import { ConfigError, env, parseConfig } from '../../lib/config.js';
import { parseDuration, parseSchedule, standardSchedule } from './schedule.js';
import type { IntegrationSettings } from './integrations/integration-engine.js';

const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value, ctx) => {
      try {
        return parseDuration(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
        return z.NEVER;
      }
    });

const schema = z
  .object({
    TENANTRY_TENANT: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a tenant name'),
    DATABASE_URL: env.url('', ['postgres', 'postgresql']),
    AMQP_URL: env.url('', ['amqp', 'amqps']),
    AMQP_QUEUE_PREFIX: z.string().optional(),
    HTTP_HOST: env.string('0.0.0.0'),
    HTTP_PORT: env.int(8081, 0, 65535),
    METRICS_HOST: env.string('0.0.0.0'),
    METRICS_PORT: env.int(9090, 0, 65535),
    DB_POOL_MAX: env.int(5, 1, 100),
    WEBHOOK_RETRY_SCHEDULE: z
      .string()
      .optional()
      .transform((value, ctx) => {
        if (value === undefined || value === '') return [...standardSchedule];
        try {
          return parseSchedule(value);
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: (error as Error).message });
          return z.NEVER;
        }
      }),
    WEBHOOK_TIMEOUT: duration('15s'),
    WEBHOOK_PREFETCH: env.int(100, 1, 10_000),
    WEBHOOK_ENDPOINT_CONCURRENCY: env.int(10, 1, 1000),
    WEBHOOK_BREAKER_THRESHOLD: env.int(5, 1, 1000),
    WEBHOOK_BREAKER_COOLDOWN: duration('30s'),
    WEBHOOK_DISABLE_AFTER: duration('5d'),
    WEBHOOKS_ALLOW_LOOPBACK: env.bool(false),
    /** The old spelling of WEBHOOKS_ALLOW_LOOPBACK, read for one more release (`loopbackSetting`). */
    WEBHOOK_ALLOW_LOOPBACK: env.bool(false),
    OUTBOX_POLL_INTERVAL: duration('200ms'),
    OUTBOX_BATCH_SIZE: env.int(200, 1, 5000),
    SHUTDOWN_TIMEOUT: duration('25s'),
    INTEGRATION_RETRY_SCHEDULE: z
      .string()
      .default('0,5s,30s,2m,10m,30m')
      .transform((value, ctx) => {
        try {
          return parseSchedule(value);
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: (error as Error).message });
          return z.NEVER;
        }
      }),
    INTEGRATION_PREFETCH: env.int(50, 1, 10_000),
    PROVIDER_API_TIMEOUT: duration('10s'),
    PROVIDER_API_RETRIES: env.int(2, 0, 10),
    PROVIDER_BREAKER_THRESHOLD: env.int(5, 1, 1000),
    PROVIDER_BREAKER_COOLDOWN: duration('30s'),
  })
  .superRefine((value, ctx) => {
    // The broker closes a channel that holds an unacked message for
    // consumer_timeout (30 min by default); a request must end long before.
    if (value.WEBHOOK_TIMEOUT > 5 * 60_000) {
      ctx.addIssue({ code: 'custom', path: ['WEBHOOK_TIMEOUT'], message: 'must be at most 5m' });
    }
    if (value.METRICS_PORT !== 0 && value.METRICS_PORT === value.HTTP_PORT) {
      ctx.addIssue({ code: 'custom', path: ['METRICS_PORT'], message: 'must differ from HTTP_PORT' });
    }
    const prefix = value.AMQP_QUEUE_PREFIX ?? `tenant.${value.TENANTRY_TENANT}.`;
    if (!prefix.endsWith('.')) {
      ctx.addIssue({ code: 'custom', path: ['AMQP_QUEUE_PREFIX'], message: 'must end with "."' });
    }
  });

export interface WorkerConfig {
  tenant: string;
  databaseUrl: string;
  amqpUrl: string;
  queuePrefix: string;
  http: { host: string; port: number };
  metrics: { host: string; port: number };
  dbPoolMax: number;
  delivery: {
    schedule: number[];
    timeoutMs: number;
    prefetch: number;
    endpointConcurrency: number;
    breakerThreshold: number;
    breakerCooldownMs: number;
    disableAfterMs: number;
    allowLoopback: boolean;
  };
  outbox: { pollIntervalMs: number; batchSize: number };
  shutdownTimeoutMs: number;
  integrations: IntegrationSettings;
  /** Warnings about deprecated variables in use, logged at start-up. */
  deprecations: string[];
}

export function loadWorkerConfig(environment: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const c = parseConfig(schema, environment);
  const loopback = loopbackSetting(c, environment);
  return {
    tenant: c.TENANTRY_TENANT,
    databaseUrl: c.DATABASE_URL,
    amqpUrl: c.AMQP_URL,
    queuePrefix: c.AMQP_QUEUE_PREFIX ?? `tenant.${c.TENANTRY_TENANT}.`,
    http: { host: c.HTTP_HOST, port: c.HTTP_PORT },
    metrics: { host: c.METRICS_HOST, port: c.METRICS_PORT },
    dbPoolMax: c.DB_POOL_MAX,
    delivery: {
      schedule: c.WEBHOOK_RETRY_SCHEDULE,
      timeoutMs: c.WEBHOOK_TIMEOUT,
      prefetch: c.WEBHOOK_PREFETCH,
      endpointConcurrency: c.WEBHOOK_ENDPOINT_CONCURRENCY,
      breakerThreshold: c.WEBHOOK_BREAKER_THRESHOLD,
      breakerCooldownMs: c.WEBHOOK_BREAKER_COOLDOWN,
      disableAfterMs: c.WEBHOOK_DISABLE_AFTER,
      allowLoopback: loopback.allow,
    },
    outbox: { pollIntervalMs: c.OUTBOX_POLL_INTERVAL, batchSize: c.OUTBOX_BATCH_SIZE },
    shutdownTimeoutMs: c.SHUTDOWN_TIMEOUT,
    integrations: {
      schedule: c.INTEGRATION_RETRY_SCHEDULE,
      prefetch: c.INTEGRATION_PREFETCH,
      api: {
        timeoutMs: c.PROVIDER_API_TIMEOUT,
        retries: c.PROVIDER_API_RETRIES,
        baseDelayMs: 200,
        breakerThreshold: c.PROVIDER_BREAKER_THRESHOLD,
        breakerCooldownMs: c.PROVIDER_BREAKER_COOLDOWN,
        allowLoopback: loopback.allow,
      },
      outbox: { pollIntervalMs: c.OUTBOX_POLL_INTERVAL, batchSize: c.OUTBOX_BATCH_SIZE },
    },
    deprecations: loopback.deprecations,
  };
}

/**
 * WEBHOOKS_ALLOW_LOOPBACK, the API's name, or the worker's old
 * WEBHOOK_ALLOW_LOOPBACK with a deprecation warning. Both set to different
 * values is refused rather than guessed.
 */
function loopbackSetting(
  c: z.infer<typeof schema>,
  environment: NodeJS.ProcessEnv,
): { allow: boolean; deprecations: string[] } {
  if (environment.WEBHOOK_ALLOW_LOOPBACK === undefined)
    return { allow: c.WEBHOOKS_ALLOW_LOOPBACK, deprecations: [] };
  if (
    environment.WEBHOOKS_ALLOW_LOOPBACK !== undefined &&
    c.WEBHOOKS_ALLOW_LOOPBACK !== c.WEBHOOK_ALLOW_LOOPBACK
  ) {
    throw new ConfigError([
      'WEBHOOK_ALLOW_LOOPBACK: disagrees with WEBHOOKS_ALLOW_LOOPBACK; set only WEBHOOKS_ALLOW_LOOPBACK',
    ]);
  }
  return {
    allow: c.WEBHOOK_ALLOW_LOOPBACK,
    deprecations: [
      'WEBHOOK_ALLOW_LOOPBACK is deprecated and will be removed in the next release: set WEBHOOKS_ALLOW_LOOPBACK instead',
    ],
  };
}
