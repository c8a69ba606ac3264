// The API's token signing keys: an ES256 key set that rotates. A new key is
// published for a while before it signs, so every API replica and every cached
// copy of the JWKS knows it before the first token carries it. The newest key
// whose time has come signs; older keys stay published (and accepted) until
// every token they signed has expired, then they are dropped. The operator
// keeps the set in the Secret named below and rotates it; the API reads it from
// there (or from a mounted file). This module only computes, stores and parses the set, so both
// import the one implementation.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type JsonWebKey,
} from 'node:crypto';
import { z } from 'zod';

export type SigningAlgorithm = 'ES256';

/** The Secret in the platform namespace that holds the key set; the operator creates and rotates it. */
export const signingKeySecretName = 'tenantry-api-signing-keys';
/** The Secret's data key with the JSON key set (the chart mounts the same key as a file). */
export const signingKeySecretKey = 'keys.json';
/** Labels on that Secret, so it can be found and told apart from tenant Secrets. */
export const signingKeySecretLabels = {
  'app.kubernetes.io/managed-by': 'tenantry-operator',
  'app.kubernetes.io/part-of': 'tenantry',
  'tenantry.io/secret-kind': 'signing-keys',
} as const;

/** The public half of a P-256 key as a JWK. */
export interface PublicEcJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

/** The private half: the public coordinates plus the secret scalar `d`. */
export interface PrivateEcJwk extends PublicEcJwk {
  d: string;
}

export interface SigningKey {
  /** The RFC 7638 thumbprint of the public key, so the same key always has the same id. */
  kid: string;
  alg: SigningAlgorithm;
  privateJwk: PrivateEcJwk;
  publicJwk: PublicEcJwk;
  createdAt: Date;
  /**
   * Set on a key added by rotation: it is published from `createdAt` but signs
   * only from this time. Keys without it sign from the start.
   */
  notBefore?: Date;
  /**
   * Set when a newer key takes over signing: from then on the key only
   * verifies, and it is dropped at this time.
   */
  notAfter?: Date;
}

/** A member of `/.well-known/jwks.json`: public members only. */
export interface PublishedJwk extends PublicEcJwk {
  kid: string;
  alg: SigningAlgorithm;
  use: 'sig';
}

export interface RotationPolicy {
  /** A new key is added once the newest is this old. */
  rotateAfterMs: number;
  /**
   * How long a superseded key keeps verifying. Must be at least the access
   * token lifetime plus clock tolerance, or live tokens start failing.
   */
  retireAfterMs: number;
  /**
   * How long a new key is published before it signs: longer than it takes every
   * API replica to load the Secret and any JWKS cache to refresh. 0 signs at once.
   * Must be shorter than `rotateAfterMs`.
   */
  publishAheadMs: number;
}

/** Where the current key set comes from (a Secret watcher in production). */
export interface KeySetSource {
  current(): SigningKey[];
}

/** A key set held in memory; `replace` swaps it, e.g. after the Secret changed. */
export class InMemoryKeySetSource implements KeySetSource {
  #keys: SigningKey[];

  constructor(keys: readonly SigningKey[] = []) {
    this.#keys = [...keys];
  }

  current(): SigningKey[] {
    return this.#keys;
  }

  replace(keys: readonly SigningKey[]): void {
    // A new array each time, so consumers can cache by identity.
    this.#keys = [...keys];
  }
}

/** A key set JSON document that cannot be used. The message never carries key material. */
export class KeySetFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeySetFormatError';
  }
}

/** There is no key to sign with yet: the key set has not been loaded. */
export class NoSigningKeyError extends Error {
  constructor() {
    super('the signing key set is empty');
    this.name = 'NoSigningKeyError';
  }
}

/** Creates a fresh P-256 key pair for ES256. */
export function generateSigningKey(now: Date): SigningKey {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const privateJwk = toPrivateEcJwk(privateKey.export({ format: 'jwk' }));
  const publicJwk = publicPart(privateJwk);
  return { kid: jwkThumbprint(publicJwk), alg: 'ES256', privateJwk, publicJwk, createdAt: new Date(now) };
}

