// A watchdog for the test process, on its own thread so that it still runs when the main thread is blocked.
// Every mocha timeout lives on the main thread's event loop, so a main thread stuck in a system call (a write
// to a terminal nobody reads, say) or spinning would hang the run silently until CI's own limit. The watchdog
// notices when the event loop has not turned for `loopStallMs`, or no test has started or ended for
// `testStallMs`, prints what the process is doing (the current test, each thread's state and system call,
// the child processes), and ends the run: SIGTERM, so the control-plane harness can clean up, then SIGKILL.
import { Worker } from 'node:worker_threads';

export interface StallLimits {
  loopStallMs: number;
  testStallMs: number;
}

/** Starts the watchdog; the event loop's turns are recorded from here, a test's start or end by `testEvent`. */
export function startStallWatchdog(limits: StallLimits): { testEvent(title: string): void } {
  // Tenths of a second since start: [0] the event loop's last turn, [1] the last test event.
  const beats = new Int32Array(new SharedArrayBuffer(8));
  const started = Date.now();
  const now = () => Math.round((Date.now() - started) / 100);
  const worker = new Worker(new URL('./stall-watchdog-thread.mjs', import.meta.url), {
    workerData: { beats, pid: process.pid, ...limits },
    execArgv: [],
  });
  worker.unref();
  // A watchdog that cannot run must not take the test run down with it.
  worker.on('error', (error) => process.stderr.write(`stall watchdog stopped: ${error.message}\n`));
  setInterval(() => Atomics.store(beats, 0, now()), 1000).unref();
  return {
    testEvent(title) {
      Atomics.store(beats, 1, now());
      worker.postMessage(title);
    },
  };
}
