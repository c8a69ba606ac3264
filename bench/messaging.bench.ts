// What N tenants cost RabbitMQ. The bench starts a private RabbitMQ node
// (test/harness/rabbitmq-node.ts: its own ports, data and the production file
// limit) for each N, measures it empty (the baseline), then declares and holds
// the broker side of N tenants the way a variant of the platform does it, and
// measures the node again: memory, file descriptors, Erlang processes, idle
// CPU, the time to declare everything, publish-to-delivery latency for one
// sample tenant, and the time until every consumer is back after a restart of
// the RabbitMQ application. Declaring has a time budget and a stall detector:
// a node that stops answering is reported (tenants declared, a stalled flag)
// and torn down rather than waited for. stdout carries only JSON lines.
import { randomBytes } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import amqp, { type ConfirmChannel } from 'amqplib';
import pino from 'pino';
import { tenantNames } from '../lib/tenant/names.js';
import { RabbitMqAdmin } from '../operator/src/messaging/rabbitmq-admin.js';
import { publishConfirmed } from '../worker/src/broker-session.js';
import { RabbitMqNode } from '../test/harness/rabbitmq-node.js';
import { cpuSeconds, memoryKiB } from './support/proc-stats.js';
import { emit, intSetting, percentile, progress } from './support/report.js';
import { currentVariant, type HeldTenant, type MessagingVariant } from './support/messaging-variants.js';

const settings = {
  tenants: tenantCounts(process.env.MESSAGING_BENCH_TENANTS || '100,300,1000'),
  declareBudgetSeconds: intSetting('MESSAGING_BENCH_DECLARE_SECONDS', 360, 10, 3600),
  /** Declaring counts as stalled when no tenant finished for this long. */
  stallSeconds: intSetting('MESSAGING_BENCH_STALL_SECONDS', 90, 5, 3600),
  totalCapSeconds: intSetting('MESSAGING_BENCH_CAP_SECONDS', 1500, 60, 7200),
  /** Tenants whose workers start at the same time. */
  concurrency: intSetting('MESSAGING_BENCH_CONCURRENCY', 16, 1, 1000),
  idleSeconds: intSetting('MESSAGING_BENCH_IDLE_SECONDS', 10, 2, 600),
  latencyMessages: intSetting('MESSAGING_BENCH_LATENCY_MESSAGES', 300, 10, 100_000),
  latencyRate: intSetting('MESSAGING_BENCH_LATENCY_RATE', 100, 1, 10_000),
  restartBudgetSeconds: intSetting('MESSAGING_BENCH_RESTART_SECONDS', 300, 10, 3600),
};
const variants: MessagingVariant[] = [currentVariant];
const vhost = 'tenantry';
const startedAt = Date.now();
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

function tenantCounts(text: string): number[] {
  const counts = text.split(',').map((s) => Number(s.trim()));
  if (counts.length === 0 || counts.some((n) => !Number.isInteger(n) || n < 1 || n > 10_000)) {
    throw new Error(
      `MESSAGING_BENCH_TENANTS must be tenant counts from 1 to 10000, e.g. 100,300 (got ${text})`,
    );
  }
  return counts;
}

/** Rejects after `ms`, so no step can hang the bench. */
function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

interface NodeFigures {
  memMiB: number;
  rssMiB: number;
  fdUsed: number;
  fdTotal: number;
  sockets: number;
  processes: number;
  idleCpuPercent: number;
}

interface ManagementNode {
  mem_used: number;
  fd_total: number;
  proc_used: number;
}

interface Overview {
  object_totals?: { queues?: number; connections?: number; channels?: number; consumers?: number };
}

/**
 * Descriptors the VM holds, from /proc: the management API's `fd_used` and
 * `sockets_used` (3.10) stayed at 37 and 0 with 20 AMQP connections open.
 */
function openFiles(pid: number): { all: number; sockets: number } {
  let all = 0;
  let sockets = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    all += 1;
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) sockets += 1;
    } catch {
      // closed meanwhile
    }
  }
  return { all, sockets };
}

