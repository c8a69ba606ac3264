// Upgrading a release from the previous chart version to the current one, the
// way a platform engineer does it: the previous release (chart and code) comes
// from git history and its chart is installed with helm into a control plane of
// this suite's own (the release owns the Tenant CRD there, as in a real install).
// KWOK's pods run no code, so the operator and API run as local processes with
// the tokens of the chart's ServiceAccounts: the release's RBAC is what they live
// on. The previous release's operator brings the Tenants to Ready; the upgrade
// replaces it by the current one, as the Deployment rollout would. The API is the
// current one throughout. While `helm upgrade` runs, the API's /readyz, a
// signed-in request per tenant and the Tenants' Ready condition are polled
// without pause, and none may fail: the current operator rolls every tenant
// worker to its own template and keeps the Tenant Ready while the previous pods
// serve (Reconciling True until the rollout completes). The rollback brings the
// previous operator back, which refuses tenant schemas newer than it knows
// (migrations only go forward): the API process stays ready, the Tenants say
// why they are Degraded, and rolling forward again recovers them.

import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { startTestApi, type TestApi } from '../harness/api-server.js';
import { extractTree, previousChartRelease, type ChartRelease } from '../harness/chart-history.js';
import {
  kubernetesVersion,
  startControlPlane,
  toolPath,
  type ControlPlane,
} from '../harness/control-plane.js';
import { startTestPlatform, type TenantObject, type TestPlatform } from '../harness/platform.js';
import { repoRoot } from '../harness/repo-root.js';
import { seedUser, signIn } from '../harness/seeded-tenants.js';
import { uniqueSuffix } from '../harness/services.js';
import { eventually } from '../harness/wait.js';

const chartPath = 'charts/tenantry';
const chartDir = join(repoRoot, chartPath);
const currentVersion = (parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as { version: string })
  .version;
const work = mkdtempSync(join(tmpdir(), 'tenantry-upgrade-'));

/** Runs helm with a private home; rejects with stderr on a non-zero exit. */
function helm(args: readonly string[]): Promise<string> {
  return new Promise((ok, fail) => {
    execFile(
      toolPath('helm'),
      args,
      {
        maxBuffer: 32 * 1024 * 1024,
        env: {
          ...process.env,
          HELM_CACHE_HOME: join(work, 'helm/cache'),
          HELM_CONFIG_HOME: join(work, 'helm/config'),
          HELM_DATA_HOME: join(work, 'helm/data'),
        },
      },
      (error, stdout, stderr) => {
        if (error) fail(new Error(`helm ${args[0]} failed: ${stderr.trim() || error.message}`));
        else ok(stdout);
      },
    );
  });
}

interface Failure {
  check: string;
  atMs: number;
  detail: string;
}

/**
 * Runs every check in a loop of its own until stop(); a check fails by throwing.
 * stop() resolves with the number of passes of each check and every failure.
 */
function keepChecking(checks: Record<string, () => Promise<void>>, intervalMs = 150) {
  const started = Date.now();
  const passes: Record<string, number> = {};
  const failures: Failure[] = [];
  let stopped = false;
  const loops = Object.entries(checks).map(async ([check, probe]) => {
    passes[check] = 0;
    while (!stopped) {
      try {
        await probe();
        passes[check] = (passes[check] ?? 0) + 1;
      } catch (error) {
        failures.push({ check, atMs: Date.now() - started, detail: String(error) });
      }
      await new Promise((ok) => setTimeout(ok, intervalMs));
    }
  });
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
      return { passes, failures };
    },
  };
}

interface Condition {
  type: string;
  status: string;
  reason: string;
  lastTransitionTime?: string;
}

