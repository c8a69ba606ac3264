// API benchmark on this machine: authenticated GET /api/users?page_size=20
// spread across BENCH_API_TENANTS tenants, through the real stack (the API as a
// child process, compiled as in its image: JWT verification, Redis rate limits, the tenant directory
// watching a private control plane, per-tenant Sequelize pools on the local
// PostgreSQL). Baseline in the same run: bare Express and `pg` serving the same
// two statements on the same databases, without auth (bench/support/bare-api.ts).
// Two measurements each: throughput with a fixed number of requests in flight,
// then latency at a fixed rate (open loop). stdout carries only JSON lines.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { generateSigningKey, InMemoryKeySetSource, serializeKeySet } from '../api/src/auth/keys.js';
import { TokenService } from '../api/src/auth/tokens.js';
import { tenantNames } from '../lib/tenant/index.js';
import { platformDatabaseSecretName } from '../operator/src/specs/index.js';
import { startTestPlatform, type TestPlatform } from '../test/harness/platform.js';
import { serviceUrls } from '../test/harness/services.js';
import { stopSharedControlPlane } from '../test/harness/shared-cluster.js';
import { loadClient, type LoadRequest, type LoadResult } from './support/http-load.js';
import { emit, intSetting, percentile, progress } from './support/report.js';

const settings = {
  tenants: intSetting('BENCH_API_TENANTS', 10, 1, 15),
  usersPerTenant: intSetting('BENCH_API_USERS', 200, 20, 100_000),
  concurrency: intSetting('BENCH_API_CONCURRENCY', 32, 1, 512),
  seconds: intSetting('BENCH_API_SECONDS', 15, 2, 600),
  rate: intSetting('BENCH_API_RATE', 500, 1, 20_000),
};
const repoRoot = resolve(import.meta.dirname, '..');
const issuer = 'http://127.0.0.1:8080';
// Each user may send 600 requests a minute; spreading the load over this many users per tenant keeps
// the per-user limit out of the measurement while every request still passes through it.
const tokensPerTenant = 50;

interface Child {
  process: ChildProcess;
  port: number;
  stop(): Promise<void>;
}

