// Self-registration with a proven address. A registration is only a pending
// record in Redis (the address, names and argon2id hash, never the password)
// until the one-time token mailed to that address is presented with the same
// password; only then is the user created, with its address marked verified.
// So nobody can hold an address they do not control: no row exists that a
// later SSO sign-in could link to.
//
// A token is `rg_` and 32 random bytes; Redis holds only its SHA-256, under a
// key that also names the tenant. Using it deletes it (GETDEL), so it works
// once. An address may have several registrations pending; the first verified
// one makes the account and the others then find it taken.
//
// A register request answers the same, and takes at least `minResponseMs`,
// whether or not the address has an account: the existing account's holder
// is told by mail that someone tried, and nothing changes for them.
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { AuditLog } from '../audit/audit-log.js';
import { ProblemError, problems } from '../http/problem.js';
import { withResponseFloor } from '../http/response-floor.js';
import type { Mailer } from '../mail/mailer.js';
import type { TenantDatabases } from '../tenancy/tenant-databases.js';
import type { TenantDirectory, TenantEntry } from '../tenancy/tenant-directory.js';
import { createUser, userView, type UserView } from '../users/users.js';
import type { RequestContext } from './password-resets.js';
import { passwordHashing } from './password-hashing.js';
import { passwordProblems } from './passwords.js';

export interface RegistrationsOptions {
  redis: Redis;
  directory: TenantDirectory;
  databases: TenantDatabases;
  mailer: Mailer;
  log: { warn(obj: object, msg: string): void };
  /** Where the API is reached, for the instructions in the mail. */
  publicBaseUrl: string;
  /** Lifetime of a pending registration; default 24 hours. */
  ttlMs?: number;
  /** The shortest time a register request takes, whatever happens inside; default 300 ms. */
  minResponseMs?: number;
  /** Redis key prefix; default `register:`. */
  prefix?: string;
}

export interface Registration {
  email: string;
  password: string;
  first_name?: string | undefined;
  last_name?: string | undefined;
}

interface PendingRegistration {
  /** The uid of the Tenant it was made under; a Tenant created again under the name refuses it. */
  tenant_uid: string;
  email: string;
  password_hash: string;
  first_name: string | null;
  last_name: string | null;
}

const tokenPattern = /^rg_[A-Za-z0-9_-]{43}$/;
const invalidToken = () =>
  problems.validation([{ field: 'token', message: 'is not valid: it is wrong, used or expired' }]);

