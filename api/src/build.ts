// The API's object graph, built in one place from the typed configuration:
// main.ts runs it, the tests and the benches run it in-process. Differences
// between them are configuration values; `ApiOverrides` holds only what a
// configuration value cannot say (an in-memory mailer, a Redis namespace per
// test run, response floors short enough for a test).
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Express } from 'express';
import { Redis, type RedisOptions } from 'ioredis';
import { Gauge, Registry } from 'prom-client';
import { loadKubeConfig } from '../../lib/kube/kube-config.js';
import { createLogger, type Logger } from '../../lib/logger.js';
import { lookupHost } from '../../lib/outbound-address.js';
import { createApp } from './app.js';
import { InMemoryKeySetSource, parseKeySet } from './auth/keys.js';
import { passwordHashing } from './auth/password-hashing.js';
import { PasswordResets } from './auth/password-resets.js';
import { Registrations } from './auth/registrations.js';
import { Sessions } from './auth/sessions.js';
import { SigningKeySecret } from './auth/signing-key-secret.js';
import { TokenService } from './auth/tokens.js';
import { RevokedAccessTokens } from './oauth/revoked-tokens.js';
import { TokenInspection } from './oauth/token-inspection.js';
import type { ApiConfig } from './config.js';
import { IntegrationEventIntake } from './integrations/integration-event-intake.js';
import { OrganizationMap } from './integrations/organization-map.js';
import { ProviderConfigs } from './integrations/provider-configs.js';
import { WebhookIntake } from './integrations/webhook-intake.js';
import { OutboxMailer, UndeliverableMailer, type Mailer } from './mail/mailer.js';
import { RateLimits } from './ratelimit/rate-limits.js';
import { OwnerProvisioner } from './signup/owner-provisioning.js';
import { PendingOwners } from './signup/pending-owners.js';
import { Signups } from './signup/signups.js';
import { KubernetesClientSecrets } from './sso/client-secrets.js';
import { SsoHandoff } from './sso/handoff.js';
import { OidcService } from './sso/oidc.js';
import { SamlService } from './sso/saml.js';
import { RedisExpiringStore } from './sso/store.js';
import { TenantAdmin } from './tenancy/tenant-admin.js';
import { TenantDatabases } from './tenancy/tenant-databases.js';
import { TenantDirectory } from './tenancy/tenant-directory.js';
import { TenantResources } from './tenancy/tenant-resources.js';

export interface ApiOverrides {
  /** Default: createLogger('api'). */
  log?: Logger;
  /** Default: loadKubeConfig() (in-cluster, or KUBECONFIG). */
  kubeConfig?: KubeConfig;
  /** Signing keys held by the caller; default: JWT_KEYS_FILE, watched, or else the operator's Secret. */
  keys?: InMemoryKeySetSource;
  /** Default: the outbox of MAIL_OUTBOX_DIR, or none (mails dropped with a warning). */
  mailer?: Mailer;
  /** Put before every Redis key the API writes, so concurrent test runs on one Redis stay apart; default none. */
  redisKeyPrefix?: string;
  /** Replaces the Redis client options of a replica. */
  redisOptions?: RedisOptions;
  /** Floors of the answers that must not tell accounts apart; default: the services' own. */
  responseFloors?: { passwordResetMs?: number; registrationMs?: number };
  /**
   * The owner provisioner's scan: `false` builds it without starting it (signup still asks it
   * for its own tenants); default: every Ready tenant, once a second.
   */
  ownerProvisioning?: false | { intervalMs: number; select: (tenant: string) => boolean };
}

export interface Api {
  app: Express;
  log: Logger;
  registry: Registry;
  tokens: TokenService;
  keys: InMemoryKeySetSource;
  directory: TenantDirectory;
  databases: TenantDatabases;
  /** Starts the watches and the owner provisioner; the app answers before the directory has synced (/readyz says so). */
  start(): void;
  /** Stops what start() started and closes the pools and Redis; call once the HTTP server has drained. */
  stop(): Promise<void>;
}

