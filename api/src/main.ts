// Composition root of the shared API.
import { readFileSync, watchFile } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { ConfigError } from '../../lib/config.js';
import { createLogger } from '../../lib/logger.js';
import { createApp } from './app.js';
import { generateSigningKey, InMemoryKeySetSource, parseKeySet } from './auth/keys.js';
import { Sessions } from './auth/sessions.js';
import { TokenService } from './auth/tokens.js';
import { loadApiConfig } from './config.js';
import { RateLimits } from './ratelimit/rate-limits.js';
import { TenantDatabases } from './tenancy/tenant-databases.js';
import { TenantDirectory } from './tenancy/tenant-directory.js';

function main(): void {
  const config = loadApiConfig();
  const log = createLogger('api');
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();

  const keys = new InMemoryKeySetSource();
  if (config.jwt.keysFile) {
    const file = config.jwt.keysFile;
    const load = () => keys.replace(parseKeySet(readFileSync(file, 'utf8')));
    load();
    // A mounted Secret is updated in place when keys rotate.
    watchFile(file, { interval: 10_000 }, () => {
      try {
        load();
        log.info('reloaded the signing keys');
      } catch (error) {
        log.error({ err: String(error) }, 'could not reload the signing keys; keeping the previous set');
      }
    });
  } else {
    log.warn('JWT_KEYS_FILE is not set: using a signing key generated for this process only (development)');
    keys.replace([generateSigningKey(new Date())]);
  }

  const tokens = new TokenService({
    keys,
    issuer: config.jwt.issuer,
    audience: config.jwt.audience,
    accessTokenTtlSeconds: config.jwt.accessTokenTtlSeconds,
  });
  const directory = new TenantDirectory(kubeConfig, config.platformNamespace, log, {
    resyncMs: config.resyncMs,
  });
  const databases = new TenantDatabases(directory, config.pools, log);
  const redis = new Redis(config.redisUrl, {
    maxRetriesPerRequest: 2,
    enableOfflineQueue: false,
    lazyConnect: false,
  });
  redis.on('error', (error) => log.warn({ err: error.message }, 'redis error'));
  const sessions = new Sessions(tokens, directory, databases, {
    refreshTokenTtlMs: config.jwt.refreshTokenTtlMs,
    ...(config.platformAdmin ? { platformAdmin: config.platformAdmin } : {}),
  });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tenantry_api_' });

  directory.start();
  const app = createApp({
    log,
    tokens,
    keys,
    sessions,
    directory,
    databases,
    registry,
    rateLimits: new RateLimits({ redis, log }),
    trustProxy: config.trustProxy,
    bodyLimitBytes: config.bodyLimitBytes,
    checkDependencies: async () => ({
      kubernetes: {
        ok: directory.synced,
        ...(directory.synced ? {} : { detail: 'tenant directory not synced yet' }),
      },
      redis: await redis.ping().then(
        () => ({ ok: true }),
        () => ({ ok: false, detail: 'redis does not answer' }),
      ),
    }),
  });
  const server = app.listen(config.port, config.host, () => {
    log.info({ port: config.port }, 'api started');
  });

  const shutdown = () => {
    log.info('shutting down: draining requests');
    server.close(() => {
      void Promise.allSettled([directory.stop(), databases.closeAll(), redis.quit()]).then(() =>
        process.exit(0),
      );
    });
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 25_000).unref();
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

try {
  main();
} catch (error) {
  if (error instanceof ConfigError) console.error(error.message);
  else console.error('api failed to start:', error);
  process.exit(1);
}
