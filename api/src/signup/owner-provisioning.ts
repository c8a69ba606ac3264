// Gives every Ready tenant its first owner, once. A tenant from self-service
// signup gets the owner that signed up, with the password hash kept pending
// in Redis; any other tenant (kubectl, the platform admin) gets a user for
// spec.owner.email without a password, and a mail with a one-time token to set
// one. The directory has no change events for tenants, so this scans its
// in-memory map every second; the database is only asked about tenants not
// yet marked with the owner-provisioned annotation.
//
// Several replicas may race: the INSERT ... ON CONFLICT DO NOTHING on the
// email's unique index lets exactly one of them create the user, and only that
// one sends the mail, inside the same transaction, so a failed mail leaves no
// owner without a way in and is retried.
import type { Logger } from '../../../lib/logger.js';
import { AuditLog } from '../audit/audit-log.js';
import type { PasswordResets } from '../auth/password-resets.js';
import type { TenantDatabases, TenantDb } from '../tenancy/tenant-databases.js';
import type { TenantDirectory, TenantEntry } from '../tenancy/tenant-directory.js';
import { UserStore } from '../users/user-store.js';
import {
  ownerProvisionedAnnotation,
  signupAnnotation,
  type TenantResources,
} from '../tenancy/tenant-resources.js';
import type { PendingOwner, PendingOwners } from './pending-owners.js';

export interface OwnerProvisionerOptions {
  directory: TenantDirectory;
  databases: TenantDatabases;
  resources: TenantResources;
  pendingOwners: PendingOwners;
  passwordResets: PasswordResets;
  log: Logger;
  /** Scan period; default 1 s. */
  intervalMs?: number;
  /** Which tenants this process looks after; default all. */
  select?: (tenant: string) => boolean;
}

const retryDelaysMs = [2_000, 5_000, 15_000, 60_000];

export class OwnerProvisioner {
  readonly #o: OwnerProvisionerOptions;
  readonly #inflight = new Map<string, Promise<boolean>>();
  /** Tenant uids handled by this process, so a failed annotation patch does not mean a query a second. */
  readonly #done = new Set<string>();
  readonly #failures = new Map<string, { count: number; retryAt: number }>();
  #timer: NodeJS.Timeout | undefined;
  #scanning: Promise<void> | undefined;
  #stopped = false;

  constructor(options: OwnerProvisionerOptions) {
    this.#o = options;
  }

  start(): void {
    this.#stopped = false;
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#scanning;
    await Promise.allSettled(this.#inflight.values());
  }

  /**
   * Makes sure the Ready tenant has an owner; true when it has one now, false
   * when the tenant is not Ready (or its owner's email belongs to a non-owner).
   * Concurrent calls for one tenant share one attempt.
   */
  ensureOwner(tenant: string): Promise<boolean> {
    let attempt = this.#inflight.get(tenant);
    if (!attempt) {
      attempt = this.#ensure(tenant).finally(() => this.#inflight.delete(tenant));
      this.#inflight.set(tenant, attempt);
    }
    return attempt;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#scanning = this.#scan().finally(() => {
        this.#scanning = undefined;
        this.#schedule();
      });
    }, this.#o.intervalMs ?? 1_000);
  }

  async #scan(): Promise<void> {
    for (const entry of this.#o.directory.list()) {
      if (this.#stopped) return;
      const uid = entry.tenant.metadata.uid ?? entry.name;
      if (!this.#servable(entry) || this.#done.has(uid)) continue;
      if (entry.tenant.metadata.annotations?.[ownerProvisionedAnnotation] === 'true') continue;
      if (this.#o.select && !this.#o.select(entry.name)) continue;
      const failure = this.#failures.get(uid);
      if (failure && failure.retryAt > Date.now()) continue;
      try {
        await this.ensureOwner(entry.name);
        this.#done.add(uid);
        this.#failures.delete(uid);
      } catch (error) {
        const count = (failure?.count ?? 0) + 1;
        const delay = retryDelaysMs[Math.min(count, retryDelaysMs.length) - 1]!;
        this.#failures.set(uid, { count, retryAt: Date.now() + delay });
        this.#o.log.warn(
          {
            tenant: entry.name,
            err: error instanceof Error ? error.message : String(error),
            retryInMs: delay,
          },
          'could not provision the tenant owner; will retry',
        );
      }
    }
  }

  #servable(entry: TenantEntry | undefined): entry is TenantEntry & { credentials: object } {
    return Boolean(
      entry?.ready && entry.credentials && !entry.suspended && !entry.tenant.metadata.deletionTimestamp,
    );
  }

  async #ensure(tenant: string): Promise<boolean> {
    const entry = this.#o.directory.get(tenant);
    if (!this.#servable(entry) || !entry.credentials) return false;
    if (entry.tenant.metadata.annotations?.[ownerProvisionedAnnotation] === 'true') return true;
    const db = this.#o.databases.for(tenant, entry.credentials);
    let hasOwner = (await db.models.User.count({ where: { role: 'owner' } })) > 0;
    if (!hasOwner) hasOwner = await this.#createOwner(entry, db);
    if (hasOwner) await this.#markProvisioned(tenant);
    return hasOwner;
  }

  async #createOwner(entry: TenantEntry, db: TenantDb): Promise<boolean> {
    const tenant = entry.name;
    const email = entry.tenant.spec.owner.email.trim().toLowerCase();
    const pending = await this.#o.pendingOwners.get(tenant);
    const signupId = entry.tenant.metadata.annotations?.[signupAnnotation];
    const fromSignup: PendingOwner | undefined =
      pending && signupId !== undefined && pending.signup_id === signupId && pending.email === email
        ? pending
        : undefined;

    const created = await db.sequelize.transaction(async (transaction) => {
      const row = await new UserStore(db).insertOwnerIfAbsent(
        {
          email,
          passwordHash: fromSignup?.password_hash ?? null,
          firstName: fromSignup?.first_name ?? null,
          lastName: fromSignup?.last_name ?? null,
        },
        transaction,
      );
      if (!row) return undefined;
      await AuditLog.append(
        db.sequelize,
        {
          actor: null,
          action: 'create',
          resourceType: 'user',
          resourceId: row.id,
          after: { email, role: 'owner', source: fromSignup ? 'signup' : 'owner_bootstrap' },
        },
        { transaction },
      );
      // Inside the transaction: if the mail cannot be sent, no password-less owner is left behind.
      if (!fromSignup) await this.#o.passwordResets.inviteOwner(entry, row);
      return row;
    });
    if (fromSignup) await this.#o.pendingOwners.release(tenant, fromSignup);
    if (created) {
      this.#o.log.info(
        { tenant, source: fromSignup ? 'signup' : 'owner_bootstrap' },
        'created the tenant owner',
      );
      return true;
    }
    // Another replica won the race, or the email belongs to a user who is not an owner.
    const owners = await db.models.User.count({ where: { role: 'owner' } });
    if (owners === 0)
      this.#o.log.warn(
        { tenant },
        'spec.owner.email belongs to a user who is not an owner; not promoting it',
      );
    return owners > 0;
  }

  async #markProvisioned(tenant: string): Promise<void> {
    try {
      await this.#o.resources.mergePatch(tenant, {
        metadata: { annotations: { [ownerProvisionedAnnotation]: 'true' } },
      });
    } catch (error) {
      this.#o.log.warn(
        { tenant, err: error instanceof Error ? error.message : String(error) },
        'could not annotate the Tenant as having its owner',
      );
    }
  }
}