export function buildApi(config: ApiConfig, overrides: ApiOverrides = {}): Api {
  const log = overrides.log ?? createLogger('api');
  const kubeConfig = overrides.kubeConfig ?? loadKubeConfig();
  const { keys, keySecret, stopWatchingKeys } = signingKeys(config, kubeConfig, log, overrides.keys);
  const directory = new TenantDirectory(kubeConfig, config.secretsNamespace, log, {
    resyncMs: config.resyncMs,
  });
  const databases = new TenantDatabases(directory, config.pools, log);
  const redis = new Redis(
    config.redisUrl,
    overrides.redisOptions ?? {
      maxRetriesPerRequest: 2,
      enableOfflineQueue: false,
      lazyConnect: false,
      // Commands issued in the same turn of the event loop (the rate limiters of concurrent requests)
      // leave in one write.
      enableAutoPipelining: true,
    },
  );
  redis.on('error', (error) => log.warn({ err: error.message }, 'redis error'));
  const keyPrefix = overrides.redisKeyPrefix ?? '';
  const revokedTokens = new RevokedAccessTokens({ redis, prefix: `${keyPrefix}revoked-jti:`, log });
  const tokens = new TokenService({
    keys,
    issuer: config.jwt.issuer,
    audience: config.jwt.audience,
    accessTokenTtlSeconds: config.jwt.accessTokenTtlSeconds,
    revocations: revokedTokens,
  });
  // SAML request IDs, replay caches, OIDC states and hand-off codes, shared by every replica.
  const ssoStore = new RedisExpiringStore(redis, `${keyPrefix}sso:`);
  if (config.webhooks.allowLoopback)
    log.warn('WEBHOOKS_ALLOW_LOOPBACK is on: webhook endpoints may be http and loopback (development)');
  if (config.sso.allowPrivateIdps)
    log.warn('SSO_ALLOW_PRIVATE_IDPS is on: IdP URLs may be http and private (development)');
  const sessions = new Sessions(tokens, directory, databases, {
    refreshTokenTtlMs: config.jwt.refreshTokenTtlMs,
    ...(config.platformAdmin ? { platformAdmin: config.platformAdmin } : {}),
  });
  const registry = new Registry();
  new Gauge({
    name: 'tenantry_api_password_hashes_waiting',
    help: 'Password hashes and verifications waiting for the hashing budget (PASSWORD_HASH_CONCURRENCY)',
    registers: [registry],
    collect() {
      this.set(Object.values(passwordHashing.state().waiting).reduce((sum, n) => sum + n, 0));
    },
  });

  const mailer = overrides.mailer ?? configuredMailer(config, log);
  const tenantResources = new TenantResources(kubeConfig);
  const floors = overrides.responseFloors ?? {};
  const passwordResets = new PasswordResets({
    redis,
    directory,
    databases,
    sessions,
    mailer,
    log,
    publicBaseUrl: config.publicBaseUrl,
    ...config.passwordReset,
    prefix: `${keyPrefix}pwreset:`,
    ...(floors.passwordResetMs === undefined ? {} : { minResponseMs: floors.passwordResetMs }),
  });
  const registrations = new Registrations({
    redis,
    directory,
    databases,
    mailer,
    log,
    publicBaseUrl: config.publicBaseUrl,
    ...config.registration,
    prefix: `${keyPrefix}register:`,
    ...(floors.registrationMs === undefined ? {} : { minResponseMs: floors.registrationMs }),
  });
  const pendingOwners = new PendingOwners(redis, config.signup.pendingTtlMs, `${keyPrefix}signup:owner:`);
  const provisioning = overrides.ownerProvisioning;
  const ownerProvisioner = new OwnerProvisioner({
    directory,
    databases,
    resources: tenantResources,
    pendingOwners,
    passwordResets,
    log,
    ...(provisioning ? provisioning : {}),
  });
  const providerConfigs = new ProviderConfigs();
  const organizationMap = new OrganizationMap(directory, databases, log, registry);

  const app = createApp({
    log,
    tokens,
    keys,
    sessions,
    tokenInspection: new TokenInspection({
      tokens,
      directory,
      databases,
      revoked: revokedTokens,
      issuer: config.jwt.issuer,
    }),
    directory,
    databases,
    registry,
    rateLimits: new RateLimits({ redis, prefix: `${keyPrefix}rl:`, log }),
    trustProxy: config.trustProxy,
    bodyLimitBytes: config.bodyLimitBytes,
    passwordResets,
    registrations,
    signups: config.signupEnabled
      ? new Signups({
          resources: tenantResources,
          directory,
          pendingOwners,
          provisioner: ownerProvisioner,
          log,
          plan: config.signup.plan,
        })
      : undefined,
    tenantAdmin: new TenantAdmin(tenantResources, directory),
    sso: {
      saml: new SamlService({
        publicBaseUrl: config.publicBaseUrl,
        store: ssoStore,
        allowPrivateIdps: config.sso.allowPrivateIdps,
      }),
      oidc: new OidcService({
        publicBaseUrl: config.publicBaseUrl,
        store: ssoStore,
        allowPrivateIssuers: config.sso.allowPrivateIdps,
      }),
      handoff: new SsoHandoff(ssoStore),
      clientSecrets: new KubernetesClientSecrets(kubeConfig, config.secretsNamespace).get,
      publicBaseUrl: config.publicBaseUrl,
      returnUrl: config.sso.returnUrl,
    },
    webhooks: { ...config.webhooks, resolveHost: lookupHost },
    integrations: {
      configs: providerConfigs,
      organizations: organizationMap,
      intake: new WebhookIntake(
        directory,
        databases,
        providerConfigs,
        organizationMap,
        new IntegrationEventIntake(log),
      ),
    },
    checkDependencies: async () => ({
      ...(keySecret ? { signing_keys: keySecret.check() } : {}),
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

  return {
    app,
    log,
    registry,
    tokens,
    keys,
    directory,
    databases,
    start() {
      directory.start();
      keySecret?.start();
      if (provisioning !== false) ownerProvisioner.start();
    },
    async stop() {
      stopWatchingKeys();
      await ownerProvisioner
        .stop()
        .finally(() =>
          Promise.allSettled([directory.stop(), keySecret?.stop(), databases.closeAll(), redis.quit()]),
        );
    },
  };
}

/**
 * The given keys; or JWT_KEYS_FILE, reloaded when the mounted Secret changes; or else the operator's
 * Secret, watched (the API is not ready until the keys arrive).
 */
function signingKeys(
  config: ApiConfig,
  kubeConfig: KubeConfig,
  log: Logger,
  given: InMemoryKeySetSource | undefined,
): { keys: InMemoryKeySetSource; keySecret?: SigningKeySecret; stopWatchingKeys: () => void } {
  if (given) return { keys: given, stopWatchingKeys: () => undefined };
  const file = config.jwt.keysFile;
  if (!file) {
    const keySecret = new SigningKeySecret(kubeConfig, config.secretsNamespace, log, {
      resyncMs: config.resyncMs,
    });
    return { keys: keySecret.keys, keySecret, stopWatchingKeys: () => undefined };
  }
  const keys = new InMemoryKeySetSource();
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
  return { keys, stopWatchingKeys: () => unwatchFile(file) };
}

// Mail: a file outbox in development; SMTP is not written yet (api/README.md).
function configuredMailer(config: ApiConfig, log: Logger): Mailer {
  if (config.mail.outboxDir) return new OutboxMailer(config.mail.outboxDir, config.mail.from, log);
  log.warn('MAIL_OUTBOX_DIR is not set: password-reset, owner and registration mails are dropped');
  return new UndeliverableMailer(log);
}
