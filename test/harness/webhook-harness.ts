// Outgoing-webhook test helpers: a loopback receiver that records every
// request, and the tenant worker (outbox relay, its listener, and deliverer)
// run in-process against a tenant's own database and RabbitMQ user, wired like
// worker/src/main.ts.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { createLogger } from '../../lib/logger.js';
import { tenantNames } from '../../lib/tenant/index.js';
import { Deliverer } from '../../worker/src/deliverer.js';
import { CircuitBreaker } from '../../worker/src/circuit-breaker.js';
import { HttpSender } from '../../worker/src/http-sender.js';
import { OutboxListener } from '../../worker/src/outbox-listener.js';
import { OutboxRelay } from '../../worker/src/outbox-relay.js';
import { RetrySchedule } from '../../worker/src/schedule.js';
import { webhookTopology } from '../../worker/src/topology.js';
import { WebhookStore } from '../../worker/src/webhook-store.js';
import type { ControlPlane } from './control-plane.js';
import { eventually } from './wait.js';

export interface ReceivedWebhook {
  path: string;
  headers: Record<string, string>;
  body: string;
  at: number;
}

export type ReceiverBehaviour = (request: IncomingMessage, response: ServerResponse, nth: number) => void;

/** A loopback receiver; each path answers with its own behaviour (200 by default). */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  readonly behaviours = new Map<string, ReceiverBehaviour>();
  private readonly counts = new Map<string, number>();
  private server: Server | undefined;
  port = 0;

  async start(): Promise<void> {
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (c: Buffer) => chunks.push(c));
      request.on('end', () => {
        const path = request.url ?? '/';
        const nth = (this.counts.get(path) ?? 0) + 1;
        this.counts.set(path, nth);
        this.received.push({
          path,
          headers: request.headers as Record<string, string>,
          body: Buffer.concat(chunks).toString('utf8'),
          at: Date.now(),
        });
        const behaviour = this.behaviours.get(path);
        if (behaviour) behaviour(request, response, nth);
        else response.writeHead(200).end('ok');
      });
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  on(path: string): ReceivedWebhook[] {
    return this.received.filter((r) => r.path === path);
  }

  /** The distinct webhook-ids received on `path` (duplicates collapse). */
  idsOn(path: string): Set<string> {
    return new Set(this.on(path).map((r) => r.headers['webhook-id'] ?? ''));
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise((ok) => this.server?.close(ok));
  }
}

export interface TenantAmqp {
  url: string;
  queuePrefix: string;
}

/** The tenant's RabbitMQ credentials from the operator's Secret in the tenant namespace. */
export async function tenantAmqp(cp: ControlPlane, tenant: string): Promise<TenantAmqp> {
  const names = tenantNames(tenant);
  const secret = JSON.parse(
    await cp.kubectl(['get', 'secret', '-n', names.namespace, names.amqpSecret, '-o', 'json']),
  ) as { data: Record<string, string> };
  const decode = (key: string) => Buffer.from(secret.data[key] ?? '', 'base64').toString('utf8');
  return { url: decode('uri'), queuePrefix: decode('queuePrefix') || names.queuePrefix };
}

export interface TestWorkerOptions {
  databaseUrl: string;
  amqpUrl: string;
  queuePrefix: string;
  schedule?: number[];
  timeoutMs?: number;
  prefetch?: number;
  concurrency?: number;
  pollIntervalMs?: number;
  logLevel?: string;
}

export interface TestWorker {
  relay: OutboxRelay;
  deliverer: Deliverer;
  store: WebhookStore;
  pool: pg.Pool;
  ready(): Promise<void>;
  stop(): Promise<void>;
}

export function startTestWorker(options: TestWorkerOptions): TestWorker {
  const logger = createLogger(
    'webhook-worker-test',
    options.logLevel ?? process.env.TEST_LOG_LEVEL ?? 'silent',
  );
  const schedule = new RetrySchedule(options.schedule ?? [0, 200, 400, 600]);
  const topology = webhookTopology(options.queuePrefix, schedule.tiers);
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 8, connectionTimeoutMillis: 5_000 });
  pool.on('error', () => undefined);
  const store = new WebhookStore(pool);
  const concurrency = options.concurrency ?? 10;
  const deliverer = new Deliverer({
    amqpUrl: options.amqpUrl,
    topology,
    schedule,
    store,
    sender: new HttpSender({ timeoutMs: options.timeoutMs ?? 5_000, allowLoopback: true }),
    gate: new CircuitBreaker({
      concurrency,
      maxHeld: concurrency * 2,
      failureThreshold: 1000,
      cooldownMs: 1000,
    }),
    prefetch: options.prefetch ?? 100,
    disableAfterMs: 86_400_000,
    logger,
  });
  const relay = new OutboxRelay({
    amqpUrl: options.amqpUrl,
    topology,
    store,
    batchSize: 200,
    pollIntervalMs: options.pollIntervalMs ?? 50,
    logger,
    confirmTimeoutMs: 5_000,
  });
  const listener = new OutboxListener({
    connectionString: options.databaseUrl,
    logger,
    onNotify: (topicRoot) => {
      if (topicRoot !== 'integration') relay.poke();
    },
  });
  deliverer.start();
  relay.start();
  listener.start();
  return {
    relay,
    deliverer,
    store,
    pool,
    ready: async () => {
      await eventually('the worker to connect and consume', () =>
        Promise.resolve(deliverer.ready && relay.ready ? true : undefined),
      );
    },
    stop: async () => {
      await listener.stop();
      await relay.stop();
      await deliverer.drain(5_000);
      await pool.end();
    },
  };
}
