// Turns a verified SSO identity into a Tenantry user of the tenant: finds the
// linked account, links an existing account by its (verified-domain) email, or
// creates one just in time; takes over an existing account whose address was
// never proven (its password is cleared) rather than link it as it is; applies
// the IdP group-to-role mapping; and records every change and the sign-in in
// the tenant's audit log, in one transaction.
import { Op, UniqueConstraintError, type Transaction } from 'sequelize';
import type { Role } from '../../../lib/tenant/index.js';
import { AuditLog, type AuditEntry } from '../audit/audit-log.js';
import type { UserModel } from '../tenancy/models.js';
import type { TenantDb } from '../tenancy/tenant-databases.js';
import { emailVerifiedAt, setEmailVerified } from '../users/email-verification.js';
import { userView } from '../users/users.js';
import { SsoError, type SsoIdentity } from './identity.js';

export interface SsoSignInOptions {
  /**
   * True when the tenant maps IdP groups to roles for this provider. Then the
   * IdP decides the role at every sign-in; otherwise roles are managed in
   * Tenantry and only a new user takes the provider's default role.
   */
  rolesFromIdp: boolean;
  ip: string | null;
  requestId: string | null;
}

export interface SsoSignIn {
  user: UserModel;
  created: boolean;
  /**
   * The account's address had never been proven, so this sign-in took it
   * over: its password (if any) is gone. The caller must end its sessions.
   */
  tookOver: boolean;
}

/** `saml:<NameID>` or `oidc:<sub>`: the users.external_id of an account linked to the tenant's IdP. */
export function externalIdOf(identity: SsoIdentity): string {
  // An email-format NameID is the address, whose case IdPs do not keep stable.
  const subject = identity.subject.toLowerCase() === identity.email ? identity.email : identity.subject;
  return `${identity.provider}:${subject}`;
}

/**
 * The user `identity` signs in as, created or updated as needed. Throws
 * SsoError for a deactivated account, or when the email's account is already
 * linked to another subject at the same kind of IdP (an IdP that reassigned
 * an address must not hand over the old holder's account).
 */
export async function signInWithSso(
  db: TenantDb,
  identity: SsoIdentity,
  options: SsoSignInOptions,
): Promise<SsoSignIn> {
  try {
    return await attempt(db, identity, options);
  } catch (error) {
    // Two first sign-ins of one person racing: the loser finds the winner's row on retry.
    if (error instanceof UniqueConstraintError) return await attempt(db, identity, options);
    throw error;
  }
}

async function attempt(db: TenantDb, identity: SsoIdentity, options: SsoSignInOptions): Promise<SsoSignIn> {
  const externalId = externalIdOf(identity);
  return db.sequelize.transaction(async (transaction) => {
    const { User } = db.models;
    const entries: Omit<AuditEntry, 'ip' | 'requestId'>[] = [];
    let user = await User.findOne({ where: { external_id: externalId }, transaction, lock: true });
    user ??= await User.findOne({ where: { email: identity.email }, transaction, lock: true });
    let created = false;
    let tookOver = false;

    if (!user) {
      user = await User.create(
        {
          email: identity.email,
          first_name: identity.firstName ?? null,
          last_name: identity.lastName ?? null,
          role: identity.role,
          department: null,
          external_id: externalId,
          password_hash: null,
        },
        { transaction },
      );
      // The IdP vouches for the address (identity.ts: OIDC's email_verified, SAML's signed assertion).
      await setEmailVerified(db, user.id, true, transaction);
      created = true;
      entries.push({
        actor: null,
        action: 'create',
        resourceType: 'user',
        resourceId: user.id,
        after: { ...userView(user), provisioned_by: `sso:${identity.provider}` },
      });
    } else {
      if (!user.is_active) throw new SsoError('account_disabled', `user ${user.id} is deactivated`);
      const linked = user.external_id;
      if (linked !== externalId && linked?.startsWith(`${identity.provider}:`)) {
        throw new SsoError(
          'account_conflict',
          `user ${user.id} is linked to another ${identity.provider} subject`,
        );
      }
      const before = userView(user);
      const changes: { external_id?: string; role?: Role; password_hash?: null } = {};
      // An account made by an admin or by password sign-up is linked on its first SSO sign-in.
      if (linked === null) changes.external_id = externalId;
      // Nobody ever proved this account's address: whoever set its password may not be the person
      // the IdP now vouches for (an address pre-registered by someone else, an admin-chosen password).
      // The IdP's word wins: the password goes, and the caller ends the account's sessions.
      if ((await emailVerifiedAt(db, user.id, transaction)) === null) {
        if (user.password_hash !== null) {
          changes.password_hash = null;
          tookOver = true;
        }
        // Matched by subject under another address, the IdP vouches for its own address, not this one.
        if (user.email.toLowerCase() === identity.email) {
          await setEmailVerified(db, user.id, true, transaction);
          tookOver = true;
        }
      }
      if (options.rolesFromIdp && user.role !== identity.role) {
        if (await roleChangeAllowed(db, user, identity.role, transaction)) changes.role = identity.role;
      }
      if (Object.keys(changes).length > 0 || tookOver) {
        await user.update(changes, { transaction });
        entries.push({
          actor: null,
          action: 'update',
          resourceType: 'user',
          resourceId: user.id,
          before,
          after: {
            ...userView(user),
            updated_by: `sso:${identity.provider}`,
            ...(tookOver ? { unverified_account_taken_over: true } : {}),
          },
        });
      }
    }

    entries.push({
      actor: user.id,
      action: 'login',
      resourceType: 'session',
      resourceId: user.id,
      after: { method: `sso:${identity.provider}` },
    });
    // Appended last: the audit chain lock is held until the transaction ends.
    for (const entry of entries) {
      await AuditLog.append(
        db.sequelize,
        { ...entry, ip: options.ip, requestId: options.requestId },
        { transaction },
      );
    }
    return { user, created, tookOver };
  });
}

/**
 * False when moving `user` to `role` would leave the tenant without an active
 * owner: the mapping then leaves the role alone rather than lock everyone out.
 */
async function roleChangeAllowed(
  db: TenantDb,
  user: UserModel,
  role: Role,
  transaction: Transaction,
): Promise<boolean> {
  if (user.role !== 'owner' || role === 'owner') return true;
  const others = await db.models.User.count({
    where: { role: 'owner', is_active: true, id: { [Op.ne]: user.id } },
    transaction,
  });
  return others > 0;
}

/** Records a refused SSO sign-in; the code is the stable reason, the detail stays in the logs. */
export async function auditSsoFailure(
  db: TenantDb,
  provider: 'saml' | 'oidc',
  code: string,
  context: { ip: string | null; requestId: string | null },
): Promise<void> {
  await AuditLog.append(db.sequelize, {
    actor: null,
    action: 'login_failed',
    resourceType: 'session',
    resourceId: null,
    after: { method: `sso:${provider}`, error: code },
    ...context,
  });
}
