// The watchdog's own thread (see stall-watchdog.ts): it reads the beats the main thread stores, and when they
// stop, reports what the process is doing and ends it. Plain JavaScript: a worker thread does not get the
// TypeScript loader of the main thread.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeSync } from 'node:fs';
import process from 'node:process';
import { clearInterval, setInterval, setTimeout } from 'node:timers';
import { parentPort, workerData } from 'node:worker_threads';

/** @type {{ beats: Int32Array, pid: number, loopStallMs: number, testStallMs: number }} */
const { beats, pid, loopStallMs, testStallMs } = workerData;
let current = '(before the first test)';
parentPort?.on('message', (title) => (current = title));

const read = (path) => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '?';
  }
};

function report(reason) {
  const lines = ['', `==> stall watchdog: ${reason}`, `    current test: ${current}`];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const task = `/proc/${pid}/task/${tid}`;
    const stat = read(`${task}/stat`);
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    lines.push(
      `    thread ${tid} ${read(`${task}/comm`)}: state ${state}, wchan ${read(`${task}/wchan`)}, syscall ${read(`${task}/syscall`)}`,
    );
  }
  const status = read(`/proc/${pid}/status`).split('\n');
  lines.push(`    ${status.filter((l) => /^(VmRSS|Threads)/.test(l)).join(', ')}`);
  try {
    const ps = ['-o', 'pid,stat,etime,pcpu,rss,wchan:24,args', '--ppid', String(pid)];
    lines.push(execFileSync('ps', ps, { encoding: 'utf8', timeout: 5_000 }));
  } catch (error) {
    lines.push(`    (ps failed: ${error.message})`);
  }
  writeSync(2, `${lines.join('\n')}\n`);
}

const started = Date.now();
const timer = setInterval(() => {
  const now = Date.now() - started;
  const loopAge = now - Atomics.load(beats, 0) * 100;
  const testAge = now - Atomics.load(beats, 1) * 100;
  const reason =
    loopAge > loopStallMs
      ? `the event loop has not turned for ${Math.round(loopAge / 1000)} s`
      : testAge > testStallMs
        ? `no test has started or ended for ${Math.round(testAge / 1000)} s`
        : undefined;
  if (!reason) return;
  clearInterval(timer);
  report(reason);
  process.kill(pid, 'SIGTERM');
  setTimeout(() => process.kill(pid, 'SIGKILL'), 15_000);
}, 1_000);
