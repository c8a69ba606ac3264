// The bench's baseline: the raw work behind N tenants done one after another
// from one plain process, without the operator's queue, watch, finalizer,
// status or events. Same SQL (TenantDatabaseAdmin, runTenantMigrations), same
// objects (the pure builders, applied through the operator's Cluster class),
// same RabbitMQ calls, same configuration (loadOperatorConfig). Run as a child
// process by operator.bench.ts so its CPU and memory are measured the same way
// as the operator's; tells its phases and result as JSON lines on stdout,
// progress on stderr.
//
// Env: the operator's (KUBECONFIG, POSTGRES_URL, RABBITMQ_VHOST, ...) plus
// BENCH_RUN, BENCH_COUNT, BENCH_PLAN and BENCH_DEADLINE_MS.
import { AppsV1Api } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../lib/kube/kube-config.js';
import pg from 'pg';
import { loadOperatorConfig } from '../../operator/src/config.js';
import { randomPassword, secretString } from '../../operator/src/controller/context.js';
import { tenantNames, workerReplicas, type Plan, type Tenant } from '../../lib/tenant/index.js';
import { Cluster } from '../../operator/src/kube/cluster.js';
import { amqpConnectionInfo, RabbitMqAdmin } from '../../operator/src/messaging/rabbitmq-admin.js';
import {
  amqpSecret,
  checksum,
  databaseSecret,
  limitRange,
  namespace,
  networkPolicies,
  platformDatabaseSecret,
  platformDatabaseSecretName,
  resourceQuota,
  workerDeployment,
  workerServiceAccount,
  type BuildContext,
} from '../../operator/src/specs/index.js';
import { jdbcUri, pgpassLine, postgresUri } from '../../operator/src/sql/connection-info.js';
import { runTenantMigrations, Semaphore } from '../../operator/src/sql/schema-runner.js';
import { TenantDatabaseAdmin } from '../../operator/src/sql/tenant-database.js';
import { createTenants, leftoverPrefixes, TenantFleet, tenantApi, tenantManifest } from './tenant-fleet.js';

export interface SequentialResult {
  /** Epoch ms when the timed provisioning started. */
  startedAt: number;
  tenants: { name: string; doneAt: number; availableAt: number }[];
  /** The sequential calls only. */
  workSeconds: number;
  /** Until every worker Deployment was available, like the operator's Ready. */
  provisionSeconds: number;
  provisionCpuSeconds: number;
  /** A second, idempotent pass over the same tenants: what a resync re-checks. */
  resyncSeconds: number;
  resyncCpuSeconds: number;
  /** Connections made to the tenant databases during the second pass. */
  resyncTenantDbSessions: number;
  /** Peak resident set of this process (getrusage ru_maxrss), KiB. */
  maxRssKiB: number;
}