/**
 * The key set after a rotation check at `now`. Does not change `keys`.
 *
 * - Starts an empty set with a key that signs at once.
 * - Adds a key once the newest has signed for `rotateAfterMs`. The new key signs
 *   from `notBefore = now + publishAheadMs`; until then the key it replaces goes
 *   on signing, and it gets `notAfter = notBefore + retireAfterMs`.
 * - Drops keys whose `notAfter` has passed. A non-newest key without
 *   `notAfter` (imported from elsewhere) is dropped once it is
 *   `publishAheadMs + rotateAfterMs + retireAfterMs` old, the earliest it could
 *   have stopped signing.
 * - Never drops the newest key.
 */
export function rotateKeySet(
  keys: readonly SigningKey[],
  now: Date,
  policy: RotationPolicy,
  generate: (now: Date) => SigningKey = generateSigningKey,
): SigningKey[] {
  checkPolicy(policy);
  const at = now.getTime();
  const ordered = sortOldestFirst(keys);
  const newest = ordered.at(-1);
  let next = ordered.map((k) => ({ ...k }));
  if (!newest) {
    next.push(generate(now));
  } else if (at - signsFrom(newest) >= policy.rotateAfterMs) {
    const notBefore = at + policy.publishAheadMs;
    next = next.map((k) => (k.notAfter ? k : { ...k, notAfter: new Date(notBefore + policy.retireAfterMs) }));
    next.push({ ...generate(now), notBefore: new Date(notBefore) });
  }
  const keep = next.at(-1);
  return next.filter((k) => {
    if (k === keep) return true;
    const dropAt =
      k.notAfter?.getTime() ??
      k.createdAt.getTime() + policy.publishAheadMs + policy.rotateAfterMs + policy.retireAfterMs;
    return at < dropAt;
  });
}

/** When rotateKeySet adds the next key: once the newest has signed for `rotateAfterMs`. */
export function nextRotationAt(keys: readonly SigningKey[], policy: RotationPolicy): Date | undefined {
  const newest = sortOldestFirst(keys).at(-1);
  return newest && new Date(signsFrom(newest) + policy.rotateAfterMs);
}

/**
 * The key that signs new tokens at `now`: the newest key whose `notBefore` has
 * come. Should none have come (a set edited by hand), the one that comes first.
 */
export function currentSigningKey(keys: readonly SigningKey[], now: Date): SigningKey {
  const ordered = sortOldestFirst(keys);
  const key =
    ordered.filter((k) => signsFrom(k) <= now.getTime()).at(-1) ??
    ordered.sort((a, b) => signsFrom(a) - signsFrom(b))[0];
  if (!key) throw new NoSigningKeyError();
  return key;
}

function signsFrom(key: SigningKey): number {
  return (key.notBefore ?? key.createdAt).getTime();
}

/** The document served at `/.well-known/jwks.json`, newest key first. */
export function publicJwks(keys: readonly SigningKey[]): { keys: PublishedJwk[] } {
  return {
    keys: sortOldestFirst(keys)
      .reverse()
      .map((k) => ({
        kty: 'EC',
        crv: 'P-256',
        x: k.publicJwk.x,
        y: k.publicJwk.y,
        kid: k.kid,
        alg: k.alg,
        use: 'sig',
      })),
  };
}

const base64url = z.string().regex(/^[A-Za-z0-9_-]+$/);
const storedKeySchema = z.object({
  kid: base64url,
  alg: z.literal('ES256'),
  privateJwk: z.object({
    kty: z.literal('EC'),
    crv: z.literal('P-256'),
    x: base64url,
    y: base64url,
    d: base64url,
  }),
  publicJwk: z.object({ kty: z.literal('EC'), crv: z.literal('P-256'), x: base64url, y: base64url }),
  createdAt: z.iso.datetime({ offset: true }),
  notBefore: z.iso.datetime({ offset: true }).optional(),
  notAfter: z.iso.datetime({ offset: true }).optional(),
});
const storedKeySetSchema = z.object({ version: z.literal(1), keys: z.array(storedKeySchema) });

