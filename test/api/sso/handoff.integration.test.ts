// One-time SSO hand-off codes against real Redis: single use, hashed at rest,
// expiring, and one winner when two replicas redeem the same code at once.
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { handoffCodeLength, SsoHandoff, type HandoffGrant } from '../../../api/src/sso/handoff.js';
import { RedisExpiringStore } from '../../../api/src/sso/store.js';
import { createTestRedis, type TestRedis } from '../../harness/services.js';

const grant: HandoffGrant = {
  tenant: 'acme',
  tenantUid: '0b7e4c2a-5f0e-4d8e-9a59-2f6d3e1c7b40',
  userId: '6f1c1e4e-8a4e-4b7c-9d55-3d1e0b8f2a10',
  provider: 'saml',
};

describe('SSO hand-off codes (real Redis)', () => {
  let redis: TestRedis;
  let handoff: SsoHandoff;

  before(async () => {
    redis = await createTestRedis('sso-handoff');
    handoff = new SsoHandoff(new RedisExpiringStore(redis.client, redis.prefix));
  });

  after(async () => {
    await redis?.drop();
  });

  it('redeems a code once', async () => {
    const code = await handoff.issue(grant);
    expect(code).to.match(new RegExp(`^[A-Za-z0-9_-]{${handoffCodeLength}}$`));
    expect(await handoff.redeem(code)).to.deep.equal(grant);
    expect(await handoff.redeem(code)).to.equal(undefined);
  });

  it('stores only the SHA-256 of the code, for at most 60 seconds', async () => {
    const code = await handoff.issue(grant);
    const keys = await redis.client.keys(`${redis.prefix}*`);
    const hashed = `${redis.prefix}sso:handoff:${createHash('sha256').update(code).digest('hex')}`;
    expect(keys).to.include(hashed);
    expect(keys.join(' ')).not.to.contain(code);
    const ttl = await redis.client.pttl(hashed);
    expect(ttl).to.be.within(1, 60_000);
    expect(await redis.client.get(hashed)).not.to.contain(code);
  });

  it('forgets a code after its TTL', async () => {
    const shortLived = new SsoHandoff(new RedisExpiringStore(redis.client, redis.prefix), 50);
    const code = await shortLived.issue(grant);
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(await shortLived.redeem(code)).to.equal(undefined);
  });

  it('gives a code to exactly one of many concurrent redeemers', async () => {
    const code = await handoff.issue(grant);
    const replicas = Array.from(
      { length: 10 },
      () => new SsoHandoff(new RedisExpiringStore(redis.client, redis.prefix)),
    );
    const results = await Promise.all(replicas.map((replica) => replica.redeem(code)));
    expect(results.filter((r) => r !== undefined)).to.have.length(1);
  });

  it('refuses a code that was never issued, and a stored value it cannot read', async () => {
    expect(await handoff.redeem('A'.repeat(handoffCodeLength))).to.equal(undefined);
    const code = 'B'.repeat(handoffCodeLength);
    await redis.client.set(
      `${redis.prefix}sso:handoff:${createHash('sha256').update(code).digest('hex')}`,
      '{"tenant":"acme"}',
      'PX',
      60_000,
    );
    expect(await handoff.redeem(code)).to.equal(undefined);
  });
});