/** The node's own figures, then its CPU over `idleSeconds` with nothing asked of it. */
async function nodeFigures(node: RabbitMqNode): Promise<NodeFigures> {
  // The management API refreshes its node figures every few seconds (and has none just after start).
  await sleep(6_000);
  const path = `/nodes/${encodeURIComponent(node.nodeName)}`;
  let n = await node.management<Partial<ManagementNode>>(path, 60_000);
  for (let i = 0; i < 30 && n.fd_total === undefined; i++) {
    await sleep(1_000);
    n = await node.management<Partial<ManagementNode>>(path, 60_000);
  }
  const before = cpuSeconds(node.beamPid) ?? 0;
  const t0 = performance.now();
  await sleep(settings.idleSeconds * 1000);
  const cpu = (cpuSeconds(node.beamPid) ?? 0) - before;
  const elapsed = (performance.now() - t0) / 1000;
  return {
    memMiB: (n.mem_used ?? NaN) / 2 ** 20,
    rssMiB: (memoryKiB(node.beamPid)?.rss ?? NaN) / 1024,
    fdUsed: openFiles(node.beamPid).all,
    fdTotal: n.fd_total ?? NaN,
    sockets: openFiles(node.beamPid).sockets,
    processes: n.proc_used ?? NaN,
    idleCpuPercent: (100 * cpu) / elapsed,
  };
}

/** Publishes `count` persistent messages at `rate` on a confirm channel; `send` returns when confirmed. */
async function latencyRun(
  count: number,
  rate: number,
  send: (seq: number) => Promise<void>,
  arrivals: Map<number, number>,
): Promise<{ p50: number; p99: number; lost: number }> {
  const sentAt = new Map<number, number>();
  const pending: Promise<void>[] = [];
  const start = performance.now();
  for (let seq = 0; seq < count; seq++) {
    const wait = start + (seq * 1000) / rate - performance.now();
    if (wait > 1) await sleep(wait);
    sentAt.set(seq, performance.now());
    pending.push(send(seq));
  }
  await within(60_000, 'the latency publishes', Promise.all(pending));
  const deadline = Date.now() + 30_000;
  while (arrivals.size < count && Date.now() < deadline) await sleep(20);
  const values: number[] = [];
  for (const [seq, at] of sentAt) {
    const arrived = arrivals.get(seq);
    if (arrived !== undefined) values.push(arrived - at);
  }
  return { p50: percentile(values, 50), p99: percentile(values, 99), lost: count - values.length };
}

function seqOf(content: Buffer): number {
  const body = JSON.parse(content.toString('utf8')) as { seq?: unknown };
  return typeof body.seq === 'number' ? body.seq : -1;
}

interface Baseline {
  figures: NodeFigures;
  p50: number;
  p99: number;
  restartSeconds: number;
}

/** The empty node: its figures, latency through one plain classic queue, and an application restart. */
async function measureBaseline(node: RabbitMqNode): Promise<Baseline> {
  const figures = await nodeFigures(node);
  const connection = await amqp.connect(node.amqpUrl());
  try {
    const consumer = await connection.createChannel();
    const queue = 'bench.plain';
    await consumer.assertQueue(queue, { durable: false });
    const arrivals = new Map<number, number>();
    await consumer.consume(queue, (message) => {
      if (!message) return;
      arrivals.set(seqOf(message.content), performance.now());
      consumer.ack(message);
    });
    // Its own connection, as the tenant's publisher below.
    const publishing = await amqp.connect(node.amqpUrl());
    const publisher = await publishing.createConfirmChannel();
    const latency = await latencyRun(
      settings.latencyMessages,
      settings.latencyRate,
      (seq) =>
        publishConfirmed(publisher, '', queue, Buffer.from(JSON.stringify({ seq })), {
          persistent: true,
          contentType: 'application/json',
        }),
      arrivals,
    );
    await publishing.close();
    await connection.close();
    const t0 = performance.now();
    await node.stopApp();
    await node.startApp();
    return { figures, ...latency, restartSeconds: (performance.now() - t0) / 1000 };
  } finally {
    await connection.close().catch(() => undefined);
  }
}

