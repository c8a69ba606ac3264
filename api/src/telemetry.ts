// Imported first by main.ts, so tracing (lib/telemetry/) is set up before
// anything loads pg or node:http. Off unless an OTLP endpoint is configured.
import { startTelemetry } from '../../lib/telemetry/index.js';

export const telemetry = startTelemetry('tenantry-api');
