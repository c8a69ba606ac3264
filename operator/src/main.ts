// Composition root of the Tenant operator: configuration, clients, the
// reconciler behind a work queue fed by a self-healing Tenant watch, leader
// election, metrics and health endpoints, and graceful shutdown.
// Tracing first: it must be set up before the modules it instruments load.
import { telemetry } from './telemetry.js';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { ConfigError } from '../../lib/config.js';
import { nextRotationAt } from '../../lib/signing-keys.js';
import { loadKubeConfig } from '../../lib/kube/kube-config.js';
import { createLogger } from '../../lib/logger.js';
import { inSpan } from '../../lib/telemetry/index.js';
import { loadOperatorConfig } from './config.js';
import { randomPassword, type ControllerDeps } from './controller/context.js';
import { EventRecorder } from './controller/events.js';
import { TenantReconciler } from './controller/reconciler.js';
import { moveApiSecrets } from './controller/secrets-namespace.js';
import { PublicConnectCheck } from './controller/server-privileges.js';
import { SigningKeyRotation } from './controller/signing-key-rotation.js';
import { TenantWatch } from './controller/tenant-watch.js';
import { WorkerWatch } from './controller/worker-watch.js';
import { Cluster, describeKubeError, isNotFound } from './kube/cluster.js';
import { RabbitMqAdmin } from './messaging/rabbitmq-admin.js';
import { startHealthServer, startMetricsServer } from './runtime/health-server.js';
import { LeaderElector } from './runtime/leader-election.js';
import { createOperatorMetrics, setTenantPhaseCounts, workQueueMetricsHooks } from './runtime/metrics.js';
import { WorkQueue } from './runtime/work-queue.js';
import { runTenantMigrations, Semaphore } from './sql/schema-runner.js';
import { TenantDatabaseAdmin } from './sql/tenant-database.js';

