// The API process: loads the configuration, builds the API (build.ts), serves it and shuts it down.
// Tracing first: it must be set up before the modules it instruments load.
import { telemetry } from './telemetry.js';
import { collectDefaultMetrics } from 'prom-client';
import { ConfigError } from '../../lib/config.js';
import { startMetricsServer } from '../../lib/health-server.js';
import { passwordHashing } from './auth/password-hashing.js';
import { buildApi } from './build.js';
import { loadApiConfig } from './config.js';

async function main(): Promise<void> {
  const config = loadApiConfig();
  // Process-wide: the hashing budget and the process metrics belong to the process, not to one API.
  passwordHashing.configure(config.passwordHashing);
  const api = buildApi(config);
  const { log } = api;
  collectDefaultMetrics({ register: api.registry, prefix: 'tenantry_api_' });
  // Its own port, so the public one never publishes the metrics and only Prometheus is let in.
  const scrape = await startMetricsServer({
    registry: api.registry,
    host: config.metrics.host,
    port: config.metrics.port,
  });

  api.start();
  const server = api.app.listen(config.port, config.host, () => {
    const address = server.address();
    log.info(
      { port: typeof address === 'object' && address ? address.port : config.port, metricsPort: scrape.port },
      'api started',
    );
  });
  server.keepAliveTimeout = config.keepAliveMs;

  const shutdown = () => {
    log.info('shutting down: draining requests');
    server.close(() => {
      void api
        .stop()
        .then(() => scrape.close())
        .then(() => telemetry.shutdown())
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

main().catch((error: unknown) => {
  if (error instanceof ConfigError) console.error(error.message);
  else console.error('api failed to start:', error);
  process.exit(1);
});
