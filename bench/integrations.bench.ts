// Incoming webhooks accepted per second, with p99, through the real API (a
// child process): Standard Webhooks verification on the raw body, validation,
// dedup insert of the event with its outbox row in one statement, 202.
// Baseline in the same run: bare Express parsing JSON and doing the same
// insert without verification (bench/support/bare-intake.ts). Closed loop
// with BENCH_INTAKE_CONCURRENCY requests in flight for BENCH_INTAKE_SECONDS
// each. stdout carries only JSON lines.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { resolve } from 'node:path';
import { hashPassword } from '../api/src/auth/passwords.js';
import { generateWebhookSecret, signWebhook } from '../lib/webhooks/standard-webhooks.js';
import { startTestApi } from '../test/harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../test/harness/platform.js';
import { stopSharedControlPlane } from '../test/harness/shared-cluster.js';
import { emit, percentile, progress } from './support/report.js';

const concurrency = Number(process.env.BENCH_INTAKE_CONCURRENCY ?? 32);
const seconds = Number(process.env.BENCH_INTAKE_SECONDS ?? 10);
const repoRoot = resolve(import.meta.dirname, '..');

function startChild(
  script: string,
  env: Record<string, string>,
  nodeArgs: string[] = [],
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', script], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((ok, fail) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /port=(\d+)/.exec(out);
      if (match) ok({ child, port: Number(match[1]) });
    });
    child.once('exit', (code) => fail(new Error(`${script} exited with ${code}`)));
  });
}

/** Closed loop of signed POSTs; each request carries a new event. */
async function load(port: number, path: string, secret: string, label: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let failures = 0;
  let firstFailure: string | undefined;
  let n = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const one = () =>
    new Promise<void>((done) => {
      n += 1;
      const body = JSON.stringify({
        event_type: 'message.delivered',
        event_id: `${label}_${n}_${Math.random().toString(36).slice(2)}`,
        timestamp: new Date().toISOString(),
        data: { message_id: `msg_${n}`, recipient: 'someone@example.com', status: 'delivered' },
      });
      const headers = signWebhook([secret], `msg_${label}${n}`, Math.floor(Date.now() / 1000), body);
      const t0 = performance.now();
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: 'POST',
          agent,
          headers: { ...headers, 'content-type': 'application/json' },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 202) latencies.push(performance.now() - t0);
            else {
              failures += 1;
              firstFailure ??= String(res.statusCode);
            }
            done();
          });
        },
      );
      req.on('error', (error) => {
        failures += 1;
        firstFailure ??= error.message;
        done();
      });
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) await one();
    }),
  );
  agent.destroy();
  const elapsed = (performance.now() - started) / 1000;
  if (failures > 0) progress(`${label}: ${failures} failures, first: ${firstFailure}`);
  return {
    perSecond: latencies.length / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

let platform: TestPlatform | undefined;
const children: ChildProcess[] = [];
try {
  progress('starting the control plane, operator and a tenant');
  platform = await startTestPlatform('bench-intake');
  const tenant = platform.tenantName('a');
  await platform.applyTenant(tenant);
  await platform.waitReady(tenant);
  // Configure the provider through an in-process API, as an owner would.
  const setup = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace);
  const entry = setup.directory.servable(tenant);
  await setup.databases.for(tenant, entry.credentials).models.User.create({
    email: `owner@${tenant}.example`,
    role: 'owner',
    first_name: null,
    last_name: null,
    department: null,
    external_id: null,
    password_hash: await hashPassword('bench password 0123456789'),
  });
  const login = await setup.call('POST', '/api/auth/login', {
    body: { tenant, email: `owner@${tenant}.example`, password: 'bench password 0123456789' },
  });
  const secret = generateWebhookSecret();
  const put = await setup.call('PUT', '/api/integrations/providers/communication-service', {
    token: (login.body as { access_token: string }).access_token,
    body: { organization_id: 'org_bench', secret },
  });
  if (put.status !== 201) throw new Error(`provider configuration failed: ${put.status}`);
  await setup.close();

  const baseline = await startChild('bench/support/bare-intake.ts', {
    BENCH_DATABASE_URL: entry.credentials.uri,
  });
  children.push(baseline.child);
  progress(`baseline: ${concurrency} in flight for ${seconds}s`);
  await load(baseline.port, '/hook', secret, 'warm');
  const base = await load(baseline.port, '/hook', secret, 'base');
  baseline.child.kill('SIGTERM');

  const api = await startChild(
    'bench/support/integration-api.ts',
    {
      BENCH_KUBECONFIG: platform.cp.kubeconfigPath,
      BENCH_PLATFORM_NAMESPACE: platform.platformNamespace,
    },
    // BENCH_INTAKE_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/intake-profile", to profile the API under load.
    (process.env.BENCH_INTAKE_NODE_ARGS ?? '').split(' ').filter(Boolean),
  );
  children.push(api.child);
  const path = `/api/integrations/webhooks/communication-service/${tenant}`;
  progress(`API: ${concurrency} in flight for ${seconds}s`);
  await load(api.port, path, secret, 'warmapi');
  const real = await load(api.port, path, secret, 'api');
  emit('integrations.intake', 'accepted_per_second', real.perSecond, '1/s', base.perSecond);
  emit('integrations.intake', 'p50_ms', real.p50, 'ms', base.p50);
  emit('integrations.intake', 'p99_ms', real.p99, 'ms', base.p99);
} finally {
  for (const child of children) child.kill('SIGTERM');
  await platform?.cleanup().catch(() => undefined);
  await stopSharedControlPlane().catch(() => undefined);
}
