// The owner a signup asked for, kept in Redis until the tenant is Ready and
// the owner user exists: the email, names and argon2id hash (never the
// password), and the signup id that the Tenant carries in its annotation, so
// the record is only ever used for the Tenant that signup created.
import type { Redis } from 'ioredis';

export interface PendingOwner {
  signup_id: string;
  email: string;
  password_hash: string;
  first_name: string | null;
  last_name: string | null;
}

// Deletes the key only while it still holds this signup's record.
const deleteIfSame = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

export class PendingOwners {
  constructor(
    private readonly redis: Redis,
    private readonly ttlMs: number,
    private readonly prefix = 'signup:owner:',
  ) {}

  /** Stores the record unless one is already pending for the tenant; false then. */
  async claim(tenant: string, owner: PendingOwner): Promise<boolean> {
    const ok = await this.redis.set(this.#key(tenant), JSON.stringify(owner), 'PX', this.ttlMs, 'NX');
    return ok === 'OK';
  }

  async get(tenant: string): Promise<PendingOwner | undefined> {
    const value = await this.redis.get(this.#key(tenant));
    return value ? (JSON.parse(value) as PendingOwner) : undefined;
  }

  async exists(tenant: string): Promise<boolean> {
    return (await this.redis.exists(this.#key(tenant))) === 1;
  }

  /** Removes the record if it is still `owner`'s (a later signup's record is left alone). */
  async release(tenant: string, owner: PendingOwner): Promise<void> {
    await this.redis.eval(deleteIfSame, 1, this.#key(tenant), JSON.stringify(owner));
  }

  #key(tenant: string): string {
    return `${this.prefix}${tenant}`;
  }
}
