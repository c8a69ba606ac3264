import { hostname } from 'node:os';
import { z } from 'zod';
import { ConfigError, env, parseConfig } from '../../lib/config.js';
import { defaultServiceUrls } from '../../lib/services.js';
import { tenantNamespacePrefix } from '../../lib/tenant/index.js';

const schema = z.object({
  OPERATOR_NAMESPACE: env.string('tenantry-system'),
  // Where the Secrets the API may read live: platform copies of tenant database Secrets, the API's
  // signing keys, OIDC client secrets. Its own namespace, so the API's Role there reaches nothing else
  // (the admin credentials stay in OPERATOR_NAMESPACE). The API reads the same variable.
  PLATFORM_SECRETS_NAMESPACE: z.string().min(1).optional(),
  POSTGRES_URL: env.url(defaultServiceUrls.postgres, ['postgres', 'postgresql']),
  TENANT_DB_HOST: z.string().optional(),
  TENANT_DB_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  POSTGRES_CIDRS: env.list(),
  RABBITMQ_URL: env.url(defaultServiceUrls.rabbitmq, ['amqp', 'amqps']),
  RABBITMQ_MANAGEMENT_URL: env.url(defaultServiceUrls.rabbitmqManagement, ['http', 'https']),
  RABBITMQ_VHOST: env.string('/'),
  TENANT_AMQP_HOST: z.string().optional(),
  TENANT_AMQP_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  RABBITMQ_CIDRS: env.list(),
  WORKER_IMAGE: env.string('tenantry/tenantry:0.1.0'),
  RESYNC_SECONDS: env.int(300, 1, 86_400),
  RECONCILE_CONCURRENCY: env.int(4, 1, 64),
  MIGRATION_CONCURRENCY: env.int(4, 1, 64),
  HTTP_HOST: env.string('0.0.0.0'),
  HTTP_PORT: env.int(8081, 0, 65535),
  METRICS_HOST: env.string('0.0.0.0'),
  METRICS_PORT: env.int(9090, 0, 65535),
  // Namespaces (by name) whose pods may scrape the tenant workers' metrics port, opened by each tenant
  // namespace's NetworkPolicies; the platform namespace may always reach the workers.
  METRICS_SCRAPE_NAMESPACES: env.list(),
  LEADER_ELECTION: env.bool(true),
  LEASE_NAME: env.string('tenantry-operator'),
  LEASE_DURATION_SECONDS: env.int(15, 2, 300),
  POD_NAME: env.string(`${hostname()}-${process.pid}`),
  // The API's signing keys (Secret tenantry-api-signing-keys): a new key once the newest is this old, and
  // how long a superseded key keeps verifying (at least the API's ACCESS_TOKEN_TTL_SECONDS). Fractions are
  // allowed, so tests can rotate within seconds.
  SIGNING_KEY_ROTATION_DAYS: z.coerce.number().positive().max(3650).default(30),
  SIGNING_KEY_RETIRE_AFTER_HOURS: z.coerce.number().positive().max(8760).default(24),
  SIGNING_KEY_CHECK_SECONDS: env.int(60, 1, 86_400),
  // How long a new key is published before it signs: longer than every API replica needs to load the
  // Secret and any JWKS cache needs to refresh (the API serves the JWKS with max-age 300).
  SIGNING_KEY_PUBLISH_AHEAD_SECONDS: env.int(600, 0, 86_400),
});

export type OperatorConfig = ReturnType<typeof loadOperatorConfig>;

