// `make dev`: the platform on this machine without Docker. Starts a private
// control plane (with a KWOK fake node), applies the CRD, runs the operator and
// the API as local processes against the local PostgreSQL, RabbitMQ and Redis,
// applies the sample Tenant and waits until it is Ready. Ctrl-C stops it all.
// .dev/ holds the kubeconfig, the logs and platform-admin.json.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startControlPlane } from '../test/support/control-plane.js';
import { installTenantCrd, samplesDir } from '../test/support/crds.js';

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
  const log = createWriteStream(join(devDir, `${name}.log`), { flags: 'a' });
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  child.once('exit', (code, signal) => {
    if (!stopping) console.error(`${name} exited (${signal ?? code}); see .dev/${name}.log`);
  });
  return child;
}

let stopping = false;

async function main(): Promise<void> {
  mkdirSync(devDir, { recursive: true });
  const started = Date.now();
  step('starting the control plane');
  const cp = await startControlPlane();
  copyFileSync(cp.kubeconfigPath, join(devDir, 'kubeconfig'));
  const kubeconfig = join(devDir, 'kubeconfig');
  step('applying the Tenant CRD');
  await installTenantCrd(cp);

  const admin = platformAdmin();
  const common = { KUBECONFIG: kubeconfig, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' };
  step('starting the operator (logs: .dev/operator.log)');
  const operator = run('operator', 'operator/src/main.ts', {
    ...common,
    HTTP_PORT: '9090',
    HTTP_HOST: '127.0.0.1',
    RESYNC_SECONDS: '30',
  });
  step('starting the API on http://127.0.0.1:8080 (logs: .dev/api.log)');
  const api = run('api', 'api/src/main.ts', {
    ...common,
    HOST: '127.0.0.1',
    PORT: '8080',
    SIGNUP_ENABLED: 'true',
    // Webhook endpoints on this machine (a local receiver) are allowed in development.
    WEBHOOKS_ALLOW_LOOPBACK: 'true',
    // Password-reset and owner mails land here as JSON files.
    MAIL_OUTBOX_DIR: join(devDir, 'mail'),
    PLATFORM_ADMIN_CLIENT_ID: admin.client_id,
    PLATFORM_ADMIN_CLIENT_SECRET: admin.client_secret,
  });
  const children = [operator, api];

  const stop = async () => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping…');
    for (const child of children) child.kill('SIGTERM');
    const exits = children
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
  # the tenant's database connection: kubectl get secret -n tenant-acme acme-db -o jsonpath='{.data.uri}' | base64 -d
Press Ctrl-C to stop.
ready`);
  await new Promise(() => undefined);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
