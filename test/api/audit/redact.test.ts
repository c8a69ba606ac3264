import { expect } from 'chai';
import {
  canonicalJson,
  chainHash,
  isSecretKey,
  redactDiff,
  redactedValue,
} from '../../../api/src/audit/audit-log.js';

describe('audit diff redaction', () => {
  it('redacts the listed secret fields and anything named like a secret, at any depth', () => {
    const after = {
      email: 'ada@example.com',
      password: 'hunter2',
      password_hash: '$argon2id$v=19$abc',
      secret: 's',
      token: 't',
      client_secret: 'cs',
      refresh_token: 'rt',
      api_key: 'ak',
      private_key: '-----BEGIN PRIVATE KEY-----',
      Authorization: 'Bearer abc',
      webhookSigningKey: 'whsec',
      accessToken: 'at',
      sso: { oidc: { issuer: 'https://idp.example', clientSecret: 'deep' } },
      endpoints: [{ url: 'https://hook.example', secret: 'in-array' }],
    };
    const diff = redactDiff(null, after);
    expect(diff).to.not.have.property('before');
    expect(diff.after).to.deep.equal({
      email: 'ada@example.com',
      password: redactedValue,
      password_hash: redactedValue,
      secret: redactedValue,
      token: redactedValue,
      client_secret: redactedValue,
      refresh_token: redactedValue,
      api_key: redactedValue,
      private_key: redactedValue,
      Authorization: redactedValue,
      webhookSigningKey: redactedValue,
      accessToken: redactedValue,
      sso: { oidc: { issuer: 'https://idp.example', clientSecret: redactedValue } },
      endpoints: [{ url: 'https://hook.example', secret: redactedValue }],
    });
    const text = JSON.stringify(diff);
    for (const secret of ['hunter2', 'argon2id', 'deep', 'in-array', 'whsec', 'Bearer']) {
      expect(text).to.not.include(secret);
    }
  });

  it('redacts a whole object or array held under a secret key', () => {
    const diff = redactDiff({ credentials: 'x', secret: { value: 'v', version: 2 }, tokens: ['a', 'b'] });
    expect(diff.before).to.deep.equal({ credentials: 'x', secret: redactedValue, tokens: redactedValue });
  });

  it('keeps a null secret as null, since "none set" reveals nothing', () => {
    expect(redactDiff(null, { password_hash: null }).after).to.deep.equal({ password_hash: null });
  });

  it('records a delete as before only', () => {
    const diff = redactDiff({ id: 'u1', token: 'x' }, undefined);
    expect(diff).to.deep.equal({ before: { id: 'u1', token: redactedValue } });
  });

  it('keeps only changed fields of an update, and shows a changed secret as changed but redacted', () => {
    const diff = redactDiff(
      { id: 'u1', email: 'a@x.io', role: 'member', password_hash: 'old', api_key: 'same', gone: 1 },
      { id: 'u1', email: 'a@x.io', role: 'admin', password_hash: 'new', api_key: 'same', added: true },
    );
    expect(diff).to.deep.equal({
      before: { role: 'member', password_hash: redactedValue, gone: 1 },
      after: { role: 'admin', password_hash: redactedValue, added: true },
    });
  });

  it('compares nested values by content, not by key order or identity', () => {
    const diff = redactDiff(
      { settings: { a: 1, b: [1, 2] }, at: new Date('2026-01-01T00:00:00Z') },
      { settings: { b: [1, 2], a: 1 }, at: new Date('2026-01-01T00:00:00Z') },
    );
    expect(diff).to.deep.equal({ before: {}, after: {} });
  });

  it('turns values into JSON that jsonb stores unchanged', () => {
    const circular: Record<string, unknown> = { name: 'loop' };
    circular.self = circular;
    const diff = redactDiff(null, {
      at: new Date('2026-03-04T05:06:07.089Z'),
      big: 2n ** 70n,
      nan: Number.NaN,
      negativeZero: -0,
      skipped: undefined,
      fn: () => 1,
      bytes: Buffer.from('abc'),
      nul: 'a\u0000b',
      model: { toJSON: () => ({ id: 'm1', refresh_token: 'r' }) },
      circular,
    });
    expect(diff.after).to.deep.equal({
      at: '2026-03-04T05:06:07.089Z',
      big: '1180591620717411303424',
      nan: null,
      negativeZero: 0,
      bytes: '[binary 3 bytes]',
      nul: 'a\uFFFDb',
      model: { id: 'm1', refresh_token: redactedValue },
      circular: { name: 'loop', self: '[circular]' },
    });
  });

  it('refuses a resource that is not an object', () => {
    expect(() => redactDiff(null, [1, 2])).to.throw(TypeError);
  });

  it('matches secret-ish names, and leaves ordinary ones alone', () => {
    for (const key of ['password', 'PASSWORD', 'new_password', 'clientSecret', 'id_token', 'apiKey', 'KEY']) {
      expect(isSecretKey(key), key).to.be.true;
    }
    for (const key of ['email', 'role', 'keyboard', 'department', 'external_id']) {
      expect(isSecretKey(key), key).to.be.false;
    }
  });
});

describe('audit chain hashing', () => {
  it('writes canonical JSON with sorted keys at every depth', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } })).to.equal(
      '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });

  it('chains each hash to the previous one', () => {
    const content = {
      occurred_at: '2026-01-01T00:00:00.000Z',
      actor: 'u1',
      action: 'create',
      resource_type: 'user',
      resource_id: 'u2',
      diff: { after: { email: 'a@x.io' } },
      ip: '203.0.113.7',
      request_id: 'r1',
    };
    const first = chainHash(null, content);
    expect(first).to.match(/^[0-9a-f]{64}$/);
    expect(chainHash(null, { ...content })).to.equal(first);
    expect(chainHash(first, content)).to.not.equal(first);
    expect(chainHash(null, { ...content, diff: { after: { email: 'b@x.io' } } })).to.not.equal(first);
  });
});
