// Per-tenant provider configuration (app.integration_providers): which
// organization the provider knows the tenant as, the signing secret (write-only,
// rotated with an overlap during which both secrets verify), the provider's API
// base URL and credentials (write-only), retry policy, rate limit and enabled.
//
// Verification reads the secrets through a short-lived cache so the webhook
// path costs no extra query; a change made through this replica drops its
// entry at once, other replicas see it within `cacheTtlMs`. The statements are
// in provider-store.ts.
import { LRUCache } from 'lru-cache';
import type { Transaction } from 'sequelize';
import { z } from 'zod';
import { isProvider, providers, type Provider } from '../../../lib/integrations/catalog.js';
import { isWebhookSecret } from '../../../lib/webhooks/standard-webhooks.js';
import { problems } from '../http/problem.js';
import { encode, named, timestamp } from '../http/responses.js';
import type { TenantDb } from '../tenancy/tenant-databases.js';
import { ProviderConfigStore, type ProviderRow } from './provider-store.js';

export const retryPolicySchema = z.strictObject({
  max_retries: z.number().int().min(0).max(20).optional(),
  backoff_multiplier: z.number().min(1).max(10).optional(),
  max_backoff_seconds: z.number().int().min(1).max(86_400).optional(),
});

export const rateLimitSchema = z.strictObject({
  requests_per_minute: z.number().int().min(1).max(100_000).optional(),
  burst_limit: z.number().int().min(1).max(10_000).optional(),
});

export const putProviderSchema = z.strictObject({
  organization_id: z.string().trim().min(1).max(200),
  secret: z
    .string()
    .refine(isWebhookSecret, 'must be whsec_ followed by at least 16 bytes of base64')
    .optional(),
  api_base_url: z
    .url({ protocol: /^https?$/ })
    .max(2000)
    .nullable()
    .optional(),
  credentials: z.record(z.string(), z.string().max(4000)).nullable().optional(),
  retry_policy: retryPolicySchema.optional(),
  rate_limit: rateLimitSchema.optional(),
  enabled: z.boolean().optional(),
  /** How long the replaced secret keeps verifying after a rotation. */
  secret_overlap_seconds: z
    .number()
    .int()
    .min(0)
    .max(7 * 86_400)
    .optional(),
});
export type PutProvider = z.infer<typeof putProviderSchema>;

const defaultOverlapSeconds = 86_400;

/** What the API shows of a configuration: never a secret or credential. */
export const providerConfigSchema = named(
  'ProviderConfig',
  z.object({
    provider: z.enum(providers),
    organization_id: z.string(),
    api_base_url: z.string().nullable(),
    enabled: z.boolean(),
    retry_policy: retryPolicySchema,
    rate_limit: rateLimitSchema,
    has_credentials: z.boolean(),
    credentials_updated_at: timestamp.nullable(),
    secret_updated_at: timestamp,
    previous_secret_expires_at: timestamp.nullable(),
    created_at: timestamp,
    updated_at: timestamp,
  }),
  'A provider configuration. Never its secret or credentials: only whether they exist and when they changed.',
);

export const providerConfigListSchema = named(
  'ProviderConfigList',
  z.object({ results: z.array(providerConfigSchema) }),
);

export type ProviderConfigView = z.output<typeof providerConfigSchema>;

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function providerView(row: ProviderRow): ProviderConfigView {
  return encode(providerConfigSchema, {
    provider: row.provider,
    organization_id: row.organization_id,
    api_base_url: row.api_base_url,
    enabled: row.enabled,
    retry_policy: row.retry_policy,
    rate_limit: row.rate_limit,
    has_credentials: row.credentials !== null,
    credentials_updated_at: iso(row.credentials_updated_at),
    secret_updated_at: row.secret_updated_at.toISOString(),
    previous_secret_expires_at: iso(row.previous_secret_expires_at),
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  });
}

export function providerParam(value: string | undefined): Provider {
  if (value === undefined || !isProvider(value))
    throw problems.notFound(`unknown provider; one of ${providers.join(', ')}`);
  return value;
}

/** The part of a configuration the webhook path needs. */
export interface VerificationConfig {
  organizationId: string;
  enabled: boolean;
  /** The current secret, then the previous one while its overlap lasts. */
  secrets: string[];
}

export class ProviderConfigs {
  private readonly cache: LRUCache<string, VerificationConfig | 'none'>;

  constructor(options: { cacheTtlMs?: number; maxEntries?: number } = {}) {
    this.cache = new LRUCache({ max: options.maxEntries ?? 10_000, ttl: options.cacheTtlMs ?? 5_000 });
  }

  async list(db: TenantDb): Promise<ProviderConfigView[]> {
    return (await new ProviderConfigStore(db).list()).map(providerView);
  }

  async get(db: TenantDb, provider: Provider, transaction?: Transaction): Promise<ProviderRow | undefined> {
    return new ProviderConfigStore(db).find(provider, transaction);
  }

  /**
   * Creates or replaces the configuration. A new secret that differs from the
   * current one makes the current one the previous secret for the overlap.
   * Fields left out keep their value; `credentials: null` removes them.
   */
  async put(
    db: TenantDb,
    provider: Provider,
    input: PutProvider,
    transaction: Transaction,
  ): Promise<{ before: ProviderRow | undefined; after: ProviderRow }> {
    const before = await this.get(db, provider, transaction);
    if (!before && input.secret === undefined) {
      throw problems.validation([{ field: 'secret', message: 'a new configuration needs a secret' }]);
    }
    const rotated = before !== undefined && input.secret !== undefined && input.secret !== before.secret;
    const overlap = input.secret_overlap_seconds ?? defaultOverlapSeconds;
    const row = await new ProviderConfigStore(db).upsert(
      {
        provider,
        organizationId: input.organization_id,
        // A new configuration has a secret (checked above); an existing one keeps its own.
        secret: input.secret ?? before!.secret,
        ...(input.api_base_url !== undefined ? { apiBaseUrl: input.api_base_url } : {}),
        ...(input.credentials !== undefined ? { credentials: input.credentials } : {}),
        retryPolicy: input.retry_policy ?? before?.retry_policy ?? {},
        rateLimit: input.rate_limit ?? before?.rate_limit ?? {},
        enabled: input.enabled ?? before?.enabled ?? true,
        rotated,
        overlapSeconds: overlap,
      },
      transaction,
    );
    this.forget(db.tenant, provider);
    return { before, after: row };
  }

  /** Secrets and mapping for verifying a webhook; undefined when the provider is not configured. */
  async forVerification(db: TenantDb, provider: Provider): Promise<VerificationConfig | undefined> {
    const key = `${db.tenant}\0${provider}`;
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached === 'none' ? undefined : cached;
    const row = await new ProviderConfigStore(db).verification(provider);
    const config: VerificationConfig | undefined = row && {
      organizationId: row.organization_id,
      enabled: row.enabled,
      secrets: row.previous_secret ? [row.secret, row.previous_secret] : [row.secret],
    };
    this.cache.set(key, config ?? 'none');
    return config;
  }

  forget(tenant: string, provider: Provider): void {
    this.cache.delete(`${tenant}\0${provider}`);
  }
}
