import { createHmac, createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { expect } from 'chai';
import { decodeProtectedHeader, decodeJwt } from 'jose';
import {
  generateSigningKey,
  InMemoryKeySetSource,
  publicJwks,
  rotateKeySet,
  type SigningKey,
} from '../../../api/src/auth/keys.js';
import {
  InvalidTokenError,
  TokenService,
  type AccessTokenSubject,
  type InvalidTokenReason,
} from '../../../api/src/auth/tokens.js';
import { assertSameTenant } from '../../../api/src/auth/context.js';
import { ProblemError } from '../../../api/src/http/problem.js';
import type { TenantEntry } from '../../../api/src/tenancy/tenant-directory.js';

const issuer = 'https://api.tenantry.test';
const audience = 'tenantry-api';
const t0 = new Date('2030-01-01T00:00:00.000Z');
const t0s = t0.getTime() / 1000;
const subject: AccessTokenSubject = {
  sub: '2a1b0a4e-7d0c-4b8f-9a57-3c1f1d2e9b11',
  tid: 'acme',
  tenantUid: '9c8b7a65-4321-4fed-8cba-0123456789ab',
  role: 'admin',
};

function b64(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

/** A compact JWS built by hand, so tests can forge any header, payload and signature. */
function forge(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  signWith?: SigningKey,
): string {
  const input = `${b64(header)}.${b64(payload)}`;
  if (!signWith) return `${input}.`;
  const key = createPrivateKey({ key: { ...signWith.privateJwk }, format: 'jwk' });
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

/** What a token from our issuer for `subject` looks like at t0. */
function goodPayload(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: issuer,
    aud: audience,
    sub: subject.sub,
    tid: subject.tid,
    tenant_uid: subject.tenantUid,
    role: subject.role,
    typ: 'access',
    iat: t0s,
    exp: t0s + 900,
    jti: '6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9',
    ...overrides,
  };
}

function goodHeader(key: SigningKey, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { alg: 'ES256', kid: key.kid, typ: 'at+jwt', ...overrides };
}

describe('TokenService', () => {
  let key: SigningKey;
  let source: InMemoryKeySetSource;
  let now: Date;
  let service: TokenService;

  beforeEach(() => {
    key = generateSigningKey(t0);
    source = new InMemoryKeySetSource([key]);
    now = t0;
    service = new TokenService({ keys: source, issuer, audience, now: () => now });
  });

  /** The reason a token is rejected with; fails the test if it is accepted. */
  async function rejectionReason(token: string, by: TokenService = service): Promise<InvalidTokenReason> {
    try {
      await by.verifyAccessToken(token);
    } catch (error) {
      expect(error).to.be.instanceOf(InvalidTokenError);
      const invalid = error as InvalidTokenError;
      // Nothing of the token reaches the error: not the token, not its payload.
      if (token.length >= 8) expect(invalid.message).to.not.include(token);
      expect(invalid.cause).to.be.undefined;
      expect(JSON.stringify(invalid, Object.getOwnPropertyNames(invalid))).to.not.include(subject.sub);
      return invalid.reason;
    }
    return expect.fail('the token was accepted');
  }

  describe('issue and verify', () => {
    it('round-trips the claims with the documented header and lifetime', async () => {
      const issued = await service.issueAccessToken(subject);
      expect(decodeProtectedHeader(issued.token)).to.deep.equal({
        alg: 'ES256',
        kid: key.kid,
        typ: 'at+jwt',
      });
      const raw = decodeJwt(issued.token);
      expect(raw).to.deep.equal({
        iss: issuer,
        aud: audience,
        sub: subject.sub,
        tid: 'acme',
        tenant_uid: subject.tenantUid,
        role: 'admin',
        typ: 'access',
        iat: t0s,
        exp: t0s + 900,
        jti: issued.jti,
      });
      expect(issued.jti).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(issued.expiresAt.getTime()).to.equal(t0.getTime() + 900_000);
      expect(issued.expiresIn).to.equal(900);

      const claims = await service.verifyAccessToken(issued.token);
      expect(claims).to.deep.equal({
        iss: issuer,
        aud: audience,
        sub: subject.sub,
        tid: 'acme',
        tenantUid: subject.tenantUid,
        role: 'admin',
        scope: [],
        platformAdmin: false,
        jti: issued.jti,
        iat: t0s,
        exp: t0s + 900,
      });
    });

    it('carries scope and the platform admin flag', async () => {
      const { tenantUid: _uid, ...platformSubject } = subject;
      const { token } = await service.issueAccessToken({
        ...platformSubject,
        scope: ['users:read', 'audit:read'],
        platformAdmin: true,
      });
      expect(decodeJwt(token)).to.include({ scope: 'users:read audit:read', platform_admin: true });
      // A platform token belongs to no Tenant, so it names no Tenant uid.
      expect(decodeJwt(token)).to.not.have.property('tenant_uid');
      const claims = await service.verifyAccessToken(token);
      expect(claims.scope).to.deep.equal(['users:read', 'audit:read']);
      expect(claims.platformAdmin).to.be.true;
    });

    it('gives every token its own jti', async () => {
      const a = await service.issueAccessToken(subject);
      const b = await service.issueAccessToken(subject);
      expect(a.jti).to.not.equal(b.jti);
    });

    it('uses the configured lifetime', async () => {
      const short = new TokenService({
        keys: source,
        issuer,
        audience,
        accessTokenTtlSeconds: 60,
        now: () => now,
      });
      const { token } = await short.issueAccessToken(subject);
      expect(decodeJwt(token).exp).to.equal(t0s + 60);
    });

    it('refuses to issue for a bad subject', async () => {
      const bad = [
        { ...subject, role: 'root' as never },
        { ...subject, tid: '' },
        { ...subject, sub: '' },
        { ...subject, scope: ['two words'] },
        // A tenant token must name the Tenant's uid.
        { ...subject, tenantUid: undefined },
        { ...subject, tenantUid: '' },
      ];
      for (const s of bad) {
        const error = await service.issueAccessToken(s).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error, JSON.stringify(s)).to.be.instanceOf(TypeError);
      }
    });

    it('refuses nonsensical settings', () => {
      expect(() => new TokenService({ keys: source, issuer, audience, accessTokenTtlSeconds: 0 })).to.throw(
        RangeError,
      );
      expect(() => new TokenService({ keys: source, issuer: '', audience })).to.throw(TypeError);
    });
  });

  describe('rejects', () => {
    it('alg none', async () => {
      expect(
        await rejectionReason(forge({ alg: 'none', typ: 'at+jwt', kid: key.kid }, goodPayload())),
      ).to.equal('unsupported_alg');
      expect(await rejectionReason(forge({ alg: 'none' }, goodPayload()))).to.equal('unsupported_alg');
    });

    it('HS256 signed with the public key as the HMAC secret', async () => {
      const header = goodHeader(key, { alg: 'HS256' });
      const input = `${b64(header)}.${b64(goodPayload())}`;
      const publicKey = createPublicKey({ key: { ...key.publicJwk }, format: 'jwk' });
      const secrets = [
        publicKey.export({ format: 'pem', type: 'spki' }),
        publicKey.export({ format: 'der', type: 'spki' }),
        JSON.stringify(key.publicJwk),
      ];
      for (const secret of secrets) {
        const mac = createHmac('sha256', secret).update(input).digest('base64url');
        expect(await rejectionReason(`${input}.${mac}`)).to.equal('unsupported_alg');
      }
    });

    it('a key embedded in the header, even with a valid signature by that key', async () => {
      const attacker = generateSigningKey(t0);
      const token = forge(goodHeader(attacker, { jwk: attacker.publicJwk }), goodPayload(), attacker);
      expect(await rejectionReason(token)).to.equal('forbidden_header');
      // Same with our kid, in case a verifier looked the kid up first.
      const spoofed = forge(goodHeader(key, { jwk: attacker.publicJwk }), goodPayload(), attacker);
      expect(await rejectionReason(spoofed)).to.equal('forbidden_header');
    });

    it('jku, x5u, x5c and crit headers, even on an otherwise valid token', async () => {
      const headers: Record<string, unknown>[] = [
        { jku: 'https://attacker.example/jwks.json' },
        { x5u: 'https://attacker.example/cert.pem' },
        { x5c: ['MIIB'] },
        { crit: ['exp'] },
      ];
      for (const extra of headers) {
        const token = forge(goodHeader(key, extra), goodPayload(), key);
        expect(await rejectionReason(token), Object.keys(extra)[0]).to.equal('forbidden_header');
      }
      // The control: without the extra member the same token verifies.
      const clean = await service.verifyAccessToken(forge(goodHeader(key), goodPayload(), key));
      expect(clean.sub).to.equal(subject.sub);
    });

    it('an unknown or missing kid', async () => {
      const attacker = generateSigningKey(t0);
      expect(await rejectionReason(forge(goodHeader(attacker), goodPayload(), attacker))).to.equal(
        'unknown_kid',
      );
      expect(await rejectionReason(forge(goodHeader(key, { kid: 'nope' }), goodPayload(), key))).to.equal(
        'unknown_kid',
      );
      const { kid: _kid, ...noKid } = goodHeader(key);
      expect(await rejectionReason(forge(noKid, goodPayload(), key))).to.equal('unknown_kid');
    });

    it('a signature by another key under our kid', async () => {
      const attacker = generateSigningKey(t0);
      expect(await rejectionReason(forge(goodHeader(key), goodPayload(), attacker))).to.equal(
        'bad_signature',
      );
    });

    it('a tampered payload', async () => {
      const { token } = await service.issueAccessToken({ ...subject, role: 'member' });
      const [header, , signature] = token.split('.');
      const payload = { ...decodeJwt(token), role: 'owner', tid: 'other-tenant' };
      expect(await rejectionReason(`${header}.${b64(payload)}.${signature}`)).to.equal('bad_signature');
    });

    it('an expired token, past the small clock tolerance', async () => {
      const { token } = await service.issueAccessToken(subject);
      now = new Date(t0.getTime() + 904_000);
      expect((await service.verifyAccessToken(token)).sub).to.equal(subject.sub);
      now = new Date(t0.getTime() + 906_000);
      expect(await rejectionReason(token)).to.equal('expired');
    });

    it('a token older than the access token lifetime, whatever its exp says', async () => {
      const token = forge(goodHeader(key), goodPayload({ exp: t0s + 86_400 }), key);
      now = new Date(t0.getTime() + 1_000_000);
      expect(await rejectionReason(token)).to.equal('expired');
    });

    it('the wrong audience or issuer', async () => {
      expect(await rejectionReason(forge(goodHeader(key), goodPayload({ aud: 'other-api' }), key))).to.equal(
        'wrong_audience',
      );
      expect(
        await rejectionReason(forge(goodHeader(key), goodPayload({ iss: 'https://evil.example' }), key)),
      ).to.equal('wrong_issuer');
      // A service for another audience rejects our genuine tokens.
      const other = new TokenService({ keys: source, issuer, audience: 'billing-api', now: () => now });
      const { token } = await service.issueAccessToken(subject);
      expect(await rejectionReason(token, other)).to.equal('wrong_audience');
    });

    it('nbf or iat in the future beyond the tolerance', async () => {
      expect(await rejectionReason(forge(goodHeader(key), goodPayload({ nbf: t0s + 60 }), key))).to.equal(
        'not_yet_valid',
      );
      expect(
        (await service.verifyAccessToken(forge(goodHeader(key), goodPayload({ nbf: t0s + 3 }), key))).sub,
      ).to.equal(subject.sub);
      expect(await rejectionReason(forge(goodHeader(key), goodPayload({ iat: t0s + 60 }), key))).to.equal(
        'not_yet_valid',
      );
    });

    it('a refresh-looking token or a type mismatch', async () => {
      expect(await rejectionReason(forge(goodHeader(key), goodPayload({ typ: 'refresh' }), key))).to.equal(
        'wrong_type',
      );
      expect(await rejectionReason(forge(goodHeader(key, { typ: 'JWT' }), goodPayload(), key))).to.equal(
        'wrong_type',
      );
      const { typ: _typ, ...untyped } = goodHeader(key);
      expect(await rejectionReason(forge(untyped, goodPayload(), key))).to.equal('wrong_type');
      const { typ: _use, ...noUse } = goodPayload();
      expect(await rejectionReason(forge(goodHeader(key), noUse, key))).to.equal('missing_claim');
      // An opaque refresh token is not a JWT at all.
      expect(await rejectionReason(`rt_${'A'.repeat(43)}`)).to.equal('malformed');
    });

    it('missing or ill-typed claims', async () => {
      for (const claim of ['tid', 'sub', 'jti', 'exp', 'iat']) {
        const { [claim]: _dropped, ...payload } = goodPayload();
        expect(await rejectionReason(forge(goodHeader(key), payload, key)), claim).to.equal('missing_claim');
      }
      expect(await rejectionReason(forge(goodHeader(key), goodPayload({ role: 'superuser' }), key))).to.equal(
        'invalid_claim',
      );
      expect(await rejectionReason(forge(goodHeader(key), goodPayload({ tid: 42 }), key))).to.equal(
        'invalid_claim',
      );
      expect(
        await rejectionReason(forge(goodHeader(key), goodPayload({ platform_admin: 'yes' }), key)),
      ).to.equal('invalid_claim');
      expect(await rejectionReason(forge(goodHeader(key), goodPayload({ exp: 'never' }), key))).to.equal(
        'invalid_claim',
      );
    });

    it('a tenant token without a tenant uid (minted before the claim existed), or with a bad one', async () => {
      const { tenant_uid: _uid, ...legacy } = goodPayload();
      expect(await rejectionReason(forge(goodHeader(key), legacy, key))).to.equal('missing_claim');
      for (const bad of [42, '', null, ['x']]) {
        expect(
          await rejectionReason(forge(goodHeader(key), goodPayload({ tenant_uid: bad }), key)),
          JSON.stringify(bad),
        ).to.equal('invalid_claim');
      }
      // A platform token naming a Tenant uid is not one we issue.
      expect(
        await rejectionReason(forge(goodHeader(key), goodPayload({ platform_admin: true }), key)),
      ).to.equal('invalid_claim');
      // Without one, the platform token is fine.
      const platform = await service.verifyAccessToken(
        forge(goodHeader(key), { ...legacy, platform_admin: true }, key),
      );
      expect(platform).to.include({ platformAdmin: true }).and.not.have.property('tenantUid');
    });

    it('garbage', async () => {
      for (const token of ['', 'abc', 'a.b', 'a.b.c.d', `${b64('{')}.${b64('{}')}.`, 'x'.repeat(9000)]) {
        expect(await rejectionReason(token), token.slice(0, 20)).to.equal('malformed');
      }
    });

    it('a revoked token, even one verified (and cached) before', async () => {
      const revoked = new Set<string>();
      const checking = new TokenService({
        keys: source,
        issuer,
        audience,
        now: () => now,
        revocations: { isRevoked: (jti) => Promise.resolve(revoked.has(jti)) },
      });
      const issued = await checking.issueAccessToken(subject);
      const other = await checking.issueAccessToken(subject);
      expect((await checking.verifyAccessToken(issued.token)).jti).to.equal(issued.jti);
      revoked.add(issued.jti);
      expect(await rejectionReason(issued.token, checking)).to.equal('revoked');
      expect((await checking.verifyAccessToken(other.token)).jti).to.equal(other.jti);
    });
  });

  describe('key rotation', () => {
    const hour = 3_600_000;
    const policy = { rotateAfterMs: 60_000, retireAfterMs: hour, publishAheadMs: 30_000 };
    const after = (ms: number) => new Date(t0.getTime() + ms);

    it('publishes a new key before signing with it, and verifies the previous one until it retires', async () => {
      const beforeRotation = await service.issueAccessToken(subject);

      now = after(60_000);
      const rotated = rotateKeySet(source.current(), now, policy);
      source.replace(rotated);
      const added = rotated[1]!;
      expect(added.kid).to.not.equal(key.kid);
      expect(added.notBefore?.getTime()).to.equal(now.getTime() + policy.publishAheadMs);
      // Published at once, but the previous key signs until the new one's notBefore.
      expect(publicJwks(source.current()).keys.map((k) => k.kid)).to.include(added.kid);
      const whilePublished = await service.issueAccessToken(subject);
      expect(decodeProtectedHeader(whilePublished.token).kid).to.equal(key.kid);

      now = after(90_000);
      const afterRotation = await service.issueAccessToken(subject);
      expect(decodeProtectedHeader(afterRotation.token).kid).to.equal(added.kid);
      for (const issued of [beforeRotation, whilePublished, afterRotation]) {
        expect((await service.verifyAccessToken(issued.token)).jti).to.equal(issued.jti);
      }

      // The key set moves on by its own clock; the verification clock stays within the tokens'
      // lifetime, so only the key decides the outcome.
      source.replace(rotateKeySet(rotated, after(90_000 + policy.retireAfterMs), policy));
      expect(await rejectionReason(beforeRotation.token)).to.equal('unknown_kid');
      expect(await rejectionReason(whilePublished.token)).to.equal('unknown_kid');
      expect((await service.verifyAccessToken(afterRotation.token)).jti).to.equal(afterRotation.jti);
    });
  });
});

describe('assertSameTenant', () => {
  const entry = (uid: string) => ({ name: 'acme', uid }) as TenantEntry;

  it('lets a token through while its Tenant is the live one', () => {
    expect(() => assertSameTenant(entry('uid-1'), 'uid-1')).to.not.throw();
  });

  it('refuses with 401 what an earlier Tenant of the same name issued, naming neither uid', () => {
    for (const [live, issued] of [
      ['uid-2', 'uid-1'],
      ['uid-2', ''],
      ['', ''],
    ] as const) {
      let error: unknown;
      try {
        assertSameTenant(entry(live), issued);
      } catch (e) {
        error = e;
      }
      expect(error, `${live} / ${issued}`).to.be.instanceOf(ProblemError);
      const problem = error as ProblemError;
      expect(problem.status).to.equal(401);
      expect(problem.message).to.equal(
        'the access token was issued to an earlier tenant named acme; sign in again',
      );
    }
  });
});
