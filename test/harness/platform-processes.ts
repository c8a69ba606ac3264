// The real API and tenant worker processes (api/src/main.ts, worker/src/main.ts)
// as they run in production, for tests that must see a whole process: its
// start-up, its environment, its logs. Each resolves once the process logged
// that it started, and keeps every line it wrote.
import { spawn, type ChildProcess } from 'node:child_process';
import { tenantNames } from '../../lib/tenant/index.js';
import type { ControlPlane } from './control-plane.js';
import { repoRoot } from './repo-root.js';
import { serviceUrls } from './services.js';
import { tenantAmqp } from './webhook-harness.js';

export interface PlatformProcess {
  child: ChildProcess;
  /** The port the process logged in its start line (`port` or `metricsPort`). */
  port: number;
  /** Everything it wrote to stdout and stderr, in chunks. */
  logs: string[];
  /** Its stdout and stderr lines that parse as JSON (pino). */
  logLines(): Record<string, unknown>[];
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it exited. */
  stop(graceMs?: number): Promise<void>;
}

function startProcess(
  entry: string,
  env: Record<string, string>,
  started: RegExp,
  what: string,
): Promise<PlatformProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: repoRoot,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  const handle = (port: number): PlatformProcess => ({
    child,
    port,
    logs,
    logLines: () =>
      logs
        .join('')
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .flatMap((line) => {
          try {
            return [JSON.parse(line) as Record<string, unknown>];
          } catch {
            return [];
          }
        }),
    stop: async (graceMs = 10_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  });
  return new Promise<PlatformProcess>((ok, fail) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`the ${what} did not start:\n${logs.join('')}`));
    }, 30_000);
    const onData = (chunk: Buffer) => {
      logs.push(chunk.toString());
      const match = started.exec(logs.join(''));
      if (match) {
        clearTimeout(timer);
        ok(handle(Number(match[1])));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`the ${what} exited with ${code}:\n${logs.join('')}`));
    });
  });
}

/** The API on an ephemeral loopback port, reading Tenants and signing keys from `platformNamespace`. */
export function startApiProcess(
  cp: ControlPlane,
  platformNamespace: string,
  env: Record<string, string> = {},
): Promise<PlatformProcess> {
  return startProcess(
    'api/src/main.ts',
    {
      HOST: '127.0.0.1',
      PORT: '0',
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: '0',
      KUBECONFIG: cp.kubeconfigPath,
      PLATFORM_NAMESPACE: platformNamespace,
      REDIS_URL: serviceUrls.redis,
      ...env,
    },
    /"port":(\d+)[^\n]*"msg":"api started"/,
    'API',
  );
}

/** The worker of a Ready tenant, on the operator's Secrets; `port` is its metrics port. */
export async function startWorkerProcess(
  cp: ControlPlane,
  tenant: string,
  env: Record<string, string> = {},
): Promise<PlatformProcess> {
  const names = tenantNames(tenant);
  const secret = JSON.parse(
    await cp.kubectl(['get', 'secret', '-n', names.namespace, names.dbSecret, '-o', 'json']),
  ) as { data: Record<string, string> };
  const amqp = await tenantAmqp(cp, tenant);
  return startProcess(
    'worker/src/main.ts',
    {
      TENANTRY_TENANT: tenant,
      DATABASE_URL: Buffer.from(secret.data.uri!, 'base64').toString('utf8'),
      AMQP_URL: amqp.url,
      AMQP_QUEUE_PREFIX: amqp.queuePrefix,
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: '0',
      ...env,
    },
    /"metricsPort":(\d+)[^\n]*"msg":"worker started"/,
    'worker',
  );
}
