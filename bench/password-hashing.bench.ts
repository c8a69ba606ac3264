// The password-hashing budget on this machine: tenant B's sign-in latency (p50/p99) while tenant A
// hammers POST /api/users/bulk with passwords, through the real API in a child process (argon2id on its
// libuv pool, Redis rate limits, per-tenant pools on the local PostgreSQL, Tenants provisioned by the
// operator). Baselines in the same run: B's sign-ins with no load, and the same load on the API without
// a budget (every hash straight to the thread pool, first come first served, as before the budget).
// stdout carries only JSON lines.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { hashPassword } from '../api/src/auth/passwords.js';
import { defaultPasswordHashingLimits } from '../api/src/auth/password-hashing.js';
import { startTestApi } from '../test/harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../test/harness/platform.js';
import { stopSharedControlPlane } from '../test/harness/shared-cluster.js';
import { emit, intSetting, percentile, progress } from './support/report.js';

const settings = {
  seconds: intSetting('BENCH_HASH_SECONDS', 20, 5, 600),
  loginRate: intSetting('BENCH_HASH_LOGIN_RATE', 4, 1, 50),
  // Each import holds one of the tenant's pool connections while it hashes (4 in the API the bench runs).
  bulkConcurrency: intSetting('BENCH_HASH_BULK_CONCURRENCY', 4, 1, 64),
  bulkUsers: intSetting('BENCH_HASH_BULK_USERS', 100, 1, 100),
  concurrency: intSetting('BENCH_HASH_CONCURRENCY', defaultPasswordHashingLimits.concurrency, 1, 64),
  perTenant: intSetting('BENCH_HASH_PER_TENANT', defaultPasswordHashingLimits.perTenant, 1, 64),
};
const repoRoot = resolve(import.meta.dirname, '..');
const password = 'bench password 0123456789';
// Far above any number of hashes in flight: the scheduler never holds one back.
const unbudgeted = 10_000;

interface Api {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

function startApi(env: Record<string, string>): Promise<Api> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/support/password-hashing-api.ts'], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  return new Promise((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error('the API did not start within 60 s')), 60_000);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /port=(\d+)/.exec(out);
      if (!match) return;
      clearTimeout(timer);
      ok({
        url: `http://127.0.0.1:${match[1]}`,
        child,
        stop: async () => {
          child.kill('SIGTERM');
          const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(killer);
        },
      });
    });
    child.once('exit', (code) => fail(new Error(`the API exited with ${code}`)));
  });
}

let address = 0;
/** A new client address per sign-in, so the per-address sign-in limits stay out of the measurement. */
function nextAddress(): string {
  address += 1;
  return `10.${(address >> 16) & 255}.${(address >> 8) & 255}.${address & 255}`;
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(600_000),
  });
  const text = await response.text();
  return { status: response.status, text };
}

async function login(api: Api, tenant: string, email: string): Promise<string> {
  const res = await post(
    `${api.url}/api/auth/login`,
    { tenant, email, password },
    { 'x-forwarded-for': nextAddress() },
  );
  if (res.status !== 200)
    throw new Error(`login of ${email} failed: ${res.status} ${res.text.slice(0, 200)}`);
  return (JSON.parse(res.text) as { access_token: string }).access_token;
}

/** Tenant B's sign-ins at a fixed rate (open loop: latency from when each was due). */
async function signIns(
  api: Api,
  tenant: string,
): Promise<{ latencies: number[]; failures: number; first?: string }> {
  const total = settings.loginRate * settings.seconds;
  const interval = 1000 / settings.loginRate;
  const started = performance.now();
  const latencies: number[] = [];
  let failures = 0;
  let first: string | undefined;
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i += 1) {
    const due = started + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((ok) => setTimeout(ok, wait));
    pending.push(
      post(
        `${api.url}/api/auth/login`,
        { tenant, email: `user-${i % 20}@${tenant}.example`, password },
        { 'x-forwarded-for': nextAddress() },
      ).then(
        (res) => {
          if (res.status === 200) latencies.push(performance.now() - due);
          else {
            failures += 1;
            first ??= `${res.status} ${res.text.slice(0, 200)}`;
          }
        },
        (error: unknown) => {
          failures += 1;
          first ??= String(error);
        },
      ),
    );
  }
  await Promise.all(pending);
  return { latencies, failures, ...(first ? { first } : {}) };
}

