import { expect } from 'chai';
import argon2 from 'argon2';
import {
  defaultPasswordHashParameters,
  hashPassword,
  PasswordHashFormatError,
  passwordProblems,
  verifyAgainstDummy,
  verifyPassword,
  type PasswordProblemCode,
} from '../../../api/src/auth/passwords.js';

const cheap = { memoryCost: 8192, timeCost: 1, parallelism: 1 };

function codes(password: string, context: { email?: string; name?: string } = {}): PasswordProblemCode[] {
  return passwordProblems(password, context).map((p) => p.code);
}

/** The cost parameters of a PHC string, whatever order they are written in. */
function phcParameters(hash: string): Record<string, number> {
  const field = hash.split('$')[3] ?? '';
  const entries = field.split(',').map((pair): [string, number] => {
    const [name = '', value = ''] = pair.split('=');
    return [name, Number(value)];
  });
  return Object.fromEntries(entries);
}

async function median(times: number, fn: () => Promise<unknown>): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < times; i += 1) {
    const start = performance.now();
    await fn();
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] ?? 0;
}

describe('passwords', function () {
  this.timeout(20_000);

  describe('hashing', () => {
    it('hashes with argon2id and the documented parameters, salted', async () => {
      const { memoryCost, timeCost, parallelism } = defaultPasswordHashParameters;
      const a = await hashPassword('Correct horse 42');
      const b = await hashPassword('Correct horse 42');
      expect(a).to.match(/^\$argon2id\$v=19\$/);
      expect(phcParameters(a)).to.deep.equal({ m: memoryCost, t: timeCost, p: parallelism });
      expect(a).to.not.include('Correct horse 42');
      expect(a).to.not.equal(b);
    });

    it('verifies the right password and rejects a wrong one', async () => {
      const hash = await hashPassword('Correct horse 42');
      expect(await verifyPassword(hash, 'Correct horse 42')).to.deep.equal({ ok: true, needsRehash: false });
      expect(await verifyPassword(hash, 'Correct horse 43')).to.deep.equal({ ok: false, needsRehash: false });
      expect(await verifyPassword(hash, 'correct horse 42')).to.deep.equal({ ok: false, needsRehash: false });
      expect(await verifyPassword(hash, '')).to.deep.equal({ ok: false, needsRehash: false });
    });

    it('treats composed and decomposed accents as the same password', async () => {
      const hash = await hashPassword('Caf\u00e9 au lait 7');
      expect((await verifyPassword(hash, 'Cafe\u0301 au lait 7')).ok).to.be.true;
    });

    it('asks for a rehash when the parameters or the variant changed', async () => {
      const old = await hashPassword('Correct horse 42', cheap);
      expect(phcParameters(old)).to.deep.equal({ m: 8192, t: 1, p: 1 });
      expect(await verifyPassword(old, 'Correct horse 42')).to.deep.equal({ ok: true, needsRehash: true });
      expect(await verifyPassword(old, 'Correct horse 42', cheap)).to.deep.equal({
        ok: true,
        needsRehash: false,
      });
      // A wrong password never triggers a rehash.
      expect(await verifyPassword(old, 'wrong')).to.deep.equal({ ok: false, needsRehash: false });
      const argon2i = await argon2.hash('Correct horse 42', {
        type: argon2.argon2i,
        ...defaultPasswordHashParameters,
      });
      expect(await verifyPassword(argon2i, 'Correct horse 42')).to.deep.equal({
        ok: true,
        needsRehash: true,
      });
    });

    it('refuses a stored hash that is not argon2, without echoing it', async () => {
      for (const stored of ['pbkdf2_sha256$600000$salt$hash', '$argon2id$garbage', '']) {
        const error = await verifyPassword(stored, 'Correct horse 42').then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error, stored).to.be.instanceOf(PasswordHashFormatError);
        if (stored) expect((error as Error).message).to.not.include(stored);
      }
    });

    it('takes as long for an unknown user as for a wrong password', async () => {
      const hash = await hashPassword('Correct horse 42');
      expect(await verifyAgainstDummy('Correct horse 42')).to.equal(false);
      const real = await median(5, () => verifyPassword(hash, 'wrong password'));
      const dummy = await median(5, () => verifyAgainstDummy('wrong password'));
      // A shortcut (no argon2 work) would be a hundred times faster; the bounds leave room for a busy machine.
      expect(dummy).to.be.greaterThan(real * 0.3);
      expect(dummy).to.be.lessThan(real * 3);
    });
  });

  describe('passwordProblems', () => {
    const context = { email: 'ada.lovelace@analytical.example', name: 'Ada Lovelace' };

    it('accepts reasonable passwords', () => {
      for (const password of [
        'Correct horse 42 battery',
        'correct horse battery staple',
        'Tr0ub4dor&3x',
        'zebra-Quilt-9-mango',
        '\u00fcberm\u00e4\u00dfig Gl\u00fcck 7',
      ]) {
        expect(passwordProblems(password, context), password).to.deep.equal([]);
      }
    });

    it('gives every problem a sentence a user can act on', () => {
      const problems = passwordProblems('aaaa', context);
      expect(problems.length).to.be.greaterThan(1);
      for (const problem of problems) expect(problem.message).to.match(/^[A-Z].{9,}\.$/);
    });

    it('enforces the length limits in characters, not bytes', () => {
      expect(codes('Ab1!xyz9q')).to.deep.equal(['too_short']);
      expect(codes('Ab1!xyz9qw')).to.deep.equal([]);
      // Ten characters, twenty bytes in UTF-8: long enough.
      expect(codes('\u00e4\u00f6\u00fc\u00df\u00e9\u00e8\u00ea1\u00c4\u00d6')).to.deep.equal([]);
      expect(codes(`Ab1!${'xyz9'.repeat(64)}`)).to.include('too_long');
    });

    it('rejects repeated characters and patterns, and too few distinct characters', () => {
      expect(codes('aaaaaaaaaaaa')).to.include.members(['repeated_pattern', 'single_class']);
      expect(codes('Ab1!Ab1!Ab1!')).to.deep.equal(['repeated_pattern']);
      expect(codes('aaaaaaaaa1')).to.deep.equal(['few_distinct']);
    });

    it('rejects a password of one character class', () => {
      expect(codes('mfkqzvwpxr')).to.deep.equal(['single_class']);
      expect(codes('MFKQZVWPXR')).to.deep.equal(['single_class']);
      expect(codes('8203957146')).to.deep.equal(['single_class']);
    });

    it('rejects runs of keys or letters', () => {
      expect(codes('1234567890')).to.include('sequence');
      expect(codes('0987654321')).to.include('sequence');
      expect(codes('qwertyuiop!')).to.include('sequence');
      expect(codes('Abcdefgh1234')).to.include('sequence');
      expect(codes('zyxwvuTSRQ')).to.include('sequence');
      // A short run inside an otherwise random password is fine.
      expect(codes('Vq7#abcd-Lm2')).to.deep.equal([]);
    });

    it('rejects the most common passwords with digits, symbols or leet added', () => {
      expect(codes('Password2024!')).to.include('common');
      expect(codes('P@ssw0rd1234')).to.include('common');
      expect(codes('Welcome#2030')).to.include('common');
      expect(codes('Passwordsafe9!')).to.not.include('common');
    });

    it("rejects the user's email and name", () => {
      expect(codes('ada.lovelace@analytical.example', context)).to.include('contains_email');
      expect(codes('Lovelace#2024x', context)).to.include.members(['contains_email', 'contains_name']);
      expect(codes('Analytical!2030', context)).to.deep.equal(['contains_email']);
      expect(codes('ItsAda&Babbage1', { name: 'Ada Lovelace' })).to.deep.equal(['contains_name']);
      expect(codes('Lovelace#2024x')).to.deep.equal([]);
    });
  });
});
