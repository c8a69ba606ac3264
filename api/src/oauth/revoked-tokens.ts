// Revoked access tokens (RFC 7009): their `jti` in Redis until the token would
// have expired anyway, so every replica refuses them from the next request on.
// A token's lifetime bounds the list: at most one entry per revoked token, for
// at most ACCESS_TOKEN_TTL_SECONDS.
//
// When Redis cannot be reached the check lets tokens through, with a warning:
// like the per-tenant rate limits (ratelimit/rate-limits.ts), a cache outage
// must not become an outage of every signed-in client, and a token that is
// let through lives for minutes at most. Revoking needs Redis and fails
// (503) without it, so a caller never believes a token is revoked when it is not.
import type { Redis } from 'ioredis';
import { problems } from '../http/problem.js';

export interface RevokedTokensLog {
  warn(obj: object, msg: string): void;
}

const outageLogEveryMs = 10_000;

export class RevokedAccessTokens {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #log: RevokedTokensLog;
  readonly #timeoutMs: number;
  readonly #graceSeconds: number;
  #lastLogged = 0;

  constructor(options: {
    redis: Redis;
    /** Prepended to each `jti`. */
    prefix: string;
    log: RevokedTokensLog;
    /** A lookup slower than this counts as Redis being down; default 500 ms. */
    timeoutMs?: number;
    /** Kept past `exp` this long, for the verifier's clock tolerance; default 60 s. */
    graceSeconds?: number;
  }) {
    this.#redis = options.redis;
    this.#prefix = options.prefix;
    this.#log = options.log;
    this.#timeoutMs = options.timeoutMs ?? 500;
    this.#graceSeconds = options.graceSeconds ?? 60;
  }

  /** Records the revocation of the token `jti`, which expires at `exp` (seconds since the epoch). */
  async revoke(jti: string, exp: number): Promise<void> {
    const ttlMs = Math.max(1, (exp + this.#graceSeconds) * 1000 - Date.now());
    try {
      await withDeadline(this.#redis.set(this.#prefix + jti, '1', 'PX', Math.ceil(ttlMs)), this.#timeoutMs);
    } catch (error) {
      throw Object.assign(problems.unavailable('revocation is briefly unavailable; try again shortly', 5), {
        cause: error,
      });
    }
  }

  async isRevoked(jti: string): Promise<boolean> {
    try {
      return (await withDeadline(this.#redis.exists(this.#prefix + jti), this.#timeoutMs)) === 1;
    } catch (error) {
      const now = Date.now();
      // One line every few seconds while Redis is down, not one per request.
      if (now - this.#lastLogged >= outageLogEveryMs) {
        this.#lastLogged = now;
        this.#log.warn({ err: error }, 'revoked-token list unavailable; accepting access tokens unchecked');
      }
      return false;
    }
  }
}

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
