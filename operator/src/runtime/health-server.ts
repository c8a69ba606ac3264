// The probe server is shared with the worker; it lives in lib/.
export {
  startHealthServer,
  type HealthServer,
  type HealthServerOptions,
} from '../../../lib/health-server.js';
