// The list/watch loop's decisions, driven by a scripted source; the operator and
// API integration tests run it against the real API server.
import { expect } from 'chai';
import { ListWatch, type ListWatchSource, type WatchEventType } from '../../../lib/kube/list-watch.js';
import { createLogger } from '../../../lib/logger.js';

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

  it('reads the list in pages and hands over what `keep` returns, then watches from the list version', async () => {
    const all = Array.from({ length: 7 }, (_, i) => ({ metadata: { name: `o${i}`, resourceVersion: '1' } }));
    const requests: { limit: number; continue?: string }[] = [];
    const watchedFrom: string[] = [];
    const source: ListWatchSource<Obj> = {
      list: (page) => {
        requests.push(page);
        const start = page.continue ? Number(page.continue) : 0;
        const end = Math.min(start + page.limit, all.length);
        return Promise.resolve({
          items: all.slice(start, end),
          resourceVersion: '42',
          continue: end < all.length ? String(end) : undefined,
        });
      },
      watch: (resourceVersion, _onEvent, done) => {
        watchedFrom.push(resourceVersion);
        const controller = new AbortController();
        controller.signal.addEventListener('abort', () => done(new Error('aborted')));
        return Promise.resolve(controller);
      },
    };
    const lists: string[][] = [];
    const lw = new ListWatch(
      't',
      source,
      { onList: (names: string[]) => lists.push(names), onEvent: () => undefined },
      log,
      { resyncMs: 10_000, pageSize: 3 },
      (o) => o.metadata.name,
    );
    lw.start();
    await sleep(50);
    await lw.stop();
    expect(requests).to.deep.equal([{ limit: 3 }, { limit: 3, continue: '3' }, { limit: 3, continue: '6' }]);
    expect(lists).to.deep.equal([all.map((o) => o.metadata.name)]);
    expect(watchedFrom).to.deep.equal(['42']);
  });

  it('does not hand over a partial list when a later page fails, and lists again from the start', async () => {
    let calls = 0;
    const requests: (string | undefined)[] = [];
    const source: ListWatchSource<Obj> = {
      list: (page) => {
        calls += 1;
        requests.push(page.continue);
        if (calls === 2) return Promise.reject(new Error('410: the continue token has expired'));
        const first = !page.continue;
        return Promise.resolve({
          items: [{ metadata: { name: first ? 'a' : 'b', resourceVersion: '1' } }],
          resourceVersion: '5',
          continue: first ? 'next' : undefined,
        });
      },
      watch: (_rv, _onEvent, done) => {
        const controller = new AbortController();
        controller.signal.addEventListener('abort', () => done(new Error('aborted')));
        return Promise.resolve(controller);
      },
    };
    const lists: string[][] = [];
    const lw = new ListWatch(
      't',
      source,
      { onList: (items: Obj[]) => lists.push(items.map((o) => o.metadata.name)), onEvent: () => undefined },
      log,
      { resyncMs: 10_000, backoffInitialMs: 10, pageSize: 1 },
    );
    lw.start();
    await sleep(150);
    await lw.stop();
    expect(requests.slice(0, 4)).to.deep.equal([undefined, 'next', undefined, 'next']);
    expect(lists).to.deep.equal([['a', 'b']]);
  });
});
