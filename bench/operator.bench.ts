// Operator benchmark on this machine: a private control plane with KWOK fake
// nodes, the local PostgreSQL and RabbitMQ, and the real operator as a child
// process. Three phases, one run:
//   baseline  the raw work of BENCH_TENANTS_BURST tenants done sequentially by a
//             plain process (bench/support/sequential-provisioner.ts), then an
//             idempotent second pass over them;
//   burst     BENCH_TENANTS_BURST Tenants created at once; time until all are
//             Ready, per-tenant latency, operator peak RSS and CPU;
//   steady    topped up to BENCH_TENANTS_STEADY Ready Tenants; operator CPU and
//             RSS over one full resync period (relist to relist).
// stdout carries only JSON lines {bench, metric, value, unit, baseline};
// progress goes to stderr. See bench/README.md.
import { execFileSync, spawn } from 'node:child_process';
import { statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import type { Plan } from '../lib/tenant/index.js';
import { startControlPlane, type ControlPlane } from '../test/harness/control-plane.js';
import { installTenantCrd } from '../test/harness/crds.js';
import { createOperatorAdminRole } from '../test/harness/operator-admin.js';
import { startOperator, type OperatorProcess } from '../test/harness/operator-process.js';
import { createTestVhost, serviceUrls, uniqueSuffix, withPostgresAdmin } from '../test/harness/services.js';
import { CpuAccounting, memoryKiB, type CpuSnapshot } from './support/proc-stats.js';
import { emit, intSetting, percentile, progress } from './support/report.js';
import type { SequentialResult } from './support/sequential-provisioner.js';
import {
  createTenants,
  dropLeftovers,
  isReady,
  leftoverPrefixes,
  listTenants,
  TenantFleet,
  tenantApi,
  tenantManifest,
} from './support/tenant-fleet.js';

const repoRoot = resolve(import.meta.dirname, '..');

const settings = {
  burst: intSetting('BENCH_TENANTS_BURST', 100, 1, 5000),
  steady: intSetting('BENCH_TENANTS_STEADY', 1000, 1, 5000),
  concurrency: intSetting('BENCH_RECONCILE_CONCURRENCY', 4, 1, 64),
  resyncSeconds: intSetting('BENCH_RESYNC_SECONDS', 60, 5, 3600),
  batch: intSetting('BENCH_BATCH', 100, 1, 5000),
  minFreeGb: intSetting('BENCH_MIN_FREE_GB', 20, 0, 100_000),
  plan: (process.env.BENCH_PLAN ?? 'starter') as Plan,
};

const debug = process.env.BENCH_DEBUG === '1';
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));
const mib = (kib: number) => kib / 1024;

async function poll<T>(
  what: string,
  timeoutMs: number,
  intervalMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(intervalMs);
  }
}

// ---- what must go even when the run fails ----

const cleanups: { what: string; run: () => Promise<unknown> }[] = [];
/** Set once the operator runs, so a failure can show what it logged last. */
let operatorLogs: readonly string[] = [];
let cleaning: Promise<void> | undefined;

