import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { expect } from 'chai';
import { calculateJwkThumbprint } from 'jose';
import {
  currentSigningKey,
  generateSigningKey,
  InMemoryKeySetSource,
  KeySetFormatError,
  nextRotationAt,
  parseKeySet,
  publicJwks,
  rotateKeySet,
  serializeKeySet,
  type SigningKey,
} from '../../../api/src/auth/keys.js';

const hour = 60 * 60 * 1000;
const policy = { rotateAfterMs: 24 * hour, retireAfterMs: 2 * hour, publishAheadMs: hour / 6 };
const t0 = new Date('2030-01-01T00:00:00.000Z');

function at(ms: number): Date {
  return new Date(t0.getTime() + ms);
}

function kids(keys: readonly SigningKey[]): string[] {
  return keys.map((k) => k.kid);
}

describe('signing keys', () => {
  describe('generateSigningKey', () => {
    it('makes a working P-256 pair whose kid is its RFC 7638 thumbprint', async () => {
      const key = generateSigningKey(t0);
      expect(key.alg).to.equal('ES256');
      expect(key.createdAt.toISOString()).to.equal(t0.toISOString());
      expect(key.notAfter).to.be.undefined;
      expect(key.publicJwk).to.have.all.keys('kty', 'crv', 'x', 'y');
      expect(key.privateJwk).to.include({ kty: 'EC', crv: 'P-256', x: key.publicJwk.x, y: key.publicJwk.y });
      expect(key.privateJwk.d).to.match(/^[A-Za-z0-9_-]{43}$/);
      // Independent implementation of the thumbprint.
      expect(key.kid).to.equal(await calculateJwkThumbprint(key.publicJwk, 'sha256'));
      const data = Buffer.from('signed by the private half');
      const signature = sign('sha256', data, createPrivateKey({ key: { ...key.privateJwk }, format: 'jwk' }));
      expect(verify('sha256', data, createPublicKey({ key: { ...key.publicJwk }, format: 'jwk' }), signature))
        .to.be.true;
    });

    it('makes a different key every time', () => {
      const a = generateSigningKey(t0);
      const b = generateSigningKey(t0);
      expect(a.kid).to.not.equal(b.kid);
      expect(a.privateJwk.d).to.not.equal(b.privateJwk.d);
    });
  });

  describe('rotateKeySet', () => {
    it('starts an empty set with one key that signs at once', () => {
      const keys = rotateKeySet([], t0, policy);
      expect(keys).to.have.length(1);
      expect(keys[0]?.createdAt.getTime()).to.equal(t0.getTime());
      expect(keys[0]?.notBefore).to.be.undefined;
      expect(currentSigningKey(keys, t0).kid).to.equal(keys[0]?.kid);
    });

    it('keeps the set while the newest key is younger than rotateAfterMs', () => {
      const first = rotateKeySet([], t0, policy);
      const later = rotateKeySet(first, at(policy.rotateAfterMs - 1), policy);
      expect(kids(later)).to.deep.equal(kids(first));
      expect(later[0]?.notAfter).to.be.undefined;
    });

    it('adds a key once the newest is rotateAfterMs old, publishes it ahead, then retires the old one', () => {
      const first = rotateKeySet([], t0, policy);
      const snapshot = serializeKeySet(first);
      const now = at(policy.rotateAfterMs);
      const next = rotateKeySet(first, now, policy);
      const takeover = now.getTime() + policy.publishAheadMs;
      expect(next).to.have.length(2);
      expect(next[0]?.kid).to.equal(first[0]?.kid);
      expect(next[0]?.notAfter?.getTime()).to.equal(takeover + policy.retireAfterMs);
      expect(next[1]?.createdAt.getTime()).to.equal(now.getTime());
      expect(next[1]?.notBefore?.getTime()).to.equal(takeover);
      expect(next[1]?.notAfter).to.be.undefined;
      // Published from now on; the old key signs until the new one's notBefore.
      expect(publicJwks(next).keys.map((k) => k.kid)).to.deep.equal([next[1]?.kid, next[0]?.kid]);
      expect(currentSigningKey(next, now).kid).to.equal(next[0]?.kid);
      expect(currentSigningKey(next, new Date(takeover - 1)).kid).to.equal(next[0]?.kid);
      expect(currentSigningKey(next, new Date(takeover)).kid).to.equal(next[1]?.kid);
      // The input is left alone.
      expect(serializeKeySet(first)).to.equal(snapshot);
      expect(first).to.have.length(1);
    });

    it('drops a retired key exactly when its notAfter passes, not before', () => {
      const retiredAt = policy.rotateAfterMs + policy.publishAheadMs + policy.retireAfterMs;
      const two = rotateKeySet(rotateKeySet([], t0, policy), at(policy.rotateAfterMs), policy);
      const justBefore = rotateKeySet(two, at(retiredAt - 1), policy);
      expect(kids(justBefore)).to.deep.equal(kids(two));
      const after = rotateKeySet(two, at(retiredAt), policy);
      expect(kids(after)).to.deep.equal([two[1]?.kid]);
    });

    it('counts the next rotation from when the newest key started signing', () => {
      const two = rotateKeySet(rotateKeySet([], t0, policy), at(policy.rotateAfterMs), policy);
      const due = 2 * policy.rotateAfterMs + policy.publishAheadMs;
      const newest = (keys: SigningKey[]) => keys.at(-1)?.kid;
      expect(newest(rotateKeySet(two, at(due - 1), policy))).to.equal(newest(two));
      expect(newest(rotateKeySet(two, at(due), policy))).to.not.equal(newest(two));
    });

    it('reports the next rotation as the time rotateKeySet adds a key', () => {
      expect(nextRotationAt([], policy)).to.equal(undefined);
      const one = rotateKeySet([], t0, policy);
      expect(nextRotationAt(one, policy)).to.deep.equal(at(policy.rotateAfterMs));
      const two = rotateKeySet(one, at(policy.rotateAfterMs), policy);
      const due = nextRotationAt(two, policy)!;
      expect(due).to.deep.equal(at(2 * policy.rotateAfterMs + policy.publishAheadMs));
      const newest = (keys: SigningKey[]) => keys.at(-1)?.kid;
      expect(newest(rotateKeySet(two, new Date(due.getTime() - 1), policy))).to.equal(newest(two));
      expect(newest(rotateKeySet(two, due, policy))).to.not.equal(newest(two));
    });

    it('signs at once after a rotation when publishAheadMs is 0', () => {
      const now = at(policy.rotateAfterMs);
      const next = rotateKeySet(rotateKeySet([], t0, policy), now, { ...policy, publishAheadMs: 0 });
      expect(currentSigningKey(next, now).kid).to.equal(next[1]?.kid);
      expect(next[0]?.notAfter?.getTime()).to.equal(now.getTime() + policy.retireAfterMs);
    });

    it('counts retirement from when a key stopped signing, even if rotation ran late', () => {
      const first = rotateKeySet([], t0, policy);
      // Nobody ran rotation for a week: the old key signed until now.
      const late = at(7 * 24 * hour);
      const next = rotateKeySet(first, late, policy);
      expect(kids(next)).to.include(first[0]?.kid);
      expect(next[0]?.notAfter?.getTime()).to.equal(
        late.getTime() + policy.publishAheadMs + policy.retireAfterMs,
      );
    });

    it('never drops the newest key, even one marked with a past notAfter', () => {
      const key = { ...generateSigningKey(t0), notAfter: at(-hour) };
      const next = rotateKeySet([key], at(hour), policy);
      expect(kids(next)).to.deep.equal([key.kid]);
    });

    it('drops an older key without notAfter once it is publish + rotate + retire old', () => {
      const old = generateSigningKey(t0);
      const newer = generateSigningKey(at(policy.rotateAfterMs));
      const limit = policy.publishAheadMs + policy.rotateAfterMs + policy.retireAfterMs;
      // Evaluated before the newer key is due for rotation, so only the fallback rule applies.
      expect(kids(rotateKeySet([newer, old], at(limit - 1), policy))).to.deep.equal([old.kid, newer.kid]);
      expect(kids(rotateKeySet([newer, old], at(limit), policy))).to.deep.equal([newer.kid]);
    });

    it('uses the generator it is given', () => {
      const made = generateSigningKey(t0);
      const calls: Date[] = [];
      const next = rotateKeySet([], t0, policy, (now) => {
        calls.push(now);
        return made;
      });
      expect(calls.map((d) => d.getTime())).to.deep.equal([t0.getTime()]);
      expect(kids(next)).to.deep.equal([made.kid]);
    });

    it('refuses a policy without positive durations', () => {
      expect(() => rotateKeySet([], t0, { ...policy, rotateAfterMs: 0 })).to.throw(
        RangeError,
        /rotateAfterMs/,
      );
      expect(() => rotateKeySet([], t0, { ...policy, retireAfterMs: Number.NaN })).to.throw(
        RangeError,
        /retireAfterMs/,
      );
      for (const publishAheadMs of [-1, policy.rotateAfterMs, Number.POSITIVE_INFINITY]) {
        expect(() => rotateKeySet([], t0, { ...policy, publishAheadMs })).to.throw(
          RangeError,
          /publishAheadMs/,
        );
      }
    });
  });

  describe('currentSigningKey', () => {
    it('is the newest key whatever the order', () => {
      const old = generateSigningKey(t0);
      const newest = generateSigningKey(at(hour));
      expect(currentSigningKey([newest, old], at(hour)).kid).to.equal(newest.kid);
      expect(currentSigningKey([old, newest], at(hour)).kid).to.equal(newest.kid);
    });

    it('skips keys whose notBefore has not come, unless none has', () => {
      const old = generateSigningKey(t0);
      const pending = { ...generateSigningKey(at(hour)), notBefore: at(2 * hour) };
      const later = { ...generateSigningKey(at(hour)), notBefore: at(3 * hour) };
      expect(currentSigningKey([pending, old], at(2 * hour - 1)).kid).to.equal(old.kid);
      expect(currentSigningKey([pending, old], at(2 * hour)).kid).to.equal(pending.kid);
      // A set edited by hand to hold only keys of the future: the first to come signs.
      expect(currentSigningKey([later, pending], t0).kid).to.equal(pending.kid);
    });

    it('throws on an empty set', () => {
      expect(() => currentSigningKey([], t0)).to.throw(/empty/);
    });
  });

  describe('publicJwks', () => {
    it('publishes only the public members, newest first', () => {
      const old = generateSigningKey(t0);
      const newest = generateSigningKey(at(hour));
      const document = publicJwks([old, newest]);
      expect(document.keys).to.deep.equal([
        {
          kty: 'EC',
          crv: 'P-256',
          x: newest.publicJwk.x,
          y: newest.publicJwk.y,
          kid: newest.kid,
          alg: 'ES256',
          use: 'sig',
        },
        {
          kty: 'EC',
          crv: 'P-256',
          x: old.publicJwk.x,
          y: old.publicJwk.y,
          kid: old.kid,
          alg: 'ES256',
          use: 'sig',
        },
      ]);
      const text = JSON.stringify(document);
      expect(text).to.not.include(old.privateJwk.d);
      expect(text).to.not.include(newest.privateJwk.d);
      expect(text).to.not.include('"d"');
    });
  });

  describe('serialisation', () => {
    it('round-trips a set with retiring keys', () => {
      const keys = rotateKeySet(rotateKeySet([], t0, policy), at(policy.rotateAfterMs), policy);
      const json = serializeKeySet(keys);
      const parsed = parseKeySet(json);
      expect(parsed).to.deep.equal(keys);
      expect(parsed[0]?.notAfter).to.be.instanceOf(Date);
      expect(parsed[1]?.notBefore).to.be.instanceOf(Date);
      expect(JSON.parse(json)).to.include({ version: 1 });
      expect(json).to.include(t0.toISOString());
    });

    function stored(keys: SigningKey[]): { version: number; keys: Record<string, unknown>[] } {
      return JSON.parse(serializeKeySet(keys)) as { version: number; keys: Record<string, unknown>[] };
    }

    function rejection(json: string): KeySetFormatError {
      try {
        parseKeySet(json);
      } catch (error) {
        expect(error).to.be.instanceOf(KeySetFormatError);
        return error as KeySetFormatError;
      }
      return expect.fail('parseKeySet accepted the set');
    }

    it('rejects broken documents without quoting key material', () => {
      const a = generateSigningKey(t0);
      const b = generateSigningKey(at(hour));
      const secrets = [a.privateJwk.d, b.privateJwk.d];

      const notJson = rejection('{"version":1,');
      expect(notJson.message).to.match(/not valid JSON/);

      const wrongVersion = stored([a]);
      wrongVersion.version = 2;
      expect(rejection(JSON.stringify(wrongVersion)).message).to.match(/version/);

      const swapped = stored([a, b]);
      const [first, second] = swapped.keys;
      if (!first || !second) throw new Error('two keys expected');
      first.publicJwk = second.publicJwk;
      expect(rejection(JSON.stringify(swapped)).message).to.match(/does not belong to the private key/);

      const wrongKid = stored([a]);
      if (wrongKid.keys[0]) wrongKid.keys[0].kid = b.kid;
      expect(rejection(JSON.stringify(wrongKid)).message).to.match(/kid is not the thumbprint/);

      const duplicate = stored([a]);
      duplicate.keys.push({ ...duplicate.keys[0] });
      expect(rejection(JSON.stringify(duplicate)).message).to.match(/duplicate kid/);

      const rsa = stored([a]);
      if (rsa.keys[0]) rsa.keys[0].alg = 'RS256';
      expect(rejection(JSON.stringify(rsa)).message).to.match(/keys\.0\.alg/);

      const badScalar = stored([a]);
      (badScalar.keys[0]?.privateJwk as { d: string }).d = 'AAAA';
      const unusable = rejection(JSON.stringify(badScalar));
      expect(unusable.message).to.match(/key 0/);

      // A valid scalar, but of another key: only a signature probe notices.
      const foreignScalar = stored([a]);
      (foreignScalar.keys[0]?.privateJwk as { d: string }).d = b.privateJwk.d;
      const foreign = rejection(JSON.stringify(foreignScalar));
      expect(foreign.message).to.match(/does not belong to the private key/);

      for (const error of [notJson, unusable, foreign, rejection(JSON.stringify(swapped))]) {
        for (const secret of secrets) expect(error.message).to.not.include(secret);
      }
    });
  });

  describe('InMemoryKeySetSource', () => {
    it('hands out the replaced set as a new array', () => {
      const a = generateSigningKey(t0);
      const b = generateSigningKey(at(hour));
      const source = new InMemoryKeySetSource([a]);
      const before = source.current();
      expect(kids(before)).to.deep.equal([a.kid]);
      source.replace([a, b]);
      expect(source.current()).to.not.equal(before);
      expect(kids(source.current())).to.deep.equal([a.kid, b.kid]);
    });
  });
});
