// The rows of app.integration_providers. The rules (a new configuration needs
// a secret, when a secret counts as rotated) and the verification cache are in
// provider-configs.ts. Reads go through the IntegrationProvider model.
import { QueryTypes, type Sequelize, type Transaction } from 'sequelize';
import type { z } from 'zod';
import type { Provider } from '../../../lib/integrations/catalog.js';
import type { TenantModels } from '../tenancy/models.js';
import type { TenantDatabases, TenantDb } from '../tenancy/tenant-databases.js';
import type { TenantCredentials } from '../tenancy/tenant-directory.js';
import type { rateLimitSchema, retryPolicySchema } from './provider-configs.js';

export interface ProviderRow {
  provider: Provider;
  organization_id: string;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: Date | null;
  secret_updated_at: Date;
  api_base_url: string | null;
  credentials: Record<string, string> | null;
  credentials_updated_at: Date | null;
  retry_policy: z.infer<typeof retryPolicySchema>;
  rate_limit: z.infer<typeof rateLimitSchema>;
  enabled: boolean;
  created_at: Date;
  updated_at: Date;
}

/** A whole configuration to store; `rotated` keeps the current secret as the previous one. */
export interface ProviderUpsert {
  provider: Provider;
  organizationId: string;
  secret: string;
  /** Set when the request names it; otherwise the stored value stays. */
  apiBaseUrl?: string | null;
  /** Set when the request names it (null removes them); otherwise the stored value stays. */
  credentials?: Record<string, string> | null;
  retryPolicy: object;
  rateLimit: object;
  enabled: boolean;
  rotated: boolean;
  overlapSeconds: number;
}

export class ProviderConfigStore {
  readonly #sequelize: Sequelize;
  readonly #model: TenantModels['IntegrationProvider'];

  constructor(db: TenantDb) {
    this.#sequelize = db.sequelize;
    this.#model = db.models.IntegrationProvider;
  }

  async list(): Promise<ProviderRow[]> {
    const rows = await this.#model.findAll({ order: [['provider', 'ASC']] });
    return rows.map((row) => row.get({ plain: true }));
  }

  /** The configuration; inside a transaction, locked (FOR UPDATE) until it ends. */
  async find(provider: Provider, transaction?: Transaction): Promise<ProviderRow | undefined> {
    const row = await this.#model.findByPk(provider, transaction ? { transaction, lock: true } : {});
    return row?.get({ plain: true });
  }

  /**
   * Creates or replaces the configuration in one statement (INSERT ... ON CONFLICT): the secret swap
   * and the timestamps read the row they write, on the database's clock.
   */
  async upsert(config: ProviderUpsert, transaction: Transaction): Promise<ProviderRow> {
    const [row] = await this.#select<ProviderRow>(
      `INSERT INTO app.integration_providers AS p
         (provider, organization_id, secret, api_base_url, credentials, credentials_updated_at,
          retry_policy, rate_limit, enabled)
       VALUES ($1, $2, $3, $4, $5::jsonb, CASE WHEN $5::jsonb IS NULL THEN NULL ELSE now() END,
               $6::jsonb, $7::jsonb, $8)
       ON CONFLICT (provider) DO UPDATE SET
         organization_id = EXCLUDED.organization_id,
         secret = EXCLUDED.secret,
         previous_secret = CASE WHEN $9 THEN p.secret ELSE p.previous_secret END,
         previous_secret_expires_at = CASE WHEN $9 THEN now() + make_interval(secs => $10)
                                           ELSE p.previous_secret_expires_at END,
         secret_updated_at = CASE WHEN $9 THEN now() ELSE p.secret_updated_at END,
         api_base_url = CASE WHEN $11 THEN EXCLUDED.api_base_url ELSE p.api_base_url END,
         credentials = CASE WHEN $12 THEN EXCLUDED.credentials ELSE p.credentials END,
         credentials_updated_at = CASE WHEN $12 THEN now() ELSE p.credentials_updated_at END,
         retry_policy = EXCLUDED.retry_policy,
         rate_limit = EXCLUDED.rate_limit,
         enabled = EXCLUDED.enabled,
         updated_at = now()
       RETURNING *`,
      [
        config.provider,
        config.organizationId,
        config.secret,
        config.apiBaseUrl ?? null,
        config.credentials ? JSON.stringify(config.credentials) : null,
        JSON.stringify(config.retryPolicy),
        JSON.stringify(config.rateLimit),
        config.enabled,
        config.rotated,
        config.overlapSeconds,
        config.apiBaseUrl !== undefined,
        config.credentials !== undefined,
      ],
      transaction,
    );
    return row!;
  }

  /** What verifying a webhook needs: the previous secret only while its overlap lasts. */
  async verification(
    provider: Provider,
  ): Promise<
    { organization_id: string; enabled: boolean; secret: string; previous_secret: string | null } | undefined
  > {
    const [row] = await this.#select<{
      organization_id: string;
      enabled: boolean;
      secret: string;
      previous_secret: string | null;
    }>(
      `SELECT organization_id, enabled, secret,
              CASE WHEN previous_secret_expires_at > now() THEN previous_secret END AS previous_secret
         FROM app.integration_providers WHERE provider = $1`,
      [provider],
    );
    return row;
  }

  #select<T extends object>(sql: string, bind: unknown[], transaction?: Transaction): Promise<T[]> {
    return this.#sequelize.query<T>(sql, {
      bind,
      type: QueryTypes.SELECT,
      ...(transaction ? { transaction } : {}),
    });
  }
}

/**
 * Every enabled provider's organization id in one tenant's database, for sweeps over all tenants:
 * TenantDatabases.readOnce reads it without opening a pool in the LRU, so it is SQL.
 */
export function enabledOrganizations(
  databases: TenantDatabases,
  tenant: string,
  credentials: TenantCredentials,
): Promise<{ provider: Provider; organization_id: string }[]> {
  return databases.readOnce<{ provider: Provider; organization_id: string }>(
    tenant,
    credentials,
    'SELECT provider, organization_id FROM app.integration_providers WHERE enabled',
  );
}
