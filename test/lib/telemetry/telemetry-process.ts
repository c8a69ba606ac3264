// Run by telemetry.test.ts in a process of its own (the SDK is per process):
// starts tracing as a process's telemetry.ts does, with the environment the
// test gave, and prints what it finds as one JSON line.
import { createRequire } from 'node:module';
import { context, trace } from '@opentelemetry/api';
import {
  activeTraceCarrier,
  contextFromCarrier,
  startTelemetry,
  tracer,
} from '../../../lib/telemetry/index.js';

const telemetry = startTelemetry('tenantry-probe');
const require = createRequire(import.meta.url);
const loaded = Object.keys(require.cache).filter((path) => path.includes('@opentelemetry/sdk-node'));

const span = tracer().startSpan('probe span');
const carrier = activeTraceCarrier(trace.setSpan(context.active(), span));
const recording = span.isRecording();
span.end();

const parentOf = (value: unknown) => {
  const found = trace.getSpanContext(contextFromCarrier(value));
  return found && trace.isSpanContextValid(found) ? found.spanId : null;
};
const good = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const result = {
  enabled: telemetry.enabled,
  sdkLoaded: loaded.length > 0,
  recording,
  carrier: carrier ?? null,
  parents: {
    good: parentOf({ traceparent: good, tracestate: 'vendor=x' }),
    buffer: parentOf({ traceparent: Buffer.from(good) }),
    missing: parentOf({}),
    null: parentOf(null),
    string: parentOf(good),
    number: parentOf({ traceparent: 42 }),
    malformed: parentOf({ traceparent: '00-xyz-b7ad6b7169203331-01' }),
    zeroTrace: parentOf({ traceparent: '00-00000000000000000000000000000000-b7ad6b7169203331-01' }),
    array: parentOf([good]),
  },
};
await telemetry.shutdown();
console.log(JSON.stringify(result));
