// The password-hashing budget's scheduling, with real (cheap) argon2 hashes: caps, and which tenant
// gets a free slot.
import { expect } from 'chai';
import { PasswordHashing } from '../../../api/src/auth/password-hashing.js';

const cheap = { memoryCost: 8192, timeCost: 1, parallelism: 1 };

describe('password-hashing budget', () => {
  it('runs at most perTenant jobs of one tenant and concurrency in all', async () => {
    const hashing = new PasswordHashing({ concurrency: 3, perTenant: 2 }, cheap);
    const jobs = Array.from({ length: 6 }, (_, i) => hashing.hash('a', `password ${i}`));
    jobs.push(hashing.hash('b', 'password b'), hashing.hash('c', 'password c'));
    const state = hashing.state();
    expect(state.running).to.equal(3);
    // a holds its two slots; b takes the third; c waits for the next free one.
    expect(state.waiting).to.deep.equal({ a: 4, c: 1 });
    const hashes = await Promise.all(jobs);
    expect(new Set(hashes).size).to.equal(8);
    expect(hashing.state()).to.deep.equal({ running: 0, waiting: {} });
  });

  it("gives a free slot to another tenant before the rest of one tenant's backlog", async () => {
    const hashing = new PasswordHashing({ concurrency: 2, perTenant: 2 }, cheap);
    const hash = await hashing.hash('b', 'the right one');
    const backlog = Array.from({ length: 12 }, (_, i) => hashing.hash('a', `bulk ${i}`));
    expect(hashing.state().waiting).to.deep.equal({ a: 10 });
    const verified = await hashing.verify('b', hash, 'the right one');
    expect(verified.ok).to.equal(true);
    // First come, first served, b would have waited for all ten; it started at the first free slot.
    expect(hashing.state().waiting.a ?? 0).to.be.at.least(7);
    await Promise.all(backlog);
  });

  it('takes turns between tenants that wait', async () => {
    const hashing = new PasswordHashing({ concurrency: 1, perTenant: 1 }, cheap);
    const order: string[] = [];
    const run = (tenant: string, i: number) =>
      hashing.hash(tenant, `${tenant} ${i}`).then(() => order.push(tenant));
    const jobs = [...[0, 1, 2].map((i) => run('a', i)), ...[0, 1, 2].map((i) => run('b', i))];
    await Promise.all(jobs);
    expect(order).to.deep.equal(['a', 'b', 'a', 'b', 'a', 'b']);
  });

  it('refuses limits that make no sense', () => {
    expect(() => new PasswordHashing({ concurrency: 0, perTenant: 1 })).to.throw(RangeError, /concurrency/);
    expect(() => new PasswordHashing({ concurrency: 2, perTenant: 3 })).to.throw(RangeError, /perTenant/);
  });
});
