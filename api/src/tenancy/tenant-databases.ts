// One connection pool per tenant, in a bounded LRU. The connection budget is
// maxTenants × poolMax per API replica; config validation checks that
// replicas × that budget fits the server's max_connections. A pool is closed
// when it falls out of the LRU or when the tenant's credentials change.
// Sweeps over every tenant (readOnce) never go through the LRU: they would
// evict the pools that serve traffic and open pools beyond the budget.
import { LRUCache } from 'lru-cache';
import pg from 'pg';
import { QueryTypes, Sequelize } from 'sequelize';
import type { Logger } from '../../../lib/logger.js';
import { defineModels, type TenantModels } from './models.js';
import type { TenantCredentials, TenantDirectory } from './tenant-directory.js';

export interface TenantDb {
  tenant: string;
  sequelize: Sequelize;
  models: TenantModels;
}

export interface PoolOptions {
  maxTenants: number;
  poolMax: number;
  idleMs: number;
  acquireTimeoutMs: number;
  statementTimeoutMs: number;
}

export class TenantDatabases {
  private readonly cache: LRUCache<string, TenantDb & { revision: string }>;

  constructor(
    directory: TenantDirectory,
    private readonly options: PoolOptions,
    private readonly log: Logger,
  ) {
    this.cache = new LRUCache({
      max: options.maxTenants,
      dispose: (db, tenant) => {
        db.sequelize
          .close()
          .catch((error: unknown) => this.log.warn({ tenant, err: String(error) }, 'closing a pool failed'));
      },
    });
    directory.onCredentialsChange((tenant) => this.cache.delete(tenant));
  }

  get size(): number {
    return this.cache.size;
  }

  /** The tenant's database handle, opening its pool on first use. */
  for(tenant: string, credentials: TenantCredentials): TenantDb {
    const cached = this.cache.get(tenant);
    if (cached && cached.revision === credentials.revision) return cached;
    const sequelize = new Sequelize(credentials.uri, {
      dialect: 'postgres',
      logging: false,
      pool: {
        max: this.options.poolMax,
        min: 0,
        idle: this.options.idleMs,
        acquire: this.options.acquireTimeoutMs,
        evict: this.options.idleMs,
      },
      dialectOptions: {
        application_name: 'tenantry-api',
        statement_timeout: this.options.statementTimeoutMs,
        connectionTimeoutMillis: Math.min(this.options.acquireTimeoutMs, 5000),
      },
    });
    const db = { tenant, sequelize, models: defineModels(sequelize), revision: credentials.revision };
    this.cache.set(tenant, db);
    return db;
  }

  /**
   * One read for a tenant, leaving the LRU as it was: through the tenant's open pool if it has one
   * (without making it more recently used), else on a connection of its own, closed right after. A
   * caller sweeping every tenant holds one connection at a time, out of `DB_RESERVED_CONNECTIONS`.
   */
  async readOnce<T extends object>(
    tenant: string,
    credentials: TenantCredentials,
    sql: string,
  ): Promise<T[]> {
    const cached = this.cache.peek(tenant);
    if (cached && cached.revision === credentials.revision)
      return cached.sequelize.query<T>(sql, { type: QueryTypes.SELECT });
    const client = new pg.Client({
      connectionString: credentials.uri,
      application_name: 'tenantry-api',
      statement_timeout: this.options.statementTimeoutMs,
      connectionTimeoutMillis: Math.min(this.options.acquireTimeoutMs, 5000),
    });
    // A connection that fails later rejects the pending query; the event must not go unhandled.
    client.on('error', () => undefined);
    try {
      await client.connect();
      return (await client.query<T>(sql)).rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async closeAll(): Promise<void> {
    const all = [...this.cache.values()];
    this.cache.clear();
    await Promise.allSettled(all.map((db) => db.sequelize.close()));
  }
}

/** Errors that mean "the tenant database cannot be reached right now", answered with 503. */
export function isDatabaseUnavailable(error: unknown): boolean {
  const name = (error as { name?: string } | undefined)?.name ?? '';
  return [
    'SequelizeConnectionError',
    'SequelizeConnectionRefusedError',
    'SequelizeConnectionTimedOutError',
    'SequelizeConnectionAcquireTimeoutError',
    'SequelizeHostNotFoundError',
    'SequelizeHostNotReachableError',
    'SequelizeAccessDeniedError',
  ].includes(name);
}