export function loadOperatorConfig(environment: NodeJS.ProcessEnv = process.env) {
  const raw = parseConfig(schema, environment);
  if (raw.SIGNING_KEY_PUBLISH_AHEAD_SECONDS >= raw.SIGNING_KEY_ROTATION_DAYS * 86_400) {
    throw new ConfigError([
      'SIGNING_KEY_PUBLISH_AHEAD_SECONDS: must be shorter than SIGNING_KEY_ROTATION_DAYS',
    ]);
  }
  if (raw.METRICS_PORT !== 0 && raw.METRICS_PORT === raw.HTTP_PORT) {
    throw new ConfigError(['METRICS_PORT: must differ from HTTP_PORT']);
  }
  if (raw.OPERATOR_NAMESPACE.startsWith(tenantNamespacePrefix)) {
    // Tenant namespaces are `tenant-<name>`: a platform namespace there could be claimed by a signup.
    throw new ConfigError([`OPERATOR_NAMESPACE: must not start with "${tenantNamespacePrefix}"`]);
  }
  const pg = new URL(raw.POSTGRES_URL);
  const amqp = new URL(raw.RABBITMQ_URL);
  return {
    namespace: raw.OPERATOR_NAMESPACE,
    secretsNamespace: raw.PLATFORM_SECRETS_NAMESPACE ?? raw.OPERATOR_NAMESPACE,
    postgresAdminUrl: raw.POSTGRES_URL,
    /** The server tenant databases live on, as the operator reaches it (status.database.server). */
    databaseServer: `${pg.hostname}:${pg.port || 5432}`,
    /** How tenant workloads and the API reach PostgreSQL (may differ from the operator's own route). */
    tenantDb: {
      host: raw.TENANT_DB_HOST ?? pg.hostname,
      port: raw.TENANT_DB_PORT ?? Number(pg.port || 5432),
      cidrs: raw.POSTGRES_CIDRS,
    },
    rabbitmq: {
      managementUrl: raw.RABBITMQ_MANAGEMENT_URL,
      vhost: raw.RABBITMQ_VHOST,
      host: raw.TENANT_AMQP_HOST ?? amqp.hostname,
      port: raw.TENANT_AMQP_PORT ?? Number(amqp.port || (amqp.protocol === 'amqps:' ? 5671 : 5672)),
      tls: amqp.protocol === 'amqps:',
      cidrs: raw.RABBITMQ_CIDRS,
    },
    workerImage: raw.WORKER_IMAGE,
    workerTelemetryEnv: workerTelemetryEnv(environment),
    resyncMs: raw.RESYNC_SECONDS * 1000,
    reconcileConcurrency: raw.RECONCILE_CONCURRENCY,
    migrationConcurrency: raw.MIGRATION_CONCURRENCY,
    http: { host: raw.HTTP_HOST, port: raw.HTTP_PORT },
    metrics: {
      host: raw.METRICS_HOST,
      port: raw.METRICS_PORT,
      scrapeNamespaces: raw.METRICS_SCRAPE_NAMESPACES,
    },
    signingKeys: {
      rotateAfterMs: Math.max(1, Math.round(raw.SIGNING_KEY_ROTATION_DAYS * 86_400_000)),
      retireAfterMs: Math.max(1, Math.round(raw.SIGNING_KEY_RETIRE_AFTER_HOURS * 3_600_000)),
      publishAheadMs: raw.SIGNING_KEY_PUBLISH_AHEAD_SECONDS * 1000,
      checkIntervalMs: raw.SIGNING_KEY_CHECK_SECONDS * 1000,
    },
    leaderElection: {
      enabled: raw.LEADER_ELECTION,
      leaseName: raw.LEASE_NAME,
      leaseDurationSeconds: raw.LEASE_DURATION_SECONDS,
      identity: raw.POD_NAME,
    },
  };
}

/**
 * The OTEL_* variables the operator passes on to tenant workers, so one setting traces the whole
 * platform; OTEL_SERVICE_NAME stays the operator's (a worker names itself tenantry-worker).
 */
export function workerTelemetryEnv(environment: NodeJS.ProcessEnv): { name: string; value: string }[] {
  return Object.entries(environment)
    .filter(
      (e): e is [string, string] =>
        e[0].startsWith('OTEL_') && e[0] !== 'OTEL_SERVICE_NAME' && e[1] !== undefined,
    )
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, value]) => ({ name, value }));
}
