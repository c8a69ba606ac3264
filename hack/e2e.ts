// `make e2e`: the end-to-end tests (test/e2e/) against the `make dev` stack.
// Reuses a stack that already answers on E2E_API_URL; otherwise starts
// hack/dev.ts in the background, waits for its `ready` line, runs the tests,
// and stops the stack it started with SIGINT (hack/dev.ts then stops its
// children and the control plane). Exits with the tests' status.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const root = resolve(import.meta.dirname, '..');
const apiUrl = process.env.E2E_API_URL ?? 'http://127.0.0.1:8080';
const readyTimeoutSeconds = Number(process.env.E2E_READY_TIMEOUT_SECONDS ?? 300);
if (!Number.isFinite(readyTimeoutSeconds) || readyTimeoutSeconds <= 0) {
  console.error('E2E_READY_TIMEOUT_SECONDS must be a positive number of seconds');
  process.exit(2);
}
const readyTimeoutMs = readyTimeoutSeconds * 1000;
const stopTimeoutMs = 60_000;

async function answers(url: string): Promise<boolean> {
  return fetch(url, { signal: AbortSignal.timeout(2000) }).then(
    (r) => r.ok,
    () => false,
  );
}

function exited(child: ChildProcess): Promise<number> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode ?? 1);
  return new Promise((ok) => child.once('exit', (code) => ok(code ?? 1)));
}

/** Starts hack/dev.ts; resolves once it prints `ready`, rejects if it exits or times out first. */
async function startDevStack(): Promise<ChildProcess> {
  mkdirSync(join(root, '.dev'), { recursive: true });
  const log = createWriteStream(join(root, '.dev', 'e2e-dev.log'));
  const dev = spawn(process.execPath, ['--import', 'tsx', 'hack/dev.ts'], {
    cwd: root,
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  dev.stderr.pipe(log);
  dev.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  const ready = new Promise<void>((ok, fail) => {
    const timer = setTimeout(
      () => fail(new Error(`make dev did not print "ready" within ${readyTimeoutMs / 1000} s`)),
      readyTimeoutMs,
    );
    createInterface({ input: dev.stdout }).on('line', (line) => {
      log.write(`${line}\n`);
      if (line.startsWith('==>')) console.log(`[dev] ${line}`);
      if (line.trim() === 'ready') {
        clearTimeout(timer);
        ok();
      }
    });
    dev.once('exit', (code, signal) => {
      clearTimeout(timer);
      fail(new Error(`make dev exited (${signal ?? code}) before it was ready; see .dev/e2e-dev.log`));
    });
  });
  try {
    await ready;
  } catch (error) {
    await stopDevStack(dev);
    throw error;
  }
  return dev;
}

/** SIGINT, as Ctrl-C would; SIGTERM and then SIGKILL if it does not stop in time. */
async function stopDevStack(dev: ChildProcess): Promise<void> {
  const done = exited(dev);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGKILL'] as const) {
    if (dev.exitCode !== null || dev.signalCode !== null) return;
    dev.kill(signal);
    const stopped = await Promise.race([
      done.then(() => true),
      new Promise<boolean>((ok) => setTimeout(() => ok(false), stopTimeoutMs)),
    ]);
    if (stopped) return;
    console.error(`make dev did not stop after ${signal}`);
  }
}

function runTests(): Promise<number> {
  const mocha = spawn('npx', ['mocha', 'test/e2e/**/*.test.ts'], {
    cwd: root,
    env: { ...process.env, E2E_API_URL: apiUrl },
    stdio: 'inherit',
  });
  return exited(mocha);
}

async function main(): Promise<number> {
  const started = Date.now();
  let dev: ChildProcess | undefined;
  if (await answers(`${apiUrl}/readyz`)) {
    console.log(`==> reusing the stack that answers on ${apiUrl}`);
  } else {
    console.log('==> starting make dev in the background (output: .dev/e2e-dev.log)');
    dev = await startDevStack();
    console.log(`==> make dev is ready (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  }
  const stop = async (): Promise<void> => {
    if (dev) await stopDevStack(dev);
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  process.once('SIGTERM', () => void stop().then(() => process.exit(143)));
  try {
    return await runTests();
  } finally {
    if (dev) console.log('==> stopping the make dev stack');
    await stop();
    console.log(`==> e2e took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}

main().then(
  (status) => process.exit(status),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
