// Request count and latency for Prometheus, labelled by the Express route
// pattern (`/api/users/:id`), never the raw path: one series per route, not
// one per user id. Express sets `req.route` when a route matches, while
// `req.baseUrl` still holds the mount path of its router; the pattern is taken
// at that moment, because by the time an error handler answers, the router
// has restored `baseUrl`. The same pattern names the request's trace span
// (`POST /api/users`, with `http.route`) when tracing is on (lib/telemetry/).
import { trace, type Span } from '@opentelemetry/api';
import type { Request, RequestHandler } from 'express';
import { Histogram, type Registry } from 'prom-client';

/** The route label of requests no route matched: 404s, and those a middleware (a rate limit) answered first. */
export const unmatchedRoute = 'unmatched';

export function requestMetrics(registry: Registry): RequestHandler {
  const duration = new Histogram({
    name: 'tenantry_api_http_request_duration_seconds',
    help: 'Time from a request to its response, by method, Express route pattern and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    // Most answers are a few queries; sign-ins hash a password (100-500 ms).
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return (req, res, next) => {
    const started = performance.now();
    const route = capturedRoute(req);
    res.once('finish', () => {
      duration.observe(
        { method: req.method, route: route.pattern ?? unmatchedRoute, status: String(res.statusCode) },
        (performance.now() - started) / 1000,
      );
    });
    next();
  };
}

function capturedRoute(req: Request): { pattern?: string } {
  const captured: { pattern?: string } = {};
  // The server span node:http's instrumentation started; undefined with tracing off.
  const span: Span | undefined = trace.getActiveSpan();
  let current: unknown;
  Object.defineProperty(req, 'route', {
    configurable: true,
    enumerable: true,
    get: () => current,
    set(route: { path?: unknown } | undefined) {
      current = route;
      // A router's own root is its mount path: `/api/users`, not `/api/users/`.
      if (typeof route?.path === 'string')
        captured.pattern = route.path === '/' && req.baseUrl ? req.baseUrl : req.baseUrl + route.path;
      if (span && captured.pattern) {
        span.updateName(`${req.method} ${captured.pattern}`);
        span.setAttribute('http.route', captured.pattern);
      }
    },
  });
  return captured;
}