function hashOf(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export class Registrations {
  readonly #o: RegistrationsOptions;
  readonly #ttlMs: number;
  readonly #minResponseMs: number;
  readonly #prefix: string;

  constructor(options: RegistrationsOptions) {
    this.#o = options;
    this.#ttlMs = options.ttlMs ?? 24 * 3_600_000;
    this.#minResponseMs = options.minResponseMs ?? 300;
    this.#prefix = options.prefix ?? 'register:';
  }

  /**
   * Checks the request (the tenant allows self-registration, the password is
   * strong enough), then mails the address either a verification token or,
   * when it has an account, a notice. Resolves the same way, no sooner than
   * the floor, in both cases.
   */
  async register(tenant: string, input: Registration, context: RequestContext): Promise<void> {
    const entry = this.#openTo(tenant);
    const weak = passwordProblems(input.password, { email: input.email, name: input.first_name });
    if (weak.length > 0)
      throw problems.validation(weak.map((p) => ({ field: 'password', message: p.message })));
    await withResponseFloor('self-registration', tenant, this.#minResponseMs, this.#o.log, async () => {
      // Hashed in both cases, so the work does not depend on whether the account exists.
      const passwordHash = await passwordHashing.hash(tenant, input.password);
      await this.#mailByAccount(entry, { ...input, passwordHash }, context);
    });
  }

  /**
   * Creates the member from a pending registration: the mailed token and the
   * password chosen at registration (so a mailbox holder who did not register
   * cannot confirm a stranger's password onto their own address). An address
   * that got an account meanwhile is left alone (409).
   */
  async verify(tenant: string, token: string, password: string, context: RequestContext): Promise<UserView> {
    const entry = this.#openTo(tenant);
    if (!tokenPattern.test(token)) throw invalidToken();
    const key = this.#tokenKey(tenant, hashOf(token));
    const stored = await this.#o.redis.get(key);
    if (!stored) throw invalidToken();
    const pending = JSON.parse(stored) as PendingRegistration;
    if (pending.tenant_uid !== entry.uid) throw invalidToken();
    if (!(await passwordHashing.verify(tenant, pending.password_hash, password)).ok)
      throw problems.validation([
        { field: 'password', message: 'is not the password chosen when registering' },
      ]);
    // Used up here: of two concurrent verifications, only one gets the value.
    if ((await this.#o.redis.getdel(key)) !== stored) throw invalidToken();

    const db = this.#o.databases.for(tenant, entry.credentials);
    // Self-registration creates members only; the scope acts as an admin of the tenant for that one call.
    const scope = {
      auth: {
        kind: 'tenant' as const,
        tenant,
        tenantUid: entry.uid,
        userId: 'self-registration',
        role: 'admin' as const,
        jti: '',
      },
      entry,
      db,
    };
    try {
      const user = await db.sequelize.transaction(async (transaction) => {
        const created = await createUser(
          scope,
          {
            email: pending.email,
            role: 'member',
            ...(pending.first_name === null ? {} : { first_name: pending.first_name }),
            ...(pending.last_name === null ? {} : { last_name: pending.last_name }),
          },
          { transaction, passwordHash: pending.password_hash, emailVerified: true },
        );
        await AuditLog.append(
          db.sequelize,
          {
            actor: null,
            action: 'create',
            resourceType: 'user',
            resourceId: created.id,
            after: { ...userView(created), provisioned_by: 'self-registration' },
            ip: context.ip,
            requestId: context.requestId,
          },
          { transaction },
        );
        return created;
      });
      return userView(user);
    } catch (error) {
      // createUser turns the unique address into a 409.
      if (error instanceof ProblemError && error.status === 409)
        throw problems.conflict(
          `${pending.email} got an account before this registration was verified; sign in or reset its password`,
        );
      throw error;
    }
  }

  /** The tenant, if it is served and allows self-registration. */
  #openTo(tenant: string): TenantEntry & { credentials: NonNullable<TenantEntry['credentials']> } {
    const entry = this.#o.directory.servable(tenant);
    if (!entry.tenant.spec.selfRegistration)
      throw problems.forbidden(`tenant ${tenant} does not allow self-registration`);
    return entry;
  }

  async #mailByAccount(
    entry: TenantEntry & { credentials: NonNullable<TenantEntry['credentials']> },
    input: Registration & { passwordHash: string },
    context: RequestContext,
  ): Promise<void> {
    const tenant = entry.name;
    const db = this.#o.databases.for(tenant, entry.credentials);
    const existing = await db.models.User.findOne({ where: { email: input.email }, attributes: ['id'] });
    if (existing) {
      await AuditLog.append(db.sequelize, {
        actor: null,
        action: 'register_existing',
        resourceType: 'user',
        resourceId: existing.id,
        ip: context.ip,
        requestId: context.requestId,
      });
      await this.#o.mailer.send({
        kind: 'registration-existing',
        to: input.email,
        subject: `Someone tried to register ${input.email} at ${tenant}`,
        text: [
          `Someone tried to register ${input.email} at ${tenant} on Tenantry.`,
          'That address already has an account, so nothing was created and nothing changed.',
          '',
          'If it was you and you forgot your password, ask for a reset:',
          `POST ${this.#o.publicBaseUrl}/api/auth/password/reset`,
          `{"tenant": "${tenant}", "email": "${input.email}"}`,
          '',
          'If it was not you, ignore this message.',
        ].join('\n'),
      });
      return;
    }
    const token = `rg_${randomBytes(32).toString('base64url')}`;
    const pending: PendingRegistration = {
      tenant_uid: entry.uid,
      email: input.email,
      password_hash: input.passwordHash,
      first_name: input.first_name ?? null,
      last_name: input.last_name ?? null,
    };
    await this.#o.redis.set(
      this.#tokenKey(tenant, hashOf(token)),
      JSON.stringify(pending),
      'PX',
      this.#ttlMs,
    );
    const hours = Math.round(this.#ttlMs / 3_600_000);
    await this.#o.mailer.send({
      kind: 'registration',
      to: input.email,
      subject: `Confirm your Tenantry account at ${tenant}`,
      text: [
        `Someone registered ${input.email} at ${tenant} on Tenantry.`,
        `If it was you, confirm within ${hours} hours with this one-time token and the password you chose:`,
        '',
        `  ${token}`,
        '',
        `POST ${this.#o.publicBaseUrl}/api/auth/register/verify`,
        `{"tenant": "${tenant}", "token": "<the token>", "password": "<your password>"}`,
        '',
        'If it was not you, ignore this message: no account is created.',
      ].join('\n'),
    });
  }

  #tokenKey(tenant: string, hash: string): string {
    return `${this.#prefix}token:${tenant}:${hash}`;
  }
}
