// A numbered fleet of bench Tenants: their names, their manifests, creating
// them in parallel, reading their readiness with one list call, and removing
// everything they left in PostgreSQL and RabbitMQ.
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import {
  apiVersion,
  group,
  kind,
  plural,
  tenantNames,
  version,
  type Plan,
  type Tenant,
} from '../../lib/tenant/index.js';
import { rabbitManagement, withPostgresAdmin } from '../../test/harness/services.js';

export const benchFieldManager = 'tenantry-bench';

/** Tenant names `bench-<run>-<label>-0001`…; every name of a run starts with `bench-<run>-`. */
export class TenantFleet {
  constructor(
    readonly run: string,
    readonly label: string,
  ) {}

  /** What every name of this fleet starts with. */
  get prefix(): string {
    return `bench-${this.run}-${this.label}-`;
  }

  name(index: number): string {
    return `${this.prefix}${String(index).padStart(4, '0')}`;
  }

  names(from: number, count: number): string[] {
    return Array.from({ length: count }, (_, i) => this.name(from + i));
  }
}

/** The prefix of every database, role and RabbitMQ user of tenants whose names start with `namePrefix`. */
export function leftoverPrefixes(namePrefix: string): { sql: string; amqpUser: string } {
  const sample = tenantNames(`${namePrefix}x`);
  return {
    sql: sample.database.slice(0, -'x'.length),
    amqpUser: sample.amqpUser.slice(0, -'x'.length),
  };
}

export function tenantManifest(name: string, plan: Plan): Tenant {
  return {
    apiVersion,
    kind,
    metadata: { name },
    // Delete, so a tenant removed through the operator takes its database along.
    spec: { plan, owner: { email: `owner@${name}.example` }, database: { deletionPolicy: 'Delete' } },
  };
}

export function tenantApi(kubeconfigPath: string): CustomObjectsApi {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return kc.makeApiClient(CustomObjectsApi);
}

/** Creates the Tenants with up to `parallel` requests in flight; returns the created objects. */
export async function createTenants(
  api: CustomObjectsApi,
  manifests: readonly Tenant[],
  parallel = 50,
): Promise<Tenant[]> {
  const created: Tenant[] = [];
  let next = 0;
  const worker = async () => {
    while (next < manifests.length) {
      const body = manifests[next++]!;
      created.push(
        (await api.createClusterCustomObject({
          group,
          version,
          plural,
          body,
          fieldManager: benchFieldManager,
        })) as Tenant,
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, manifests.length) }, worker));
  return created;
}

export async function listTenants(api: CustomObjectsApi): Promise<Tenant[]> {
  const list = (await api.listClusterCustomObject({ group, version, plural })) as { items: Tenant[] };
  return list.items;
}

/** Ready=True for the generation the operator last saw, which must be the current one. */
export function isReady(tenant: Tenant): boolean {
  const ready = tenant.status?.conditions?.find((c) => c.type === 'Ready');
  return (
    ready?.status === 'True' &&
    tenant.status?.observedGeneration !== undefined &&
    tenant.status.observedGeneration === tenant.metadata.generation
  );
}

/**
 * Drops every database and role of tenants whose names start with
 * `namePrefix`, then their RabbitMQ users. Works from what exists, so it also
 * cleans up after a run that failed half-way.
 */
export async function dropLeftovers(
  namePrefix: string,
  log: (line: string) => void,
): Promise<{ databases: number; roles: number; amqpUsers: number }> {
  const prefix = leftoverPrefixes(namePrefix);
  const { databases, roles } = await withPostgresAdmin(async (c) => {
    const dbs = await c.query<{ name: string }>(
      'SELECT datname AS name FROM pg_database WHERE left(datname, length($1)) = $1 ORDER BY 1',
      [prefix.sql],
    );
    let dropped = 0;
    for (const { name } of dbs.rows) {
      await c
        .query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
        .then(() => (dropped += 1))
        .catch((error: Error) => log(`could not drop database ${name}: ${error.message}`));
    }
    const found = await c.query<{ name: string }>(
      'SELECT rolname AS name FROM pg_roles WHERE left(rolname, length($1)) = $1',
      [prefix.sql],
    );
    // Members before the groups they belong to: login roles, then the app role, then the owner.
    const rank = (role: string) => (/_[ab]$/.test(role) ? 0 : role.endsWith('_app') ? 1 : 2);
    const ordered = found.rows.map((r) => r.name).sort((a, b) => rank(a) - rank(b));
    let droppedRoles = 0;
    for (const role of ordered) {
      await c
        .query(`DROP ROLE IF EXISTS "${role}"`)
        .then(() => (droppedRoles += 1))
        .catch((error: Error) => log(`could not drop role ${role}: ${error.message}`));
    }
    return { databases: dropped, roles: droppedRoles };
  });
  const users = (await (await rabbitManagement('GET', '/users?columns=name')).json()) as { name: string }[];
  const ours = users.map((u) => u.name).filter((name) => name.startsWith(prefix.amqpUser));
  let amqpUsers = 0;
  for (const user of ours) {
    await rabbitManagement('DELETE', `/users/${encodeURIComponent(user)}`)
      .then(() => (amqpUsers += 1))
      .catch((error: Error) => log(`could not delete RabbitMQ user ${user}: ${error.message}`));
  }
  return { databases, roles, amqpUsers };
}
