// A running operator for a test suite, on the shared control plane: its own
// platform namespace, RabbitMQ vhost and non-superuser PostgreSQL admin role,
// plus helpers to create Tenants and wait for them. cleanup() deletes the
// suite's Tenants with their databases, roles and users.
import { tenantNames } from '../../lib/tenant/index.js';
import type { ControlPlane } from './control-plane.js';
import { installTenantCrd } from './crds.js';
import { createOperatorAdminRole, type OperatorAdminRole } from './operator-admin.js';
import { startOperator, type OperatorProcess } from './operator-process.js';
import { createTestVhost, serviceUrls, uniqueSuffix, withPostgresAdmin, type TestVhost } from './services.js';
import { sharedControlPlane } from './shared-cluster.js';
import { eventually } from './wait.js';

export interface TenantObject {
  metadata: { name: string; generation: number };
  spec: Record<string, unknown>;
  status?: {
    phase?: string;
    observedGeneration?: number;
    conditions?: {
      type: string;
      status: string;
      reason: string;
      message: string;
      observedGeneration?: number;
    }[];
  };
}

export interface TestPlatform {
  cp: ControlPlane;
  operator: OperatorProcess;
  platformNamespace: string;
  /** The RabbitMQ vhost the operator gives tenants. */
  vhost: string;
  /** A unique tenant name for this suite; registered for cleanup. */
  tenantName(label: string): string;
  applyTenant(name: string, specYaml?: string): Promise<void>;
  waitReady(name: string, timeoutMs?: number): Promise<TenantObject>;
  /**
   * Stops the operator and starts a fresh one with the same settings, after `meanwhile` (an
   * upgrade); from the current source unless `root` names another checkout (a rollback).
   */
  restartOperator(meanwhile?: () => Promise<void>, root?: string): Promise<void>;
  cleanup(): Promise<void>;
}

export interface TestPlatformOptions {
  /**
   * A control plane of the suite's own instead of the shared one; its Tenant
   * CRD is the suite's business (e.g. a Helm release installs it).
   */
  controlPlane?: ControlPlane;
  /**
   * The checkout the first operator runs from, e.g. a previous release taken from git
   * history; restartOperator() starts the current one, as an upgrade would.
   */
  operatorRoot?: string;
}

export async function startTestPlatform(
  label: string,
  env: Record<string, string> = {},
  options: TestPlatformOptions = {},
): Promise<TestPlatform> {
  const cp = options.controlPlane ?? (await sharedControlPlane());
  if (!options.controlPlane) await installTenantCrd(cp);
  const run = uniqueSuffix().slice(-6);
  const platformNamespace = `tenantry-${label}-${run}`;
  const vhost: TestVhost = await createTestVhost(label);
  const admin: OperatorAdminRole = await createOperatorAdminRole(label);
  const tenants: string[] = [];
  const operatorEnv = {
    KUBECONFIG: cp.kubeconfigPath,
    OPERATOR_NAMESPACE: platformNamespace,
    POSTGRES_URL: admin.url,
    TENANT_DB_HOST: '127.0.0.1',
    TENANT_DB_PORT: new URL(serviceUrls.postgres).port || '5432',
    RABBITMQ_VHOST: vhost.name,
    RESYNC_SECONDS: '5',
    LEASE_NAME: `tenantry-operator-${run}`,
    WORKER_IMAGE: 'registry.invalid/tenantry:test',
    ...env,
  };
  let operator = await startOperator(
    operatorEnv,
    undefined,
    options.operatorRoot ? { root: options.operatorRoot } : {},
  );
  const getTenant = async (name: string) =>
    JSON.parse(await cp.kubectl(['get', 'tenant', name, '-o', 'json'])) as TenantObject;

  return {
    cp,
    get operator() {
      return operator;
    },
    platformNamespace,
    vhost: vhost.name,
    tenantName: (l) => {
      const name = `${label.slice(0, 8)}${run}-${l}`;
      tenants.push(name);
      return name;
    },
    applyTenant: async (name, specYaml = '') => {
      await cp.kubectl(
        ['apply', '-f', '-'],
        `apiVersion: tenantry.io/v1alpha1\nkind: Tenant\nmetadata: {name: ${name}}\nspec:\n  plan: starter\n  owner: {email: owner@${name}.example}\n  database: {deletionPolicy: Delete}\n${specYaml}`,
      );
    },
    waitReady: (name, timeoutMs = 90_000) =>
      eventually(
        `tenant ${name} to be Ready`,
        async () => {
          const t = await getTenant(name);
          const ready = t.status?.conditions?.find((c) => c.type === 'Ready');
          return ready?.status === 'True' && t.status?.observedGeneration === t.metadata.generation
            ? t
            : undefined;
        },
        { timeoutMs },
      ),
    restartOperator: async (meanwhile, root) => {
      await operator.kill('SIGTERM');
      await meanwhile?.();
      operator = await startOperator(operatorEnv, undefined, root ? { root } : {});
    },
    cleanup: async () => {
      if (tenants.length > 0) {
        await cp
          .kubectl(['delete', 'tenant', ...tenants, '--ignore-not-found', '--timeout=60s'])
          .catch(() => undefined);
      }
      await operator.kill('SIGTERM');
      for (const name of tenants) {
        const n = tenantNames(name);
        await withPostgresAdmin(async (c) => {
          await c.query(`DROP DATABASE IF EXISTS "${n.database}" WITH (FORCE)`);
          for (const role of [...n.loginRoles, n.appRole, n.ownerRole])
            await c.query(`DROP ROLE IF EXISTS "${role}"`);
        }).catch(() => undefined);
      }
      await admin.drop().catch(() => undefined);
      await vhost.drop().catch(() => undefined);
    },
  };
}
