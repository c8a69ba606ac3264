import { expect } from 'chai';
import { Pause, reconnectBackoff } from '../../worker/src/pause.js';

describe('pause and backoff', () => {
  it('ends a pause early on wake, and a wake with no pause running does nothing', async () => {
    const pause = new Pause();
    pause.wake();
    const started = performance.now();
    const waiting = pause.for(10_000);
    setTimeout(() => pause.wake(), 20);
    await waiting;
    expect(performance.now() - started).to.be.below(1_000);
    const full = performance.now();
    await pause.for(30);
    expect(performance.now() - full).to.be.at.least(25);
  });

  it('doubles from the minimum up to the maximum, jitters by at most 20 %, and resets', () => {
    const backoff = reconnectBackoff(100, 700);
    const seen = [];
    for (let i = 0; i < 5; i++) {
      const base = backoff.current;
      const wait = backoff.next();
      expect(wait).to.be.within(base * 0.8, base * 1.2);
      seen.push(base);
    }
    expect(seen).to.deep.equal([100, 200, 400, 700, 700]);
    backoff.reset();
    expect(backoff.current).to.equal(100);
  });
});
