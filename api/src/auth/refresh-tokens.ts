// Opaque refresh tokens in the tenant database, rotated on every use. Each
// login starts a family; every rotation adds the next token of the family
// and marks the presented one used. A used or revoked token presented again
// means two parties hold the family (one of them stole it), so the whole
// family is revoked and both have to log in again.
//
// Every token records the uid of the Tenant it was issued under. A database
// kept under deletionPolicy Retain can come back under a new Tenant of the
// same name; that Tenant refuses the tokens of the earlier one.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { QueryTypes, type Sequelize, type Transaction } from 'sequelize';

export interface IssuedRefreshToken {
  /** `rt_` and 32 random bytes in base64url. Only its hash is stored. */
  token: string;
  id: string;
  userId: string;
  familyId: string;
  expiresAt: Date;
}

export interface RefreshTokenContext {
  /** The OAuth client or user agent, for the session list. */
  client?: string;
  ip?: string;
}

export type RefreshTokenFailure =
  | 'malformed'
  | 'unknown'
  | 'expired'
  | 'reused'
  | 'user_inactive'
  | 'family_revoked'
  | 'family_of_other_user'
  | 'issued_to_earlier_tenant';

export type RevokeReason =
  | 'reuse'
  | 'logout'
  | 'logout_all'
  | 'password_change'
  | 'user_inactive'
  | 'admin'
  /** An OAuth client's revocation request (RFC 7009). */
  | 'revocation';

/** What a token is, read without using it (for introspection). */
export interface RefreshTokenState {
  userId: string;
  familyId: string;
  tenantUid: string | null;
  createdAt: Date;
  expiresAt: Date;
  usedAt: Date | null;
  revokedAt: Date | null;
  userActive: boolean;
}

/** A refresh token that cannot be used. The message never carries the token. */
export class RefreshTokenError extends Error {
  readonly reason: RefreshTokenFailure;

  constructor(reason: RefreshTokenFailure, message = `refresh token rejected: ${reason}`) {
    super(message);
    this.name = 'RefreshTokenError';
    this.reason = reason;
  }
}

/** The token was already used or revoked; its whole family is now revoked. */
export class RefreshTokenReuseError extends RefreshTokenError {
  readonly familyId: string;
  readonly userId: string;

  constructor(familyId: string, userId: string) {
    super('reused', 'refresh token reused: its family has been revoked');
    this.name = 'RefreshTokenReuseError';
    this.familyId = familyId;
    this.userId = userId;
  }
}

export class RefreshTokenExpiredError extends RefreshTokenError {
  constructor() {
    super('expired', 'refresh token expired');
    this.name = 'RefreshTokenExpiredError';
  }
}

export interface RefreshTokenStoreOptions {
  /** Lifetime of each token from its issue; default 30 days. Every rotation starts it anew. */
  ttlMs?: number;
  /**
   * The `metadata.uid` of the Tenant this database serves now. Needed to issue
   * and rotate: new tokens record it, and a token recorded under another uid
   * (or none, from before uids were recorded) does not rotate.
   */
  tenantUid?: string;
  now?: () => Date;
}

const tokenPattern = /^rt_[A-Za-z0-9_-]{43}$/;
// First key of the two-key advisory locks that serialise one user's token
// changes. Every writer takes the user's lock before any row lock, so two
// revocations of overlapping rows cannot deadlock.
const userLockNamespace = 0x7274;

interface TokenRow {
  id: string;
  user_id: string;
  family_id: string;
  tenant_uid: string | null;
  expires_at: Date;
  used_at: Date | null;
  revoked_at: Date | null;
  user_active: boolean;
}

type RotationOutcome =
  { kind: 'rotated'; issued: IssuedRefreshToken } | { kind: 'failed'; error: RefreshTokenError };

// The statements stay SQL: rotation's correctness rests on advisory locks and
// `FOR UPDATE OF t` on a join, which the model layer cannot express. They run
// on the tenant's Sequelize pool, in its managed transactions.
export class RefreshTokenStore {
  readonly #db: Sequelize;
  readonly #ttlMs: number;
  readonly #tenantUid: string | undefined;
  readonly #now: () => Date;

