// `make cluster-up` (`npm run cluster`) / `make cluster-down` / `make dev`: a private control plane
// for local development. `up` starts it in the background and returns once
// .dev/kubeconfig is ready; `run` keeps it in the foreground until Ctrl-C.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startControlPlane } from '../test/harness/control-plane.js';

const root = resolve(import.meta.dirname, '..');
const devDir = join(root, '.dev');
const pidFile = join(devDir, 'cluster.pid');
const kubeconfig = join(devDir, 'kubeconfig');
const logFile = join(devDir, 'cluster.log');

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

function runningPid(): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8'));
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

function clearState(): void {
  rmSync(pidFile, { force: true });
  rmSync(kubeconfig, { force: true });
}

async function run(): Promise<void> {
  mkdirSync(devDir, { recursive: true });
  if (runningPid() !== undefined)
    throw new Error(`a control plane is already running (pid file ${pidFile}); run 'make cluster-down'`);
  clearState();
  const started = Date.now();
  const cp = await startControlPlane();
  copyFileSync(cp.kubeconfigPath, kubeconfig);
  writeFileSync(pidFile, String(process.pid));
  console.log(
    `control plane ready in ${((Date.now() - started) / 1000).toFixed(1)} s at ${cp.server}${cp.hasKwok ? ' (with a KWOK fake node)' : ''}`,
  );
  console.log(`export KUBECONFIG=${kubeconfig}`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await cp.stop();
    clearState();
    process.exit(0);
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void stop());
  await new Promise(() => undefined);
}

async function up(): Promise<void> {
  mkdirSync(devDir, { recursive: true });
  if (runningPid() !== undefined) {
    console.log(`control plane already running; KUBECONFIG=${kubeconfig}`);
    return;
  }
  clearState();
  const log = openSync(logFile, 'w');
  const child = spawn(process.execPath, [...process.execArgv, import.meta.filename, 'run'], {
    detached: true,
    stdio: ['ignore', log, log],
  });
  child.unref();
  let exited = false;
  child.once('exit', () => (exited = true));
  for (let i = 0; i < 1200; i++) {
    if (existsSync(pidFile) && existsSync(kubeconfig)) {
      console.log(readFileSync(logFile, 'utf8').trim());
      return;
    }
    if (exited) break;
    await sleep(100);
  }
  throw new Error(
    `the control plane did not start; see ${logFile}:\n${readFileSync(logFile, 'utf8').slice(-3000)}`,
  );
}

async function down(): Promise<void> {
  const pid = runningPid();
  if (pid === undefined) {
    clearState();
    console.log('no control plane running');
    return;
  }
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 300 && runningPid() !== undefined; i++) await sleep(100);
  if (runningPid() !== undefined) process.kill(pid, 'SIGKILL');
  clearState();
  console.log('control plane stopped');
}

const commands: Record<string, () => Promise<void>> = { up, down, run };
const command = commands[process.argv[2] ?? ''];
if (!command) {
  console.error('usage: cluster.ts up|down|run');
  process.exit(2);
}
command().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
