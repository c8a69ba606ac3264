// Password hashing with argon2id, and the checks a new password must pass.
import { randomBytes } from 'node:crypto';
import argon2 from 'argon2';

export interface PasswordHashParameters {
  /** Memory in KiB. */
  memoryCost: number;
  /** Passes over the memory. */
  timeCost: number;
  parallelism: number;
}

/**
 * 32 MiB and 2 passes, one lane: about 50 ms per hash on one server core,
 * above OWASP's argon2id minimum (19 MiB, 2 passes). Hashing runs on the
 * libuv thread pool (4 threads by default), so concurrent logins need at most
 * 4 × 32 MiB. Changing these makes `verifyPassword` ask for a rehash of
 * older hashes at the next successful login.
 */
export const defaultPasswordHashParameters: Readonly<PasswordHashParameters> = Object.freeze({
  memoryCost: 32 * 1024,
  timeCost: 2,
  parallelism: 1,
});

export interface PasswordVerification {
  ok: boolean;
  /** The password was right but the hash uses other parameters: store a fresh `hashPassword`. */
  needsRehash: boolean;
}

/** A stored hash that is not an argon2 PHC string. The message never carries the hash. */
export class PasswordHashFormatError extends Error {
  constructor() {
    super('the stored password hash is not an argon2 hash');
    this.name = 'PasswordHashFormatError';
  }
}

export async function hashPassword(
  password: string,
  parameters: PasswordHashParameters = defaultPasswordHashParameters,
): Promise<string> {
  return argon2.hash(normalize(password), { type: argon2.argon2id, ...parameters });
}

export async function verifyPassword(
  storedHash: string,
  password: string,
  parameters: PasswordHashParameters = defaultPasswordHashParameters,
): Promise<PasswordVerification> {
  if (!storedHash.startsWith('$argon2')) throw new PasswordHashFormatError();
  let ok: boolean;
  try {
    ok = await argon2.verify(storedHash, normalize(password));
  } catch {
    throw new PasswordHashFormatError();
  }
  if (!ok) return { ok: false, needsRehash: false };
  // argon2.needsRehash compares the cost parameters only, not the variant.
  const needsRehash = !storedHash.startsWith('$argon2id$') || argon2.needsRehash(storedHash, parameters);
  return { ok: true, needsRehash };
}

const dummyHashes = new Map<string, Promise<string>>();

/**
 * Spends as long as `verifyPassword` does and returns false. Call it when the
 * email is unknown or the user has no password, so that login time does not
 * tell whether an account exists.
 */
export async function verifyAgainstDummy(
  password: string,
  parameters: PasswordHashParameters = defaultPasswordHashParameters,
): Promise<false> {
  const key = `${parameters.memoryCost}:${parameters.timeCost}:${parameters.parallelism}`;
  let dummy = dummyHashes.get(key);
  if (!dummy) {
    // A random password nobody knows, hashed once with the live parameters.
    dummy = hashPassword(randomBytes(32).toString('base64url'), parameters);
    dummyHashes.set(key, dummy);
    // A failed hash is not kept: the next call tries again.
    dummy.catch(() => dummyHashes.delete(key));
  }
  await argon2.verify(await dummy, normalize(password));
  return false;
}

export type PasswordProblemCode =
  | 'too_short'
  | 'too_long'
  | 'few_distinct'
  | 'repeated_pattern'
  | 'single_class'
  | 'sequence'
  | 'common'
  | 'contains_email'
  | 'contains_name';

export interface PasswordProblem {
  code: PasswordProblemCode;
  message: string;
}

export const passwordMinLength = 10;
export const passwordMaxLength = 256;

// The few passwords (stripped of digits and symbols) that every guessing list starts with.
const commonWords = new Set([
  'password',
  'passwort',
  'passphrase',
  'qwerty',
  'qwertz',
  'azerty',
  'letmein',
  'welcome',
  'admin',
  'administrator',
  'login',
  'iloveyou',
  'monkey',
  'dragon',
  'football',
  'baseball',
  'sunshine',
  'princess',
  'master',
  'shadow',
  'superman',
  'trustno',
  'changeme',
  'secret',
  'default',
  'tenantry',
]);
const keyboardRows = [
  '1234567890',
  'qwertyuiop',
  'asdfghjkl',
  'zxcvbnm',
  'qwertzuiop',
  'yxcvbnm',
  'azertyuiop',
  'qsdfghjklm',
  'wxcvbn',
];
const leet: Record<string, string> = {
  '0': 'o',
  '1': 'i',
  '3': 'e',
  '4': 'a',
  '5': 's',
  '7': 't',
  '@': 'a',
  $: 's',
};

/**
 * What is wrong with a new password, in words a user can act on; empty when
 * it is acceptable. Checks length, variety, obvious patterns, a short list of
 * the most common passwords, and the user's own email and name.
 */