function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const step of cleanups.splice(0).reverse()) {
      progress(`cleanup: ${step.what}`);
      try {
        await step.run();
      } catch (error) {
        progress(`cleanup of ${step.what} failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  })();
  return cleaning;
}

// `on`, not `once`: the control-plane harness re-raises a signal nobody else
// listens to, which would end the process before the cleanup has finished.
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  process.on(signal, () => {
    if (cleaning) return;
    progress(`${signal}: cleaning up`);
    void cleanUp().finally(() => process.exit(code));
  });
}

// ---- checks before anything is created ----

function assertLoopback(): void {
  const loopback = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);
  for (const [service, url] of Object.entries(serviceUrls) as [string, string][]) {
    const host = new URL(url).hostname;
    if (!loopback.has(host))
      throw new Error(`${service} must be on a loopback address for the bench, not ${host}`);
  }
}

async function assertDiskSpace(): Promise<void> {
  const dataDir = await withPostgresAdmin(async (c) => {
    const { rows } = await c.query<{ data_directory: string }>('SHOW data_directory');
    return rows[0]?.data_directory ?? '/';
  });
  for (const dir of [dataDir, tmpdir()]) {
    const fs = statfsSync(dir);
    const freeGb = (fs.bavail * fs.bsize) / 1e9;
    progress(`${freeGb.toFixed(1)} GB free under ${dir}`);
    if (freeGb < settings.minFreeGb) {
      throw new Error(
        `only ${freeGb.toFixed(1)} GB free under ${dir}; the bench creates up to ${settings.steady} tenant databases ` +
          `and needs at least ${settings.minFreeGb} GB (BENCH_MIN_FREE_GB). Free some space or run it smaller ` +
          `(BENCH_TENANTS_STEADY, BENCH_TENANTS_BURST).`,
      );
    }
  }
}

// ---- the cluster ----

/** KWOK nodes like the harness's, with room for every worker pod of the run. */
async function addFakeNodes(cp: ControlPlane, pods: number): Promise<void> {
  const perNode = 250;
  const count = Math.ceil(pods / perNode);
  const nodes = Array.from(
    { length: count },
    (_, i) => `apiVersion: v1
kind: Node
metadata:
  name: kwok-bench-${i}
  annotations: {node.alpha.kubernetes.io/ttl: "0", kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/hostname: kwok-bench-${i}, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
status:
  allocatable: {cpu: "256", memory: 1024Gi, pods: "${perNode}"}
  capacity: {cpu: "256", memory: 1024Gi, pods: "${perNode}"}
`,
  );
  await cp.kubectl(['apply', '-f', '-'], nodes.join('---\n'));
  await cp.kubectl(['wait', '--for=condition=Ready', 'node', '-l', 'type=kwok', '--timeout=120s']);
}

async function waitNamespacesGone(cp: ControlPlane, prefix: string, timeoutMs: number): Promise<void> {
  await poll(`namespaces ${prefix}* to be deleted`, timeoutMs, 1000, async () => {
    const out = await cp.kubectl(['get', 'namespaces', '-o', 'name']);
    const left = out.split('\n').filter((line) => line.startsWith(`namespace/${prefix}`)).length;
    return left === 0 ? true : undefined;
  });
}

// ---- the operator's own numbers ----

interface OperatorCounters {
  reconciles: number;
  /** Reconciles that asked to run again later (a step still pending). */
  requeues: number;
  errors: number;
  depth: number;
}

async function scrape(operator: OperatorProcess): Promise<OperatorCounters> {
  const text = await operator.metrics();
  let reconciles = 0;
  let requeues = 0;
  let errors = 0;
  let depth = 0;
  for (const line of text.split('\n')) {
    const match = /^(tenantry_operator_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (!match) continue;
    const value = Number(match[3]);
    if (match[1] === 'tenantry_operator_reconcile_total') {
      reconciles += value;
      if (match[2] === '{result="requeue"}') requeues += value;
    } else if (match[1] === 'tenantry_operator_reconcile_errors_total') errors += value;
    else if (match[1] === 'tenantry_operator_workqueue_depth') depth = value;
  }
  if (debug) progress(`scrape: ${JSON.stringify({ reconciles, requeues, errors, depth })}`);
  return { reconciles, requeues, errors, depth };
}

// ---- phases ----

async function runBaseline(
  env: Record<string, string>,
  run: string,
  accounting: CpuAccounting,
): Promise<{ result: SequentialResult; cpu: CpuSnapshot }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/support/sequential-provisioner.ts'], {
    cwd: repoRoot,
    env: {
      ...process.env,
      ...env,
      BENCH_RUN: run,
      BENCH_COUNT: String(settings.burst),
      BENCH_PLAN: settings.plan,
      BENCH_DEADLINE_MS: String(Math.max(600_000, settings.burst * 10_000)),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  cleanups.push({ what: 'baseline process', run: () => Promise.resolve(kill()) });
  child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  // The other processes' CPU is read when the child says its timed part starts and ends.
  let before: CpuSnapshot | undefined;
  let after: CpuSnapshot | undefined;
  let result: SequentialResult | undefined;
  let pending = '';
  child.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const message = JSON.parse(pending.slice(0, newline)) as {
        phase?: string;
        result?: SequentialResult;
      };
      pending = pending.slice(newline + 1);
      if (message.phase === 'provision-start') before = accounting.snapshot(child.pid);
      if (message.phase === 'provision-end') after = accounting.snapshot(child.pid);
      if (message.result) result = message.result;
    }
  });
  const code = await new Promise<number | null>((ok) => child.once('exit', ok));
  process.removeListener('exit', kill);
  if (code !== 0 || !result || !before || !after) {
    throw new Error(`the sequential baseline exited with ${code} before reporting its result`);
  }
  return { result, cpu: CpuAccounting.delta(before, after) };
}

async function main(): Promise<void> {
  if (settings.steady < settings.burst) {
    throw new Error(
      'BENCH_TENANTS_STEADY must be at least BENCH_TENANTS_BURST (the burst tenants count towards it)',
    );
  }
  assertLoopback();
  await assertDiskSpace();
  const run = uniqueSuffix().slice(-6);
  const raw = new TenantFleet(run, 'raw');
  const fleet = new TenantFleet(run, 'op');
  progress(
    `run ${run}: burst ${settings.burst}, steady ${settings.steady}, concurrency ${settings.concurrency}, resync ${settings.resyncSeconds} s`,
  );

  progress('starting the control plane');
  const cp = await startControlPlane();
  cleanups.push({ what: 'control plane', run: () => cp.stop() });
  await installTenantCrd(cp);
  await addFakeNodes(cp, Math.max(settings.burst, settings.steady) + 10);
  const api = tenantApi(cp.kubeconfigPath);

  const admin = await createOperatorAdminRole('bench');
  cleanups.push({ what: `PostgreSQL role ${admin.name}`, run: () => admin.drop() });
  const vhost = await createTestVhost('bench');
  cleanups.push({ what: `RabbitMQ vhost ${vhost.name}`, run: () => vhost.drop() });
  const log = (line: string) => progress(line);
  cleanups.push({
    what: 'tenant databases, roles and RabbitMQ users',
    run: async () => progress(`dropped ${JSON.stringify(await dropLeftovers(`bench-${run}-`, log))}`),
  });

  const env: Record<string, string> = {
    KUBECONFIG: cp.kubeconfigPath,
    OPERATOR_NAMESPACE: `tenantry-bench-${run}`,
    POSTGRES_URL: admin.url,
    TENANT_DB_HOST: '127.0.0.1',
    TENANT_DB_PORT: new URL(serviceUrls.postgres).port || '5432',
    RABBITMQ_VHOST: vhost.name,
    RESYNC_SECONDS: String(settings.resyncSeconds),
    RECONCILE_CONCURRENCY: String(settings.concurrency),
    LEASE_NAME: `tenantry-operator-bench-${run}`,
    WORKER_IMAGE: 'registry.invalid/tenantry:bench',
  };
  const accounting = new CpuAccounting(cp.pids);

  emit('operator.config', 'reconcile_concurrency', settings.concurrency, 'workers', 1);
  emit('operator.config', 'tenants_burst', settings.burst, 'tenants', settings.burst);
  emit('operator.config', 'tenants_steady', settings.steady, 'tenants', null);
  emit('operator.config', 'resync_period', settings.resyncSeconds, 's', null);

  // ---- baseline: the raw work, sequentially, without the operator ----
  progress(`baseline: provisioning ${settings.burst} tenants sequentially without the operator`);
  const baseline = await runBaseline(env, run, accounting);
  const b = baseline.result;
  progress(
    `baseline: ${b.provisionSeconds.toFixed(1)} s (calls ${b.workSeconds.toFixed(1)} s), cpu ${b.provisionCpuSeconds.toFixed(1)} s, ` +
      `second pass ${b.resyncSeconds.toFixed(1)} s / cpu ${b.resyncCpuSeconds.toFixed(1)} s, max rss ${mib(b.maxRssKiB).toFixed(0)} MiB`,
  );
  // Its tenants go before the operator starts: the Tenants (which takes the
  // namespaces along), then what they have outside Kubernetes.
  await cp.kubectl(['delete', 'tenants', '--all', '--wait=true', '--timeout=120s']);
  progress(`baseline cleanup: ${JSON.stringify(await dropLeftovers(raw.prefix, log))}`);
  await waitNamespacesGone(cp, `tenant-${raw.prefix}`, 300_000);

  // ---- the operator ----
  // The operator runs compiled, as in its image: tsx's in-memory compiler would be counted in its memory.
  progress('building dist/ and starting the operator');
  execFileSync('npm', ['run', '--silent', 'build'], {
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const operator = await startOperator(env, 30_000, { compiled: true });
  cleanups.push({ what: 'operator', run: () => operator.kill('SIGTERM') });
  operatorLogs = operator.logs;
  const pid = operator.child.pid!;
  await sleep(5000);
  const idle = memoryKiB(pid)!;
  progress(`operator pid ${pid} idle: rss ${mib(idle.rss).toFixed(0)} MiB`);

  // ---- burst: all at once ----
  progress(`burst: creating ${settings.burst} Tenants at once`);
  const burstNames = fleet.names(1, settings.burst);
  const metricsBefore = await scrape(operator);
  const cpuBefore = accounting.snapshot(pid);
  let peakRss = idle.rss;
  const t0 = Date.now();
  await createTenants(
    api,
    burstNames.map((name) => tenantManifest(name, settings.plan)),
  );
  progress(`burst: created in ${((Date.now() - t0) / 1000).toFixed(2)} s`);
  const readyAt = new Map<string, number>();
  const burstDeadlineMs = Math.max(300_000, settings.burst * 5000);
  await poll('the burst Tenants to be Ready', burstDeadlineMs, 250, async () => {
    const items = await listTenants(api);
    const now = Date.now();
    for (const tenant of items) {
      if (!readyAt.has(tenant.metadata.name) && isReady(tenant)) readyAt.set(tenant.metadata.name, now);
    }
    peakRss = Math.max(peakRss, memoryKiB(pid)?.rss ?? 0);
    return readyAt.size >= settings.burst ? true : undefined;
  });
  const cpuAfter = accounting.snapshot(pid);
  const metricsAfter = await scrape(operator);
  const burstMem = memoryKiB(pid)!;
  const burstCpu = CpuAccounting.delta(cpuBefore, cpuAfter);
  const latencies = burstNames.map((name) => (readyAt.get(name)! - t0) / 1000);
  const allReady = Math.max(...latencies);
  const rawLatencies = b.tenants.map((t) => (t.availableAt - b.startedAt) / 1000);
  progress(`burst: all ${settings.burst} Ready after ${allReady.toFixed(1)} s`);

  emit('operator.burst', 'all_ready_seconds', allReady, 's', b.provisionSeconds);
  emit('operator.burst', 'time_ratio_vs_raw', allReady / b.provisionSeconds, 'ratio', 1);
  emit(
    'operator.burst',
    'ready_latency_p50_seconds',
    percentile(latencies, 50),
    's',
    percentile(rawLatencies, 50),
  );
  emit(
    'operator.burst',
    'ready_latency_p95_seconds',
    percentile(latencies, 95),
    's',
    percentile(rawLatencies, 95),
  );
  emit('operator.burst', 'peak_rss_mib', mib(Math.max(burstMem.hwm, peakRss)), 'MiB', mib(b.maxRssKiB));
  emit('operator.burst', 'cpu_seconds', burstCpu.subject, 's', b.provisionCpuSeconds);
  emit(
    'operator.burst',
    'reconciles',
    metricsAfter.reconciles - metricsBefore.reconciles,
    'reconciles',
    settings.burst,
  );
  emit(
    'operator.burst',
    'reconcile_requeues',
    metricsAfter.requeues - metricsBefore.requeues,
    'reconciles',
    0,
  );
  emit('operator.burst', 'reconcile_errors', metricsAfter.errors - metricsBefore.errors, 'errors', 0);
  // Where the machine's cores went, against the same counters while the baseline ran.
  emit('operator.burst', 'control_plane_cpu_seconds', burstCpu.controlPlane, 's', baseline.cpu.controlPlane);
  emit('operator.burst', 'postgres_cpu_seconds', burstCpu.postgres, 's', baseline.cpu.postgres);
  emit('operator.burst', 'rabbitmq_cpu_seconds', burstCpu.rabbitmq, 's', baseline.cpu.rabbitmq);
  emit('operator.burst', 'machine_busy_cpu_seconds', burstCpu.machine, 's', baseline.cpu.machine);
  const unaccounted = (c: CpuSnapshot) => c.machine - c.subject - c.controlPlane - c.postgres - c.rabbitmq;
  emit('operator.burst', 'other_cpu_seconds', unaccounted(burstCpu), 's', unaccounted(baseline.cpu));

  // ---- steady: top up to the steady count, then one full resync ----
  const topUpStart = performance.now();
  for (let created = settings.burst; created < settings.steady;) {
    const count = Math.min(settings.batch, settings.steady - created);
    const names = fleet.names(created + 1, count);
    await createTenants(
      api,
      names.map((name) => tenantManifest(name, settings.plan)),
    );
    created += count;
    const batchStart = performance.now();
    await poll(`${created} Tenants to be Ready`, Math.max(900_000, count * 10_000), 2000, async () => {
      const ready = (await listTenants(api)).filter(isReady).length;
      return ready >= created ? true : undefined;
    });
    progress(
      `steady: ${created}/${settings.steady} Ready (batch of ${count} in ${((performance.now() - batchStart) / 1000).toFixed(1)} s, ` +
        `operator rss ${mib(memoryKiB(pid)?.rss ?? 0).toFixed(0)} MiB)`,
    );
  }
  const topUpSeconds = (performance.now() - topUpStart) / 1000;
  const added = settings.steady - settings.burst;

  progress('steady: waiting for the operator to go quiet');
  const quiet = await waitQuiet(operator, settings.resyncSeconds * 1000 + 30_000);
  progress(
    quiet
      ? `steady: quiet (${quiet.reconciles} reconciles so far); waiting for the next relist`
      : 'steady: the queue did not drain within a resync period; measuring anyway',
  );
  const versions = new Map(
    (await listTenants(api)).map((t) => [t.metadata.name, t.metadata.resourceVersion]),
  );
  const reconcilesBefore = (await scrape(operator)).reconciles;
  const sessionsBefore = await tenantDbSessions(fleet.prefix);
  const window = await measureResync(operator, pid, accounting, settings, settings.steady);
  // Connections per reconcile, counted once the next wave is over too: PostgreSQL
  // publishes a backend's session count when it exits, so the window's own edge would be fuzzy.
  await waitQuiet(operator, 30_000);
  await sleep(1500);
  const sessions = (await tenantDbSessions(fleet.prefix)) - sessionsBefore;
  const sessionsPerReconcile = sessions / Math.max(1, (await scrape(operator)).reconciles - reconcilesBefore);
  // Status patches or finalizer changes during the window; a steady resync should write nothing.
  const rewritten = (await listTenants(api)).filter(
    (t) => versions.get(t.metadata.name) !== t.metadata.resourceVersion,
  );
  // Per reconcile, not per tenant: when a wave cannot finish before the next
  // relist, a window holds fewer reconciles than there are tenants.
  const perReconcileCpuMs = (window.cpu.subject / Math.max(1, window.reconciles)) * 1000;
  const rawPerTenantCpuMs = (b.resyncCpuSeconds / settings.burst) * 1000;
  const rawPerTenantSeconds = b.resyncSeconds / settings.burst;

  if (added > 0) {
    emit(
      'operator.steady',
      'provision_tenants_per_second',
      added / topUpSeconds,
      'tenants/s',
      settings.burst / b.provisionSeconds,
    );
  }
  emit(
    'operator.steady',
    'resync_cpu_seconds',
    window.cpu.subject,
    's',
    (rawPerTenantCpuMs * window.reconciles) / 1000,
  );
  emit('operator.steady', 'resync_cpu_ms_per_reconcile', perReconcileCpuMs, 'ms', rawPerTenantCpuMs);
  emit(
    'operator.steady',
    'resync_wave_seconds',
    window.waveSeconds ?? settings.steady / (window.reconciles / window.cpu.at),
    's',
    rawPerTenantSeconds * settings.steady,
  );
  emit('operator.steady', 'resync_interval_seconds', window.cpu.at, 's', settings.resyncSeconds);
  emit('operator.steady', 'reconciles_per_resync', window.reconciles, 'reconciles', settings.steady);
  emit('operator.steady', 'tenants_rewritten_per_resync', rewritten.length, 'tenants', 0);
  emit(
    'operator.steady',
    'tenant_db_connections_per_reconcile',
    sessionsPerReconcile,
    'connections',
    b.resyncTenantDbSessions / settings.burst,
  );
  emit('operator.steady', 'rss_mib', mib(window.endRss), 'MiB', mib(idle.rss));
  emit('operator.steady', 'peak_rss_mib', mib(window.peakRss), 'MiB', mib(idle.rss));
  emit('operator.steady', 'machine_busy_cpu_seconds', window.cpu.machine, 's', null);
  progress(`operator VmHWM over the whole run: ${mib(memoryKiB(pid)?.hwm ?? 0).toFixed(0)} MiB`);
  const failures = operator.logs.filter((line) => line.includes('reconcile failed')).length;
  if (failures > 0) progress(`the operator logged ${failures} failed reconciles`);
}

/** Waits until the queue is empty and no reconcile ran for three scrapes in a row; undefined if it never is. */
async function waitQuiet(
  operator: OperatorProcess,
  timeoutMs: number,
): Promise<OperatorCounters | undefined> {
  let previous = await scrape(operator);
  let calm = 0;
  return poll('the operator to go quiet', timeoutMs, 1000, async () => {
    const now = await scrape(operator);
    calm = now.depth === 0 && now.reconciles === previous.reconciles ? calm + 1 : 0;
    previous = now;
    return calm >= 3 ? now : undefined;
  }).catch(() => undefined);
}

/** Connections ever made to the fleet's tenant databases (pg_stat_database.sessions). */
async function tenantDbSessions(namePrefix: string): Promise<number> {
  const prefix = leftoverPrefixes(namePrefix).sql;
  return withPostgresAdmin(async (c) => {
    const { rows } = await c.query<{ n: string | null }>(
      'SELECT sum(sessions) AS n FROM pg_stat_database WHERE left(datname, length($1)) = $1',
      [prefix],
    );
    return Number(rows[0]?.n ?? 0);
  });
}

interface ResyncWindow {
  cpu: CpuSnapshot;
  reconciles: number;
  /** Relist until the queue drained; undefined when it never drained before the next relist. */
  waveSeconds: number | undefined;
  endRss: number;
  peakRss: number;
}

/**
 * From one relist to the next. A relist adds every Tenant to the queue at
 * once, so it shows as the queue depth jumping up, or (for a wave short enough
 * to fall between two scrapes) as reconciles after a quiet stretch. The depth
 * gauge leaves out reconciles in flight, so "quiet" needs several scrapes
 * without a finished reconcile, longer than one reconcile takes.
 */
async function measureResync(
  operator: OperatorProcess,
  pid: number,
  accounting: CpuAccounting,
  config: { concurrency: number; resyncSeconds: number },
  tenants: number,
): Promise<ResyncWindow> {
  const intervalMs = 500;
  const quietScrapes = 6;
  // In steady state only a relist adds more keys at once than there are workers.
  const jump = Math.max(config.concurrency + 1, Math.min(Math.floor(tenants / 4), 20));
  let previous = await scrape(operator);
  let quietFor = 0;
  const nextRelist = async (timeoutMs: number, onScrape?: (c: OperatorCounters, quiet: boolean) => void) =>
    poll('a relist', timeoutMs, intervalMs, async () => {
      const now = await scrape(operator);
      const quiet = now.depth === 0 && now.reconciles === previous.reconciles;
      const started =
        now.depth >= previous.depth + jump ||
        (quietFor >= quietScrapes && now.reconciles > previous.reconciles);
      quietFor = quiet ? quietFor + 1 : 0;
      onScrape?.(now, quiet);
      previous = now;
      return started ? now : undefined;
    });

  const limit = config.resyncSeconds * 2 * 1000 + 60_000;
  const first = await nextRelist(limit);
  const start = accounting.snapshot(pid);
  const startedAt = performance.now();
  progress(`steady: relist seen (queue depth ${first.depth}); measuring until the next one`);
  let waveEnd: number | undefined;
  let peakRss = memoryKiB(pid)?.rss ?? 0;
  let lastReconcileAt = performance.now();
  let reconcilesSeen = first.reconciles;
  const second = await nextRelist(limit, (c, quiet) => {
    peakRss = Math.max(peakRss, memoryKiB(pid)?.rss ?? 0);
    if (c.reconciles !== reconcilesSeen) {
      reconcilesSeen = c.reconciles;
      lastReconcileAt = performance.now();
    }
    // The wave ended at the last scrape that saw a reconcile finish before the queue went quiet.
    if (waveEnd === undefined && quiet && quietFor >= quietScrapes) waveEnd = lastReconcileAt;
  });
  const end = accounting.snapshot(pid);
  const endRss = memoryKiB(pid)?.rss ?? 0;
  return {
    cpu: CpuAccounting.delta(start, end),
    reconciles: second.reconciles - first.reconciles,
    waveSeconds: waveEnd === undefined ? undefined : (waveEnd - startedAt) / 1000,
    endRss,
    peakRss: Math.max(peakRss, endRss),
  };
}

void main()
  .then(
    () => 0,
    (error: unknown) => {
      progress(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      if (operatorLogs.length > 0)
        progress(`last operator log lines:\n${operatorLogs.slice(-40).join('\n')}`);
      return 1;
    },
  )
  .then(async (code) => {
    await cleanUp();
    progress('done');
    process.exit(code);
  });
