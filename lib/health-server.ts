// Probe and scrape endpoints on plain node:http, kept apart from any API
// framework on purpose. Two listeners on two ports: the health server
// (/healthz says the process is alive, /readyz asks a callback such as "caches
// synced" or "broker connected") is for the kubelet; the metrics server
// (/metrics, a prom-client registry) is for Prometheus. Apart, a NetworkPolicy
// can open the scrape port to the monitoring namespace and nothing else, and
// the API's public port does not publish its metrics.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface ListenOptions {
  /** Default 0.0.0.0, so the kubelet or Prometheus can reach it on the pod IP. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
}

export interface HealthServerOptions extends ListenOptions {
  /** Decides /readyz; a rejection counts as not ready. */
  isReady: () => boolean | Promise<boolean>;
}

export interface MetricsServerOptions extends ListenOptions {
  registry: Registry;
}

export interface HealthServer {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}
export type MetricsServer = HealthServer;

/** Default port of the health server; the operator and the worker use it. */
export const defaultHealthPort = 8081;
/** Default port of the metrics server, the same on every process. */
export const defaultMetricsPort = 9090;

type Route = () => Promise<{ status: number; body: string; headers?: Record<string, string> }>;

export function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  return listen(options, options.port ?? defaultHealthPort, {
    '/healthz': () => Promise.resolve({ status: 200, body: 'ok\n' }),
    '/readyz': async () => {
      const ready = await Promise.resolve()
        .then(options.isReady)
        .catch(() => false);
      return ready ? { status: 200, body: 'ok\n' } : { status: 503, body: 'not ready\n' };
    },
  });
}

export function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  return listen(options, options.port ?? defaultMetricsPort, {
    '/metrics': async () => ({
      status: 200,
      body: await options.registry.metrics(),
      headers: { 'content-type': options.registry.contentType },
    }),
  });
}

async function listen(options: ListenOptions, port: number, routes: Record<string, Route>) {
  const server = createServer((request, response) => {
    void respond(routes, request, response);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return { host: address.address, port: address.port, close: () => (closing ??= closeServer(server)) };
}

async function respond(routes: Record<string, Route>, request: IncomingMessage, response: ServerResponse) {
  const path = new URL(request.url ?? '/', 'http://probe').pathname;
  try {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      return send(response, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
    }
    const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (!route) return send(response, 404, 'not found\n');
    const { status, body, headers } = await route();
    return send(response, status, body, headers);
  } catch {
    // The detail stays in the process; a scraper only needs to know it failed.
    if (!response.headersSent) send(response, 500, 'internal error\n');
    else response.destroy();
  }
}

function send(response: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) {
  response.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'cache-control': 'no-store',
    ...headers,
  });
  response.end(body);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    // Keep-alive connections from a scraper would otherwise hold close() open.
    server.closeAllConnections();
  });
}