/** Starts a child and waits for the line that carries its port. */
function startChild(
  name: string,
  args: string[],
  env: Record<string, string>,
  portLine: RegExp,
): Promise<Child> {
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not start:\n${tail.join('')}`)), 60_000);
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      tail.push(text);
      if (tail.length > 50) tail.shift();
      const match = portLine.exec(text);
      if (match) {
        clearTimeout(timer);
        ok({
          process: child,
          port: Number(match[1]),
          stop: async () => {
            child.kill('SIGTERM');
            const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
            await exited;
            clearTimeout(killer);
          },
        });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => fail(new Error(`${name} exited with ${code}:\n${tail.join('')}`)));
  });
}

/** 200 users per tenant, inserted directly (setup only; the API's hashing is not what is measured). */
async function seedUsers(tenant: string): Promise<string[]> {
  const url = new URL(serviceUrls.postgres);
  url.pathname = `/${tenantNames(tenant).database}`;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string }>(
      `INSERT INTO app.users (email, first_name, last_name, role, department)
       SELECT 'user' || i || '@' || $1 || '.example', 'First' || i, 'Last' || i,
              CASE WHEN i % 10 = 0 THEN 'admin' ELSE 'member' END, 'dept' || (i % 7)
       FROM generate_series(1, $2::int) AS i
       RETURNING id`,
      [tenant, settings.usersPerTenant],
    );
    await client.query('ANALYZE app.users');
    return rows.map((r) => r.id);
  } finally {
    await client.end();
  }
}

async function databaseUri(platform: TestPlatform, tenant: string): Promise<string> {
  const secret = JSON.parse(
    await platform.cp.kubectl([
      'get',
      'secret',
      '-n',
      platform.platformNamespace,
      platformDatabaseSecretName(tenant),
      '-o',
      'json',
    ]),
  ) as { data: Record<string, string> };
  return Buffer.from(secret.data.uri ?? '', 'base64').toString('utf8');
}

function report(bench: string, load: LoadResult): void {
  if (load.failures > 0) {
    throw new Error(
      `${bench}: ${load.failures} of ${load.requests} requests failed; first: ${load.firstFailure}`,
    );
  }
}

async function measure(baseUrl: string, next: (i: number) => LoadRequest) {
  const client = loadClient(baseUrl);
  try {
    // Warm the pools, the JIT and the caches before anything is counted.
    await client.closedLoop(next, { concurrency: settings.concurrency, durationMs: 3000 });
    const throughput = await client.closedLoop(next, {
      concurrency: settings.concurrency,
      durationMs: settings.seconds * 1000,
    });
    const latency = await client.openLoop(next, {
      ratePerSecond: settings.rate,
      durationMs: settings.seconds * 1000,
    });
    return { throughput, latency };
  } finally {
    client.close();
  }
}

async function main(): Promise<void> {
  progress(`starting the control plane and the operator; ${settings.tenants} tenants`);
  // The operator at its production resync (the test suites' 5 s resync re-applies every tenant's
  // objects, which would compete with the measurement for the same cores).
  const platform = await startTestPlatform('apibench', { RESYNC_SECONDS: '300' });
  const children: Child[] = [];
  const keysDir = mkdtempSync(join(tmpdir(), 'tenantry-api-bench-'));
  const cleanUp = async () => {
    await Promise.all(children.map((c) => c.stop().catch(() => undefined)));
    await platform.cleanup().catch(() => undefined);
    await stopSharedControlPlane();
    rmSync(keysDir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanUp().then(() => process.exit(130)));
  process.once('SIGTERM', () => void cleanUp().then(() => process.exit(143)));
  try {
    const tenants = Array.from({ length: settings.tenants }, (_, i) => platform.tenantName(`t${i}`));
    for (const name of tenants) {
      await platform.applyTenant(name, '  rateLimit: {requestsPerMinute: 1000000}\n');
    }
    await Promise.all(tenants.map((name) => platform.waitReady(name, 180_000)));
    progress('tenants Ready; seeding users');
    const users = new Map<string, string[]>();
    for (const name of tenants) users.set(name, await seedUsers(name));

    const keys = new InMemoryKeySetSource([generateSigningKey(new Date())]);
    const keysFile = join(keysDir, 'keys.json');
    writeFileSync(keysFile, serializeKeySet(keys.current()), { mode: 0o600 });
    const tokens = new TokenService({ keys, issuer, audience: 'tenantry-api', accessTokenTtlSeconds: 3600 });
    const bearer: string[][] = [];
    for (const name of tenants) {
      const ids = users.get(name)!.slice(0, tokensPerTenant);
      // Tenant tokens name the Tenant's uid (api/README.md, "Tenant identity").
      const tenantUid = await platform.cp.kubectl(['get', 'tenant', name, '-o', 'jsonpath={.metadata.uid}']);
      bearer.push(
        await Promise.all(
          ids.map(
            async (sub) =>
              `Bearer ${(await tokens.issueAccessToken({ sub, tid: name, tenantUid, role: 'member' })).token}`,
          ),
        ),
      );
    }

    const stackRequest = (i: number): LoadRequest => {
      const t = i % tenants.length;
      const perTenant = bearer[t]!;
      return {
        path: '/api/users?page_size=20',
        headers: { authorization: perTenant[Math.floor(i / tenants.length) % perTenant.length]! },
      };
    };
    const bareRequest = (i: number): LoadRequest => ({
      path: `/t/${tenants[i % tenants.length]}/users?page_size=20`,
    });

    // One at a time, so the two never hold PostgreSQL connections at once.
    const uris: Record<string, string> = {};
    for (const name of tenants) uris[name] = await databaseUri(platform, name);
    const bare = await startChild(
      'bare api',
      ['--import', 'tsx', 'bench/support/bare-api.ts'],
      { PORT: '0', TENANT_DATABASES: JSON.stringify(uris) },
      /listening (\d+)/,
    );
    children.push(bare);
    progress('measuring the bare baseline');
    const base = await measure(`http://127.0.0.1:${bare.port}`, bareRequest);
    report('bare', base.throughput);
    report('bare', base.latency);
    await bare.stop();

    // The API runs compiled, as its image runs it.
    execFileSync('npm', ['run', '--silent', 'build'], {
      cwd: repoRoot,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const api = await startChild(
      'api',
      // BENCH_API_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/api-profile", to profile the API under load.
      [...(process.env.BENCH_API_NODE_ARGS ?? '').split(' ').filter(Boolean), 'dist/api/src/main.js'],
      {
        HOST: '127.0.0.1',
        PORT: '0',
        METRICS_HOST: '127.0.0.1',
        METRICS_PORT: '0',
        KUBECONFIG: platform.cp.kubeconfigPath,
        PLATFORM_NAMESPACE: platform.platformNamespace,
        PUBLIC_BASE_URL: issuer,
        JWT_KEYS_FILE: keysFile,
        REDIS_URL: serviceUrls.redis,
        // Production's level: every request writes its access log line (the bench drains the pipe).
        LOG_LEVEL: 'info',
      },
      /"port":(\d+).*"msg":"api started"/,
    );
    children.push(api);
    // Wait until the API's directory serves every tenant.
    const probe = loadClient(`http://127.0.0.1:${api.port}`);
    const deadline = Date.now() + 60_000;
    for (let t = 0; t < tenants.length;) {
      const check = await probe.closedLoop(
        () => ({ path: '/api/tenants/current', headers: { authorization: bearer[t]![0]! } }),
        { concurrency: 1, durationMs: 1 },
      );
      if (check.failures === 0) t++;
      else if (Date.now() > deadline)
        throw new Error(`the API never served ${tenants[t]}: ${check.firstFailure}`);
      else await new Promise((ok) => setTimeout(ok, 500));
    }
    probe.close();
    progress('measuring the API');
    const full = await measure(`http://127.0.0.1:${api.port}`, stackRequest);
    report('api', full.throughput);
    report('api', full.latency);

    const rps = (r: LoadResult) => r.requests / r.seconds;
    emit('api.users_list', 'requests_per_second', rps(full.throughput), 'req/s', rps(base.throughput));
    emit('api.users_list', 'throughput_ratio', rps(full.throughput) / rps(base.throughput), 'ratio', 1);
    emit(
      'api.users_list',
      `p50_ms_at_${settings.rate}_rps`,
      percentile(full.latency.latenciesMs, 50),
      'ms',
      percentile(base.latency.latenciesMs, 50),
    );
    emit(
      'api.users_list',
      `p99_ms_at_${settings.rate}_rps`,
      percentile(full.latency.latenciesMs, 99),
      'ms',
      percentile(base.latency.latenciesMs, 99),
    );
    emit('api.users_list', 'achieved_rps_at_fixed_rate', rps(full.latency), 'req/s', rps(base.latency));
  } finally {
    progress('cleaning up');
    await cleanUp();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    progress(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
