// Composition root of the tenant worker: outbox relays (woken by the outbox
// listener, polling as the fallback) and webhook deliverer against the
// tenant's own database and RabbitMQ user, with probes on HTTP_PORT and
// /metrics on METRICS_PORT. SIGTERM drains in-flight deliveries, then exits.
// Tracing first: it must be set up before the modules it instruments load.
import { telemetry } from './telemetry.js';
import pg from 'pg';
import { startHealthServer, startMetricsServer } from '../../lib/health-server.js';
import { createLogger } from '../../lib/logger.js';
import { loadWorkerConfig } from './config.js';
import { Deliverer } from './deliverer.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { HttpSender } from './http-sender.js';
import { createIntegrationEngine } from './integrations/integration-engine.js';
import { createWorkerMetrics } from './metrics.js';
import { outboxBacklog } from './outbox-backlog.js';
import { OutboxListener } from './outbox-listener.js';
import { OutboxRelay } from './outbox-relay.js';
import { RetrySchedule } from './schedule.js';
import { webhookTopology } from './topology.js';
import { WebhookStore } from './webhook-store.js';

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const logger = createLogger('tenantry-worker').child({ tenant: config.tenant });
  for (const warning of config.deprecations) logger.warn(warning);
  const pool = new pg.Pool({
    connectionString: config.databaseUrl,
    max: config.dbPoolMax,
    connectionTimeoutMillis: 5_000,
  });
  // An idle client losing its connection (a database restart) must not crash the process.
  pool.on('error', (error) => logger.warn({ err: error.message }, 'idle database connection lost'));
  const schedule = new RetrySchedule(config.delivery.schedule);
  const topology = webhookTopology(config.queuePrefix, schedule.tiers);
  const store = new WebhookStore(pool);
  const d = config.delivery;
  // The relays are created below; the metrics read them only when scraped, after start-up.
  const metrics = createWorkerMetrics({
    relayed: { webhooks: () => relay.relayed, integrations: () => integrations.relay.relayed },
    outboxBacklog: () => outboxBacklog(pool),
    ready: () => isReady(),
  });
  const deliverer = new Deliverer({
    amqpUrl: config.amqpUrl,
    topology,
    schedule,
    store,
    sender: new HttpSender({ timeoutMs: d.timeoutMs, allowLoopback: d.allowLoopback }),
    gate: new CircuitBreaker({
      concurrency: d.endpointConcurrency,
      maxHeld: d.endpointConcurrency * 2,
      failureThreshold: d.breakerThreshold,
      cooldownMs: d.breakerCooldownMs,
    }),
    prefetch: d.prefetch,
    disableAfterMs: d.disableAfterMs,
    logger,
    onAttempt: metrics.onAttempt,
  });
  const relay = new OutboxRelay({
    amqpUrl: config.amqpUrl,
    topology,
    store,
    batchSize: config.outbox.batchSize,
    pollIntervalMs: config.outbox.pollIntervalMs,
    logger,
  });
  const integrations = createIntegrationEngine({
    tenant: config.tenant,
    pool,
    amqpUrl: config.amqpUrl,
    queuePrefix: config.queuePrefix,
    settings: config.integrations,
    logger,
    onOutcome: metrics.onOutcome,
  });
  const listener = new OutboxListener({
    connectionString: config.databaseUrl,
    logger,
    // Each relay wakes for its own topics (integration.* or the rest), and both after a reconnect.
    onNotify: (topicRoot) => {
      if (topicRoot !== 'integration') relay.poke();
      if (topicRoot === undefined || topicRoot === 'integration') integrations.relay.poke();
    },
  });
  function isReady(): boolean {
    return deliverer.ready && relay.ready && integrations.ready;
  }
  const health = await startHealthServer({ host: config.http.host, port: config.http.port, isReady });
  const scrape = await startMetricsServer({
    registry: metrics.registry,
    host: config.metrics.host,
    port: config.metrics.port,
  });
  logger.info(
    {
      port: health.port,
      metricsPort: scrape.port,
      queuePrefix: config.queuePrefix,
      schedule: schedule.delays,
    },
    'worker started',
  );
  deliverer.start();
  relay.start();
  integrations.start();
  listener.start();

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining');
    await listener.stop();
    await relay.stop();
    await Promise.all([
      deliverer.drain(config.shutdownTimeoutMs),
      integrations.stop(config.shutdownTimeoutMs),
    ]);
    await health.close();
    await scrape.close();
    await pool.end();
    await telemetry.shutdown();
    logger.info('stopped');
    process.exit(0);
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => void shutdown(signal));
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
