// Short-lived single-use records (SSO state, replay caches) shared by every
// API replica.
import type { CacheItem, CacheProvider } from '@node-saml/node-saml';
import type { Redis } from 'ioredis';

export interface ExpiringStore {
  /** Stores `value` under `key` for `ttlMs` unless the key exists; true when stored. */
  putIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** Returns and deletes the value in one step, so only one caller ever gets it. */
  take(key: string): Promise<string | null>;
  has(key: string): Promise<boolean>;
}

export class RedisExpiringStore implements ExpiringStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async putIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    const reply = await this.redis.set(this.prefix + key, value, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX');
    return reply === 'OK';
  }

  take(key: string): Promise<string | null> {
    return this.redis.getdel(this.prefix + key);
  }

  async has(key: string): Promise<boolean> {
    return (await this.redis.exists(this.prefix + key)) === 1;
  }
}

/**
 * node-saml's CacheProvider on an ExpiringStore, so the AuthnRequest IDs that
 * InResponseTo must match are seen by every replica. `namespace` scopes the
 * keys: the SAML service gives each tenant its own, so an ID issued for one
 * tenant is unknown at another.
 */
export class ExpiringStoreCacheProvider implements CacheProvider {
  constructor(
    private readonly store: ExpiringStore,
    private readonly namespace: string,
    private readonly ttlMs: number,
  ) {}

  async saveAsync(key: string, value: string): Promise<CacheItem | null> {
    const createdAt = Date.now();
    return (await this.store.putIfAbsent(this.namespace + key, value, this.ttlMs))
      ? { value, createdAt }
      : null;
  }

  // The store's TTL is what expires an ID. node-saml also compares the value
  // with its own expiry period, so it is given the lookup time and defers to the TTL.
  async getAsync(key: string): Promise<string | null> {
    return (await this.store.has(this.namespace + key)) ? new Date().toISOString() : null;
  }

  async removeAsync(key: string | null): Promise<string | null> {
    return key === null ? null : await this.store.take(this.namespace + key);
  }
}
