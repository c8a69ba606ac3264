import { expect } from 'chai';
import { Backoff, exponentialDelay } from '../../lib/backoff.js';

describe('backoff', () => {
  it('doubles from the initial delay and stops at the cap', () => {
    const policy = { initialMs: 100, maxMs: 1_000 };
    expect([0, 1, 2, 3, 4, 5].map((n) => exponentialDelay(n, policy))).to.deep.equal([
      100, 200, 400, 800, 1_000, 1_000,
    ]);
  });

  it('grows without bound when no cap is set, stays finite after thousands of attempts, and treats a negative attempt as the first', () => {
    expect(exponentialDelay(20, { initialMs: 1 })).to.equal(2 ** 20);
    expect(Number.isFinite(exponentialDelay(5_000, { initialMs: 1 }))).to.equal(true);
    expect(exponentialDelay(5_000, { initialMs: 1, maxMs: 60_000 })).to.equal(60_000);
    expect(exponentialDelay(-3, { initialMs: 50 })).to.equal(50);
  });

  it('multiplies the capped delay by a random factor within the jitter range', () => {
    const full = { initialMs: 100, maxMs: 1_000, jitter: [0, 1] as const };
    expect(exponentialDelay(2, full, () => 0)).to.equal(0);
    expect(exponentialDelay(2, full, () => 0.5)).to.equal(200);
    expect(exponentialDelay(2, full, () => 1)).to.equal(400);
    const spread = { initialMs: 100, maxMs: 1_000, jitter: [0.8, 1.2] as const };
    // The cap applies before jitter, so delays at the cap still spread out.
    expect(exponentialDelay(9, spread, () => 0)).to.equal(800);
    expect(exponentialDelay(9, spread, () => 1)).to.be.closeTo(1_200, 1e-9);
    for (let i = 0; i < 200; i++) {
      expect(exponentialDelay(3, { initialMs: 100, jitter: [0.5, 1] })).to.be.within(400, 800);
    }
  });

  it('counts the attempts of one loop, reports the delay before jitter, and starts over on reset', () => {
    const backoff = new Backoff({ initialMs: 10, maxMs: 50, jitter: [0, 1] }, () => 0.5);
    const seen: [number, number][] = [];
    for (let i = 0; i < 5; i++) {
      const current = backoff.current;
      seen.push([current, backoff.next()]);
    }
    expect(seen).to.deep.equal([
      [10, 5],
      [20, 10],
      [40, 20],
      [50, 25],
      [50, 25],
    ]);
    backoff.reset();
    expect(backoff.current).to.equal(10);
    expect(backoff.next()).to.equal(5);
    expect(backoff.current).to.equal(20);
  });
});