interface DeclareOutcome {
  held: HeldTenant[];
  seconds: number;
  stalled: boolean;
}

/** Starts N tenants' workers, `concurrency` at a time, until all are up, the budget ends or progress stops. */
async function declareTenants(
  variant: MessagingVariant,
  node: RabbitMqNode,
  admin: RabbitMqAdmin,
  n: number,
  onMessage: (tenant: number, content: Buffer) => void,
): Promise<DeclareOutcome> {
  const held: HeldTenant[] = [];
  const t0 = performance.now();
  const budgetEnd = Date.now() + settings.declareBudgetSeconds * 1000;
  let lastProgress = Date.now();
  let reported = 0;
  let next = 0;
  let stalled = false;
  let failure: Error | undefined;
  const worker = async () => {
    while (!stalled && failure === undefined && next < n) {
      const index = next++;
      const name = `bench-${index}`;
      const names = tenantNames(name);
      const password = randomBytes(18).toString('base64url');
      await admin.ensureTenantUser(names, password);
      const tenant = variant.start({
        index,
        name,
        queuePrefix: names.queuePrefix,
        amqpUrl: node.amqpUrl(names.amqpUser, password, vhost),
        logger,
        onMessage: (content) => onMessage(index, content),
      });
      // Held from the start, so that it is stopped with the rest whatever happens.
      held.push(tenant);
      while (!tenant.ready && !stalled) await sleep(50);
      if (tenant.ready) {
        lastProgress = Date.now();
        const ready = countReady(held);
        if (ready >= reported + 50) {
          reported = ready - (ready % 50);
          progress(`${variant.name}: ${ready}/${n} tenants declared`);
        }
      }
    }
  };
  const watchdog = (async () => {
    while (countReady(held) < n && !stalled) {
      await sleep(1_000);
      const now = Date.now();
      if (now > budgetEnd || now - lastProgress > settings.stallSeconds * 1000) {
        stalled = true;
        progress(
          `${variant.name}: declaring stalled (${now > budgetEnd ? 'time budget spent' : 'no progress'}) after ${countReady(held)} tenants`,
        );
      }
    }
  })();
  const workers = Array.from({ length: Math.min(settings.concurrency, n) }, () =>
    worker().catch((error: unknown) => {
      // The management API failing is the broker not answering too: reported like a stall.
      failure ??= error instanceof Error ? error : new Error(String(error));
      progress(`${variant.name}: declaring failed: ${failure.message}`);
      stalled = true;
    }),
  );
  await Promise.all(workers);
  const seconds = (performance.now() - t0) / 1000;
  await watchdog;
  return { held, seconds, stalled };
}

function countReady(held: readonly HeldTenant[]): number {
  return held.filter((t) => t.ready).length;
}

async function stopTenants(held: readonly HeldTenant[]): Promise<void> {
  await within(60_000, 'stopping the tenants', Promise.allSettled(held.map((t) => t.stop()))).catch(
    (error: unknown) => progress(`${String(error)}; the node's stop closes the rest`),
  );
}

async function consumersOnNode(node: RabbitMqNode): Promise<number> {
  const overview = await node.management<Overview>('/overview', 10_000);
  return overview.object_totals?.consumers ?? 0;
}

const logger = pino(
  { level: process.env.MESSAGING_BENCH_LOG_LEVEL || 'error', base: { service: 'messaging-bench' } },
  pino.destination(2),
);

let activeNode: RabbitMqNode | undefined;
let activeTenants: HeldTenant[] = [];

