// One-time password-reset tokens, kept in Redis so every replica sees them.
// A token is `pr_` and 32 random bytes; Redis holds only its SHA-256, under a
// key that also names the tenant, so a token is worthless at another tenant.
// A user has at most one live token: issuing one drops the previous. Using it
// deletes it (GETDEL), so it works once. A token also records the uid of the
// Tenant it was issued under, and a later Tenant of the same name refuses it.
//
// A reset request answers the same, and takes at least `minResponseMs`,
// whether or not the tenant or the account exists; failures are logged, not
// shown, because showing them would tell which accounts exist.
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { AuditLog } from '../audit/audit-log.js';
import { problems } from '../http/problem.js';
import { withResponseFloor } from '../http/response-floor.js';
import type { MailKind, Mailer } from '../mail/mailer.js';
import type { TenantDatabases, TenantDb } from '../tenancy/tenant-databases.js';
import type { TenantDirectory } from '../tenancy/tenant-directory.js';
import { setEmailVerified } from '../users/email-verification.js';
import { passwordHashing } from './password-hashing.js';
import { passwordProblems } from './passwords.js';
import type { Sessions } from './sessions.js';

export interface PasswordResetsOptions {
  redis: Redis;
  directory: TenantDirectory;
  databases: TenantDatabases;
  sessions: Sessions;
  mailer: Mailer;
  log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  /** Where the API is reached, for the instructions in the mail. */
  publicBaseUrl: string;
  /** Lifetime of a reset token; default 30 minutes. */
  ttlMs?: number;
  /** Lifetime of the set-password token sent to a new tenant's owner; default 72 hours. */
  inviteTtlMs?: number;
  /** The shortest time a reset request takes, whatever happens inside; default 300 ms. */
  minResponseMs?: number;
  /** Redis key prefix; default `pwreset:`. */
  prefix?: string;
}

export interface RequestContext {
  ip: string | null;
  requestId: string | null;
}

const tokenPattern = /^pr_[A-Za-z0-9_-]{43}$/;
const invalidToken = () =>
  problems.validation([{ field: 'token', message: 'is not valid: it is wrong, used or expired' }]);

interface StoredToken {
  userId: string;
  kind: MailKind;
  /** The address the token was mailed to; using the token proves it, if the user still has it. */
  email?: string;
  tenantUid: string;
}