async function main(): Promise<void> {
  const config = loadOperatorConfig();
  const log = createLogger('operator');
  const kubeConfig = loadKubeConfig();
  const cluster = new Cluster(kubeConfig);
  const db = new TenantDatabaseAdmin(config.postgresAdminUrl, {
    maxConnections: config.reconcileConcurrency + 2,
  });
  const mq = new RabbitMqAdmin(config.rabbitmq.managementUrl, config.rabbitmq.vhost);
  const metrics = createOperatorMetrics();
  const migrationSlots = new Semaphore(config.migrationConcurrency);

  const deps: ControllerDeps = {
    cluster,
    db,
    mq,
    migrate: async (names, options) =>
      (await runTenantMigrations(db, names, { slots: migrationSlots, ...options })).to,
    events: new EventRecorder(cluster.core, config.leaderElection.identity, log),
    log,
    build: {
      platformNamespace: config.namespace,
      secretsNamespace: config.secretsNamespace,
      workerImage: config.workerImage,
      workerTelemetryEnv: config.workerTelemetryEnv,
      postgres: { host: config.tenantDb.host, port: config.tenantDb.port, cidrs: config.tenantDb.cidrs },
      rabbitmq: { host: config.rabbitmq.host, port: config.rabbitmq.port, cidrs: config.rabbitmq.cidrs },
      metricsScrapeNamespaces: config.metrics.scrapeNamespaces,
    },
    endpoints: {
      postgres: { host: config.tenantDb.host, port: config.tenantDb.port },
      rabbitmq: {
        host: config.rabbitmq.host,
        port: config.rabbitmq.port,
        vhost: config.rabbitmq.vhost,
        tls: config.rabbitmq.tls,
      },
    },
    databaseServer: config.databaseServer,
    now: () => new Date(),
    newPassword: randomPassword,
  };
  const reconciler = new TenantReconciler(deps);
  const countPhases = () => {
    // A reconcile that ends after leadership was lost must not report again.
    if (!leading) return;
    const counts: Record<string, number> = {};
    for (const phase of reconciler.phases.values()) counts[phase] = (counts[phase] ?? 0) + 1;
    setTenantPhaseCounts(metrics, counts);
  };
  const queue = new WorkQueue({
    concurrency: config.reconcileConcurrency,
    baseDelayMs: 500,
    maxDelayMs: 60_000,
    handler: async (name) => {
      if (!leading) return undefined;
      // One trace per reconcile when tracing is on (lib/telemetry/); its log lines carry the trace id.
      const result = await inSpan(`reconcile Tenant`, { 'tenantry.tenant': name }, () =>
        reconciler.reconcile(name),
      ).finally(countPhases);
      return result.requeueAfterMs === undefined ? undefined : { requeueAfterMs: result.requeueAfterMs };
    },
    hooks: {
      ...workQueueMetricsHooks(metrics),
      onFailed: ({ key, error, failures, retryInMs }) => {
        metrics.reconcileErrors.inc();
        log.warn({ tenant: key, err: describeKubeError(error), failures, retryInMs }, 'reconcile failed');
      },
    },
  });
  // Only the leader watches and reconciles. Losing the lease stops the watch and
  // drops queued work; the elector keeps campaigning and a new term relists.
  let leading = false;
  let watch: TenantWatch | undefined;
  let workers: WorkerWatch | undefined;
  let signingKeys: SigningKeyRotation | undefined;
  const publicConnect = new PublicConnectCheck({
    db,
    gauge: metrics.databasesOpenToPublic,
    log,
    intervalMs: config.resyncMs,
  });
  const startLeading = () => {
    leading = true;
    metrics.leader.set(1);
    publicConnect.start();
    // The API's token signing keys (docs/operator.md, "API signing keys").
    signingKeys = new SigningKeyRotation({
      core: cluster.core,
      namespace: config.secretsNamespace,
      policy: {
        rotateAfterMs: config.signingKeys.rotateAfterMs,
        retireAfterMs: config.signingKeys.retireAfterMs,
        publishAheadMs: config.signingKeys.publishAheadMs,
      },
      intervalMs: config.signingKeys.checkIntervalMs,
      log,
      identity: config.leaderElection.identity,
      onChecked: (keys) => {
        const due = nextRotationAt(keys, config.signingKeys);
        if (due) metrics.signingKeyRotationDue.set(due.getTime() / 1000);
      },
    });
    signingKeys.start();
    watch = new TenantWatch(cluster, queue, log, { resyncMs: config.resyncMs });
    workers = new WorkerWatch(cluster, queue, log, { resyncMs: config.resyncMs });
    watch.start();
    workers.start();
  };
  const stopLeading = async () => {
    leading = false;
    const stopping = [watch, workers, signingKeys];
    watch = undefined;
    workers = undefined;
    signingKeys = undefined;
    for (const loop of stopping) await loop?.stop();
    await publicConnect.stop();
    // A standby reports no tenants and no key schedule, so alerts see only the leader's.
    metrics.leader.set(0);
    metrics.tenantsByPhase.reset();
    metrics.signingKeyRotationDue.reset();
  };

  await ensurePlatformNamespace(cluster, config.namespace, log);
  if (config.secretsNamespace !== config.namespace) {
    await ensurePlatformNamespace(cluster, config.secretsNamespace, log);
    // Upgrades from releases that kept them beside the admin credentials (docs/operator.md).
    await moveApiSecrets(cluster, config.namespace, config.secretsNamespace, log).catch((error: unknown) =>
      log.error({ err: describeKubeError(error) }, 'could not move the API-readable Secrets'),
    );
  }
  await mq
    .ensureVhost()
    .catch((error: unknown) => log.warn({ err: String(error) }, 'could not ensure the RabbitMQ vhost'));

  let elector: LeaderElector | undefined;
  let shuttingDown = false;
  const health = await startHealthServer({
    host: config.http.host,
    port: config.http.port,
    // A standby replica is ready to take over; the leader once it has listed the Tenants.
    isReady: () => !leading || (watch?.synced ?? false),
  });
  const scrape = await startMetricsServer({
    registry: metrics.registry,
    host: config.metrics.host,
    port: config.metrics.port,
  });
  log.info(
    {
      port: health.port,
      metricsPort: scrape.port,
      namespace: config.namespace,
      secretsNamespace: config.secretsNamespace,
    },
    'operator started',
  );

  const shutdown = async (code: number): Promise<void> => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info('shutting down');
    await stopLeading();
    const { drained } = await queue.shutDown({ drainTimeoutMs: 20_000 });
    if (!drained) log.warn('some reconciles were still running at shutdown');
    await elector?.stop();
    await db.close();
    await health.close();
    await scrape.close();
    await telemetry.shutdown();
    process.exit(code);
  };
  process.once('SIGTERM', () => void shutdown(0));
  process.once('SIGINT', () => void shutdown(0));

  if (config.leaderElection.enabled) {
    elector = new LeaderElector({
      api: kubeConfig.makeApiClient(CoordinationV1Api),
      namespace: config.namespace,
      leaseName: config.leaderElection.leaseName,
      identity: config.leaderElection.identity,
      leaseDurationSeconds: config.leaderElection.leaseDurationSeconds,
      renewDeadlineMs: Math.floor(config.leaderElection.leaseDurationSeconds * 1000 * 0.66),
      retryPeriodMs: Math.max(200, Math.floor(config.leaderElection.leaseDurationSeconds * 1000 * 0.13)),
      onStartedLeading: () => {
        log.info({ identity: config.leaderElection.identity }, 'became leader');
        startLeading();
      },
      onStoppedLeading: async () => {
        if (!shuttingDown) log.warn('lost leadership; standing by');
        await stopLeading();
      },
      onError: (error, phase) => log.warn({ err: describeKubeError(error), phase }, 'leader election error'),
    });
    elector.start();
  } else {
    startLeading();
  }
}

async function ensurePlatformNamespace(cluster: Cluster, name: string, log: ReturnType<typeof createLogger>) {
  try {
    await cluster.core.readNamespace({ name });
  } catch (error) {
    if (!isNotFound(error)) {
      log.warn({ err: describeKubeError(error) }, 'could not check the platform namespace');
      return;
    }
    await cluster.core.createNamespace({ body: { metadata: { name } } });
    log.info({ namespace: name }, 'created the platform namespace');
  }
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) console.error(error.message);
  else console.error('operator failed to start:', error);
  process.exit(1);
});
