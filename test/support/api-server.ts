// The shared API in-process, wired like main.ts but from explicit settings, on
// an ephemeral loopback port, against the real control plane and PostgreSQL.
import type { AddressInfo } from 'node:net';
import { loadKubeConfig } from '../../lib/kube/kube-config.js';
import { Registry } from 'prom-client';
import { createLogger } from '../../lib/logger.js';
import type { Express } from 'express';
import { createApp } from '../../api/src/app.js';
import { generateSigningKey, InMemoryKeySetSource } from '../../api/src/auth/keys.js';
import { Sessions } from '../../api/src/auth/sessions.js';
import { SigningKeySecret } from '../../api/src/auth/signing-key-secret.js';
import { TokenService } from '../../api/src/auth/tokens.js';
import { TenantDatabases } from '../../api/src/tenancy/tenant-databases.js';
import { TenantDirectory } from '../../api/src/tenancy/tenant-directory.js';
import { RateLimits } from '../../api/src/ratelimit/rate-limits.js';
import { PasswordResets } from '../../api/src/auth/password-resets.js';
import { Registrations } from '../../api/src/auth/registrations.js';
import { OwnerProvisioner } from '../../api/src/signup/owner-provisioning.js';
import { PendingOwners } from '../../api/src/signup/pending-owners.js';
import { Signups } from '../../api/src/signup/signups.js';
import { TenantAdmin } from '../../api/src/tenancy/tenant-admin.js';
import { TenantResources } from '../../api/src/tenancy/tenant-resources.js';
import { MemoryMailer } from './mailer.js';
import { KubernetesClientSecrets } from '../../api/src/sso/client-secrets.js';
import { SsoHandoff } from '../../api/src/sso/handoff.js';
import { OidcService } from '../../api/src/sso/oidc.js';
import { SamlService } from '../../api/src/sso/saml.js';
import { RedisExpiringStore } from '../../api/src/sso/store.js';
import { defaultWebhookSettings } from '../../api/src/webhooks/endpoints.js';
import { serviceUrls, uniqueSuffix } from './services.js';
import { eventually } from './wait.js';
import { Redis } from 'ioredis';

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
}

export interface TestApi {
  url: string;
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
  const log = createLogger('api-test', 'silent');
  const kubeConfig = loadKubeConfig(kubeconfigPath);
  const keySecret = options.signingKeysFromSecret
    ? new SigningKeySecret(kubeConfig, platformNamespace, log, { resyncMs: 30_000 })
    : undefined;
  const keys = keySecret?.keys ?? new InMemoryKeySetSource([generateSigningKey(new Date())]);
  keySecret?.start();
  const issuer = 'http://127.0.0.1';
  const tokens = new TokenService({ keys, issuer, audience: 'tenantry-api' });
  const directory = new TenantDirectory(kubeConfig, platformNamespace, log, { resyncMs: 30_000 });
  const databases = new TenantDatabases(
    directory,
    {
      maxTenants: options.tenantPoolsMax ?? 10,
      poolMax: 4,
      idleMs: 10_000,
      acquireTimeoutMs: 5000,
      statementTimeoutMs: 10_000,
    },
    log,
  );
  const sessions = new Sessions(tokens, directory, databases, {
    refreshTokenTtlMs: 86_400_000,
    platformAdmin: platformAdminClient,
  });
  const redis = new Redis(serviceUrls.redis, { maxRetriesPerRequest: 1 });
  const ssoStore = new RedisExpiringStore(redis, `test:sso:${uniqueSuffix()}:`);
  const mailer = new MemoryMailer();
  const tenantResources = new TenantResources(kubeConfig);
  const passwordResets = new PasswordResets({
    redis,
    directory,
    databases,
    sessions,
    mailer,
    log,
    publicBaseUrl,
    prefix: `test:pwreset:${uniqueSuffix()}:`,
    minResponseMs: options.passwordResetMinResponseMs ?? 150,
    ...(options.passwordResetTtlMs === undefined ? {} : { ttlMs: options.passwordResetTtlMs }),
  });
  const registrations = new Registrations({
    redis,
    directory,
    databases,
    mailer,
    log,
    publicBaseUrl,
    prefix: `test:register:${uniqueSuffix()}:`,
    minResponseMs: options.registrationMinResponseMs ?? 300,
  });
  const pendingOwners = new PendingOwners(redis, 3_600_000, `test:signup:${uniqueSuffix()}:`);
  const provisioner = new OwnerProvisioner({
    directory,
    databases,
    resources: tenantResources,
    pendingOwners,
    passwordResets,
    log,
    intervalMs: 300,
    select: options.ownerProvisioning?.select ?? (() => false),
  });
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
    trustProxy: options.trustProxy ?? false,
    bodyLimitBytes: 64 * 1024,
    passwordResets,
    registrations,
    signups: options.signupEnabled
      ? new Signups({
          resources: tenantResources,
          directory,
          pendingOwners,
          provisioner,
          log,
          plan: 'free',
        })
      : undefined,
    tenantAdmin: new TenantAdmin(tenantResources, directory),
    sso: {
      saml: new SamlService({ publicBaseUrl, store: ssoStore }),
      // The test IdPs run on loopback over http.
      oidc: new OidcService({ publicBaseUrl, store: ssoStore, allowPrivateIssuers: true }),
      handoff: new SsoHandoff(ssoStore),
      clientSecrets: new KubernetesClientSecrets(kubeConfig, platformNamespace).get,
      publicBaseUrl,
      returnUrl: `${publicBaseUrl}/sso/complete`,
    },
    webhooks: {
      ...defaultWebhookSettings,
      allowLoopback: options.webhooksAllowLoopback ?? false,
      replayLimit: options.webhooksReplayLimit ?? defaultWebhookSettings.replayLimit,
    },
    checkDependencies: () =>
      Promise.resolve({
        kubernetes: { ok: directory.synced },
        ...(keySecret ? { signing_keys: keySecret.check() } : {}),
      }),
  });
  if (options.ownerProvisioning) provisioner.start();
  const server = app.listen(0, '127.0.0.1');
  await new Promise((ok) => server.once('listening', ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    app,
    url,
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
      await provisioner.stop();
      await directory.stop();
      await keySecret?.stop();
      await databases.closeAll();
      redis.disconnect();
    },
  };
}
