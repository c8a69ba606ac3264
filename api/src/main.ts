// Composition root of the shared API.
import { readFileSync, watchFile } from 'node:fs';
import { loadKubeConfig } from '../../lib/kube/kube-config.js';
import { Redis } from 'ioredis';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { ConfigError } from '../../lib/config.js';
import { createLogger } from '../../lib/logger.js';
import { lookupHost } from '../../lib/outbound-address.js';
import { createApp } from './app.js';
import { InMemoryKeySetSource, parseKeySet, type KeySetSource } from './auth/keys.js';
import { passwordHashing } from './auth/password-hashing.js';
import { PasswordResets } from './auth/password-resets.js';
import { Registrations } from './auth/registrations.js';
import { Sessions } from './auth/sessions.js';
import { SigningKeySecret } from './auth/signing-key-secret.js';
import { TokenService } from './auth/tokens.js';
import { loadApiConfig } from './config.js';
import { OutboxMailer, UndeliverableMailer } from './mail/mailer.js';
import { RateLimits } from './ratelimit/rate-limits.js';
import { OwnerProvisioner } from './signup/owner-provisioning.js';
import { PendingOwners } from './signup/pending-owners.js';
import { Signups } from './signup/signups.js';
import { KubernetesClientSecrets } from './sso/client-secrets.js';
import { SsoHandoff } from './sso/handoff.js';
import { OidcService } from './sso/oidc.js';
import { SamlService } from './sso/saml.js';
import { RedisExpiringStore } from './sso/store.js';
import { TenantDatabases } from './tenancy/tenant-databases.js';
import { TenantAdmin } from './tenancy/tenant-admin.js';
import { TenantDirectory } from './tenancy/tenant-directory.js';
import { TenantResources } from './tenancy/tenant-resources.js';

function main(): void {
  const config = loadApiConfig();
  const log = createLogger('api');
  const kubeConfig = loadKubeConfig();

  let keys: KeySetSource;
  // Without a key file the keys come from the operator's Secret, watched; not ready until they arrive.
  let keySecret: SigningKeySecret | undefined;
  if (config.jwt.keysFile) {
    const file = config.jwt.keysFile;
    const fileKeys = new InMemoryKeySetSource();
    keys = fileKeys;
    const load = () => fileKeys.replace(parseKeySet(readFileSync(file, 'utf8')));
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
    keySecret = new SigningKeySecret(kubeConfig, config.secretsNamespace, log, {
      resyncMs: config.resyncMs,
    });
    keys = keySecret.keys;
  }

  const tokens = new TokenService({
    keys,
    issuer: config.jwt.issuer,
    audience: config.jwt.audience,
    accessTokenTtlSeconds: config.jwt.accessTokenTtlSeconds,
  });
  const directory = new TenantDirectory(kubeConfig, config.secretsNamespace, log, {
    resyncMs: config.resyncMs,
  });
  const databases = new TenantDatabases(directory, config.pools, log);
  const redis = new Redis(config.redisUrl, {
    maxRetriesPerRequest: 2,
    enableOfflineQueue: false,
    lazyConnect: false,
    // Commands issued in the same turn of the event loop (the rate limiters of concurrent requests)
    // leave in one write.
    enableAutoPipelining: true,
  });
  redis.on('error', (error) => log.warn({ err: error.message }, 'redis error'));
  // SAML request IDs, replay caches, OIDC states and hand-off codes, shared by every replica.
  const ssoStore = new RedisExpiringStore(redis, 'sso:');
  if (config.webhooks.allowLoopback)
    log.warn('WEBHOOKS_ALLOW_LOOPBACK is on: webhook endpoints may be http and loopback (development)');
  if (config.sso.allowPrivateIdps)
    log.warn('SSO_ALLOW_PRIVATE_IDPS is on: IdP URLs may be http and private (development)');
  const sessions = new Sessions(tokens, directory, databases, {
    refreshTokenTtlMs: config.jwt.refreshTokenTtlMs,
    ...(config.platformAdmin ? { platformAdmin: config.platformAdmin } : {}),
  });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tenantry_api_' });
  passwordHashing.configure(config.passwordHashing);
  new Gauge({
    name: 'tenantry_api_password_hashes_waiting',
    help: 'Password hashes and verifications waiting for the hashing budget (PASSWORD_HASH_CONCURRENCY)',
    registers: [registry],
    collect() {
      this.set(Object.values(passwordHashing.state().waiting).reduce((sum, n) => sum + n, 0));
    },
  });

  // Mail: a file outbox in development; SMTP is not written yet (api/README.md).
  const mailer = config.mail.outboxDir
    ? new OutboxMailer(config.mail.outboxDir, config.mail.from, log)
    : new UndeliverableMailer(log);
  if (!config.mail.outboxDir)
    log.warn('MAIL_OUTBOX_DIR is not set: password-reset, owner and registration mails are dropped');
  const tenantResources = new TenantResources(kubeConfig);
  const passwordResets = new PasswordResets({
    redis,
    directory,
    databases,
    sessions,
    mailer,
    log,
    publicBaseUrl: config.publicBaseUrl,
    ...config.passwordReset,
  });
  const registrations = new Registrations({
    redis,
    directory,
    databases,
    mailer,
    log,
    publicBaseUrl: config.publicBaseUrl,
    ...config.registration,
  });
  const pendingOwners = new PendingOwners(redis, config.signup.pendingTtlMs);
  const ownerProvisioner = new OwnerProvisioner({
    directory,
    databases,
    resources: tenantResources,
    pendingOwners,
    passwordResets,
    log,
  });

  directory.start();
  keySecret?.start();
  ownerProvisioner.start();
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
  const server = app.listen(config.port, config.host, () => {
    const address = server.address();
    log.info({ port: typeof address === 'object' && address ? address.port : config.port }, 'api started');
  });
  server.keepAliveTimeout = config.keepAliveMs;

  const shutdown = () => {
    log.info('shutting down: draining requests');
    server.close(() => {
      void ownerProvisioner
        .stop()
        .finally(() =>
          Promise.allSettled([directory.stop(), keySecret?.stop(), databases.closeAll(), redis.quit()]),
        )
        .then(() => process.exit(0));
    });
    // Keep-alive connections become idle as their last request finishes; close them as they do.
    setInterval(() => server.closeIdleConnections(), 100).unref();
    setTimeout(() => {
      log.warn('requests still running after 25 s; exiting');
      process.exit(1);
    }, 25_000).unref();
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
