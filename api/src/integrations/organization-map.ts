// Which tenant a provider means by an `organization_id`, for webhooks posted
// without a tenant in the path. The mapping lives in each tenant's own
// database (app.integration_providers), so this replica keeps a map built by
// scanning the Ready tenants' configurations: rebuilt when it is older than
// `maxAgeMs`, or on a miss at most once per `missRescanMs` (a configuration
// saved through another replica becomes routable after such a rescan), so a
// flood of unknown organizations costs one scan per interval, not one per
// request. A scan reads each tenant with TenantDatabases.readOnce: it never
// opens a pool nor evicts one that serves traffic.
// Configurations saved through this replica update the map at once.
// docs/integrations.md explains the choice and its limits.
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../../lib/logger.js';
import type { Provider } from '../../../lib/integrations/catalog.js';
import type { TenantDatabases } from '../tenancy/tenant-databases.js';
import type { TenantDirectory } from '../tenancy/tenant-directory.js';
import { enabledOrganizations } from './provider-store.js';

export type Resolution = { tenant: string } | { ambiguous: true } | undefined;

const keyOf = (provider: Provider, organizationId: string) => `${provider}\0${organizationId}`;

export interface OrganizationMapOptions {
  maxAgeMs: number;
  missRescanMs: number;
}

export const defaultOrganizationMapOptions: Readonly<OrganizationMapOptions> = Object.freeze({
  maxAgeMs: 60_000,
  missRescanMs: 15_000,
});

type ScanReason = 'age' | 'miss' | 'claim';

export class OrganizationMap {
  /** key → tenants claiming it (more than one means ambiguous). */
  private entries = new Map<string, Set<string>>();
  private builtAt = 0;
  private lastScanAt = 0;
  private scanning: Promise<void> | undefined;
  private readonly scans: Counter<'reason'>;

  constructor(
    private readonly directory: TenantDirectory,
    private readonly databases: TenantDatabases,
    private readonly log: Logger,
    registry: Registry,
    private readonly options: OrganizationMapOptions = defaultOrganizationMapOptions,
  ) {
    this.scans = new Counter({
      name: 'tenantry_api_organization_map_scans_total',
      help: 'Scans of every Ready tenant for integration organization mappings, by what started them',
      labelNames: ['reason'],
      registers: [registry],
    });
  }

  async resolve(provider: Provider, organizationId: string): Promise<Resolution> {
    const now = Date.now();
    if (now - this.builtAt > this.options.maxAgeMs) await this.scan('age');
    let found = this.lookup(provider, organizationId);
    if (!found && Date.now() - this.lastScanAt > this.options.missRescanMs) {
      await this.scan('miss');
      found = this.lookup(provider, organizationId);
    }
    return found;
  }

  /** Another tenant (as far as this replica knows) that already maps this organization. */
  async claimedByOther(provider: Provider, organizationId: string, tenant: string): Promise<boolean> {
    await this.scan('claim');
    const tenants = this.entries.get(keyOf(provider, organizationId));
    return tenants !== undefined && [...tenants].some((t) => t !== tenant);
  }

  /** Records a configuration saved through this replica. */
  remember(tenant: string, provider: Provider, organizationId: string): void {
    for (const [key, tenants] of this.entries) {
      if (key.startsWith(`${provider}\0`)) tenants.delete(tenant);
      if (tenants.size === 0) this.entries.delete(key);
    }
    const key = keyOf(provider, organizationId);
    this.entries.set(key, (this.entries.get(key) ?? new Set()).add(tenant));
  }

  private lookup(provider: Provider, organizationId: string): Resolution {
    const tenants = this.entries.get(keyOf(provider, organizationId));
    if (!tenants || tenants.size === 0) return undefined;
    if (tenants.size > 1) return { ambiguous: true };
    return { tenant: [...tenants][0]! };
  }

  /** One scan at a time; callers arriving meanwhile wait for it rather than starting another. */
  private scan(reason: ScanReason): Promise<void> {
    if (!this.scanning) {
      this.scans.inc({ reason });
      this.scanning = this.rebuild().finally(() => (this.scanning = undefined));
    }
    return this.scanning;
  }

  private async rebuild(): Promise<void> {
    this.lastScanAt = Date.now();
    const entries = new Map<string, Set<string>>();
    for (const entry of this.directory.list()) {
      if (!entry.ready || entry.suspended || !entry.credentials) continue;
      try {
        const rows = await enabledOrganizations(this.databases, entry.name, entry.credentials);
        for (const row of rows) {
          const key = keyOf(row.provider, row.organization_id);
          entries.set(key, (entries.get(key) ?? new Set()).add(entry.name));
        }
      } catch (error) {
        // A tenant whose database is unreachable or not yet migrated maps nothing.
        this.log.warn({ tenant: entry.name, err: String(error) }, 'cannot read integration providers');
      }
    }
    this.entries = entries;
    this.builtAt = Date.now();
  }
}