async function runOne(variant: MessagingVariant, n: number): Promise<boolean> {
  const bench = `messaging.${variant.name}.n${n}`;
  progress(`${bench}: starting a private RabbitMQ node`);
  const node = await RabbitMqNode.start({ label: 'tenantry-bench' });
  activeNode = node;
  let complete = true;
  try {
    progress(`${bench}: node ${node.nodeName} on 127.0.0.1:${node.amqpPort}, file limit ${node.fileLimit}`);
    const base = await measureBaseline(node);
    const admin = new RabbitMqAdmin(node.managementUrl, vhost, { timeoutMs: 30_000 });
    await admin.ensureVhost();

    const sample = 0;
    const arrivals = new Map<number, number>();
    const onMessage = (tenant: number, content: Buffer) => {
      if (tenant === sample) arrivals.set(seqOf(content), performance.now());
    };
    progress(`${bench}: declaring ${n} tenants`);
    const outcome = await declareTenants(variant, node, admin, n, onMessage);
    activeTenants = outcome.held;
    const declared = countReady(outcome.held);
    emit(bench, 'tenants_declared', declared, 'tenants', 0);
    emit(bench, 'stalled', outcome.stalled ? 1 : 0, 'flag', 0);
    emit(bench, 'declare_seconds', outcome.seconds, 's', null);
    progress(`${bench}: ${declared} tenants declared in ${outcome.seconds.toFixed(1)} s`);

    const figures = await nodeFigures(node).catch((error: unknown) => {
      progress(`${bench}: no node figures: ${String(error)}`);
      return undefined;
    });
    if (figures) {
      const b = base.figures;
      emit(bench, 'mem_used_mib', figures.memMiB, 'MiB', b.memMiB);
      emit(bench, 'rss_mib', figures.rssMiB, 'MiB', b.rssMiB);
      emit(bench, 'fd_used', figures.fdUsed, 'fds', b.fdUsed);
      emit(bench, 'fd_total', figures.fdTotal, 'fds', b.fdTotal);
      emit(bench, 'sockets_used', figures.sockets, 'sockets', b.sockets);
      emit(bench, 'erlang_processes', figures.processes, 'processes', b.processes);
      emit(bench, 'idle_cpu_percent', figures.idleCpuPercent, '% of a core', b.idleCpuPercent);
      const overview = await node.management<Overview>('/overview').catch((): Overview => ({}));
      const totals = overview.object_totals;
      emit(bench, 'queues', totals?.queues ?? NaN, 'queues', null);
      emit(bench, 'connections', totals?.connections ?? NaN, 'connections', null);
      emit(bench, 'channels', totals?.channels ?? NaN, 'channels', null);
      emit(bench, 'consumers', totals?.consumers ?? NaN, 'consumers', null);
    } else {
      complete = false;
    }

    const sampleTenant = outcome.held.find((t) => t.index === sample);
    if (outcome.stalled || !sampleTenant?.ready) {
      progress(`${bench}: the node stalled; no latency or restart measurement. The end of its log:`);
      process.stderr.write(`${node.logTail()}\n`);
      return false;
    }
    progress(`${bench}: latency through tenant ${sample}'s work queue`);
    const publisher = await amqp.connect(sampleTenant.amqpUrl);
    let latency: { p50: number; p99: number; lost: number };
    try {
      const channel: ConfirmChannel = await publisher.createConfirmChannel();
      latency = await latencyRun(
        settings.latencyMessages,
        settings.latencyRate,
        (seq) => sampleTenant.publish(channel, Buffer.from(JSON.stringify({ seq }))),
        arrivals,
      );
    } finally {
      await publisher.close().catch(() => undefined);
    }
    emit(bench, 'publish_to_delivery_p50_ms', latency.p50, 'ms', base.p50);
    emit(bench, 'publish_to_delivery_p99_ms', latency.p99, 'ms', base.p99);
    emit(bench, 'latency_messages_lost', latency.lost, 'messages', 0);
    if (latency.lost > 0) complete = false;

    progress(`${bench}: restarting the RabbitMQ application`);
    const expected = declared * variant.consumersPerTenant;
    const t0 = performance.now();
    // The workers' own view, sampled on its own: the management API's count trails by up to
    // its statistics interval. Counted once they were seen down, then all back.
    let workersDown = false;
    let workersBack: number | undefined;
    const watch = setInterval(() => {
      const all = outcome.held.every((t) => t.ready);
      if (!all) workersDown = true;
      else if (workersDown) workersBack ??= performance.now();
    }, 100);
    await node.stopApp(settings.restartBudgetSeconds * 1000);
    const stopped = performance.now();
    await node.startApp(settings.restartBudgetSeconds * 1000);
    const appUp = performance.now();
    const deadline = Date.now() + settings.restartBudgetSeconds * 1000;
    let consumers = 0;
    let consumersBack: number | undefined;
    while (Date.now() < deadline) {
      if (consumersBack === undefined) {
        consumers = await consumersOnNode(node).catch(() => 0);
        if (consumers >= expected) consumersBack = performance.now();
      }
      if (consumersBack !== undefined && workersBack !== undefined) break;
      await sleep(500);
    }
    clearInterval(watch);
    const seconds = ((consumersBack ?? performance.now()) - t0) / 1000;
    if (workersBack !== undefined) {
      emit(bench, 'restart_until_workers_ready_seconds', (workersBack - t0) / 1000, 's', null);
    }
    emit(bench, 'restart_stop_app_seconds', (stopped - t0) / 1000, 's', null);
    emit(bench, 'restart_start_app_seconds', (appUp - stopped) / 1000, 's', null);
    if (consumers >= expected) {
      emit(bench, 'restart_until_consumers_back_seconds', seconds, 's', base.restartSeconds);
    } else {
      emit(bench, 'restart_consumers_back', consumers, 'consumers', expected);
      complete = false;
    }
    progress(`${bench}: ${consumers}/${expected} consumers back after ${seconds.toFixed(1)} s`);
    return complete;
  } finally {
    progress(`${bench}: cleaning up`);
    await stopTenants(activeTenants);
    activeTenants = [];
    await node.stop();
    activeNode = undefined;
  }
}

