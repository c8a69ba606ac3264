// What the API knows about tenants, learned by watching the Kubernetes API:
// the Tenant resources (spec and readiness) and the operator's labelled copies
// of each tenant's connection Secret in the platform namespace. Requests never
// name a database themselves; they name a tenant from a verified token, and
// this directory says whether it may be served and how to reach its database.
import { CoreV1Api, CustomObjectsApi, Watch, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { ListWatch, pageOf, pageQuery, type ListWatchSource } from '../../../lib/kube/list-watch.js';
import type { Logger } from '../../../lib/logger.js';
import { group, plural, tenantLabel, version, type Tenant } from '../../../lib/tenant/index.js';
import { ProblemError, problems } from '../http/problem.js';

export interface TenantCredentials {
  /** postgresql:// URI of the tenant's active login role. */
  uri: string;
  username: string;
  /** Changes whenever the Secret changes, so pools can be recycled. */
  revision: string;
}

export interface TenantEntry {
  name: string;
  /**
   * The Tenant's `metadata.uid`: its identity. A name comes back when a Tenant
   * is deleted and created again; everything issued is bound to the uid.
   */
  uid: string;
  tenant: Tenant;
  /** May be served: Ready, or Degraded with its database, schema and Secrets still in place. */
  ready: boolean;
  suspended: boolean;
  credentials?: TenantCredentials;
}

type CredentialsListener = (tenant: string) => void;

function decode(secret: V1Secret, key: string): string | undefined {
  const value = secret.data?.[key];
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
}

function isReady(tenant: Tenant): boolean {
  const ready = tenant.status?.conditions?.find((c) => c.type === 'Ready');
  return ready?.status === 'True' && tenant.status?.observedGeneration === tenant.metadata.generation;
}

// The steps the API depends on. A tenant that was Ready and is now Degraded for
// another reason (RabbitMQ down, a quota or worker problem) keeps being served:
// its writes land in the outbox and are relayed once the broker is back.
const servingSteps = ['Database', 'Schema', 'Secrets'] as const;

function isServing(tenant: Tenant): boolean {
  if (isReady(tenant)) return true;
  if (tenant.status?.phase !== 'Degraded') return false;
  return servingSteps.every(
    (step) => tenant.status?.conditions?.find((c) => c.type === step)?.status === 'True',
  );
}

export class TenantDirectory {
  private readonly tenants = new Map<string, Tenant>();
  private readonly credentials = new Map<string, TenantCredentials>();
  private readonly listeners = new Set<CredentialsListener>();
  private readonly watches: [ListWatch<Tenant>, ListWatch<V1Secret>];

  constructor(kubeConfig: KubeConfig, platformNamespace: string, log: Logger, options: { resyncMs: number }) {
    const custom = kubeConfig.makeApiClient(CustomObjectsApi);
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const watcher = new Watch(kubeConfig);
    const tenantSource: ListWatchSource<Tenant> = {
      list: async (page) => {
        const list = (await custom.listClusterCustomObject({
          group,
          version,
          plural,
          ...pageQuery(page),
        })) as {
          items: Tenant[];
          metadata: { resourceVersion: string; continue?: string };
        };
        return { items: list.items, ...list.metadata };
      },
      watch: (resourceVersion, onEvent, done) =>
        watcher.watch(
          `/apis/${group}/${version}/${plural}`,
          { resourceVersion, allowWatchBookmarks: true },
          (type, object) => onEvent(type as never, object as Tenant),
          done,
        ),
    };
    const labelSelector = `${tenantLabel},tenantry.io/secret-kind=database`;
    const secretSource: ListWatchSource<V1Secret> = {
      list: async (page) => {
        const list = await core.listNamespacedSecret({
          namespace: platformNamespace,
          labelSelector,
          ...pageQuery(page),
        });
        return pageOf(list);
      },
      watch: (resourceVersion, onEvent, done) =>
        watcher.watch(
          `/api/v1/namespaces/${platformNamespace}/secrets`,
          { resourceVersion, labelSelector, allowWatchBookmarks: true },
          (type, object) => onEvent(type as never, object as V1Secret),
          done,
        ),
    };
    this.watches = [
      new ListWatch(
        'tenants',
        tenantSource,
        {
          onList: (items) => {
            this.tenants.clear();
            for (const t of items) this.tenants.set(t.metadata.name, t);
          },
          onEvent: (type, t) => {
            if (type === 'DELETED') this.tenants.delete(t.metadata.name);
            else this.tenants.set(t.metadata.name, t);
          },
        },
        log,
        options,
      ),
      new ListWatch(
        'tenant-secrets',
        secretSource,
        {
          onList: (items) => {
            const seen = new Set<string>();
            for (const s of items) seen.add(this.putSecret(s));
            for (const name of [...this.credentials.keys()]) if (!seen.has(name)) this.dropSecret(name);
          },
          onEvent: (type, s) => {
            if (type === 'DELETED') this.dropSecret(s.metadata?.labels?.[tenantLabel] ?? '');
            else this.putSecret(s);
          },
        },
        log,
        options,
      ),
    ];
  }

  get synced(): boolean {
    return this.watches.every((w) => w.synced);
  }

  get size(): number {
    return this.tenants.size;
  }

  start(): void {
    for (const w of this.watches) w.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.watches.map((w) => w.stop()));
  }

  /** Called with the tenant's name whenever its database credentials change or disappear. */
  onCredentialsChange(listener: CredentialsListener): void {
    this.listeners.add(listener);
  }

  get(name: string): TenantEntry | undefined {
    const tenant = this.tenants.get(name);
    if (!tenant) return undefined;
    const credentials = this.credentials.get(name);
    return {
      name,
      uid: tenant.metadata.uid ?? '',
      tenant,
      ready: isServing(tenant) && credentials !== undefined,
      suspended: tenant.spec.suspended === true,
      ...(credentials ? { credentials } : {}),
    };
  }

  list(): TenantEntry[] {
    return [...this.tenants.keys()].map((name) => this.get(name)!);
  }

  /** The tenant, if it may be served now; otherwise a clear 404, 403 or 503. */
  servable(name: string): TenantEntry & { credentials: TenantCredentials } {
    const entry = this.get(name);
    if (!entry || entry.tenant.metadata.deletionTimestamp)
      throw problems.notFound(`tenant ${name} does not exist`);
    if (entry.suspended) throw problems.forbidden(`tenant ${name} is suspended`);
    if (!entry.ready || !entry.credentials) {
      throw problems.unavailable(
        `tenant ${name} is not ready yet (phase ${entry.tenant.status?.phase ?? 'Pending'})`,
        5,
      );
    }
    return entry as TenantEntry & { credentials: TenantCredentials };
  }

  /**
   * Refuses (409) a name whose database and credentials an earlier Tenant left
   * behind under deletionPolicy Retain. The operator keeps the platform copy of
   * the credentials (no owner reference, so garbage collection leaves it) until
   * the name is restored or the data deleted; a Tenant created under the name
   * would get that database back, users and all. Re-applying the Tenant with
   * kubectl stays the platform engineer's way to restore it.
   */
  assertNotRetained(name: string): void {
    if (this.tenants.has(name) || !this.credentials.has(name)) return;
    throw new ProblemError(
      409,
      'Conflict',
      `the tenant name ${name} is taken: the database and credentials of an earlier tenant of this name ` +
        'are retained (deletionPolicy Retain). A platform engineer can restore that tenant by applying ' +
        'its Tenant again with kubectl',
      { type: 'https://tenantry.io/problems/tenant-name-retained' },
    );
  }

  private putSecret(secret: V1Secret): string {
    const name = secret.metadata?.labels?.[tenantLabel] ?? '';
    const uri = decode(secret, 'uri');
    const username = decode(secret, 'username');
    if (!name || !uri || !username) return name;
    const revision = secret.metadata?.resourceVersion ?? '';
    const before = this.credentials.get(name);
    this.credentials.set(name, { uri, username, revision });
    if (before && before.uri !== uri) this.notify(name);
    return name;
  }

  private dropSecret(name: string): void {
    if (this.credentials.delete(name)) this.notify(name);
  }

  private notify(name: string): void {
    for (const listener of this.listeners) listener(name);
  }
}
