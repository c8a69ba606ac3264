// Access tokens: short-lived ES256 JWTs (RFC 9068 style, header typ at+jwt)
// signed with the newest key of the set and verified only against the
// set's own public keys. Nothing in a token can point verification at
// another key, algorithm or key server.
import { randomUUID, createPrivateKey, type KeyObject } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  SignJWT,
  type JWTPayload,
  type LocalJWKSet,
} from 'jose';
import { isRole, type Role } from '../../../lib/tenant/index.js';
import { currentSigningKey, publicJwks, type KeySetSource, type SigningKey } from './keys.js';

export interface AccessTokenSubject {
  /** The user id (or API client id). */
  sub: string;
  /** The tenant id: the only thing that decides which tenant database a request reaches. */
  tid: string;
  /**
   * The `metadata.uid` of the Tenant the token is issued for; required unless
   * `platformAdmin`. A name can be reused by a later Tenant, the uid never is.
   */
  tenantUid?: string;
  role: Role;
  scope?: readonly string[];
  platformAdmin?: boolean;
  /**
   * Set for a tenant API client's token (RFC 9068 `client_id`): the public
   * client id, while `sub` is the client's row id. Such tokens act in the
   * tenant with the client's role but never as a user (no profile, password or
   * API-client management).
   */
  clientId?: string;
}

export interface IssuedAccessToken {
  token: string;
  jti: string;
  expiresAt: Date;
  /** Seconds until expiry, for the token endpoint's `expires_in`. */
  expiresIn: number;
}

export interface AccessTokenClaims {
  iss: string;
  aud: string;
  sub: string;
  tid: string;
  /** `tenant_uid`: present on every tenant token, absent on platform-admin tokens. */
  tenantUid?: string;
  role: Role;
  scope: string[];
  platformAdmin: boolean;
  /** Present only on tenant API-client tokens. */
  clientId?: string;
  jti: string;
  iat: number;
  exp: number;
}

export type InvalidTokenReason =
  | 'malformed'
  | 'unsupported_alg'
  | 'forbidden_header'
  | 'unknown_kid'
  | 'bad_signature'
  | 'wrong_type'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'expired'
  | 'not_yet_valid'
  | 'missing_claim'
  | 'invalid_claim'
  | 'revoked';

/** A token that must not be accepted. Carries a short reason and never the token or its claims. */
export class InvalidTokenError extends Error {
  readonly reason: InvalidTokenReason;

  constructor(reason: InvalidTokenReason) {
    super(`invalid access token: ${reason}`);
    this.name = 'InvalidTokenError';
    this.reason = reason;
  }
}

export interface TokenServiceOptions {
  keys: KeySetSource;
  issuer: string;
  audience: string;
  /** Default 900 (15 minutes). The key set's retireAfterMs must cover it. */
  accessTokenTtlSeconds?: number;
  /** Allowed clock skew between replicas, default 5 seconds. */
  clockToleranceSeconds?: number;
  /** Tokens revoked before they expire (RFC 7009); asked on every verification, cached or not. */
  revocations?: { isRevoked(jti: string): Promise<boolean> };
  now?: () => Date;
}