/** Tenant A's bulk imports, `bulkConcurrency` in flight, until stopped; users created per second. */
function bulkImports(api: Api, tenant: string, token: string, label: string) {
  let stopping = false;
  let created = 0;
  let failed = 0;
  let n = 0;
  const started = performance.now();
  const lane = async () => {
    while (!stopping) {
      const batch = (n += 1);
      const users = Array.from({ length: settings.bulkUsers }, (_, j) => ({
        email: `bulk-${label}-${batch}-${j}@${tenant}.example`,
        password,
      }));
      const res = await post(`${api.url}/api/users/bulk`, { users }, { authorization: `Bearer ${token}` });
      if (res.status !== 200) {
        failed += settings.bulkUsers;
        progress(`bulk import answered ${res.status}: ${res.text.slice(0, 200)}`);
        await new Promise((ok) => setTimeout(ok, 500));
        continue;
      }
      const body = JSON.parse(res.text) as { created: number; failed: number; results: unknown[] };
      if (body.created === 0)
        throw new Error(`a bulk import created nothing: ${JSON.stringify(body.results[0])}`);
      created += body.created;
      failed += body.failed;
    }
  };
  const lanes = Promise.all(Array.from({ length: settings.bulkConcurrency }, lane));
  // Awaited in stop(); marked handled now, so a lane failing early does not end the process.
  lanes.catch(() => undefined);
  return {
    async stop() {
      stopping = true;
      // The imports in flight finish (a bulk answer only comes at its end), and their users count.
      await lanes;
      return { hashesPerSecond: created / ((performance.now() - started) / 1000), failed };
    },
  };
}

let platform: TestPlatform | undefined;
const apis: Api[] = [];
const cleanup = async () => {
  for (const api of apis.splice(0)) await api.stop().catch(() => undefined);
  await platform?.cleanup().catch(() => undefined);
  await stopSharedControlPlane().catch(() => undefined);
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    progress(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(1));
  });
}

