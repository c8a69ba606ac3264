// `make dev`: the platform on this machine without Docker. Starts a private
// control plane (with a KWOK fake node), applies the CRD, runs the operator, the
// API, a worker for every Ready Tenant and the provider simulator as local
// processes against the local PostgreSQL, RabbitMQ and Redis, applies the sample
// Tenant and waits until it is Ready. Ctrl-C stops it all. .dev/ holds the
// kubeconfig, the logs and platform-admin.json.
//
// On a cluster each tenant's worker is the operator's Deployment; KWOK only fakes
// its pods, so here a supervisor plays that part: it starts `worker/src/main.ts`
// with the tenant's Secrets when the Tenant is Ready, restarts it when they
// change or it exits, and stops it when the Tenant goes.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startControlPlane } from '../test/harness/control-plane.js';
import { installTenantCrd, samplesDir } from '../test/harness/crds.js';
import { preparePostgresServer } from '../test/harness/postgres-server.js';

const root = resolve(import.meta.dirname, '..');
const devDir = join(root, '.dev');
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));
const step = (message: string) => console.log(`==> ${message}`);

/** Kept across runs so tokens and scripts keep working after a restart. */
function platformAdmin(): { client_id: string; client_secret: string } {
  const file = join(devDir, 'platform-admin.json');
  if (existsSync(file))
    return JSON.parse(readFileSync(file, 'utf8')) as { client_id: string; client_secret: string };
  const credentials = { client_id: 'platform-admin', client_secret: randomBytes(24).toString('base64url') };
  writeFileSync(file, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  return credentials;
}

function run(name: string, script: string, env: Record<string, string>): ChildProcess {
  mkdirSync(join(devDir, 'logs'), { recursive: true });
  const log = createWriteStream(join(devDir, name.startsWith('worker-') ? 'logs' : '', `${name}.log`), {
    flags: 'a',
  });
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  spawned.add(child);
  child.once('exit', (code, signal) => {
    if (!stopping && !retired.has(child))
      console.error(
        `${name} exited (${signal ?? code}); see .dev/${name.startsWith('worker-') ? 'logs/' : ''}${name}.log`,
      );
  });
  return child;
}

let stopping = false;
/** Every child ever started, so none outlives this process, however it ends. */
const spawned = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of spawned)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
});
/** Children stopped on purpose (a worker whose Tenant went or whose Secrets changed). */
const retired = new WeakSet<ChildProcess>();

interface TenantView {
  metadata: { name: string; generation?: number };
  status?: { observedGeneration?: number; conditions?: { type: string; status: string }[] };
}

