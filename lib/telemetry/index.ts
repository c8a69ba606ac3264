// OpenTelemetry tracing for every process (API, worker, operator), configured
// only by the standard OTEL_* environment variables. Off unless an OTLP
// endpoint is set: then no SDK is loaded at all, and the @opentelemetry/api
// calls the code makes elsewhere are the API's no-ops.
//
// The SDK is loaded with `require`, synchronously, from the first module a
// process's main.ts imports (`<process>/src/telemetry.ts`), so it is in place
// before pg and node:http are loaded: an ES module's top-level await would let
// the modules imported after it run first.
//
// Library instrumentation where it patches reliably under ESM: node:http and
// https (the API's incoming requests, the worker's outgoing webhook requests,
// which then carry `traceparent`) and pg (Sequelize's and the worker's
// queries, only inside a trace: the relays' polls start none). The outbox and
// RabbitMQ are boundaries the platform owns; `outbox.ts` and `messaging.ts`
// carry the W3C context across them by hand.
import { createRequire } from 'node:module';
import type { IncomingMessage } from 'node:http';
import {
  context,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import type * as SdkNode from '@opentelemetry/sdk-node';
import type * as HttpInstrumentationModule from '@opentelemetry/instrumentation-http';
import type * as PgInstrumentationModule from '@opentelemetry/instrumentation-pg';
import { platformVersion } from '../logger.js';

export interface Telemetry {
  /** Whether an SDK was started (an OTLP endpoint is set and the SDK is not disabled). */
  readonly enabled: boolean;
  /** Exports the spans still buffered, then stops; resolves also when the export failed. */
  shutdown(): Promise<void>;
}

/** The W3C trace context of a span, as stored with an outbox row or sent in message headers. */
export type TraceCarrier = Record<string, string>;

/**
 * Whether tracing is on: OTEL_SDK_DISABLED is not true, OTEL_TRACES_EXPORTER is
 * not `none`, and OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
 * OTEL_EXPORTER_OTLP_ENDPOINT is set.
 */
export function tracingEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((e) => e.trim().toLowerCase());
  if (exporters.includes('none')) return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim());
}

const disabled: Telemetry = { enabled: false, shutdown: () => Promise.resolve() };
let started: Telemetry | undefined;

/** Paths whose requests start no trace: probes and scrapes. */
const untracedPaths = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Starts the SDK for this process once, when `tracingEnabled`; `service` is the
 * default `service.name` (OTEL_SERVICE_NAME or a `service.name` in
 * OTEL_RESOURCE_ATTRIBUTES win). Metrics and logs stay with Prometheus and
 * stdout: only traces are exported.
 */
export function startTelemetry(service: string, env: NodeJS.ProcessEnv = process.env): Telemetry {
  if (started) return started;
  if (!tracingEnabled(env)) return (started = disabled);
  const require = createRequire(import.meta.url);
  const { startNodeSdk } = require('@opentelemetry/sdk-node') as typeof SdkNode;
  const { HttpInstrumentation } =
    require('@opentelemetry/instrumentation-http') as typeof HttpInstrumentationModule;
  const { PgInstrumentation } =
    require('@opentelemetry/instrumentation-pg') as typeof PgInstrumentationModule;
  const named =
    Boolean(env.OTEL_SERVICE_NAME?.trim()) ||
    /(^|,)\s*service\.name\s*=/.test(env.OTEL_RESOURCE_ATTRIBUTES ?? '');
  const sdk = startNodeSdk({
    metricReaders: [],
    logRecordProcessors: [],
    resourceAttributes: {
      ...(named ? {} : { 'service.name': service }),
      'service.version': platformVersion,
    },
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (request: IncomingMessage) =>
          untracedPaths.has((request.url ?? '/').split('?', 1)[0]!.replace(/\/$/, '')),
        // Outgoing requests outside a trace (none today) would each start one of their own.
        requireParentforOutgoingSpans: true,
        // Header values may carry tokens or signatures: none are recorded.
        headersToSpanAttributes: {},
      }),
      new PgInstrumentation({ requireParentSpan: true, enhancedDatabaseReporting: false }),
    ],
  });
  // The instrumentations patch a module when it is first required. The
  // platform's own code imports node:http as an ES module, which that hook does
  // not see; requiring it here patches the one exports object both share.
  require('node:http');
  require('node:https');
  return (started = {
    enabled: true,
    shutdown: async () => {
      try {
        await sdk.shutdown();
      } catch {
        // An unreachable collector must not hold up or fail the shutdown.
      }
    },
  });
}

/** The platform's tracer; a no-op until an SDK is started. */
export function tracer(): Tracer {
  return trace.getTracer('tenantry', platformVersion);
}

/**
 * The active context as a W3C carrier (`traceparent`, and `tracestate` when
 * set), or undefined outside a trace or when tracing is off.
 */
export function activeTraceCarrier(active: Context = context.active()): TraceCarrier | undefined {
  const carrier: TraceCarrier = {};
  propagation.inject(active, carrier);
  return Object.keys(carrier).length > 0 ? carrier : undefined;
}

/**
 * The context a stored or received carrier names, for a span to continue its
 * trace. Anything that is not a string map is ignored (the propagator then
 * finds no parent and the span starts a trace of its own).
 */
export function contextFromCarrier(carrier: unknown, base: Context = context.active()): Context {
  if (carrier === null || typeof carrier !== 'object') return base;
  const strings: TraceCarrier = {};
  for (const [key, value] of Object.entries(carrier as Record<string, unknown>)) {
    if (typeof value === 'string') strings[key] = value;
    else if (Buffer.isBuffer(value)) strings[key] = value.toString('utf8');
  }
  return propagation.extract(base, strings);
}

/**
 * Runs `write` (an INSERT into app.outbox) in a `create <topic>` span and hands
 * it the span's context to store in the row's `trace_context` column, so the
 * relay later publishes the message as a child of this span. `carrier` is
 * undefined when tracing is off: store NULL then.
 */
export function inOutboxSpan<T>(
  topic: string,
  write: (carrier: TraceCarrier | undefined) => Promise<T>,
): Promise<T> {
  return tracer().startActiveSpan(
    `create ${topic}`,
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        'messaging.operation.type': 'create',
        'messaging.operation.name': 'create',
        'messaging.destination.name': topic,
        'db.system.name': 'postgresql',
        'db.collection.name': 'app.outbox',
      },
    },
    (span) => endWith(span, write(activeTraceCarrier())),
  );
}

/** Runs `work` in an internal span of its own, ended with its outcome. */
export function inSpan<T>(name: string, attributes: Attributes, work: () => Promise<T>): Promise<T> {
  return tracer().startActiveSpan(name, { attributes }, (span) => endWith(span, work()));
}

/** Ends a span with the outcome of `work`: an error is recorded on it and rethrown. */
export async function endWith<T>(span: Span, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    span.recordException(error as Error);
    span.setStatus({ code: SpanStatusCode.ERROR });
    throw error;
  } finally {
    span.end();
  }
}