async function cleanUpAndExit(code: number): Promise<never> {
  await within(30_000, 'stopping the tenants', Promise.allSettled(activeTenants.map((t) => t.stop()))).catch(
    () => undefined,
  );
  await activeNode?.stop().catch(() => undefined);
  process.exit(code);
}

async function main(): Promise<void> {
  progress(`settings ${JSON.stringify(settings)}`);
  process.once('SIGINT', () => void cleanUpAndExit(130));
  process.once('SIGTERM', () => void cleanUpAndExit(143));
  // Whatever hangs, the bench ends a little after its cap and removes its node.
  setTimeout(
    () => {
      progress('the total time cap has passed; stopping');
      void cleanUpAndExit(1);
    },
    (settings.totalCapSeconds + 300) * 1000,
  ).unref();
  let complete = true;
  for (const n of settings.tenants) {
    for (const variant of variants) {
      const elapsed = (Date.now() - startedAt) / 1000;
      if (elapsed > settings.totalCapSeconds) {
        progress(
          `messaging.${variant.name}.n${n}: skipped, the total cap of ${settings.totalCapSeconds} s is spent`,
        );
        emit(`messaging.${variant.name}.n${n}`, 'skipped', 1, 'flag', 0);
        complete = false;
        continue;
      }
      try {
        if (!(await runOne(variant, n))) complete = false;
      } catch (error) {
        progress(
          `messaging.${variant.name}.n${n} failed: ${error instanceof Error ? error.stack : String(error)}`,
        );
        complete = false;
      }
    }
  }
  progress(`done in ${((Date.now() - startedAt) / 1000).toFixed(0)} s`);
  process.exit(complete ? 0 : 1);
}

main().catch((error: unknown) => {
  progress(`failed: ${error instanceof Error ? error.stack : String(error)}`);
  void cleanUpAndExit(1);
});
