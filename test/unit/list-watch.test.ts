// The list/watch loop's decisions, driven by a scripted source; the operator and
// API integration tests run it against the real API server.
import { expect } from 'chai';
import { ListWatch, type ListWatchSource, type WatchEventType } from '../../lib/kube/list-watch.js';
import { createLogger } from '../../lib/logger.js';

interface Obj {
  metadata: { name: string; resourceVersion: string };
}

type Script = (onEvent: (type: WatchEventType, o: Obj) => void, done: (error: unknown) => void) => void;

function scriptedSource(watches: Script[]) {
  const calls = { lists: 0, watchedFrom: [] as string[] };
  const source: ListWatchSource<Obj> = {
    list: () => {
      calls.lists += 1;
      return Promise.resolve({ items: [], resourceVersion: `list-${calls.lists}` });
    },
    watch: (resourceVersion, onEvent, done) => {
      calls.watchedFrom.push(resourceVersion);
      const controller = new AbortController();
      controller.signal.addEventListener('abort', () => done(new Error('aborted')));
      const script = watches.shift();
      if (script) setTimeout(() => script(onEvent, done), 5);
      return Promise.resolve(controller);
    },
  };
  return { source, calls };
}

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));
const log = createLogger('test', 'silent');
const handlers = { onList: () => undefined, onEvent: () => undefined };

describe('ListWatch', () => {
  it('watches again from the last version, without relisting, when a quiet watch ends early', async () => {
    const obj = { metadata: { name: 'a', resourceVersion: '7' } };
    const { source, calls } = scriptedSource([
      (onEvent, done) => {
        onEvent('MODIFIED', obj);
        done(new Error('The user aborted a request.'));
      },
      (onEvent, done) => {
        onEvent('BOOKMARK', { metadata: { name: '', resourceVersion: '9' } });
        done(null);
      },
    ]);
    const lw = new ListWatch('t', source, handlers, log, { resyncMs: 10_000 });
    lw.start();
    await sleep(100);
    await lw.stop();
    expect(calls.lists).to.equal(1);
    expect(calls.watchedFrom.slice(0, 3)).to.deep.equal(['list-1', '7', '9']);
  });

  it('relists after 410 Gone and when the resync period ends', async () => {
    const { source, calls } = scriptedSource([
      (onEvent) => onEvent('ERROR', { metadata: { name: '', resourceVersion: '' } }),
    ]);
    const lw = new ListWatch('t', source, handlers, log, { resyncMs: 150 });
    lw.start();
    await sleep(60);
    expect(calls.lists).to.equal(2);
    await sleep(250);
    await lw.stop();
    expect(calls.lists).to.be.greaterThan(2);
  });

  it('backs off and relists after a watch error', async () => {
    const { source, calls } = scriptedSource([(_onEvent, done) => done(new Error('ECONNRESET'))]);
    const lw = new ListWatch('t', source, handlers, log, { resyncMs: 10_000, backoffInitialMs: 20 });
    lw.start();
    await sleep(150);
    await lw.stop();
    expect(calls.lists).to.equal(2);
    expect(lw.synced).to.be.true;
  });
});
