// The watchdog ends a test process whose main thread is stuck, and says where it was.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { repoRoot } from './repo-root.js';

function runStuck(
  script: string,
): Promise<{ pid: number; signal: NodeJS.Signals | null; stderr: string; ms: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((ok) =>
    child.once('exit', (_code, signal) => ok({ pid: child.pid!, signal, stderr, ms: Date.now() - started })),
  );
}

const start = `import { startStallWatchdog } from './test/harness/stall-watchdog.ts';`;

describe('the stall watchdog', function () {
  this.timeout(60_000);

  it('kills a process whose event loop is blocked, naming the test and the threads', async () => {
    const { pid, signal, stderr, ms } = await runStuck(
      `${start}
      const w = startStallWatchdog({ loopStallMs: 2000, testStallMs: 60000 });
      w.testEvent('suite spins forever');
      process.on('SIGTERM', () => process.exit(0)); // as the control-plane harness does
      setTimeout(() => { for (;;) {} }, 200);`,
    );
    expect(signal).to.equal('SIGKILL'); // a blocked loop never runs the SIGTERM handler, so SIGKILL ends it
    expect(stderr).to.contain('the event loop has not turned for');
    expect(stderr).to.contain('current test: suite spins forever');
    // The main thread (its id is the process id) is running, not waiting.
    expect(stderr).to.match(new RegExp(`thread ${pid} [^:]*: state R`));
    expect(ms).to.be.below(30_000);
  });

  it('ends a run in which no test starts or ends, while the loop still turns', async () => {
    const { signal, stderr } = await runStuck(
      `${start}
      const w = startStallWatchdog({ loopStallMs: 60000, testStallMs: 2000 });
      w.testEvent('waits for nothing');
      setInterval(() => {}, 1000);`,
    );
    expect(signal).to.equal('SIGTERM');
    expect(stderr).to.contain('no test has started or ended for');
    expect(stderr).to.contain('current test: waits for nothing');
  });
});
