// The shared API in-process, built by buildApi like main.ts but from explicit
// settings, on an ephemeral loopback port, against the real control plane,
// PostgreSQL and Redis.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { startMetricsServer } from '../../lib/health-server.js';
import { loadKubeConfig } from '../../lib/kube/kube-config.js';
import { createLogger } from '../../lib/logger.js';
import { generateSigningKey, InMemoryKeySetSource } from '../../api/src/auth/keys.js';
import type { TokenService } from '../../api/src/auth/tokens.js';
import { buildApi } from '../../api/src/build.js';
import { loadApiConfig, type ApiConfig } from '../../api/src/config.js';
import type { TenantDatabases } from '../../api/src/tenancy/tenant-databases.js';
import type { TenantDirectory } from '../../api/src/tenancy/tenant-directory.js';
import { MemoryMailer } from './mailer.js';
import { serviceUrls, uniqueSuffix } from './services.js';
import { eventually } from './wait.js';

export interface TestApiOptions {
  /**
   * The public origin SSO URLs are built on (SAML entity ID and ACS, OIDC
   * redirect URI, discovery login URLs). Nothing listens there: tests post to
   * `url` what a browser would post to it. https by default, so the secure
   * cookie rules apply.
   */
  publicBaseUrl?: string;
  /** Self-service signup (off by default, like SIGNUP_ENABLED). */
  signupEnabled?: boolean;
  /**
   * Runs the owner provisioner for the tenants `select` accepts (off by
   * default: it would create owners that other suites seed themselves).
   */
  ownerProvisioning?: { select: (tenant: string) => boolean };
  /** Password-reset token lifetime; default 30 minutes. */
  passwordResetTtlMs?: number;
  /** Floor of a reset request's response time; default 150 ms. */
  passwordResetMinResponseMs?: number;
  /** Floor of a register request's response time; default 300 ms. */
  registrationMinResponseMs?: number;
  /**
   * Take the signing keys from the operator's Secret in the platform namespace,
   * watched like main.ts does without JWT_KEYS_FILE (default: one generated key).
   */
  signingKeysFromSecret?: boolean;
  /** Lets webhook endpoints use http and loopback addresses (WEBHOOKS_ALLOW_LOOPBACK); default off. */
  webhooksAllowLoopback?: boolean;
  /** Most messages one replay re-enqueues; default 1000. */
  webhooksReplayLimit?: number;
  /** Express `trust proxy` (TRUST_PROXY); default false. `true` lets a test pick its address with X-Forwarded-For. */
  trustProxy?: boolean;
  /** Tenant pools kept open (TENANT_POOLS_MAX); default 10. */
  tenantPoolsMax?: number;
  /** Where the operator copies the tenants' credentials (PLATFORM_SECRETS_NAMESPACE); default the platform namespace. */
  secretsNamespace?: string;
}

export interface TestApi {
  url: string;
  /** The metrics listener (METRICS_PORT), apart from `url` like in main.ts. */
  metricsUrl: string;
  /** The text /metrics on metricsUrl answers. */
  metrics(): Promise<string>;
  /** The Express application, for tests that inspect its routes. */
  app: Express;
  /** See TestApiOptions; SSO hand-off redirects go to `<publicBaseUrl>/sso/complete`. */
  publicBaseUrl: string;
  tokens: TokenService;
  keys: InMemoryKeySetSource;
  directory: TenantDirectory;
  databases: TenantDatabases;
  /** Every mail the API sent. */
  mailer: MemoryMailer;
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

export async function startTestApi(
  kubeconfigPath: string,
  platformNamespace: string,
  options: TestApiOptions = {},
): Promise<TestApi> {
  const publicBaseUrl = options.publicBaseUrl ?? 'https://app.tenantry.test';
  const mailer = new MemoryMailer();
  // Listening first, so the token issuer is the URL the API answers at, as in production: OAuth
  // clients find the metadata under the issuer (RFC 8414).
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await new Promise((ok) => server.once('listening', ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const api = buildApi(testApiConfig(platformNamespace, publicBaseUrl, url, options), {
    log: createLogger('api-test', 'silent'),
    kubeConfig: loadKubeConfig(kubeconfigPath),
    // One generated key, unless the test watches the operator's Secret like main.ts without JWT_KEYS_FILE.
    ...(options.signingKeysFromSecret
      ? {}
      : { keys: new InMemoryKeySetSource([generateSigningKey(new Date())]) }),
    mailer,
    redisKeyPrefix: `test:${uniqueSuffix()}:`,
    redisOptions: { maxRetriesPerRequest: 1 },
    responseFloors: {
      passwordResetMs: options.passwordResetMinResponseMs ?? 150,
      registrationMs: options.registrationMinResponseMs ?? 300,
    },
    ownerProvisioning: options.ownerProvisioning
      ? { intervalMs: 300, select: options.ownerProvisioning.select }
      : false,
  });
  api.start();
  const { app, tokens, keys, directory, databases } = api;
  await eventually('the tenant directory to sync', () =>
    Promise.resolve(directory.synced ? true : undefined),
  );
  server.on('request', app);
  const scrape = await startMetricsServer({ registry: api.registry, host: '127.0.0.1', port: 0 });
  const metricsUrl = `http://127.0.0.1:${scrape.port}`;
  return {
    app,
    url,
    metricsUrl,
    metrics: async () => (await fetch(`${metricsUrl}/metrics`)).text(),
    publicBaseUrl,
    tokens,
    keys,
    directory,
    databases,
    mailer,
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
      await scrape.close();
      await api.stop();
    },
  };
}

/** The configuration of a test API: the defaults of loadApiConfig, and what tests run with. */
function testApiConfig(
  platformNamespace: string,
  publicBaseUrl: string,
  issuer: string,
  options: TestApiOptions,
): ApiConfig {
  const defaults = loadApiConfig({});
  return {
    ...defaults,
    publicBaseUrl,
    platformNamespace,
    secretsNamespace: options.secretsNamespace ?? platformNamespace,
    redisUrl: serviceUrls.redis,
    jwt: { ...defaults.jwt, issuer, refreshTokenTtlMs: 86_400_000 },
    trustProxy: options.trustProxy ?? false,
    pools: {
      maxTenants: options.tenantPoolsMax ?? 10,
      poolMax: 4,
      idleMs: 10_000,
      acquireTimeoutMs: 5000,
      statementTimeoutMs: 10_000,
    },
    bodyLimitBytes: 64 * 1024,
    signupEnabled: options.signupEnabled ?? false,
    signup: { plan: 'free', pendingTtlMs: 3_600_000 },
    passwordReset: {
      ...defaults.passwordReset,
      ...(options.passwordResetTtlMs === undefined ? {} : { ttlMs: options.passwordResetTtlMs }),
    },
    platformAdmin: platformAdminClient,
    resyncMs: 30_000,
    // The test IdPs run on loopback over http.
    sso: { returnUrl: `${publicBaseUrl}/sso/complete`, allowPrivateIdps: true },
    webhooks: {
      allowLoopback: options.webhooksAllowLoopback ?? false,
      replayLimit: options.webhooksReplayLimit ?? defaults.webhooks.replayLimit,
    },
  };
}
