// The shared API in-process, wired like main.ts but from explicit settings, on
// an ephemeral loopback port, against the real control plane and PostgreSQL.
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { createLogger } from '../../lib/logger.js';
import { createApp } from '../../api/src/app.js';
import { generateSigningKey, InMemoryKeySetSource } from '../../api/src/auth/keys.js';
import { Sessions } from '../../api/src/auth/sessions.js';
import { TokenService } from '../../api/src/auth/tokens.js';
import { TenantDatabases } from '../../api/src/tenancy/tenant-databases.js';
import { TenantDirectory } from '../../api/src/tenancy/tenant-directory.js';
import { RateLimits } from '../../api/src/ratelimit/rate-limits.js';
import { serviceUrls, uniqueSuffix } from './services.js';
import { eventually } from './wait.js';
import { Redis } from 'ioredis';

export interface TestApi {
  url: string;
  tokens: TokenService;
  keys: InMemoryKeySetSource;
  directory: TenantDirectory;
  databases: TenantDatabases;
  call(
    method: string,
    path: string,
    options?: { token?: string; body?: unknown; headers?: Record<string, string> },
  ): Promise<{
    status: number;
    headers: Headers;
    body: any;
  }>;
  close(): Promise<void>;
}

export const platformAdminClient = {
  clientId: 'platform-admin-test',
  clientSecret: 'platform-admin-secret-0123456789abcdef',
};

export async function startTestApi(kubeconfigPath: string, platformNamespace: string): Promise<TestApi> {
  const log = createLogger('api-test', 'silent');
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfigPath);
  const keys = new InMemoryKeySetSource([generateSigningKey(new Date())]);
  const issuer = 'http://127.0.0.1';
  const tokens = new TokenService({ keys, issuer, audience: 'tenantry-api' });
  const directory = new TenantDirectory(kubeConfig, platformNamespace, log, { resyncMs: 30_000 });
  const databases = new TenantDatabases(
    directory,
    { maxTenants: 10, poolMax: 4, idleMs: 10_000, acquireTimeoutMs: 5000, statementTimeoutMs: 10_000 },
    log,
  );
  const sessions = new Sessions(tokens, directory, databases, {
    refreshTokenTtlMs: 86_400_000,
    platformAdmin: platformAdminClient,
  });
  const redis = new Redis(serviceUrls.redis, { maxRetriesPerRequest: 1 });
  directory.start();
  await eventually('the tenant directory to sync', () =>
    Promise.resolve(directory.synced ? true : undefined),
  );
  const app = createApp({
    log,
    tokens,
    keys,
    sessions,
    directory,
    databases,
    registry: new Registry(),
    rateLimits: new RateLimits({ redis, prefix: `test:rl:${uniqueSuffix()}:`, log }),
    trustProxy: false,
    bodyLimitBytes: 64 * 1024,
    checkDependencies: () => Promise.resolve({ kubernetes: { ok: directory.synced } }),
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((ok) => server.once('listening', ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    tokens,
    keys,
    directory,
    databases,
    call: async (method, path, options = {}) => {
      const headers: Record<string, string> = { ...options.headers };
      if (options.token) headers.authorization = `Bearer ${options.token}`;
      let body: string | undefined;
      if (options.body !== undefined) {
        body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
        headers['content-type'] ??= 'application/json';
      }
      const response = await fetch(`${url}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
      });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // not JSON; keep the text
      }
      return { status: response.status, headers: response.headers, body: parsed };
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
      await directory.stop();
      await databases.closeAll();
      redis.disconnect();
    },
  };
}
