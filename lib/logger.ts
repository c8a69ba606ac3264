// One pino logger per process, with the service name and version on every line
// and secrets redacted wherever they might appear.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { trace } from '@opentelemetry/api';
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

const packageJson = JSON.parse(readFileSync(resolve(import.meta.dirname, '../package.json'), 'utf8')) as {
  version: string;
};
export const platformVersion = packageJson.version;

const secretKeys = [
  'password',
  'secret',
  'token',
  'access_token',
  'refresh_token',
  'client_secret',
  'authorization',
  'cookie',
  'uri',
  'pgpass',
];

export const redactPaths = [
  ...secretKeys,
  ...secretKeys.map((k) => `*.${k}`),
  ...secretKeys.map((k) => `*.*.${k}`),
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  // SSO redirects carry one-time codes in the query.
  'res.headers.location',
  'data',
  '*.data',
  'stringData',
  '*.stringData',
];

export function createLogger(service: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino(
    {
      level,
      base: { service, version: platformVersion },
      redact: { paths: redactPaths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      mixin: traceFields,
    },
    // Asynchronous stdout: lines written while a write is in flight go out together, instead of one
    // blocking write per line (the API writes an access log line per request). pino flushes what is
    // left when the process exits.
    pino.destination({ dest: 1, sync: false }),
  );
}

/**
 * trace_id and span_id of the active span (lib/telemetry/), so a log line can be
 * found from its trace and the other way round. Outside a trace, or with
 * tracing off (the API's no-op: no span is ever active), nothing.
 */
export function traceFields(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const spanContext = span.spanContext();
  if (!trace.isSpanContextValid(spanContext)) return {};
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}