const accessTokenType = 'at+jwt';
const accessTokenUse = 'access';
// Header members that would let the token choose its own key or demand
// processing we do not do; none of our tokens carries them.
const forbiddenHeaders = ['jwk', 'jku', 'x5u', 'x5c', 'crit'] as const;
// Far above any token we issue; stops oversized input before any parsing.
const maxTokenLength = 8192;
const compactJws = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export class TokenService {
  readonly #keys: KeySetSource;
  readonly #issuer: string;
  readonly #audience: string;
  readonly #ttl: number;
  readonly #tolerance: number;
  readonly #now: () => Date;
  readonly #revocations: TokenServiceOptions['revocations'];
  // Rebuilt whenever the source hands out a different array (a new key set).
  #verifyCache: { keys: readonly SigningKey[]; kids: Set<string>; jwks: LocalJWKSet } | undefined;
  readonly #privateKeys = new Map<string, KeyObject>();
  // Tokens that passed every check, by their exact text: a client sends the same token on every
  // request, and an ECDSA verification costs more than the rest of a small request. A hit is
  // re-checked for expiry and only counts while the key set is the one that verified it.
  readonly #verified = new LRUCache<string, { claims: AccessTokenClaims; keys: readonly SigningKey[] }>({
    max: 10_000,
  });

  constructor(options: TokenServiceOptions) {
    this.#keys = options.keys;
    this.#issuer = nonEmpty(options.issuer, 'issuer');
    this.#audience = nonEmpty(options.audience, 'audience');
    this.#ttl = options.accessTokenTtlSeconds ?? 900;
    this.#tolerance = options.clockToleranceSeconds ?? 5;
    this.#now = options.now ?? (() => new Date());
    this.#revocations = options.revocations;
    if (!Number.isInteger(this.#ttl) || this.#ttl <= 0) {
      throw new RangeError('accessTokenTtlSeconds must be a positive integer');
    }
    if (!Number.isFinite(this.#tolerance) || this.#tolerance < 0 || this.#tolerance > 60) {
      throw new RangeError('clockToleranceSeconds must be between 0 and 60');
    }
  }

  /** The `iss` of every token: the authorization server's issuer identifier (RFC 8414). */
  get issuer(): string {
    return this.#issuer;
  }

  async issueAccessToken(subject: AccessTokenSubject): Promise<IssuedAccessToken> {
    nonEmpty(subject.sub, 'sub');
    nonEmpty(subject.tid, 'tid');
    if (!subject.platformAdmin) nonEmpty(subject.tenantUid ?? '', 'tenantUid');
    if (!isRole(subject.role)) throw new TypeError(`unknown role ${String(subject.role)}`);
    const key = currentSigningKey(this.#keys.current(), this.#now());
    const iat = Math.floor(this.#now().getTime() / 1000);
    const exp = iat + this.#ttl;
    const jti = randomUUID();
    const scope = subject.scope?.filter((s) => s.length > 0) ?? [];
    if (scope.some((s) => /\s/.test(s))) throw new TypeError('a scope must not contain whitespace');
    const payload: JWTPayload = {
      tid: subject.tid,
      ...(subject.platformAdmin ? {} : { tenant_uid: subject.tenantUid }),
      role: subject.role,
      typ: accessTokenUse,
      ...(scope.length > 0 ? { scope: scope.join(' ') } : {}),
      ...(subject.platformAdmin ? { platform_admin: true } : {}),
      ...(subject.clientId ? { client_id: subject.clientId } : {}),
    };
    const token = await new SignJWT(payload)
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: accessTokenType })
      .setIssuer(this.#issuer)
      .setAudience(this.#audience)
      .setSubject(subject.sub)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(jti)
      .sign(this.#privateKeyOf(key));
    return { token, jti, expiresAt: new Date(exp * 1000), expiresIn: this.#ttl };
  }

  /** The verified claims, or an `InvalidTokenError` saying why not. */
  async verifyAccessToken(token: string): Promise<AccessTokenClaims> {
    const claims = await this.#verifiedClaims(token);
    if (await this.#revocations?.isRevoked(claims.jti)) throw new InvalidTokenError('revoked');
    return claims;
  }

  async #verifiedClaims(token: string): Promise<AccessTokenClaims> {
    const known = this.#verified.get(token);
    if (known) {
      if (
        known.keys === this.#keys.current() &&
        known.claims.exp + this.#tolerance > this.#now().getTime() / 1000
      ) {
        return known.claims;
      }
      this.#verified.delete(token);
    }
    const claims = await this.#verify(token);
    this.#verified.set(token, { claims, keys: this.#keys.current() });
    return claims;
  }

  async #verify(token: string): Promise<AccessTokenClaims> {
    if (typeof token !== 'string' || token.length > maxTokenLength || !compactJws.test(token)) {
      throw new InvalidTokenError('malformed');
    }
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new InvalidTokenError('malformed');
    }
    if (forbiddenHeaders.some((name) => Object.hasOwn(header, name))) {
      throw new InvalidTokenError('forbidden_header');
    }
    if (header.alg !== 'ES256') throw new InvalidTokenError('unsupported_alg');
    const { kids, jwks } = this.#verificationKeys();
    if (typeof header.kid !== 'string' || !kids.has(header.kid)) throw new InvalidTokenError('unknown_kid');

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        algorithms: ['ES256'],
        issuer: this.#issuer,
        audience: this.#audience,
        typ: accessTokenType,
        requiredClaims: ['exp', 'iat', 'sub', 'tid', 'jti', 'typ'],
        // Also bounds the age by iat, and rejects an iat in the future.
        maxTokenAge: this.#ttl,
        clockTolerance: this.#tolerance,
        currentDate: this.#now(),
      }));
    } catch (error) {
      // Never chain the jose error: it carries the decoded payload.
      throw new InvalidTokenError(reasonFor(error));
    }
    return claimsOf(payload);
  }

  #verificationKeys(): { kids: Set<string>; jwks: LocalJWKSet } {
    const keys = this.#keys.current();
    if (this.#verifyCache?.keys !== keys) {
      const document = publicJwks(keys);
      this.#verifyCache = {
        keys,
        kids: new Set(document.keys.map((k) => k.kid)),
        jwks: createLocalJWKSet(document),
      };
    }
    return this.#verifyCache;
  }

  #privateKeyOf(key: SigningKey): KeyObject {
    let imported = this.#privateKeys.get(key.kid);
    if (!imported) {
      imported = createPrivateKey({ key: { ...key.privateJwk }, format: 'jwk' });
      // Only the signing key is ever needed; drop keys from earlier sets.
      this.#privateKeys.clear();
      this.#privateKeys.set(key.kid, imported);
    }
    return imported;
  }
}