function hashOf(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export class PasswordResets {
  readonly #o: PasswordResetsOptions;
  readonly #ttlMs: number;
  readonly #inviteTtlMs: number;
  readonly #minResponseMs: number;
  readonly #prefix: string;

  constructor(options: PasswordResetsOptions) {
    this.#o = options;
    this.#ttlMs = options.ttlMs ?? 30 * 60_000;
    this.#inviteTtlMs = options.inviteTtlMs ?? 72 * 3_600_000;
    this.#minResponseMs = options.minResponseMs ?? 300;
    this.#prefix = options.prefix ?? 'pwreset:';
  }

  /**
   * Mails a reset token if `email` is an active user of `tenant`. Resolves the
   * same way, no sooner than the floor, in every case.
   */
  async request(tenant: string, email: string, context: RequestContext): Promise<void> {
    await withResponseFloor('password reset request', tenant, this.#minResponseMs, this.#o.log, () =>
      this.#mailResetIfKnown(tenant, email, context),
    );
  }

  /**
   * Sets a new password with a token: checks the token (without using it up)
   * and the password, then uses the token, stores the hash with its audit
   * entry, and revokes every refresh token of the user.
   */
  async confirm(tenant: string, token: string, password: string, context: RequestContext): Promise<void> {
    const entry = this.#o.directory.servable(tenant);
    const db = this.#o.databases.for(tenant, entry.credentials);
    if (!tokenPattern.test(token)) throw invalidToken();
    const key = this.#tokenKey(tenant, hashOf(token));
    const stored = await this.#o.redis.get(key);
    if (!stored) throw invalidToken();
    const { userId, email: mailedTo, tenantUid } = JSON.parse(stored) as Partial<StoredToken>;
    const user = tenantUid === entry.uid ? await db.models.User.findByPk(userId) : null;
    if (!user || !user.is_active) {
      await this.#o.redis.del(key);
      throw invalidToken();
    }
    const weak = passwordProblems(password, { email: user.email, name: user.first_name ?? undefined });
    if (weak.length > 0)
      throw problems.validation(weak.map((p) => ({ field: 'password', message: p.message })));
    const passwordHash = await passwordHashing.hash(tenant, password);
    // Used up here: of two concurrent confirmations, only one gets the value.
    if ((await this.#o.redis.getdel(key)) !== stored) throw invalidToken();
    await this.#o.redis.del(this.#userKey(tenant, user.id));

    const before = user.password_hash;
    await db.sequelize.transaction(async (transaction) => {
      await user.update({ password_hash: passwordHash }, { transaction });
      // The token reached the address it was mailed to; that proves the user's address if it is still that one.
      if (mailedTo !== undefined && mailedTo.toLowerCase() === user.email.toLowerCase())
        await setEmailVerified(db, user.id, true, transaction);
      await AuditLog.append(
        db.sequelize,
        {
          actor: user.id,
          action: 'password_reset',
          resourceType: 'user',
          resourceId: user.id,
          before: { password_hash: before },
          after: { password_hash: passwordHash },
          ip: context.ip,
          requestId: context.requestId,
        },
        { transaction },
      );
    });
    await this.#o.sessions.revokeAllForUser(db, user.id);
  }

  /** Mails a new tenant's owner a token to set their first password (same confirm endpoint). */
  async inviteOwner(
    tenant: { name: string; uid: string },
    user: { id: string; email: string },
  ): Promise<void> {
    const token = await this.#issue(tenant, user, 'owner-invite', this.#inviteTtlMs);
    const hours = Math.round(this.#inviteTtlMs / 3_600_000);
    await this.#o.mailer.send({
      kind: 'owner-invite',
      to: user.email,
      subject: `You are the owner of ${tenant.name} on Tenantry`,
      text: [
        `The tenant "${tenant.name}" was created with you as its owner.`,
        `Set your password within ${hours} hours with this one-time token:`,
        '',
        `  ${token}`,
        '',
        `POST ${this.#o.publicBaseUrl}/api/auth/password/reset/confirm`,
        `{"tenant": "${tenant.name}", "token": "<the token>", "password": "<your new password>"}`,
      ].join('\n'),
    });
  }

  async #mailResetIfKnown(tenant: string, email: string, context: RequestContext): Promise<void> {
    const entry = this.#o.directory.get(tenant);
    if (!entry?.ready || entry.suspended || !entry.credentials) return;
    const db: TenantDb = this.#o.databases.for(tenant, entry.credentials);
    const user = await db.models.User.findOne({ where: { email } });
    if (!user || !user.is_active) return;
    const token = await this.#issue(entry, user, 'password-reset', this.#ttlMs);
    await AuditLog.append(db.sequelize, {
      actor: null,
      action: 'password_reset_requested',
      resourceType: 'user',
      resourceId: user.id,
      ip: context.ip,
      requestId: context.requestId,
    });
    const minutes = Math.round(this.#ttlMs / 60_000);
    await this.#o.mailer.send({
      kind: 'password-reset',
      to: user.email,
      subject: `Reset your Tenantry password for ${tenant}`,
      text: [
        `Someone asked to reset the password of ${user.email} at ${tenant}.`,
        `If it was you, use this one-time token within ${minutes} minutes:`,
        '',
        `  ${token}`,
        '',
        `POST ${this.#o.publicBaseUrl}/api/auth/password/reset/confirm`,
        `{"tenant": "${tenant}", "token": "<the token>", "password": "<your new password>"}`,
        '',
        'If it was not you, ignore this message: your password stays as it is.',
      ].join('\n'),
    });
  }

  /** A fresh token for the user; their previous one stops working. */
  async #issue(
    tenant: { name: string; uid: string },
    user: { id: string; email: string },
    kind: MailKind,
    ttlMs: number,
  ): Promise<string> {
    const token = `pr_${randomBytes(32).toString('base64url')}`;
    const hash = hashOf(token);
    const userKey = this.#userKey(tenant.name, user.id);
    const previous = await this.#o.redis.get(userKey);
    const value: StoredToken = { userId: user.id, kind, email: user.email, tenantUid: tenant.uid };
    const batch = this.#o.redis.multi();
    if (previous) batch.del(this.#tokenKey(tenant.name, previous));
    batch.set(this.#tokenKey(tenant.name, hash), JSON.stringify(value), 'PX', ttlMs);
    batch.set(userKey, hash, 'PX', ttlMs);
    const results = await batch.exec();
    const failed = results?.find(([error]) => error);
    if (!results || failed) throw new Error('could not store the password reset token');
    return token;
  }

  #tokenKey(tenant: string, hash: string): string {
    return `${this.#prefix}token:${tenant}:${hash}`;
  }

  #userKey(tenant: string, userId: string): string {
    return `${this.#prefix}user:${tenant}:${userId}`;
  }
}
