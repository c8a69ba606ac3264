import { expect } from 'chai';
import { WorkQueue, backoffDelay, type ProcessOutcome } from '../../../operator/src/runtime/work-queue.js';
import { eventually } from '../../harness/wait.js';

interface Gate {
  promise: Promise<void>;
  open(): void;
}

function gate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function until(what: string, condition: () => boolean, timeoutMs = 5_000): Promise<true> {
  return eventually(what, () => Promise.resolve(condition() ? true : undefined), {
    timeoutMs,
    intervalMs: 5,
  });
}

describe('WorkQueue', () => {
  const queues: WorkQueue[] = [];
  function queue(options: ConstructorParameters<typeof WorkQueue>[0]): WorkQueue {
    const q = new WorkQueue(options);
    queues.push(q);
    return q;
  }
  afterEach(async () => {
    await Promise.all(queues.splice(0).map((q) => q.shutDown({ drainTimeoutMs: 1_000 })));
  });

  it('runs a key queued several times while waiting only once', async () => {
    const blocker = gate();
    const runs: string[] = [];
    const q = queue({
      concurrency: 1,
      handler: async (key) => {
        runs.push(key);
        if (key === 'blocker') await blocker.promise;
      },
    });
    q.add('blocker');
    q.add('a');
    q.add('a');
    q.add('a');
    expect(q.length).to.equal(1);
    blocker.open();
    await until('a to run', () => runs.includes('a'));
    await sleep(50);
    expect(runs).to.deep.equal(['blocker', 'a']);
  });

  it('runs a key re-added during its run again afterwards, never alongside itself', async () => {
    const first = gate();
    let active = 0;
    let maxActive = 0;
    const events: string[] = [];
    const q = queue({
      concurrency: 4,
      handler: async () => {
        active += 1;
        maxActive = Math.max(maxActive, active);
        const run = events.filter((e) => e.startsWith('start')).length + 1;
        events.push(`start${run}`);
        if (run === 1) await first.promise;
        events.push(`end${run}`);
        active -= 1;
      },
    });
    q.add('k');
    await until('the first run to start', () => events.length === 1);
    q.add('k');
    q.add('k');
    await sleep(50);
    expect(events, 'a second run started while the first was still going').to.deep.equal(['start1']);
    first.open();
    await until('the second run to end', () => events.length === 4);
    await sleep(50);
    expect(events).to.deep.equal(['start1', 'end1', 'start2', 'end2']);
    expect(maxActive).to.equal(1);
  });

  it('runs at most `concurrency` handlers at once, and uses all of them', async () => {
    let active = 0;
    let maxActive = 0;
    let done = 0;
    const q = queue({
      concurrency: 3,
      handler: async () => {
        active += 1;
        maxActive = Math.max(maxActive, active);
        await sleep(30);
        active -= 1;
        done += 1;
      },
    });
    for (let i = 0; i < 10; i += 1) q.add(`key-${i}`);
    expect(q.activeCount).to.equal(3);
    expect(q.length).to.equal(7);
    await until('all keys to run', () => done === 10);
    expect(maxActive).to.equal(3);
    expect(q.length).to.equal(0);
  });

  it('retries a failing key with growing delays and resets its backoff on success', async () => {
    const attempts: number[] = [];
    const failures: { failures: number; retryInMs: number }[] = [];
    const outcomes: ProcessOutcome[] = [];
    const q = queue({
      baseDelayMs: 40,
      maxDelayMs: 10_000,
      jitter: 0,
      handler: () => {
        attempts.push(performance.now());
        if (attempts.length <= 4) throw new Error(`attempt ${attempts.length} failed`);
      },
      hooks: {
        onFailed: ({ failures: n, retryInMs }) => failures.push({ failures: n, retryInMs }),
        onProcessed: ({ outcome }) => outcomes.push(outcome),
      },
    });
    q.add('k');
    await until('the fifth attempt', () => attempts.length === 5);
    expect(failures).to.deep.equal([
      { failures: 1, retryInMs: 40 },
      { failures: 2, retryInMs: 80 },
      { failures: 3, retryInMs: 160 },
      { failures: 4, retryInMs: 320 },
    ]);
    const gaps = attempts.slice(1).map((at, i) => at - (attempts[i] ?? 0));
    // Timers never fire early (allow 3 ms of clock rounding); late is fine on a loaded machine.
    [40, 80, 160, 320].forEach((expected, i) => expect(gaps[i]).to.be.at.least(expected - 3));
    expect(outcomes).to.deep.equal(['error', 'error', 'error', 'error', 'success']);
    expect(q.failureCount('k')).to.equal(0);
    expect(q.delayedCount).to.equal(0);
  });

  it('computes backoff as base·2^(n-1) with bounded jitter, capped at the maximum', () => {
    const options = { baseDelayMs: 10, maxDelayMs: 1_000, jitter: 0.5 };
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, options, () => 0))).to.deep.equal([10, 20, 40, 80]);
    expect(backoffDelay(3, options, () => 1)).to.equal(60);
    expect(backoffDelay(3, options, () => 0.5)).to.equal(50);
    expect(backoffDelay(8, options, () => 0)).to.equal(1_000);
    expect(backoffDelay(8, options, () => 1)).to.equal(1_000);
    expect(backoffDelay(5_000, options, () => 0)).to.equal(1_000);
  });

  it('runs a key again after requeueAfterMs without counting a failure', async () => {
    const attempts: number[] = [];
    const outcomes: ProcessOutcome[] = [];
    let failed = 0;
    const q = queue({
      baseDelayMs: 10_000,
      handler: () => {
        attempts.push(performance.now());
        if (attempts.length === 1) throw new Error('first attempt fails');
        if (attempts.length === 2) return { requeueAfterMs: 0 };
        if (attempts.length === 3) return { requeueAfterMs: 60 };
        return undefined;
      },
      hooks: {
        onFailed: () => (failed += 1),
        onProcessed: ({ outcome }) => outcomes.push(outcome),
      },
    });
    q.add('k');
    await until('the first attempt', () => attempts.length === 1);
    expect(q.failureCount('k')).to.equal(1);
    // Skip the 10 s retry: an event for the key arrives.
    q.add('k');
    await until('the fourth attempt', () => attempts.length === 4);
    expect(failed).to.equal(1);
    expect(outcomes).to.deep.equal(['error', 'requeue', 'requeue', 'success']);
    expect(q.failureCount('k')).to.equal(0);
    expect((attempts[3] ?? 0) - (attempts[2] ?? 0)).to.be.at.least(57);
  });

  it('keeps the earliest of several delayed adds, and forget() cancels them', async () => {
    const runs: string[] = [];
    const q = queue({ handler: (key) => void runs.push(key) });
    q.addAfter('a', 5_000);
    q.addAfter('a', 20);
    q.addAfter('a', 3_000);
    q.addAfter('b', 20);
    q.forget('b');
    expect(q.delayedCount).to.equal(1);
    await until('a to run', () => runs.length === 1);
    await sleep(60);
    expect(runs).to.deep.equal(['a']);
    expect(q.delayedCount).to.equal(0);
  });

  it('never lets handler or hook errors escape as unhandled rejections', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      let processed = 0;
      const q = queue({
        baseDelayMs: 10_000,
        handler: (key) => {
          if (key === 'sync') throw new Error('thrown synchronously');
          return Promise.reject(new Error('rejected'));
        },
        hooks: {
          onProcessed: () => {
            processed += 1;
            throw new Error('broken metrics hook');
          },
          onFailed: () => {
            throw new Error('broken metrics hook');
          },
        },
      });
      q.add('sync');
      q.add('async');
      await until('both keys to fail', () => processed === 2);
      await sleep(50);
      expect(q.failureCount('sync')).to.equal(1);
      expect(q.failureCount('async')).to.equal(1);
      // The queue still works after the hooks threw.
      q.add('sync');
      await until('a third run', () => processed === 3);
      expect(unhandled).to.deep.equal([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('reports queue depth through the hook', async () => {
    const blocker = gate();
    const depths: number[] = [];
    const q = queue({
      concurrency: 1,
      handler: () => blocker.promise,
      hooks: { onDepthChange: (depth) => depths.push(depth) },
    });
    q.add('a');
    q.add('b');
    q.add('c');
    expect(depths.at(-1)).to.equal(2);
    blocker.open();
    await until('the queue to empty', () => q.length === 0 && q.activeCount === 0);
    expect(depths.at(-1)).to.equal(0);
    expect(Math.max(...depths)).to.equal(2);
  });

  it('shutDown waits for in-flight handlers, drops waiting keys and refuses new ones', async () => {
    let finished = false;
    const runs: string[] = [];
    const q = queue({
      concurrency: 1,
      handler: async (key) => {
        runs.push(key);
        await sleep(100);
        if (key === 'slow') finished = true;
      },
    });
    q.add('slow');
    q.add('waiting');
    q.addAfter('later', 20);
    const result = await q.shutDown({ drainTimeoutMs: 5_000 });
    expect(finished, 'shutDown returned before the in-flight handler finished').to.be.true;
    expect(result.drained).to.be.true;
    expect(result.dropped).to.have.members(['waiting', 'later']);
    expect(q.add('new')).to.be.false;
    await sleep(60);
    expect(runs).to.deep.equal(['slow']);
  });

  it('shutDown gives up after the drain timeout and aborts the handler signal', async () => {
    let signal: AbortSignal | undefined;
    const q = queue({
      handler: (_key, s) => {
        signal = s;
        return new Promise<void>((resolve) => s.addEventListener('abort', () => resolve()));
      },
    });
    q.add('stuck');
    await until('the handler to start', () => signal !== undefined);
    const started = performance.now();
    const result = await q.shutDown({ drainTimeoutMs: 50 });
    expect(result.drained).to.be.false;
    expect(performance.now() - started).to.be.within(45, 2_000);
    expect(signal?.aborted).to.be.true;
  });
});