function reasonFor(error: unknown): InvalidTokenReason {
  if (error instanceof errors.JWTExpired) return 'expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === 'missing') return 'missing_claim';
    switch (error.claim) {
      case 'aud':
        return 'wrong_audience';
      case 'iss':
        return 'wrong_issuer';
      case 'typ':
        return 'wrong_type';
      case 'nbf':
        return error.reason === 'check_failed' ? 'not_yet_valid' : 'invalid_claim';
      case 'iat':
        return error.reason === 'check_failed' ? 'not_yet_valid' : 'invalid_claim';
      default:
        return 'invalid_claim';
    }
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'bad_signature';
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return 'unsupported_alg';
  }
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
    return 'unknown_kid';
  }
  if (error instanceof errors.JOSEError) return 'malformed';
  // Not a verdict on the token but a fault of ours; let it surface as one.
  throw error;
}

function claimsOf(payload: JWTPayload): AccessTokenClaims {
  const { iss, aud, sub, jti, iat, exp } = payload;
  const { tid, role, typ, scope } = payload as Record<string, unknown>;
  const platformAdmin = payload.platform_admin;
  const clientId = payload.client_id;
  const tenantUid = payload.tenant_uid;
  if (typ !== accessTokenUse) throw new InvalidTokenError('wrong_type');
  // A tenant token names its Tenant's uid, so a later Tenant of the same name
  // can refuse it. Tokens minted before the claim existed have none: refused,
  // the client refreshes (its refresh token carries the uid in the database).
  if (platformAdmin !== true && tenantUid === undefined) throw new InvalidTokenError('missing_claim');
  if (
    typeof iss !== 'string' ||
    typeof aud !== 'string' ||
    !isNonEmpty(sub) ||
    !isNonEmpty(tid) ||
    !isNonEmpty(jti) ||
    typeof iat !== 'number' ||
    typeof exp !== 'number' ||
    !isRole(role) ||
    (scope !== undefined && typeof scope !== 'string') ||
    (platformAdmin !== undefined && typeof platformAdmin !== 'boolean') ||
    (clientId !== undefined && !isNonEmpty(clientId)) ||
    (tenantUid !== undefined && (!isNonEmpty(tenantUid) || platformAdmin === true))
  ) {
    throw new InvalidTokenError('invalid_claim');
  }
  return {
    iss,
    aud,
    sub,
    tid,
    ...(typeof tenantUid === 'string' ? { tenantUid } : {}),
    role,
    scope: typeof scope === 'string' ? scope.split(' ').filter((s) => s.length > 0) : [],
    platformAdmin: platformAdmin === true,
    ...(typeof clientId === 'string' ? { clientId } : {}),
    jti,
    iat,
    exp,
  };
}

function isNonEmpty(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

function nonEmpty(value: string, name: string): string {
  if (!isNonEmpty(value)) throw new TypeError(`${name} must be a non-empty string`);
  return value;
}