/** The key set as a JSON string for the Secret. Contains private keys. */
export function serializeKeySet(keys: readonly SigningKey[]): string {
  return JSON.stringify({
    version: 1,
    keys: sortOldestFirst(keys).map((k) => ({
      kid: k.kid,
      alg: k.alg,
      privateJwk: {
        kty: 'EC',
        crv: 'P-256',
        x: k.privateJwk.x,
        y: k.privateJwk.y,
        d: k.privateJwk.d,
      },
      publicJwk: publicPart(k.publicJwk),
      createdAt: k.createdAt.toISOString(),
      ...(k.notBefore ? { notBefore: k.notBefore.toISOString() } : {}),
      ...(k.notAfter ? { notAfter: k.notAfter.toISOString() } : {}),
    })),
  });
}

/**
 * Reads a key set written by `serializeKeySet`. Checks that each private key
 * is valid and matches its public key and kid, so a hand-edited Secret fails
 * here rather than on the first token.
 */
export function parseKeySet(json: string): SigningKey[] {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new KeySetFormatError('the key set is not valid JSON');
  }
  const parsed = storedKeySetSchema.safeParse(raw);
  if (!parsed.success) {
    // Paths only: zod's messages could quote the offending (secret) values.
    const paths = parsed.error.issues.map((i) => i.path.join('.') || '(root)');
    throw new KeySetFormatError(`the key set has invalid members: ${[...new Set(paths)].join(', ')}`);
  }
  const seen = new Set<string>();
  return parsed.data.keys.map((stored, index) => {
    const derived: PublicEcJwk = publicPart(stored.publicJwk);
    if (
      stored.privateJwk.x !== derived.x ||
      stored.privateJwk.y !== derived.y ||
      !keyPairWorks(stored.privateJwk)
    ) {
      throw new KeySetFormatError(`key ${index}: the public key does not belong to the private key`);
    }
    if (jwkThumbprint(derived) !== stored.kid) {
      throw new KeySetFormatError(`key ${index}: kid is not the thumbprint of its public key`);
    }
    if (seen.has(stored.kid)) throw new KeySetFormatError(`key ${index}: duplicate kid`);
    seen.add(stored.kid);
    return {
      kid: stored.kid,
      alg: stored.alg,
      privateJwk: { ...stored.privateJwk },
      publicJwk: derived,
      createdAt: new Date(stored.createdAt),
      ...(stored.notBefore ? { notBefore: new Date(stored.notBefore) } : {}),
      ...(stored.notAfter ? { notAfter: new Date(stored.notAfter) } : {}),
    };
  });
}

/** RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order. */
export function jwkThumbprint(jwk: PublicEcJwk): string {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return createHash('sha256').update(canonical).digest('base64url');
}

/**
 * Signs a probe with the private JWK and verifies it with its public
 * coordinates. Node takes x and y from the JWK as given, so a scalar `d`
 * that does not match them is only caught this way.
 */
function keyPairWorks(jwk: PrivateEcJwk): boolean {
  try {
    const probe = Buffer.from('tenantry key set check');
    const signature = sign('sha256', probe, createPrivateKey({ key: { ...jwk }, format: 'jwk' }));
    const publicKey = createPublicKey({ key: { ...publicPart(jwk) }, format: 'jwk' });
    return verify('sha256', probe, publicKey, signature);
  } catch {
    return false;
  }
}

function publicPart(jwk: PublicEcJwk): PublicEcJwk {
  return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
}

function toPublicEcJwk(jwk: JsonWebKey): PublicEcJwk {
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || !jwk.x || !jwk.y) throw new Error('not a P-256 key');
  return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
}

function toPrivateEcJwk(jwk: JsonWebKey): PrivateEcJwk {
  if (!jwk.d) throw new Error('not a private key');
  return { ...toPublicEcJwk(jwk), d: jwk.d };
}

function sortOldestFirst(keys: readonly SigningKey[]): SigningKey[] {
  // Stable sort: among keys created at the same instant the later one wins.
  return [...keys].sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
}

function checkPolicy(policy: RotationPolicy): void {
  for (const name of ['rotateAfterMs', 'retireAfterMs'] as const) {
    const value = policy[name];
    if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number`);
  }
  const ahead = policy.publishAheadMs;
  if (!Number.isFinite(ahead) || ahead < 0 || ahead >= policy.rotateAfterMs) {
    throw new RangeError('publishAheadMs must be at least 0 and shorter than rotateAfterMs');
  }
}