export function passwordProblems(
  password: string,
  context: { email?: string; name?: string } = {},
): PasswordProblem[] {
  const problems: PasswordProblem[] = [];
  const add = (code: PasswordProblemCode, message: string): void => {
    problems.push({ code, message });
  };
  const normalized = normalize(password);
  const chars = [...normalized];
  const lower = normalized.toLowerCase();

  if (chars.length < passwordMinLength) add('too_short', `Use at least ${passwordMinLength} characters.`);
  if (chars.length > passwordMaxLength) add('too_long', `Use at most ${passwordMaxLength} characters.`);
  if (chars.length > 0 && isRepetition(chars)) {
    add('repeated_pattern', 'Do not build the password by repeating a character or a short pattern.');
  } else if (new Set(chars).size < 5) {
    add('few_distinct', 'Use at least 5 different characters.');
  }
  if (chars.length > 0 && characterClasses(normalized) < 2) {
    add('single_class', 'Mix at least two kinds of characters: lower case, upper case, digits, symbols.');
  }
  if (chars.length >= 4 && isSequence(lower)) {
    add('sequence', 'Do not build the password from runs of keys or letters such as 1234 or qwerty.');
  }
  if (commonBases(lower).some((base) => commonWords.has(base))) {
    add('common', 'This is one of the most commonly used passwords.');
  }

  const emailParts = emailWords(context.email);
  if (emailParts.some((part) => lower.includes(part))) {
    add('contains_email', 'Do not use your email address or parts of it.');
  }
  const nameParts = (context.name ?? '')
    .toLowerCase()
    .normalize('NFKC')
    .split(/[^\p{L}\p{N}]+/u)
    .filter((part) => [...part].length >= 3);
  if (nameParts.some((part) => lower.includes(part))) add('contains_name', 'Do not use your name.');
  return problems;
}

// NFKC so that the same password typed on another keyboard or OS (composed
// vs decomposed accents, full-width digits) hashes the same.
function normalize(password: string): string {
  return password.normalize('NFKC');
}

/**
 * The word a password is likely built on: its letters alone (pass1234word),
 * and its core without leading and trailing digits or symbols read as leet
 * (P@ssw0rd1234 → password).
 */
function commonBases(lower: string): string[] {
  const lettersOnly = lower.replaceAll(/[^\p{L}]/gu, '');
  const core = lower.replace(/^[^\p{L}]+/u, '').replace(/[^\p{L}]+$/u, '');
  const unleet = [...core]
    .map((c) => leet[c] ?? c)
    .join('')
    .replaceAll(/[^\p{L}]/gu, '');
  return [lettersOnly, unleet];
}

function isRepetition(chars: string[]): boolean {
  for (let unit = 1; unit <= chars.length / 2; unit += 1) {
    if (chars.length % unit !== 0) continue;
    if (chars.every((c, i) => c === chars[i % unit])) return true;
  }
  return false;
}

function characterClasses(password: string): number {
  const patterns = [/\p{Ll}/u, /\p{Lu}/u, /\p{Nd}/u, /[^\p{Ll}\p{Lu}\p{Nd}]/u];
  return patterns.filter((p) => p.test(password)).length;
}

/**
 * Most of the password is made of runs of at least 4 keys along a keyboard
 * row or consecutive characters (abcd, 4321), in either direction.
 */
function isSequence(lower: string): boolean {
  const chars = [...lower];
  const inRun = new Array<boolean>(chars.length).fill(false);
  let i = 0;
  while (i < chars.length - 1) {
    let kinds = stepKinds(chars[i] ?? '', chars[i + 1] ?? '');
    if (kinds.length === 0) {
      i += 1;
      continue;
    }
    let j = i + 1;
    while (j + 1 < chars.length) {
      const next = stepKinds(chars[j] ?? '', chars[j + 1] ?? '');
      const shared = kinds.filter((k) => next.includes(k));
      if (shared.length === 0) break;
      kinds = shared;
      j += 1;
    }
    if (j - i + 1 >= 4) inRun.fill(true, i, j + 1);
    i = j;
  }
  return inRun.filter(Boolean).length >= chars.length * 0.8;
}

/** How `b` follows `a`: the next or previous code point, or the next or previous key on a row. */
function stepKinds(a: string, b: string): string[] {
  const kinds: string[] = [];
  const diff = (b.codePointAt(0) ?? 0) - (a.codePointAt(0) ?? 0);
  if (diff === 1) kinds.push('up');
  if (diff === -1) kinds.push('down');
  for (const row of keyboardRows) {
    const at = row.indexOf(a);
    if (at < 0) continue;
    if (row[at + 1] === b) kinds.push('right');
    if (at > 0 && row[at - 1] === b) kinds.push('left');
  }
  return kinds;
}

function emailWords(email: string | undefined): string[] {
  if (!email) return [];
  const lower = email.normalize('NFKC').toLowerCase().trim();
  const at = lower.lastIndexOf('@');
  const local = at >= 0 ? lower.slice(0, at) : lower;
  const domainLabel = at >= 0 ? (lower.slice(at + 1).split('.')[0] ?? '') : '';
  // The local part, its longer pieces (ada.lovelace → lovelace) and the organisation's name.
  const pieces = [...local.split(/[._+-]+/), domainLabel].filter((w) => [...w].length >= 4);
  return [...new Set([local, ...pieces].filter((w) => [...w].length >= 3))];
}