let failed = false;
try {
  progress('starting the control plane, the operator and two tenants');
  platform = await startTestPlatform('bench-hash');
  const tenantA = platform.tenantName('a');
  const tenantB = platform.tenantName('b');
  await Promise.all([platform.applyTenant(tenantA), platform.applyTenant(tenantB)]);
  await Promise.all([platform.waitReady(tenantA), platform.waitReady(tenantB)]);
  const setup = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace);
  const hash = await hashPassword(password);
  const seed = async (tenant: string, emails: string[], role: 'admin' | 'member') => {
    const entry = setup.directory.servable(tenant);
    const { User } = setup.databases.for(tenant, entry.credentials).models;
    for (const email of emails)
      await User.create({
        email,
        role,
        first_name: null,
        last_name: null,
        department: null,
        external_id: null,
        password_hash: hash,
      });
  };
  await seed(tenantA, [`admin@${tenantA}.example`], 'admin');
  await seed(
    tenantB,
    Array.from({ length: 20 }, (_, i) => `user-${i}@${tenantB}.example`),
    'member',
  );
  await setup.close();

  const phase = async (
    label: string,
    slug: string,
    limits: { concurrency: number; perTenant: number },
    load: boolean,
  ) => {
    progress(
      `${label}: API with concurrency ${limits.concurrency}, per tenant ${limits.perTenant}; bulk load ${load}`,
    );
    const api = await startApi({
      BENCH_KUBECONFIG: platform!.cp.kubeconfigPath,
      BENCH_PLATFORM_NAMESPACE: platform!.platformNamespace,
      BENCH_HASH_CONCURRENCY: String(limits.concurrency),
      BENCH_HASH_PER_TENANT: String(limits.perTenant),
    });
    apis.push(api);
    try {
      // Warm-up: pools open, the dummy hash computed, JIT warm.
      for (let i = 0; i < 5; i += 1) await login(api, tenantB, `user-${i}@${tenantB}.example`);
      const importer = load
        ? bulkImports(api, tenantA, await login(api, tenantA, `admin@${tenantA}.example`), slug)
        : undefined;
      // Let the imports build their backlog before measuring.
      if (importer) await new Promise((ok) => setTimeout(ok, 2000));
      const result = await signIns(api, tenantB);
      const bulk = await importer?.stop();
      // A loaded machine can make Redis miss the limiters' deadline (503, fail closed); a few are reported,
      // more than a tenth of the sign-ins fail the run.
      if (result.failures > 0)
        progress(`${label}: ${result.failures} sign-ins failed, first: ${result.first}`);
      if (result.failures * 10 > settings.loginRate * settings.seconds)
        throw new Error(`${label}: ${result.failures} sign-ins failed`);
      progress(
        `${label}: ${result.latencies.length} sign-ins, p50 ${percentile(result.latencies, 50).toFixed(0)} ms, p99 ${percentile(result.latencies, 99).toFixed(0)} ms${bulk ? `; tenant A ${bulk.hashesPerSecond.toFixed(1)} hashes/s` : ''}`,
      );
      return {
        p50: percentile(result.latencies, 50),
        p99: percentile(result.latencies, 99),
        failures: result.failures,
        bulk,
      };
    } finally {
      await api.stop();
      apis.splice(apis.indexOf(api), 1);
    }
  };

  const budget = { concurrency: settings.concurrency, perTenant: settings.perTenant };
  const idle = await phase('no load', 'idle', budget, false);
  const budgeted = await phase('budgeted, bulk load', 'budgeted', budget, true);
  const open = await phase(
    'unbudgeted, bulk load',
    'unbudgeted',
    { concurrency: unbudgeted, perTenant: unbudgeted },
    true,
  );

  emit('password_hashing.config', 'concurrency', settings.concurrency, 'jobs', null);
  emit('password_hashing.config', 'per_tenant', settings.perTenant, 'jobs', null);
  emit('password_hashing.config', 'bulk_concurrency', settings.bulkConcurrency, 'requests', null);
  emit('password_hashing.config', 'login_rate', settings.loginRate, 'per_second', null);
  emit('password_hashing.login_under_bulk', 'p50_ms', budgeted.p50, 'ms', idle.p50);
  emit('password_hashing.login_under_bulk', 'p99_ms', budgeted.p99, 'ms', idle.p99);
  emit('password_hashing.login_under_bulk_unbudgeted', 'p50_ms', open.p50, 'ms', idle.p50);
  emit('password_hashing.login_under_bulk_unbudgeted', 'p99_ms', open.p99, 'ms', idle.p99);
  emit('password_hashing.login_under_bulk', 'p99_ms_vs_unbudgeted', budgeted.p99, 'ms', open.p99);
  emit('password_hashing.login_under_bulk', 'login_failures', budgeted.failures, 'requests', idle.failures);
  emit(
    'password_hashing.login_under_bulk_unbudgeted',
    'login_failures',
    open.failures,
    'requests',
    idle.failures,
  );
  emit(
    'password_hashing.bulk',
    'hashes_per_second',
    budgeted.bulk?.hashesPerSecond ?? NaN,
    'per_second',
    open.bulk?.hashesPerSecond ?? null,
  );
} catch (error) {
  failed = true;
  progress(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  const problems = platform?.operator.logs.filter((line) => /"level":(40|50)/.test(line)).slice(-10) ?? [];
  for (const line of problems) progress(`operator: ${line.slice(0, 500)}`);
} finally {
  progress('cleaning up');
  await cleanup();
}
process.exit(failed ? 1 : 0);
