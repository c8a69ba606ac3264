// Probe and scrape endpoints on plain node:http, shared by the operator and the
// worker: /healthz says the process is alive, /readyz asks a callback (e.g.
// "caches synced", "broker connected"), /metrics serves a prom-client registry.
// Kept apart from any API framework on purpose.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface HealthServerOptions {
  registry: Registry;
  /** Decides /readyz; a rejection counts as not ready. */
  isReady: () => boolean | Promise<boolean>;
  /** Default 0.0.0.0, so the kubelet can reach the probes on the pod IP. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
}

export interface HealthServer {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const server = createServer((request, response) => {
    void respond(options, request, response);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return { host: address.address, port: address.port, close: () => (closing ??= closeServer(server)) };
}

async function respond(options: HealthServerOptions, request: IncomingMessage, response: ServerResponse) {
  const path = new URL(request.url ?? '/', 'http://probe').pathname;
  try {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      return send(response, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
    }
    switch (path) {
      case '/healthz':
        return send(response, 200, 'ok\n');
      case '/readyz': {
        const ready = await Promise.resolve()
          .then(options.isReady)
          .catch(() => false);
        return ready ? send(response, 200, 'ok\n') : send(response, 503, 'not ready\n');
      }
      case '/metrics': {
        const body = await options.registry.metrics();
        return send(response, 200, body, { 'content-type': options.registry.contentType });
      }
      default:
        return send(response, 404, 'not found\n');
    }
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