describe(`Helm chart upgrade from the previous version to ${currentVersion}`, function () {
  // Bounded: the control plane, three helm operations that wait for their rollouts, and
  // three tenants becoming Ready; each step has its own, shorter timeout.
  this.timeout(180_000);
  const run = uniqueSuffix().slice(-6);
  const namespace = `tenantry-${run}`;
  const secretsNamespace = `${namespace}-secrets`;
  const release = `up${run}`;
  const fullname = `${release}-tenantry`;
  let previous: ChartRelease;
  let previousRoot: string;
  let previousChartDir: string;
  let previousValues: string;
  let cp: ControlPlane | undefined;
  let installed = false;
  let upgraded = false;
  let platform: TestPlatform | undefined;
  let api: TestApi | undefined;
  let tenants: string[] = [];
  const access = new Map<string, string>();
  const uidsBefore = new Map<string, string>();

  const kubectl = (args: readonly string[], input?: string) => cp!.kubectl(args, input);
  const getJson = async <T>(args: readonly string[]) =>
    JSON.parse(await kubectl([...args, '-o', 'json'])) as T;
  const uid = async (kind: string, name: string, ns?: string) =>
    (await getJson<{ metadata: { uid: string } }>(['get', kind, name, ...(ns ? ['-n', ns] : [])])).metadata
      .uid;
  const releaseArgs = () => ['--namespace', namespace, '--kubeconfig', cp!.kubeconfigPath];

  /** A kubeconfig that signs in with a fresh token of one of the release's ServiceAccounts. */
  async function serviceAccountKubeconfig(serviceAccount: string): Promise<string> {
    const token = (
      await kubectl(['create', 'token', serviceAccount, '-n', namespace, '--duration=1h'])
    ).trim();
    const admin = parse(readFileSync(cp!.kubeconfigPath, 'utf8')) as {
      clusters: { name: string; cluster: Record<string, string> }[];
    };
    const path = join(work, `${serviceAccount}.kubeconfig`);
    writeFileSync(
      path,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: admin.clusters,
        users: [{ name: serviceAccount, user: { token } }],
        contexts: [{ name: 'sa', context: { cluster: admin.clusters[0]!.name, user: serviceAccount } }],
        'current-context': 'sa',
      }),
      { mode: 0o600 },
    );
    return path;
  }

  const getTenants = async (names: readonly string[]) =>
    (await getJson<{ items: TenantObject[] }>(['get', 'tenants', ...names])).items;

  /** Each named Tenant Ready for its current generation; returns their Ready conditions. */
  async function expectReady(names: readonly string[]): Promise<Map<string, Condition>> {
    const found = await getTenants(names);
    expect(found.map((t) => t.metadata.name)).to.have.members([...names]);
    const ready = new Map<string, Condition>();
    for (const t of found) {
      const conditions = (t.status?.conditions ?? []) as Condition[];
      const condition = conditions.find((c) => c.type === 'Ready');
      if (condition?.status !== 'True') {
        throw new Error(`${t.metadata.name} is not Ready: ${JSON.stringify(t.status)}`);
      }
      if (t.status?.observedGeneration !== t.metadata.generation) {
        throw new Error(
          `${t.metadata.name} observed generation ${t.status?.observedGeneration} of ${t.metadata.generation}`,
        );
      }
      ready.set(t.metadata.name, condition);
    }
    return ready;
  }

  /** `helm upgrade` to the current chart with the user's values file again, as the upgrade notes say. */
  const upgradeToCurrent = () =>
    helm([
      'upgrade',
      release,
      chartDir,
      ...releaseArgs(),
      '-f',
      previousValues,
      '--wait',
      '--timeout',
      '90s',
    ]);

  /** Each named Tenant Ready and no longer Reconciling: its worker rolled, kstatus Current. */
  async function expectReconciled(names: readonly string[]): Promise<true> {
    await expectReady(names);
    for (const t of await getTenants(names)) {
      const reconciling = (t.status?.conditions ?? []).find((c) => c.type === 'Reconciling');
      if (reconciling?.status !== 'False' || reconciling.observedGeneration !== t.metadata.generation) {
        throw new Error(`${t.metadata.name} is still reconciling: ${JSON.stringify(reconciling)}`);
      }
    }
    return true;
  }

  /** The current operator's reconciles with `result` (success, requeue, error), from its metrics. */
  async function reconciles(result: string): Promise<number> {
    const text = await platform!.operator.metrics();
    const match = new RegExp(`^tenantry_operator_reconcile_total\\{result="${result}"\\} (\\d+)`, 'm').exec(
      text,
    );
    return Number(match?.[1] ?? 0);
  }

  /** The checks that must keep passing while helm changes the release. */
  const servingChecks = (tenantsServed: boolean): Record<string, () => Promise<void>> => ({
    readyz: async () => {
      const res = await fetch(`${api!.url}/readyz`);
      if (res.status !== 200) throw new Error(`/readyz answered ${res.status}: ${await res.text()}`);
    },
    ...Object.fromEntries(
      (tenantsServed ? tenants : []).map((tenant) => [
        `GET /api/users of ${tenant}`,
        async () => {
          const res = await api!.call('GET', '/api/users', { token: access.get(tenant)! });
          if (res.status !== 200) throw new Error(`${res.status} ${JSON.stringify(res.body)}`);
        },
      ]),
    ),
    ...(tenantsServed ? { 'Tenants Ready': () => expectReady(tenants).then(() => undefined) } : {}),
  });

  /**
   * Runs a helm operation while the serving checks poll (/readyz, and unless `tenantsServed`
   * is false a signed-in request of each tenant and the Tenants' Ready); asserts none failed.
   */
  async function withoutInterruption(
    what: string,
    operation: () => Promise<unknown>,
    { tenantsServed = true } = {},
  ): Promise<void> {
    const watch = keepChecking(servingChecks(tenantsServed));
    const started = Date.now();
    try {
      await operation();
    } finally {
      // Keep polling a little past the end, when the last old objects go.
      await new Promise((ok) => setTimeout(ok, 2000));
    }
    const { passes, failures } = await watch.stop();
    console.log(`      ${what}: ${Date.now() - started} ms, polls ${JSON.stringify(passes)}`);
    expect(
      failures.map((f) => `${f.atMs} ms ${f.check}: ${f.detail}`),
      `failed polls during ${what}`,
    ).to.deep.equal([]);
    for (const [check, count] of Object.entries(passes)) {
      expect(count, `${check} polls during ${what}`).to.be.greaterThan(2);
    }
  }

  /** Nothing the processes did was refused or unauthenticated. */
  function expectNoPermissionErrors(): void {
    const refused = platform!.operator.logs.filter((line) => /forbidden|unauthorized|\b40[13]\b/i.test(line));
    expect(refused, 'the operator was refused').to.deep.equal([]);
  }

  before(async function () {
    this.timeout(120_000);
    // Throws, rather than skipping, on a shallow clone: the test exists to upgrade.
    previous = previousChartRelease(repoRoot, chartPath);
    // The whole tree of that commit, whose operator runs on today's dependencies.
    previousRoot = join(work, 'previous');
    extractTree(repoRoot, previous.commit, previousRoot);
    symlinkSync(join(repoRoot, 'node_modules'), join(previousRoot, 'node_modules'));
    previousChartDir = join(previousRoot, chartPath);
    previousValues = join(previousChartDir, 'ci/default-values.yaml');
    cp = await startControlPlane();
  });

  after(async function () {
    this.timeout(120_000);
    // Tenants go while the operator still runs (its finalizer drops databases, roles and
    // RabbitMQ users); cleanup() then drops whatever is left.
    await api?.close().catch(() => undefined);
    await platform?.cleanup().catch(() => undefined);
    if (installed && cp) await helm(['uninstall', release, ...releaseArgs()]).catch(() => undefined);
    await cp?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('finds the previous chart version in git history, and its values pass the current schema', async () => {
    expect(previous.version).to.not.equal(currentVersion);
    const chart = parse(readFileSync(join(previousChartDir, 'Chart.yaml'), 'utf8')) as { version: string };
    expect(chart.version).to.equal(previous.version);
    // Every install scenario the previous chart shipped renders with the current chart:
    // helm validates the values against the current values.schema.json and the guards.
    const scenarios = readdirSync(join(previousChartDir, 'ci')).filter((f) => f.endsWith('-values.yaml'));
    expect(scenarios).to.include('default-values.yaml');
    for (const scenario of scenarios) {
      await helm([
        'template',
        release,
        chartDir,
        '--kube-version',
        kubernetesVersion,
        '--namespace',
        namespace,
        '-f',
        join(previousChartDir, 'ci', scenario),
      ]);
    }
    console.log(`      previous chart ${previous.version} at ${previous.commit.slice(0, 7)}`);
  });

  it('installs the previous chart; the operator and API run as its ServiceAccounts and bring Tenants to Ready', async function () {
    this.timeout(150_000);
    if (!cp!.hasKwok) throw new Error('the upgrade test needs KWOK (make tools) to run the Deployments');
    await kubectl(['create', 'namespace', namespace]);
    // Credentials the values point at; KWOK runs the pods without reading them.
    await kubectl(
      ['apply', '-n', namespace, '-f', '-'],
      [
        'apiVersion: v1\nkind: Secret\nmetadata: {name: tenantry-postgres}\nstringData: {password: not-used}',
        'apiVersion: v1\nkind: Secret\nmetadata: {name: tenantry-rabbitmq}\nstringData: {password: not-used}',
      ].join('\n---\n'),
    );
    await helm([
      'install',
      release,
      previousChartDir,
      ...releaseArgs(),
      '-f',
      previousValues,
      '--wait',
      '--timeout',
      '90s',
    ]);
    installed = true;
    await kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd/tenants.tenantry.io']);

    platform = await startTestPlatform(
      'upgrade',
      {
        KUBECONFIG: await serviceAccountKubeconfig(`${fullname}-operator`),
        OPERATOR_NAMESPACE: namespace,
        PLATFORM_SECRETS_NAMESPACE: secretsNamespace,
        LEASE_NAME: `${fullname}-operator`,
      },
      { controlPlane: cp!, operatorRoot: previousRoot },
    );
    tenants = [platform.tenantName('a'), platform.tenantName('b')];
    await Promise.all(tenants.map((name) => platform!.applyTenant(name)));
    await Promise.all(tenants.map((name) => platform!.waitReady(name, 90_000)));

    api = await startTestApi(await serviceAccountKubeconfig(`${fullname}-api`), namespace, {
      secretsNamespace,
    });
    for (const tenant of tenants) {
      const email = `owner@${tenant}.example`;
      await seedUser(api, tenant, 'owner', email);
      access.set(tenant, (await signIn(api, tenant, email)).access);
    }
    expectNoPermissionErrors();
    await expectReady(tenants);
    for (const [kind, name, ns] of [
      ['crd', 'tenants.tenantry.io'],
      ['serviceaccount', `${fullname}-operator`, namespace],
      ['serviceaccount', `${fullname}-api`, namespace],
      ['deployment', `${fullname}-operator`, namespace],
      ['deployment', `${fullname}-api`, namespace],
      ...tenants.map((t) => ['tenant', t]),
    ] as [string, string, string?][]) {
      uidsBefore.set(`${kind}/${name}`, await uid(kind, name, ns));
    }
  });

  it('upgrades chart and operator while the API serves and every Tenant stays Ready', async function () {
    this.timeout(150_000);
    if (!api) throw new Error('the previous release was not running');
    // The other way the upgrade notes give: the values stored in the release, on the new defaults.
    const reused = await helm([
      'upgrade',
      release,
      chartDir,
      ...releaseArgs(),
      '--reset-then-reuse-values',
      '--dry-run=server',
    ]);
    expect(reused).to.include(`helm.sh/chart: tenantry-${currentVersion}`);
    // The user's values file again, as the upgrade notes say; helm checks it against the new schema.
    // The operator's rollout: the previous one stops, the current one starts and reconciles every Tenant.
    await withoutInterruption('helm upgrade and the operator rollout', async () => {
      await platform!.restartOperator(async () => {
        await upgradeToCurrent();
      });
      await eventually(
        'the current operator to reconcile every Tenant',
        async () => ((await reconciles('success')) >= tenants.length ? true : undefined),
        { timeoutMs: 60_000 },
      );
      // It rolls every worker to its template (and retires logins it rotated); the previous
      // pods serve meanwhile, so every Tenant stays Ready while Reconciling, then is Current.
      await eventually('every Tenant rolled and Reconciled', () => expectReconciled(tenants), {
        timeoutMs: 60_000,
      });
    });
    expect(await reconciles('error'), 'reconciles that failed after the upgrade').to.equal(0);
    const history = JSON.parse(await helm(['history', release, ...releaseArgs(), '-o', 'json'])) as {
      revision: number;
      status: string;
      chart: string;
    }[];
    expect(history.map((h) => [h.revision, h.status, h.chart])).to.deep.equal([
      [1, 'superseded', `tenantry-${previous.version}`],
      [2, 'deployed', `tenantry-${currentVersion}`],
    ]);
    // Nothing was deleted and created again: not the CRD (and with it every Tenant), not the
    // ServiceAccounts (their tokens would stop working), not the Deployments (a changed selector).
    for (const [key, before] of uidsBefore) {
      const [kind, name] = key.split('/') as [string, string];
      const ns = ['serviceaccount', 'deployment'].includes(kind) ? namespace : undefined;
      expect(await uid(kind, name, ns), `${key} was recreated`).to.equal(before);
    }
    // The CRD is a template of the release, so the upgrade updated it.
    const crd = await getJson<{ metadata: { labels: Record<string, string> } }>([
      'get',
      'crd',
      'tenants.tenantry.io',
    ]);
    expect(crd.metadata.labels['helm.sh/chart']).to.equal(`tenantry-${currentVersion}`);
    // The Deployments rolled out the current templates.
    for (const component of ['operator', 'api']) {
      const deployment = await getJson<{ metadata: { labels: Record<string, string> } }>([
        'get',
        'deployment',
        `${fullname}-${component}`,
        '-n',
        namespace,
      ]);
      expect(deployment.metadata.labels['helm.sh/chart'], component).to.equal(`tenantry-${currentVersion}`);
    }
    await expectReady(tenants);
    expectNoPermissionErrors();
    upgraded = true;
  });

  it('keeps reconciling after the upgrade: a new Tenant becomes Ready and a spec change is applied', async function () {
    this.timeout(120_000);
    if (!upgraded || !platform) throw new Error('the release was not upgraded');
    const [first] = tenants as [string];
    const added = platform.tenantName('c');
    await platform.applyTenant(added);
    await kubectl(['patch', 'tenant', first, '--type=merge', '-p', '{"spec":{"plan":"professional"}}']);
    const [patched] = await Promise.all([
      platform.waitReady(first, 60_000),
      platform.waitReady(added, 90_000),
    ]);
    expect(patched.spec.plan).to.equal('professional');
    expect(patched.metadata.generation).to.be.greaterThan(1);
    tenants.push(added);
    const email = `owner@${added}.example`;
    await seedUser(api!, added, 'owner', email);
    access.set(added, (await signIn(api!, added, email)).access);
    expectNoPermissionErrors();
  });

  it('rolls the chart back: the previous operator refuses Tenants of a newer schema and says why; rolling forward recovers', async function () {
    this.timeout(240_000);
    if (!upgraded) throw new Error('the release was not upgraded');
    await expectReconciled(tenants);
    // Tenant schema migrations only go forward. The current release added one, so the previous
    // operator refuses those databases and says why, rather than run on a schema it does not
    // know: it marks the Tenants Degraded, and the API answers 503 for them until the release
    // rolls forward again. The API process itself stays ready.
    const refused = (tenant: string) =>
      platform!.operator.logs.some(
        (line) =>
          line.includes(`"tenant":"${tenant}"`) && line.includes('it was migrated by a newer version'),
      );
    await withoutInterruption(
      'helm rollback with the previous operator',
      async () => {
        await platform!.restartOperator(async () => {
          await helm(['rollback', release, '1', ...releaseArgs(), '--wait', '--timeout', '90s']);
        }, previousRoot);
        await eventually(
          'the previous operator to refuse every Tenant for its newer schema',
          () => Promise.resolve(tenants.every(refused) ? true : undefined),
          { timeoutMs: 60_000 },
        );
      },
      { tenantsServed: false },
    );
    expect(await reconciles('success'), 'reconciles the previous operator completed').to.equal(0);
    for (const t of await getTenants(tenants)) {
      const ready = t.status?.conditions?.find((c) => c.type === 'Ready');
      expect(ready?.status, `${t.metadata.name} Ready`).to.equal('False');
      expect(ready?.message, `${t.metadata.name} Ready`).to.include('migrated by a newer version');
    }
    const history = JSON.parse(await helm(['history', release, ...releaseArgs(), '-o', 'json'])) as {
      revision: number;
      status: string;
      chart: string;
    }[];
    expect(history.at(-1)).to.deep.include({
      revision: 3,
      status: 'deployed',
      chart: `tenantry-${previous.version}`,
    });
    for (const t of await getTenants(tenants)) {
      const key = `tenant/${t.metadata.name}`;
      if (uidsBefore.has(key))
        expect((t.metadata as { uid?: string }).uid, key).to.equal(uidsBefore.get(key));
    }
    expect(await uid('crd', 'tenants.tenantry.io')).to.equal(uidsBefore.get('crd/tenants.tenantry.io'));
    expectNoPermissionErrors();

    // Forward again, as the upgrade notes advise: the current chart and operator bring every
    // Tenant back to Ready and Reconciled.
    await withoutInterruption(
      'helm upgrade after the rollback',
      async () => {
        await platform!.restartOperator(async () => {
          await upgradeToCurrent();
        });
        await eventually('every Tenant rolled and Reconciled', () => expectReconciled(tenants), {
          timeoutMs: 60_000,
        });
      },
      { tenantsServed: false },
    );
    expect(await reconciles('error'), 'reconciles that failed after rolling forward').to.equal(0);
    for (const tenant of tenants) {
      const res = await api!.call('GET', '/api/users', { token: access.get(tenant)! });
      expect(res.status, `GET /api/users of ${tenant} after rolling forward`).to.equal(200);
    }
    expectNoPermissionErrors();
  });
});