  constructor(db: Sequelize, options: RefreshTokenStoreOptions = {}) {
    this.#db = db;
    this.#ttlMs = options.ttlMs ?? 30 * 24 * 60 * 60 * 1000;
    this.#tenantUid = options.tenantUid;
    this.#now = options.now ?? (() => new Date());
    if (!Number.isFinite(this.#ttlMs) || this.#ttlMs <= 0) throw new RangeError('ttlMs must be positive');
  }

  /**
   * Issues a token for `userId`: in a new family (a login), or in
   * `familyId`, which must be the user's and not revoked.
   */
  async issue(
    userId: string,
    options: { familyId?: string } & RefreshTokenContext = {},
  ): Promise<IssuedRefreshToken> {
    const { familyId, ...context } = options;
    if (familyId === undefined) {
      return this.#insert(undefined, { userId, familyId: randomUUID(), parentId: null }, context);
    }
    const outcome = await this.#db.transaction(async (t): Promise<RotationOutcome> => {
      await this.#lockUser(t, userId);
      const rows = await this.#select<{ other_user: boolean; revoked: boolean }>(
        t,
        `SELECT bool_or(user_id <> $2) AS other_user, bool_or(revoked_at IS NOT NULL) AS revoked
           FROM app.refresh_tokens WHERE family_id = $1`,
        [familyId, userId],
      );
      if (rows[0]?.other_user)
        return { kind: 'failed', error: new RefreshTokenError('family_of_other_user') };
      if (rows[0]?.revoked) return { kind: 'failed', error: new RefreshTokenError('family_revoked') };
      return {
        kind: 'rotated',
        issued: await this.#insert(t, { userId, familyId, parentId: null }, context),
      };
    });
    if (outcome.kind === 'failed') throw outcome.error;
    return outcome.issued;
  }

  /**
   * Exchanges a token for the next one in its family. Throws
   * `RefreshTokenReuseError` (after revoking the family) for a used or
   * revoked token, `RefreshTokenExpiredError` for an expired one, and
   * `RefreshTokenError` otherwise.
   */
  async rotate(token: string, context: RefreshTokenContext = {}): Promise<IssuedRefreshToken> {
    const tenantUid = this.#issuingUid();
    const hash = tokenHash(token);
    const outcome = await this.#db.transaction(async (t): Promise<RotationOutcome> => {
      const [owner] = await this.#select<{ user_id: string }>(
        t,
        'SELECT user_id FROM app.refresh_tokens WHERE token_hash = $1',
        [hash],
      );
      const userId = owner?.user_id;
      if (!userId) return { kind: 'failed', error: new RefreshTokenError('unknown') };
      await this.#lockUser(t, userId);
      // FOR UPDATE: a concurrent rotation of the same token waits here and
      // then sees it used, so at most one of them succeeds.
      const [row] = await this.#select<TokenRow>(
        t,
        `SELECT t.id, t.user_id, t.family_id, t.tenant_uid, t.expires_at, t.used_at, t.revoked_at,
                u.is_active AS user_active
           FROM app.refresh_tokens t JOIN app.users u ON u.id = t.user_id
          WHERE t.token_hash = $1
            FOR UPDATE OF t`,
        [hash],
      );
      // Deleted between the two reads (its user was deleted).
      if (!row) return { kind: 'failed', error: new RefreshTokenError('unknown') };
      // Checked first: a token of an earlier Tenant changes nothing here, not even its family.
      if (row.tenant_uid !== tenantUid) {
        return { kind: 'failed', error: new RefreshTokenError('issued_to_earlier_tenant') };
      }
      const now = this.#now();
      if (row.used_at || row.revoked_at) {
        await this.#revokeWhere(t, 'family_id = $1', row.family_id, 'reuse', now);
        return { kind: 'failed', error: new RefreshTokenReuseError(row.family_id, row.user_id) };
      }
      if (row.expires_at.getTime() <= now.getTime()) {
        return { kind: 'failed', error: new RefreshTokenExpiredError() };
      }
      if (!row.user_active) {
        await this.#revokeWhere(t, 'family_id = $1', row.family_id, 'user_inactive', now);
        return { kind: 'failed', error: new RefreshTokenError('user_inactive') };
      }
      await this.#db.query('UPDATE app.refresh_tokens SET used_at = $2 WHERE id = $1', {
        bind: [row.id, now],
        type: QueryTypes.UPDATE,
        transaction: t,
      });
      const issued = await this.#insert(
        t,
        { userId: row.user_id, familyId: row.family_id, parentId: row.id },
        context,
      );
      return { kind: 'rotated', issued };
    });
    // Thrown after COMMIT, so the family revocation is kept.
    if (outcome.kind === 'failed') throw outcome.error;
    return outcome.issued;
  }

  /** The state of `token`, changing nothing; undefined when it is malformed or unknown. */
  async describe(token: string): Promise<RefreshTokenState | undefined> {
    let hash: Buffer;
    try {
      hash = tokenHash(token);
    } catch {
      return undefined;
    }
    const row = await this.#db.query<TokenRow & { created_at: Date }>(
      `SELECT t.user_id, t.family_id, t.tenant_uid, t.created_at, t.expires_at, t.used_at, t.revoked_at,
              u.is_active AS user_active
         FROM app.refresh_tokens t JOIN app.users u ON u.id = t.user_id
        WHERE t.token_hash = $1`,
      { bind: [hash], type: QueryTypes.SELECT, plain: true },
    );
    if (!row) return undefined;
    return {
      userId: row.user_id,
      familyId: row.family_id,
      tenantUid: row.tenant_uid,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
      usedAt: row.used_at,
      revokedAt: row.revoked_at,
      userActive: row.user_active,
    };
  }

  /** Revokes the family of `token` (logout of one session). False when the token is unknown. */
  async revokeToken(token: string, reason: RevokeReason = 'logout'): Promise<boolean> {
    let hash: Buffer;
    try {
      hash = tokenHash(token);
    } catch {
      return false;
    }
    return this.#db.transaction(async (t) => {
      const [row] = await this.#select<{ user_id: string; family_id: string }>(
        t,
        'SELECT user_id, family_id FROM app.refresh_tokens WHERE token_hash = $1',
        [hash],
      );
      if (!row) return false;
      await this.#lockUser(t, row.user_id);
      await this.#revokeWhere(t, 'family_id = $1', row.family_id, reason, this.#now());
      return true;
    });
  }

  /** Revokes a family. Returns how many of its tokens (used ones included) were not revoked before. */
  async revokeFamily(familyId: string, reason: RevokeReason = 'logout'): Promise<number> {
    return this.#db.transaction(async (t) => {
      const [row] = await this.#select<{ user_id: string }>(
        t,
        'SELECT user_id FROM app.refresh_tokens WHERE family_id = $1 LIMIT 1',
        [familyId],
      );
      if (!row) return 0;
      await this.#lockUser(t, row.user_id);
      return this.#revokeWhere(t, 'family_id = $1', familyId, reason, this.#now());
    });
  }

  /**
   * Revokes every token of a user: logout everywhere, password change,
   * deactivation. Returns how many were not revoked before.
   */
  async revokeAllForUser(userId: string, reason: RevokeReason = 'logout_all'): Promise<number> {
    return this.#db.transaction(async (t) => {
      await this.#lockUser(t, userId);
      return this.#revokeWhere(t, 'user_id = $1', userId, reason, this.#now());
    });
  }

  /** Deletes tokens that expired before `before`. Reuse of a deleted token reads as unknown. */
  async deleteExpired(before: Date): Promise<number> {
    return this.#db.query('DELETE FROM app.refresh_tokens WHERE expires_at < $1', {
      bind: [before],
      type: QueryTypes.BULKDELETE,
    });
  }

  async #insert(
    transaction: Transaction | undefined,
    row: { userId: string; familyId: string; parentId: string | null },
    context: RefreshTokenContext,
  ): Promise<IssuedRefreshToken> {
    const tenantUid = this.#issuingUid();
    const token = `rt_${randomBytes(32).toString('base64url')}`;
    const now = this.#now();
    const expiresAt = new Date(now.getTime() + this.#ttlMs);
    const [inserted] = await this.#select<{ id: string }>(
      transaction,
      `INSERT INTO app.refresh_tokens
         (user_id, family_id, token_hash, parent_id, created_at, expires_at, client, ip, tenant_uid)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
      [
        row.userId,
        row.familyId,
        tokenHash(token),
        row.parentId,
        now,
        expiresAt,
        context.client ?? null,
        context.ip ?? null,
        tenantUid,
      ],
    );
    const id = inserted?.id;
    if (!id) throw new Error('INSERT into app.refresh_tokens returned no id');
    return { token, id, userId: row.userId, familyId: row.familyId, expiresAt };
  }

  #select<T extends object>(
    transaction: Transaction | undefined,
    sql: string,
    bind: unknown[],
  ): Promise<T[]> {
    return this.#db.query<T>(sql, { bind, type: QueryTypes.SELECT, ...(transaction ? { transaction } : {}) });
  }

  async #lockUser(transaction: Transaction, userId: string): Promise<void> {
    await this.#select(transaction, 'SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [
      userLockNamespace,
      userId,
    ]);
  }

  /** Returns how many tokens it revoked. */
  #revokeWhere(
    transaction: Transaction,
    condition: 'family_id = $1' | 'user_id = $1',
    value: string,
    reason: RevokeReason,
    now: Date,
  ): Promise<number> {
    return this.#db.query(
      `UPDATE app.refresh_tokens SET revoked_at = $2, revoked_reason = $3
        WHERE ${condition} AND revoked_at IS NULL`,
      { bind: [value, now, reason], type: QueryTypes.BULKUPDATE, transaction },
    );
  }

  #issuingUid(): string {
    if (!this.#tenantUid)
      throw new TypeError('issuing or rotating refresh tokens needs the tenantUid option');
    return this.#tenantUid;
  }
}

/** SHA-256 of a well-formed token; `RefreshTokenError('malformed')` for anything else. */
function tokenHash(token: string): Buffer {
  if (typeof token !== 'string' || !tokenPattern.test(token)) throw new RefreshTokenError('malformed');
  return createHash('sha256').update(token).digest();
}