/** Keeps one worker process per Ready Tenant, started with that tenant's own credentials. */
function superviseWorkers(kubectl: (args: string[]) => Promise<string>): {
  children(): ChildProcess[];
  stop(): void;
} {
  const workers = new Map<string, { child: ChildProcess; credentials: string }>();
  const secret = async (namespace: string, name: string) => {
    const json = JSON.parse(await kubectl(['get', 'secret', '-n', namespace, name, '-o', 'json'])) as {
      data?: Record<string, string>;
    };
    const value = (key: string) => Buffer.from(json.data?.[key] ?? '', 'base64').toString('utf8');
    return value;
  };
  const retire = (name: string) => {
    const current = workers.get(name);
    if (!current) return;
    workers.delete(name);
    retired.add(current.child);
    current.child.kill('SIGTERM');
  };
  const sync = async () => {
    const list = JSON.parse(await kubectl(['get', 'tenants', '-o', 'json'])) as { items: TenantView[] };
    const ready = new Set(
      list.items
        .filter((t) => t.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
        .map((t) => t.metadata.name),
    );
    for (const name of workers.keys()) if (!ready.has(name)) retire(name);
    for (const name of ready) {
      // A Tenant being deleted or re-created may be listed Ready while its Secrets are gone; next round.
      const found = await Promise.all([
        secret(`tenant-${name}`, `${name}-db`),
        secret(`tenant-${name}`, `${name}-amqp`),
      ]).catch(() => undefined);
      if (!found) continue;
      const [db, amqp] = found;
      const credentials = `${db('uri')}|${amqp('uri')}|${amqp('queuePrefix')}`;
      const running = workers.get(name);
      if (running && running.credentials === credentials && running.child.exitCode === null) continue;
      retire(name);
      const child = run(`worker-${name}`, 'worker/src/main.ts', {
        TENANTRY_TENANT: name,
        DATABASE_URL: db('uri'),
        AMQP_URL: amqp('uri'),
        AMQP_QUEUE_PREFIX: amqp('queuePrefix'),
        HTTP_HOST: '127.0.0.1',
        HTTP_PORT: '0',
        METRICS_HOST: '127.0.0.1',
        METRICS_PORT: '0',
        WEBHOOKS_ALLOW_LOOPBACK: 'true',
      });
      workers.set(name, { child, credentials });
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const loop = () => {
    void sync()
      .catch((error: unknown) => {
        if (!stopping)
          console.error(`worker supervisor: ${error instanceof Error ? error.message : String(error)}`);
      })
      .finally(() => {
        if (!stopping) timer = setTimeout(loop, 3000);
      });
  };
  loop();
  return {
    children: () => [...workers.values()].map((w) => w.child),
    stop: () => clearTimeout(timer),
  };
}

async function main(): Promise<void> {
  mkdirSync(devDir, { recursive: true });
  const started = Date.now();
  step('preparing PostgreSQL: only granted roles may connect to postgres and template1');
  await preparePostgresServer();
  step('starting the control plane');
  const cp = await startControlPlane();
  copyFileSync(cp.kubeconfigPath, join(devDir, 'kubeconfig'));
  const kubeconfig = join(devDir, 'kubeconfig');
  step('applying the Tenant CRD');
  await installTenantCrd(cp);

  const admin = platformAdmin();
  const common = {
    KUBECONFIG: kubeconfig,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
    // As the chart does: the Secrets the API reads live apart from everything else.
    PLATFORM_SECRETS_NAMESPACE: 'tenantry-secrets',
  };
  step('starting the operator (logs: .dev/operator.log)');
  const operator = run('operator', 'operator/src/main.ts', {
    ...common,
    HTTP_PORT: '8081',
    HTTP_HOST: '127.0.0.1',
    METRICS_PORT: '9090',
    METRICS_HOST: '127.0.0.1',
    RESYNC_SECONDS: '30',
  });
  step('starting the API on http://127.0.0.1:8080, metrics on :9091 (logs: .dev/api.log)');
  const api = run('api', 'api/src/main.ts', {
    ...common,
    HOST: '127.0.0.1',
    PORT: '8080',
    METRICS_HOST: '127.0.0.1',
    METRICS_PORT: '9091',
    SIGNUP_ENABLED: 'true',
    // Webhook endpoints on this machine (a local receiver) are allowed in development.
    WEBHOOKS_ALLOW_LOOPBACK: 'true',
    // So are SSO identity providers on this machine (the browser sign-in in test/e2e).
    SSO_ALLOW_PRIVATE_IDPS: 'true',
    // Password-reset and owner mails land here as JSON files.
    MAIL_OUTBOX_DIR: join(devDir, 'mail'),
    PLATFORM_ADMIN_CLIENT_ID: admin.client_id,
    PLATFORM_ADMIN_CLIENT_SECRET: admin.client_secret,
  });
  step(
    'starting the provider simulator (logs: .dev/simulator.log) and a worker per Ready Tenant (.dev/logs/)',
  );
  const simulator = run('simulator', 'hack/provider-simulator.ts', {});
  const workers = superviseWorkers((args) => cp.kubectl(args));
  const children = () => [operator, api, simulator, ...workers.children()];

  const stop = async () => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping…');
    workers.stop();
    const running = children();
    for (const child of running) child.kill('SIGTERM');
    const exits = running
      .filter((c) => c.exitCode === null)
      .map((c) => new Promise((ok) => c.once('exit', ok)));
    await Promise.all(exits);
    await cp.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());

  step('applying the sample Tenant (crds/samples/tenant-minimal.yaml) and waiting until it is Ready');
  await cp.kubectl(['apply', '-f', join(samplesDir, 'tenant-minimal.yaml')]);
  for (let i = 0; ; i++) {
    const ready = await cp
      .kubectl(['get', 'tenant', 'acme', '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'])
      .catch(() => '');
    if (ready.trim() === 'True') break;
    if (i > 600)
      throw new Error('the sample Tenant did not become Ready in 2 minutes; see .dev/operator.log');
    await sleep(200);
  }
  for (let i = 0; i < 100; i++) {
    const ok = await fetch('http://127.0.0.1:8080/readyz').then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    await sleep(200);
  }
  console.log(`
Tenantry is running (${((Date.now() - started) / 1000).toFixed(1)} s).
  export KUBECONFIG=${kubeconfig}
  kubectl get tenants
  # a platform-admin token (client credentials in .dev/platform-admin.json):
  curl -s -X POST http://127.0.0.1:8080/api/auth/token -H 'content-type: application/json' \\
    -d '{"grant_type":"client_credentials","client_id":"${admin.client_id}","client_secret":"<see .dev/platform-admin.json>"}'
  # mails (password reset, new owners) are JSON files in .dev/mail/
  # every Ready Tenant has a worker (logs in .dev/logs/); the provider simulator's APIs are in .dev/simulator.log
  # send a provider's signed sample events (after PUT /api/integrations/providers/<provider>):
  #   SIM_TARGET=http://127.0.0.1:8080 SIM_TENANT=acme SIM_PROVIDER=user-service SIM_SECRET=whsec_... npx tsx hack/provider-simulator.ts
  # the tenant's database connection: kubectl get secret -n tenant-acme acme-db -o jsonpath='{.data.uri}' | base64 -d
Press Ctrl-C to stop.
ready`);
  await new Promise(() => undefined);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