const log = (line: string) => process.stderr.write(`[baseline] ${line}\n`);
/** stdout lines for the parent: phase marks (so it can read other processes' CPU at the same moments), then the result. */
const tell = (message: { phase: 'provision-start' | 'provision-end' } | { result: SequentialResult }) =>
  process.stdout.write(`${JSON.stringify(message)}\n`);
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));
const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function main(): Promise<void> {
  const config = loadOperatorConfig();
  const run = process.env.BENCH_RUN ?? '';
  const count = Number(process.env.BENCH_COUNT ?? '0');
  const plan = (process.env.BENCH_PLAN ?? 'starter') as Plan;
  const deadline = Date.now() + Number(process.env.BENCH_DEADLINE_MS ?? '1800000');
  if (!run || !(count > 0)) throw new Error('BENCH_RUN and BENCH_COUNT are required');
  const kubeconfigPath = process.env.KUBECONFIG;
  if (!kubeconfigPath) throw new Error('KUBECONFIG is required');

  const kubeConfig = loadKubeConfig(kubeconfigPath);
  const cluster = new Cluster(kubeConfig);
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const tenantsApi = tenantApi(kubeconfigPath);
  // Sequential: one admin connection at a time, plus the one into the tenant database.
  const db = new TenantDatabaseAdmin(config.postgresAdminUrl, { maxConnections: 1 });
  const mq = new RabbitMqAdmin(config.rabbitmq.managementUrl, config.rabbitmq.vhost);
  const build: BuildContext = {
    platformNamespace: config.namespace,
    secretsNamespace: config.secretsNamespace,
    workerImage: config.workerImage,
    postgres: { host: config.tenantDb.host, port: config.tenantDb.port, cidrs: config.tenantDb.cidrs },
    rabbitmq: { host: config.rabbitmq.host, port: config.rabbitmq.port, cidrs: config.rabbitmq.cidrs },
  };
  const slots = new Semaphore(1);
  const fleet = new TenantFleet(run, 'raw');
  const names = fleet.names(1, count);
  /** Connections ever made to this fleet's databases, from pg_stat_database (readable without privileges). */
  const tenantDbSessions = async () => {
    const client = new pg.Client({ connectionString: config.postgresAdminUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ n: string | null }>(
        'SELECT sum(sessions) AS n FROM pg_stat_database WHERE left(datname, length($1)) = $1',
        [leftoverPrefixes(fleet.prefix).sql],
      );
      return Number(rows[0]?.n ?? 0);
    } finally {
      await client.end();
    }
  };

  // What the operator does once at start-up, outside the timed part.
  await cluster.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: config.namespace } });
  await mq.ensureVhost();

  /** One tenant, step by step in the operator's order; idempotent, so it also serves as a resync. */
  const provision = async (tenant: Tenant, firstPass: boolean) => {
    const n = tenantNames(tenant.metadata.name);
    await cluster.apply(namespace(tenant));

    await db.ensureDatabase(n, { locale: 'C' });
    const stored =
      (await cluster.readSecret(build.platformNamespace, platformDatabaseSecretName(tenant.metadata.name))) ??
      (await cluster.readSecret(n.namespace, n.dbSecret));
    let username = secretString(stored, 'username');
    let password = secretString(stored, 'password');
    if (!username || !password) {
      username = n.loginRoles[0];
      password = randomPassword();
      await db.setLoginPassword(username, password);
    } else if (!(await db.loginState(username)).canLogin) {
      await db.setLoginPassword(username, password);
    }

    // The operator skips migrations once the recorded version is current; so does the second pass.
    if (firstPass) await runTenantMigrations(db, n, { slots });

    const { host, port } = { host: config.tenantDb.host, port: config.tenantDb.port };
    const info = { host, port, database: n.database, user: username, password };
    const dbData = {
      host,
      port: String(port),
      dbname: n.database,
      username,
      password,
      uri: postgresUri(info),
      'jdbc-uri': jdbcUri(info),
      pgpass: pgpassLine(info),
    };
    await cluster.apply(platformDatabaseSecret(tenant, dbData, build.platformNamespace));
    await cluster.apply(databaseSecret(tenant, dbData));

    for (const policy of networkPolicies(tenant, build)) await cluster.apply(policy);
    await cluster.apply(resourceQuota(tenant));
    await cluster.apply(limitRange(tenant));

    const existing = secretString(await cluster.readSecret(n.namespace, n.amqpSecret), 'password');
    const amqpPassword = existing ?? randomPassword();
    await mq.ensureTenantUser(n, amqpPassword, { resetPassword: existing === undefined });
    const amqpData = {
      ...amqpConnectionInfo({
        host: config.rabbitmq.host,
        port: config.rabbitmq.port,
        vhost: config.rabbitmq.vhost,
        tls: config.rabbitmq.tls,
        username: n.amqpUser,
        password: amqpPassword,
        queuePrefix: n.queuePrefix,
      }),
    };
    await cluster.apply(amqpSecret(tenant, amqpData));

    const secretChecksum = checksum({
      ...Object.fromEntries(Object.entries(dbData).map(([k, v]) => [`db.${k}`, v])),
      ...Object.fromEntries(Object.entries(amqpData).map(([k, v]) => [`amqp.${k}`, v])),
    });
    await cluster.apply(workerServiceAccount(tenant));
    await cluster.apply(workerDeployment(tenant, build, { secretChecksum }));
  };

  tell({ phase: 'provision-start' });
  const startedAt = Date.now();
  const cpu0 = cpuNow();
  const tenants: Tenant[] = [];
  const doneAt = new Map<string, number>();
  for (const name of names) {
    if (Date.now() > deadline) throw new Error('baseline ran past its deadline');
    // The Tenant object itself, so the builders get a real uid and the garbage
    // collector keeps what is owned by it.
    const [tenant] = await createTenants(tenantsApi, [tenantManifest(name, plan)], 1);
    await provision(tenant!, true);
    tenants.push(tenant!);
    doneAt.set(name, Date.now());
    if (doneAt.size % 10 === 0) log(`${doneAt.size}/${count} provisioned`);
  }
  const workEnd = Date.now();

  // Like the operator's Workload step: done when the worker has its replicas available.
  const want = new Map(tenants.map((t) => [tenantNames(t.metadata.name).namespace, workerReplicas(t)]));
  const availableAt = new Map<string, number>();
  for (;;) {
    const list = await apps.listDeploymentForAllNamespaces({ labelSelector: 'app.kubernetes.io/part-of' });
    const now = Date.now();
    for (const d of list.items) {
      const ns = d.metadata?.namespace ?? '';
      const replicas = want.get(ns);
      if (replicas === undefined || availableAt.has(ns)) continue;
      if ((d.status?.availableReplicas ?? 0) < replicas) continue;
      // The Available condition turned True when the pod got ready, most often while the
      // loop above was still busy with later tenants (a second-resolution timestamp).
      const available = d.status?.conditions?.find((c) => c.type === 'Available' && c.status === 'True');
      const since = available?.lastTransitionTime ? new Date(available.lastTransitionTime).getTime() : now;
      availableAt.set(ns, Math.min(now, since));
    }
    if (availableAt.size === want.size) break;
    if (Date.now() > deadline)
      throw new Error(`only ${availableAt.size}/${want.size} workers became available`);
    await sleep(250);
  }
  const provisionEnd = Date.now();
  const cpu1 = cpuNow();
  tell({ phase: 'provision-end' });
  log(`provisioned ${count} tenants in ${((provisionEnd - startedAt) / 1000).toFixed(1)} s`);

  const sessionsBefore = await tenantDbSessions();
  const resyncStart = performance.now();
  const cpu1b = cpuNow();
  for (const tenant of tenants) await provision(tenant, false);
  const resyncSeconds = (performance.now() - resyncStart) / 1000;
  const cpu2 = cpuNow();
  log(`re-checked ${count} tenants in ${resyncSeconds.toFixed(1)} s`);
  await sleep(1500); // PostgreSQL publishes session counts when backends exit
  const resyncTenantDbSessions = (await tenantDbSessions()) - sessionsBefore;
  await db.close();

  const result: SequentialResult = {
    startedAt,
    tenants: tenants.map((t) => {
      const ns = tenantNames(t.metadata.name).namespace;
      return {
        name: t.metadata.name,
        doneAt: doneAt.get(t.metadata.name)!,
        availableAt: Math.max(doneAt.get(t.metadata.name)!, availableAt.get(ns)!),
      };
    }),
    workSeconds: (workEnd - startedAt) / 1000,
    provisionSeconds: (provisionEnd - startedAt) / 1000,
    provisionCpuSeconds: cpu1 - cpu0,
    resyncSeconds,
    resyncCpuSeconds: cpu2 - cpu1b,
    resyncTenantDbSessions,
    maxRssKiB: process.resourceUsage().maxRSS,
  };
  tell({ result });
}

main().catch((error: unknown) => {
  log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
