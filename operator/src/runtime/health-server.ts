// The probe and metrics servers are shared with the worker; they live in lib/.
export {
  startHealthServer,
  startMetricsServer,
  type HealthServer,
  type HealthServerOptions,
  type MetricsServer,
  type MetricsServerOptions,
} from '../../../lib/health-server.js';
