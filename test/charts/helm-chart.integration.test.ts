// The Helm chart, checked the way a platform engineer meets it: `helm lint`,
// `helm template` of every ci/*-values.yaml scenario, the schema and the value
// guards rejecting bad input, plain assertions on the rendered RBAC, security
// contexts and NetworkPolicies, a server-side dry-run of every manifest, and a
// real `helm install` into the test control plane whose Deployments report
// available (KWOK runs the pods). Finally the real operator reconciles a Tenant
// to Ready with nothing but the chart's ServiceAccount token. The `helm test`
// hook's script runs against a real API (KWOK pods run no code), and the README
// must be what helm-docs generates from values.yaml.
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { parse, parseAllDocuments } from 'yaml';
import { startTestApi } from '../harness/api-server.js';
import type { ControlPlane } from '../harness/control-plane.js';
import { kubernetesVersion, toolPath } from '../harness/control-plane.js';
import { crdDir, installTenantCrd } from '../harness/crds.js';
import { startTestPlatform, type TestPlatform } from '../harness/platform.js';
import { operatorNodeFlags } from '../harness/operator-process.js';
import { uniqueSuffix } from '../harness/services.js';
import { sharedControlPlane } from '../harness/shared-cluster.js';
import { repoRoot } from '../harness/repo-root.js';

const chartDir = join(repoRoot, 'charts/tenantry');
// Offline, helm template assumes Kubernetes v1.20, older than the chart's kubeVersion allows.
const kubeVersion = ['--kube-version', kubernetesVersion];
const scenarios = readdirSync(join(chartDir, 'ci'))
  .filter((file) => file.endsWith('-values.yaml'))
  .sort();

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}

interface Container {
  name: string;
  image: string;
  command?: string[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  securityContext?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string }[];
  livenessProbe?: { httpGet?: { path: string } };
  readinessProbe?: { httpGet?: { path: string } };
  resources?: { requests?: Record<string, unknown>; limits?: Record<string, unknown> };
}

interface PodSpec {
  serviceAccountName?: string;
  securityContext?: Record<string, unknown>;
  containers: Container[];
  initContainers?: Container[];
  volumes?: { name: string; emptyDir?: unknown; configMap?: unknown }[];
  priorityClassName?: string;
  affinity?: Record<string, unknown>;
  topologySpreadConstraints?: Record<string, unknown>[];
  restartPolicy?: string;
}

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  rules?: PolicyRule[];
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
  spec?: any;
}

const helmHome = mkdtempSync(join(tmpdir(), 'tenantry-helm-'));

/** Runs a tool from the tools cache; rejects with stderr on a non-zero exit. */
function tool(name: string, args: readonly string[]): Promise<string> {
  return new Promise((ok, fail) => {
    execFile(
      toolPath(name),
      args,
      {
        maxBuffer: 32 * 1024 * 1024,
        env: {
          ...process.env,
          HELM_CACHE_HOME: join(helmHome, 'cache'),
          HELM_CONFIG_HOME: join(helmHome, 'config'),
          HELM_DATA_HOME: join(helmHome, 'data'),
        },
      },
      (error, stdout, stderr) => {
        if (error) fail(new Error(`${name} ${args[0]} failed: ${stderr.trim() || error.message}`));
        else ok(stdout);
      },
    );
  });
}

/** Runs helm with a private home. */
const helm = (args: readonly string[]) => tool('helm', args);

/** A values file holding `values`, for `-f` (JSON is YAML). */
function valuesFile(values: object): string {
  const file = join(mkdtempSync(join(helmHome, 'values-')), 'values.yaml');
  writeFileSync(file, JSON.stringify(values));
  return file;
}

/** The error helm prints for `args`; fails the test if helm succeeded. */
async function helmError(args: readonly string[]): Promise<string> {
  const outcome = await helm(args).then(
    () => undefined,
    (error: Error) => error.message,
  );
  if (outcome === undefined) throw new Error(`expected helm ${args.join(' ')} to fail`);
  return outcome;
}

async function render(
  scenario: string,
  extra: readonly string[] = [],
  namespace = 'tenantry-system',
): Promise<Manifest[]> {
  const out = await helm([
    'template',
    'tenantry',
    chartDir,
    ...kubeVersion,
    '--namespace',
    namespace,
    '-f',
    join(chartDir, 'ci', scenario),
    ...extra,
  ]);
  return parseAllDocuments(out)
    .map((doc) => doc.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

const ofKind = (manifests: Manifest[], kind: string) => manifests.filter((m) => m.kind === kind);

function named(manifests: Manifest[], kind: string, suffix: string): Manifest {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name.endsWith(suffix));
  if (!found) throw new Error(`no ${kind} named *${suffix} was rendered`);
  return found;
}

function podSpec(workload: Manifest): PodSpec {
  if (workload.kind === 'Pod') return workload.spec as PodSpec;
  return (workload.spec as { template: { spec: PodSpec } }).template.spec;
}

type EnvVar = NonNullable<Container['env']>[number];

function envOf(container: Container): Map<string, EnvVar> {
  return new Map((container.env ?? []).map((e) => [e.name, e]));
}

describe('Helm chart charts/tenantry', function () {
  this.timeout(120_000);
  const rendered = new Map<string, Manifest[]>();

  before(async () => {
    const all = await Promise.all(scenarios.map((scenario) => render(scenario)));
    scenarios.forEach((scenario, i) => rendered.set(scenario, all[i]!));
  });

  after(() => rmSync(helmHome, { recursive: true, force: true }));

  const each = (fn: (manifests: Manifest[], scenario: string) => void) => {
    expect(scenarios).to.include.members(['default-values.yaml', 'minimal-values.yaml', 'ha-values.yaml']);
    for (const scenario of scenarios) fn(rendered.get(scenario) ?? [], scenario);
  };

  describe('lint and render', () => {
    it('passes helm lint --strict with every ci scenario', async () => {
      await Promise.all(
        scenarios.map(async (scenario) => {
          const out = await helm(['lint', '--strict', chartDir, '-f', join(chartDir, 'ci', scenario)]);
          expect(out, scenario).to.match(/1 chart\(s\) linted, 0 chart\(s\) failed/);
        }),
      );
    });

    it('renders the operator and API of every scenario from the one image', () => {
      each((manifests, scenario) => {
        const operator = podSpec(named(manifests, 'Deployment', '-operator')).containers[0]!;
        const api = podSpec(named(manifests, 'Deployment', '-api')).containers[0]!;
        expect(operator.command, scenario).to.deep.equal(['node', ...operatorNodeFlags, 'dist/operator.mjs']);
        expect(api.command, scenario).to.deep.equal(['node', 'dist/api/src/main.js']);
        expect(operator.image, scenario).to.equal(api.image);
      });
      const ha = rendered.get('ha-values.yaml')!;
      expect(podSpec(named(ha, 'Deployment', '-api')).containers[0]!.image).to.equal(
        'registry.example.com/tenantry/tenantry:0.1.0',
      );
    });

    it('runs two operator replicas with leader election on a Lease by default', () => {
      const manifests = rendered.get('default-values.yaml')!;
      const deployment = named(manifests, 'Deployment', '-operator');
      expect(deployment.spec.replicas).to.equal(2);
      const env = envOf(podSpec(deployment).containers[0]!);
      expect(env.get('LEADER_ELECTION')?.value).to.equal('true');
      expect(env.get('LEASE_NAME')?.value).to.equal('tenantry-operator');
      expect(env.get('POD_NAME')?.valueFrom).to.deep.equal({ fieldRef: { fieldPath: 'metadata.name' } });
      expect(env.get('OPERATOR_NAMESPACE')?.value).to.equal('tenantry-system');
      expect(env.get('WORKER_IMAGE')?.value).to.equal('tenantry/tenantry:0.1.0');
      // The Lease the Role lets the operator renew is the one it campaigns for.
      const role = named(manifests, 'Role', 'tenantry-operator');
      const leaseRule = role.rules!.find(
        (r) => r.resources?.includes('leases') && r.verbs.includes('update'),
      );
      expect(leaseRule?.resourceNames).to.deep.equal(['tenantry-operator']);
    });

    it('takes service passwords from existing Secrets and never renders one', () => {
      const manifests = rendered.get('ha-values.yaml')!;
      expect(ofKind(manifests, 'Secret')).to.have.length(0);
      const operatorEnv = envOf(podSpec(named(manifests, 'Deployment', '-operator')).containers[0]!);
      expect(operatorEnv.get('POSTGRES_PASSWORD')?.valueFrom).to.deep.equal({
        secretKeyRef: { name: 'tenantry-postgres', key: 'admin-password' },
      });
      expect(operatorEnv.get('POSTGRES_URL')?.value).to.equal(
        'postgres://tenantry_admin:$(POSTGRES_PASSWORD)@pg.databases.svc.cluster.local:5432/postgres',
      );
      expect(operatorEnv.get('RABBITMQ_URL')?.value).to.equal(
        'amqps://tenantry-operator:$(RABBITMQ_PASSWORD)@rabbitmq.messaging.svc.cluster.local:5671',
      );
      expect(operatorEnv.get('RABBITMQ_MANAGEMENT_URL')?.value).to.equal(
        'https://tenantry-operator:$(RABBITMQ_PASSWORD)@rabbitmq.messaging.svc.cluster.local:15671',
      );
      expect(operatorEnv.get('TENANT_DB_HOST')?.value).to.equal('pg-pooler.databases.svc.cluster.local');
      expect(operatorEnv.get('WORKER_IMAGE')?.value).to.equal(
        'registry.example.com/tenantry/tenantry-worker:0.1.0-worker',
      );
      // Kubernetes expands $(VAR) only from variables defined earlier in the list.
      const names = [...operatorEnv.keys()];
      expect(names.indexOf('POSTGRES_PASSWORD')).to.be.lessThan(names.indexOf('POSTGRES_URL'));
      expect(names.indexOf('RABBITMQ_PASSWORD')).to.be.lessThan(names.indexOf('RABBITMQ_URL'));

      const api = podSpec(named(manifests, 'Deployment', '-api'));
      const apiEnv = envOf(api.containers[0]!);
      expect(apiEnv.get('REDIS_URL')?.value).to.equal(
        'rediss://:$(REDIS_PASSWORD)@redis.cache.svc.cluster.local:6380',
      );
      expect(apiEnv.get('PLATFORM_ADMIN_CLIENT_SECRET')?.valueFrom).to.deep.equal({
        secretKeyRef: { name: 'tenantry-platform-admin', key: 'client-secret' },
      });
      expect(apiEnv.get('JWT_KEYS_FILE')?.value).to.equal('/etc/tenantry/jwt/keys.json');
      expect(api.volumes?.find((v) => v.name === 'jwt-keys')).to.deep.include({
        secret: { secretName: 'tenantry-jwt-keys', items: [{ key: 'keys.json', path: 'keys.json' }] },
      });
      // Every replica the HPA may start counts in the connection budget.
      expect(apiEnv.get('API_REPLICAS')?.value).to.equal('6');
      expect(apiEnv.get('SIGNUP_ENABLED')?.value).to.equal('true');
    });

    it('passes numbers to the processes as plain integers', () => {
      const numeric =
        /^(PORT|HTTP_PORT|.*_SECONDS|.*_DAYS|.*_CONCURRENCY|TENANT_POOLS?_MAX|API_REPLICAS|DB_.*|BODY_LIMIT_BYTES)$/;
      each((manifests, scenario) => {
        for (const deployment of ofKind(manifests, 'Deployment')) {
          const values = [...envOf(podSpec(deployment).containers[0]!).values()].filter((e) =>
            numeric.test(e.name),
          );
          expect(values.length, scenario).to.be.greaterThan(3);
          for (const e of values) expect(e.value, `${scenario} ${e.name}`).to.match(/^\d+$/);
        }
      });
    });

    it('keeps signup off and renders no password variables when no Secret is given', () => {
      const manifests = rendered.get('minimal-values.yaml')!;
      const apiEnv = envOf(podSpec(named(manifests, 'Deployment', '-api')).containers[0]!);
      expect(apiEnv.get('SIGNUP_ENABLED')?.value).to.equal('false');
      expect(apiEnv.has('PLATFORM_ADMIN_CLIENT_ID')).to.equal(false);
      expect(apiEnv.has('JWT_KEYS_FILE')).to.equal(false);
      expect(apiEnv.get('REDIS_URL')?.value).to.equal('redis://10.96.0.22:6379');
      const operatorEnv = envOf(podSpec(named(manifests, 'Deployment', '-operator')).containers[0]!);
      expect(operatorEnv.get('POSTGRES_URL')?.value).to.equal(
        'postgres://tenantry_admin@10.96.0.20:5432/postgres',
      );
      expect(operatorEnv.has('POSTGRES_PASSWORD')).to.equal(false);
    });

    it('autoscales the API with an HPA and PodDisruptionBudgets when asked', () => {
      const ha = rendered.get('ha-values.yaml')!;
      const hpa = named(ha, 'HorizontalPodAutoscaler', '-api');
      expect(hpa.spec).to.deep.include({ minReplicas: 3, maxReplicas: 6 });
      expect(hpa.spec.scaleTargetRef.name).to.equal(named(ha, 'Deployment', '-api').metadata.name);
      expect(named(ha, 'Deployment', '-api').spec).to.not.have.property('replicas');
      expect(ofKind(ha, 'PodDisruptionBudget').map((p) => p.metadata.name)).to.have.members([
        'tenantry-operator',
        'tenantry-api',
      ]);
      const minimal = rendered.get('minimal-values.yaml')!;
      expect(ofKind(minimal, 'HorizontalPodAutoscaler')).to.have.length(0);
      expect(ofKind(minimal, 'PodDisruptionBudget')).to.have.length(0);
    });

    it('renders the CRD from crds/ behind crds.install, kept on uninstall', () => {
      const source = readFileSync(join(crdDir, 'tenants.tenantry.io.yaml'), 'utf8');
      expect(readFileSync(join(chartDir, 'files/tenants.tenantry.io.yaml'), 'utf8')).to.equal(
        source,
        'charts/tenantry/files/tenants.tenantry.io.yaml differs from crds/; copy it again',
      );
      const crd = named(
        rendered.get('default-values.yaml')!,
        'CustomResourceDefinition',
        'tenants.tenantry.io',
      );
      expect(crd.spec).to.deep.equal((parse(source) as Manifest).spec);
      expect(crd.metadata.annotations?.['helm.sh/resource-policy']).to.equal('keep');
      expect(ofKind(rendered.get('minimal-values.yaml')!, 'CustomResourceDefinition')).to.have.length(0);
    });
  });

  describe('pod settings and images', () => {
    const digest = `sha256:${'0123456789abcdef'.repeat(4)}`;
    const deployments = (manifests: Manifest[]) =>
      ['operator', 'api'].map((component) => ({
        component,
        deployment: named(manifests, 'Deployment', `-${component}`),
      }));

    it('runs two API replicas by default, spread over nodes, with a PodDisruptionBudget that protects one', () => {
      const manifests = rendered.get('default-values.yaml')!;
      for (const { component, deployment } of deployments(manifests)) {
        expect(deployment.spec.replicas, component).to.equal(2);
        const selector = deployment.spec.selector.matchLabels as Record<string, string>;
        expect(podSpec(deployment).topologySpreadConstraints, component).to.deep.equal([
          {
            maxSkew: 1,
            topologyKey: 'kubernetes.io/hostname',
            whenUnsatisfiable: 'ScheduleAnyway',
            labelSelector: { matchLabels: selector },
          },
        ]);
        expect(selector['app.kubernetes.io/component']).to.equal(component);
        const pdb = named(manifests, 'PodDisruptionBudget', `-${component}`);
        expect(pdb.spec.selector.matchLabels).to.deep.equal(selector);
        expect(pdb.spec.maxUnavailable).to.be.lessThan(deployment.spec.replicas as number);
      }
      // The two replicas fit the default connection budget: 8 pools x 5 connections x 2 <= 100 - 20.
      const env = envOf(podSpec(named(manifests, 'Deployment', '-api')).containers[0]!);
      expect(env.get('API_REPLICAS')?.value).to.equal('2');
      expect(
        Number(env.get('TENANT_POOLS_MAX')?.value) * Number(env.get('TENANT_POOL_MAX')?.value) * 2,
      ).to.be.at.most(
        Number(env.get('DB_MAX_CONNECTIONS')?.value) - Number(env.get('DB_RESERVED_CONNECTIONS')?.value),
      );
    });

    it('renders every pod setting given for the operator and the API', async () => {
      const perComponent = (component: string) => ({
        podLabels: { team: 'platform', 'app.kubernetes.io/component': 'not-the-selector' },
        podAnnotations: { 'example.com/owner': component },
        priorityClassName: `${component}-critical`,
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                { matchExpressions: [{ key: 'kubernetes.io/arch', operator: 'In', values: ['amd64'] }] },
              ],
            },
          },
        },
        topologySpreadConstraints: [
          { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'DoNotSchedule' },
          {
            maxSkew: 2,
            topologyKey: 'kubernetes.io/hostname',
            whenUnsatisfiable: 'ScheduleAnyway',
            labelSelector: { matchLabels: { team: 'platform' } },
          },
        ],
        extraEnv: [
          { name: 'NODE_EXTRA_CA_CERTS', value: '/etc/ssl/corp/ca.pem' },
          { name: 'FROM_SECRET', valueFrom: { secretKeyRef: { name: 'extra', key: 'value' } } },
        ],
        extraVolumes: [{ name: 'corp-ca', configMap: { name: 'corp-ca' } }],
        extraVolumeMounts: [{ name: 'corp-ca', mountPath: '/etc/ssl/corp', readOnly: true }],
        serviceAccount: {
          annotations: { 'eks.amazonaws.com/role-arn': `arn:aws:iam::123456789012:role/${component}` },
        },
      });
      const manifests = await render('default-values.yaml', [
        '-f',
        valuesFile({
          operator: perComponent('operator'),
          api: { ...perComponent('api'), service: { annotations: { 'example.com/lb': 'internal' } } },
        }),
      ]);
      for (const { component, deployment } of deployments(manifests)) {
        const pod = podSpec(deployment);
        const template = deployment.spec.template.metadata as Manifest['metadata'];
        // Extra labels join the chart's; they cannot take the selector labels over.
        expect(template.labels).to.deep.include({
          team: 'platform',
          'app.kubernetes.io/component': component,
        });
        expect(template.annotations).to.deep.equal({ 'example.com/owner': component });
        expect(pod.priorityClassName).to.equal(`${component}-critical`);
        expect(pod.affinity).to.have.keys('nodeAffinity');
        expect(pod.topologySpreadConstraints).to.deep.equal([
          {
            maxSkew: 1,
            topologyKey: 'topology.kubernetes.io/zone',
            whenUnsatisfiable: 'DoNotSchedule',
            labelSelector: { matchLabels: deployment.spec.selector.matchLabels },
          },
          {
            maxSkew: 2,
            topologyKey: 'kubernetes.io/hostname',
            whenUnsatisfiable: 'ScheduleAnyway',
            labelSelector: { matchLabels: { team: 'platform' } },
          },
        ]);
        const container = pod.containers[0]!;
        const names = (container.env ?? []).map((e) => e.name);
        // After the chart's own variables, so they may refer to them.
        expect(names.slice(-2)).to.deep.equal(['NODE_EXTRA_CA_CERTS', 'FROM_SECRET']);
        expect(envOf(container).get('FROM_SECRET')?.valueFrom).to.deep.equal({
          secretKeyRef: { name: 'extra', key: 'value' },
        });
        expect(pod.volumes).to.deep.include({ name: 'corp-ca', configMap: { name: 'corp-ca' } });
        expect(pod.volumes).to.deep.include({ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } });
        expect(container.volumeMounts).to.deep.include({
          name: 'corp-ca',
          mountPath: '/etc/ssl/corp',
          readOnly: true,
        });
        expect(container.volumeMounts).to.deep.include({ name: 'tmp', mountPath: '/tmp' });
        const sa = named(manifests, 'ServiceAccount', `-${component}`);
        expect(sa.metadata.annotations).to.deep.equal({
          'eks.amazonaws.com/role-arn': `arn:aws:iam::123456789012:role/${component}`,
        });
      }
      expect(named(manifests, 'Service', '-api').metadata.annotations).to.deep.equal({
        'example.com/lb': 'internal',
      });
      // Nothing set: no annotations rendered at all.
      const defaults = rendered.get('default-values.yaml')!;
      expect(named(defaults, 'Service', '-api').metadata).to.not.have.property('annotations');
      expect(named(defaults, 'ServiceAccount', '-api').metadata).to.not.have.property('annotations');
    });

    it('takes both security contexts from values, and drops the fixed ids for OpenShift restricted-v2', async () => {
      const ids = ['runAsUser', 'runAsGroup'];
      const nulls = (component: string) => [
        '--set',
        [...ids, 'fsGroup'].map((k) => `${component}.podSecurityContext.${k}=null`).join(','),
        '--set',
        ids.map((k) => `${component}.securityContext.${k}=null`).join(','),
      ];
      const openshift = await render('default-values.yaml', [...nulls('operator'), ...nulls('api')]);
      for (const { component, deployment } of deployments(openshift)) {
        const pod = podSpec(deployment);
        const hook = component === 'api' ? podSpec(named(openshift, 'Pod', '-api-test')) : undefined;
        for (const spec of hook ? [pod, hook] : [pod]) {
          expect(spec.securityContext, component).to.deep.equal({
            runAsNonRoot: true,
            seccompProfile: { type: 'RuntimeDefault' },
          });
          expect(spec.containers[0]!.securityContext, component).to.deep.equal({
            runAsNonRoot: true,
            readOnlyRootFilesystem: true,
            allowPrivilegeEscalation: false,
            capabilities: { drop: ['ALL'] },
            seccompProfile: { type: 'RuntimeDefault' },
          });
        }
      }
      // The defaults are what the chart hard-coded before they became values.
      for (const { deployment } of deployments(rendered.get('default-values.yaml')!)) {
        expect(podSpec(deployment).securityContext).to.deep.equal({
          runAsNonRoot: true,
          runAsUser: 10001,
          runAsGroup: 10001,
          fsGroup: 10001,
          seccompProfile: { type: 'RuntimeDefault' },
        });
      }
      const custom = await render('default-values.yaml', [
        '--set',
        'api.podSecurityContext.fsGroupChangePolicy=OnRootMismatch,operator.securityContext.runAsUser=2000',
      ]);
      expect(podSpec(named(custom, 'Deployment', '-api')).securityContext).to.include({
        fsGroupChangePolicy: 'OnRootMismatch',
        fsGroup: 10001,
      });
      expect(podSpec(named(custom, 'Deployment', '-operator')).containers[0]!.securityContext).to.include({
        runAsUser: 2000,
        readOnlyRootFilesystem: true,
      });
    });

    it('pins every image by digest and rewrites every registry with global.imageRegistry', async () => {
      const imagesOf = (manifests: Manifest[]) => ({
        operator: podSpec(named(manifests, 'Deployment', '-operator')).containers[0]!.image,
        api: podSpec(named(manifests, 'Deployment', '-api')).containers[0]!.image,
        test: podSpec(named(manifests, 'Pod', '-api-test')).containers[0]!.image,
        worker: envOf(podSpec(named(manifests, 'Deployment', '-operator')).containers[0]!).get('WORKER_IMAGE')
          ?.value,
      });
      const same = (image: string) => ({ operator: image, api: image, test: image, worker: image });
      expect(imagesOf(rendered.get('default-values.yaml')!)).to.deep.equal(same('tenantry/tenantry:0.1.0'));

      const pinned = await render('default-values.yaml', ['--set', `image.digest=${digest}`]);
      expect(imagesOf(pinned)).to.deep.equal(same(`tenantry/tenantry@${digest}`));

      // A registry host in the repository is replaced; a repository without one gets it in front.
      const mirrored = await render('ha-values.yaml', [
        '--set',
        'global.imageRegistry=mirror.example.com:5000',
      ]);
      expect(imagesOf(mirrored)).to.deep.equal({
        ...same('mirror.example.com:5000/tenantry/tenantry:0.1.0'),
        worker: 'mirror.example.com:5000/tenantry/tenantry-worker:0.1.0-worker',
      });
      const both = await render('default-values.yaml', [
        '--set',
        `global.imageRegistry=mirror.example.com/hub,image.digest=${digest}`,
      ]);
      expect(imagesOf(both)).to.deep.equal(same(`mirror.example.com/hub/tenantry/tenantry@${digest}`));

      // A worker image of its own keeps its tag unless given a digest of its own.
      const worker = await render('default-values.yaml', [
        '--set',
        `image.digest=${digest},worker.image.repository=example.com/worker`,
      ]);
      expect(imagesOf(worker).worker).to.equal('example.com/worker:0.1.0');
      const workerDigest = `sha256:${'f'.repeat(64)}`;
      const workerPinned = await render('default-values.yaml', [
        '--set',
        `worker.image.repository=example.com/worker,worker.image.digest=${workerDigest}`,
      ]);
      expect(imagesOf(workerPinned)).to.deep.include({
        api: 'tenantry/tenantry:0.1.0',
        worker: `example.com/worker@${workerDigest}`,
      });
    });
  });

  describe('helm test hook', () => {
    const hookOf = (manifests: Manifest[]) => named(manifests, 'Pod', '-api-test');

    it('is a test hook Pod of the chart image that calls /readyz and the JWKS through the Service', () => {
      each((manifests, scenario) => {
        const hook = hookOf(manifests);
        expect(hook.metadata.annotations?.['helm.sh/hook'], scenario).to.equal('test');
        const pod = podSpec(hook);
        expect(pod.restartPolicy).to.equal('Never');
        const container = pod.containers[0]!;
        expect(container.image, scenario).to.equal(
          podSpec(named(manifests, 'Deployment', '-api')).containers[0]!.image,
        );
        expect(container.command?.slice(0, 2)).to.deep.equal(['node', '-e']);
        expect(container.command?.[2]).to.include("'/readyz'").and.to.include("'/.well-known/jwks.json'");
        expect(envOf(container).get('API_URL')?.value).to.equal(
          'http://tenantry-api.tenantry-system.svc:8080',
        );
        expect(container.securityContext).to.deep.include({
          readOnlyRootFilesystem: true,
          runAsNonRoot: true,
        });
      });
    });

    /** Runs the hook's script the way its container does, against `apiUrl`; resolves with exit code and output. */
    async function runHookScript(apiUrl: string): Promise<{ code: number; output: string }> {
      const command = podSpec(hookOf(rendered.get('default-values.yaml')!)).containers[0]!.command!;
      return new Promise((ok) => {
        execFile(
          process.execPath,
          command.slice(1),
          { env: { ...process.env, API_URL: apiUrl }, timeout: 30_000 },
          (error, stdout, stderr) =>
            ok({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}` }),
        );
      });
    }

    it('passes against a real API and fails when it is down or publishes no key', async () => {
      const cp = await sharedControlPlane();
      await installTenantCrd(cp);
      const namespace = `helm-hook-${uniqueSuffix().slice(-6)}`;
      const api = await startTestApi(cp.kubeconfigPath, namespace);
      let up: { code: number; output: string };
      try {
        up = await runHookScript(api.url);
      } finally {
        await api.close();
      }
      expect(up.output).to.include('GET /readyz: 200').and.to.include('JWKS: 1 key(s)');
      expect(up.code, up.output).to.equal(0);

      const down = await runHookScript(api.url);
      expect(down.code, down.output).to.not.equal(0);

      // Ready, but an empty key set: tokens could not be verified.
      const noKeys = createServer((req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(req.url === '/readyz' ? '{"status":"ready"}' : '{"keys":[]}');
      });
      await new Promise<void>((ok) => noKeys.listen(0, '127.0.0.1', ok));
      try {
        const empty = await runHookScript(`http://127.0.0.1:${(noKeys.address() as AddressInfo).port}`);
        expect(empty.code, empty.output).to.not.equal(0);
        expect(empty.output).to.include('the JWKS holds no signing key');
      } finally {
        noKeys.close();
      }
    });
  });

  describe('README', () => {
    it('is what helm-docs generates from values.yaml (make chart-docs)', async () => {
      // The flags `make chart-docs` uses, so the two cannot drift apart.
      const makefile = readFileSync(join(repoRoot, 'Makefile'), 'utf8');
      const flags = /^HELM_DOCS := \S+ (.+)$/m.exec(makefile)?.[1]?.split(' ');
      expect(flags, 'HELM_DOCS in the Makefile').to.include('--chart-search-root');
      const generated = await new Promise<string>((ok, fail) => {
        execFile(
          toolPath('helm-docs'),
          [...flags!, '--dry-run', '--log-level', 'error'],
          { cwd: repoRoot },
          (error, stdout, stderr) => (error ? fail(new Error(stderr || error.message)) : ok(stdout)),
        );
      });
      expect(generated).to.include('| api.replicaCount |');
      expect(readFileSync(join(chartDir, 'README.md'), 'utf8') === generated).to.equal(
        true,
        'charts/tenantry/README.md is stale: run make chart-docs',
      );
    });
  });

  describe('bad values', () => {
    const withDefaults = [
      'template',
      'tenantry',
      chartDir,
      ...kubeVersion,
      '-f',
      join(chartDir, 'ci', 'default-values.yaml'),
    ];

    /** Renders each case on top of the default scenario (which renders cleanly) and checks helm's error. */
    async function expectRejected(cases: { args: string[]; mentions: (string | RegExp)[] }[]): Promise<void> {
      const errors = await Promise.all(cases.map((c) => helmError([...withDefaults, ...c.args])));
      cases.forEach((c, i) => {
        for (const mention of c.mentions) {
          if (typeof mention === 'string') expect(errors[i], c.args.join(' ')).to.include(mention);
          else expect(errors[i], c.args.join(' ')).to.match(mention);
        }
      });
    }

    it('rejects a negative replica count, naming the value', () =>
      expectRejected([
        { args: ['--set', 'operator.replicaCount=-1'], mentions: ['/operator/replicaCount', /minimum/] },
        { args: ['--set', 'api.replicaCount=-3'], mentions: ['/api/replicaCount', /minimum/] },
      ]));

    it('rejects an unknown key at any depth', () =>
      expectRejected([
        { args: ['--set', 'api.replicas=2'], mentions: ["'replicas'", /additional propert/i] },
        { args: ['--set', 'databse.host=db'], mentions: ["'databse'", /additional propert/i] },
        { args: ['--set', 'operator.resources.requests.gpu=1'], mentions: ["'gpu'", /additional propert/i] },
      ]));

    it('rejects a missing or empty database host', async () => {
      await expectRejected([{ args: ['--set', 'postgres.host=null'], mentions: ['/postgres', "'host'"] }]);
      // The chart's own values.yaml leaves every service host empty on purpose.
      const empty = await helmError(['template', 'tenantry', chartDir, ...kubeVersion]);
      for (const path of ['/postgres/host', '/rabbitmq/host', '/redis/host']) expect(empty).to.include(path);
    });

    it('rejects values of the wrong type or shape', () =>
      expectRejected([
        { args: ['--set', 'postgres.port=70000'], mentions: ['/postgres/port'] },
        { args: ['--set-string', 'api.replicaCount=two'], mentions: ['/api/replicaCount'] },
        { args: ['--set', 'postgres.cidrs={not-a-cidr}'], mentions: ['/postgres/cidrs/0'] },
        { args: ['--set', 'image.pullPolicy=Sometimes'], mentions: ['/image/pullPolicy'] },
        { args: ['--set', 'api.signup.plan=platinum'], mentions: ['/api/signup/plan'] },
      ]));

    it('rejects bad pod settings and image references, naming the value', () =>
      expectRejected([
        { args: ['--set', 'image.digest=latest'], mentions: ['/image/digest'] },
        { args: ['--set', 'image.digest=sha256:abc'], mentions: ['/image/digest'] },
        { args: ['--set', 'worker.image.digest=md5:00'], mentions: ['/worker/image/digest'] },
        {
          args: ['--set', 'global.imageRegistry=https://mirror.example.com'],
          mentions: ['/global/imageRegistry'],
        },
        {
          args: ['--set', 'operator.podSecurityContext.runAsUser=-1'],
          mentions: ['/operator/podSecurityContext/runAsUser', /minimum/],
        },
        {
          args: ['--set', 'api.podSecurityContext.fsGroupChangePolicy=Sometimes'],
          mentions: ['/api/podSecurityContext/fsGroupChangePolicy'],
        },
        {
          args: ['--set-string', 'api.securityContext.readOnlyRootFilesystem=yes'],
          mentions: ['/api/securityContext/readOnlyRootFilesystem'],
        },
        {
          args: ['--set', 'api.securityContext.runAsUsr=1'],
          mentions: ["'runAsUsr'", /additional propert/i],
        },
        {
          args: ['--set', 'operator.securityContext.seccompProfile.type=Permissive'],
          mentions: ['/operator/securityContext/seccompProfile/type'],
        },
        { args: ['--set-json', 'api.affinity={"nodeAfinity":{}}'], mentions: ["'nodeAfinity'"] },
        {
          args: [
            '--set-json',
            'api.topologySpreadConstraints=[{"maxSkew":1,"topologyKey":"zone","whenUnsatisfiable":"Maybe"}]',
          ],
          mentions: ['/api/topologySpreadConstraints/0/whenUnsatisfiable'],
        },
        {
          args: ['--set-json', 'operator.topologySpreadConstraints=[{"maxSkew":0,"topologyKey":"zone"}]'],
          mentions: ['/operator/topologySpreadConstraints/0', "'whenUnsatisfiable'"],
        },
        {
          args: ['--set', 'operator.priorityClassName=High_Priority'],
          mentions: ['/operator/priorityClassName'],
        },
        { args: ['--set-json', 'api.extraEnv=[{"value":"x"}]'], mentions: ['/api/extraEnv/0', "'name'"] },
        {
          args: ['--set-json', 'api.extraEnv=[{"name":"1BAD","value":"x"}]'],
          mentions: ['/api/extraEnv/0/name'],
        },
        {
          args: ['--set-json', 'operator.extraEnv=[{"name":"N","value":1}]'],
          mentions: ['/operator/extraEnv/0/value'],
        },
        {
          args: ['--set-json', 'api.extraVolumes=[{"name":"Corp_CA","configMap":{"name":"ca"}}]'],
          mentions: ['/api/extraVolumes/0/name'],
        },
        { args: ['--set-json', 'api.extraVolumes=[{"name":"ca"}]'], mentions: ['/api/extraVolumes/0'] },
        {
          args: ['--set-json', 'operator.extraVolumeMounts=[{"name":"ca","mountPath":"etc/ssl"}]'],
          mentions: ['/operator/extraVolumeMounts/0/mountPath'],
        },
        { args: ['--set', 'api.podLabels.team=has space'], mentions: ['/api/podLabels/team'] },
        {
          args: ['--set', 'operator.podAnnotations.replicas=2'],
          mentions: ['/operator/podAnnotations/replicas'],
        },
        {
          args: ['--set', 'api.service.annotations.internal=true'],
          mentions: ['/api/service/annotations/internal'],
        },
        {
          args: ['--set', 'operator.serviceAccount.annotations.role=1'],
          mentions: ['/operator/serviceAccount/annotations/role'],
        },
      ]));

    it('lists every problem the schema cannot see in one failure', () =>
      expectRejected([
        {
          args: [
            '--set',
            'api.autoscaling.enabled=true,api.autoscaling.minReplicas=8,api.autoscaling.maxReplicas=4',
            '--set',
            'operator.leaderElection.enabled=false',
          ],
          mentions: [
            'api.autoscaling.minReplicas (8) is greater than api.autoscaling.maxReplicas (4)',
            'operator.leaderElection.enabled must be true',
            // 8 pools x 5 connections x 4 replicas = 160 > 100 - 20.
            '= 160 exceeds',
          ],
        },
      ]));
  });

  describe('RBAC', () => {
    const rolesOf = (manifests: Manifest[]) =>
      manifests.filter((m) => m.kind === 'Role' || m.kind === 'ClusterRole');

    it('has no wildcard verb, resource or API group', () => {
      each((manifests, scenario) => {
        const roles = rolesOf(manifests);
        expect(roles.length, scenario).to.be.greaterThan(0);
        for (const role of roles) {
          for (const rule of role.rules ?? []) {
            const words = [...rule.verbs, ...(rule.resources ?? []), ...(rule.apiGroups ?? [])];
            expect(words, `${scenario} ${role.kind}/${role.metadata.name}`).to.not.include('*');
            for (const verb of ['escalate', 'bind', 'impersonate']) expect(rule.verbs).to.not.include(verb);
          }
        }
      });
    });

    it('lets the API read Secrets in the secrets namespace only, and write only Tenants', () => {
      const manifests = rendered.get('default-values.yaml')!;
      const clusterRole = named(manifests, 'ClusterRole', '-api');
      expect(clusterRole.rules).to.deep.equal([
        {
          apiGroups: ['tenantry.io'],
          resources: ['tenants'],
          verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'],
        },
      ]);
      // Not the release namespace: the PostgreSQL and RabbitMQ admin credentials live there.
      const role = named(manifests, 'Role', '-api');
      expect(role.metadata.namespace).to.equal('tenantry-system-secrets');
      expect(role.rules).to.deep.equal([
        { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch'] },
      ]);
      const binding = named(manifests, 'RoleBinding', '-api');
      expect(binding.metadata.namespace).to.equal('tenantry-system-secrets');
      expect(binding.roleRef).to.deep.include({ kind: 'Role', name: role.metadata.name });
      expect(ofKind(manifests, 'Role').filter((r) => r.metadata.name.endsWith('-api'))).to.have.length(1);
      // The API and the operator agree on where the Secrets it reads live; the namespace outlives the release.
      for (const component of ['api', 'operator']) {
        const env = envOf(podSpec(named(manifests, 'Deployment', `-${component}`)).containers[0]!);
        expect(env.get('PLATFORM_SECRETS_NAMESPACE')?.value, component).to.equal('tenantry-system-secrets');
      }
      const namespace = named(manifests, 'Namespace', 'tenantry-system-secrets');
      expect(namespace.metadata.annotations?.['helm.sh/resource-policy']).to.equal('keep');
      expect(binding.subjects).to.deep.equal([
        { kind: 'ServiceAccount', name: 'tenantry-api', namespace: 'tenantry-system' },
      ]);
    });

    it('gives the operator only what it reconciles, with no delete and no Secret listing', () => {
      const manifests = rendered.get('default-values.yaml')!;
      const rules = named(manifests, 'ClusterRole', '-operator').rules!;
      const granted = (group: string, resource: string) =>
        rules
          .filter((r) => r.apiGroups?.includes(group) && r.resources?.includes(resource))
          .flatMap((r) => r.verbs)
          .sort();
      expect(granted('tenantry.io', 'tenants')).to.deep.equal(['get', 'list', 'patch', 'watch']);
      expect(granted('tenantry.io', 'tenants/status')).to.deep.equal(['get', 'patch']);
      expect(granted('tenantry.io', 'tenants/finalizers')).to.deep.equal(['update']);
      expect(granted('', 'secrets')).to.deep.equal(['create', 'get', 'patch']);
      for (const [group, resource] of [
        ['', 'serviceaccounts'],
        ['', 'resourcequotas'],
        ['', 'limitranges'],
        ['networking.k8s.io', 'networkpolicies'],
      ] as const) {
        expect(granted(group, resource), resource).to.deep.equal(['create', 'patch']);
      }
      // Deployments are also listed and watched, to follow worker rollouts.
      expect(granted('apps', 'deployments')).to.deep.equal(['create', 'list', 'patch', 'watch']);
      const everything = rules.flatMap((r) => r.resources ?? []).sort();
      expect(everything).to.deep.equal(
        [
          'deployments',
          'limitranges',
          'namespaces',
          'networkpolicies',
          'resourcequotas',
          'secrets',
          'serviceaccounts',
          'tenants',
          'tenants/finalizers',
          'tenants/status',
        ].sort(),
      );
      const verbs = rules.flatMap((r) => r.verbs);
      for (const verb of ['delete', 'deletecollection']) expect(verbs).to.not.include(verb);
      const events = named(manifests, 'Role', '-operator-events');
      expect(events.metadata.namespace).to.equal('default');
      expect(events.rules).to.deep.equal([
        { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
      ]);
    });
  });

  describe('pod security', () => {
    it('runs every container non-root, read-only, unprivileged, seccomp RuntimeDefault, with a /tmp emptyDir', () => {
      each((manifests, scenario) => {
        const deployments = ofKind(manifests, 'Deployment');
        expect(deployments, scenario).to.have.length(2);
        for (const deployment of deployments) {
          const pod = podSpec(deployment);
          const where = `${scenario} ${deployment.metadata.name}`;
          expect(pod.securityContext, where).to.deep.include({
            runAsNonRoot: true,
            seccompProfile: { type: 'RuntimeDefault' },
          });
          for (const container of [...pod.containers, ...(pod.initContainers ?? [])]) {
            expect(container.securityContext, `${where}/${container.name}`).to.deep.include({
              runAsNonRoot: true,
              readOnlyRootFilesystem: true,
              allowPrivilegeEscalation: false,
              capabilities: { drop: ['ALL'] },
              seccompProfile: { type: 'RuntimeDefault' },
            });
            expect(container.securityContext?.runAsUser).to.be.a('number').and.greaterThan(0);
            expect(container.volumeMounts).to.deep.include({ name: 'tmp', mountPath: '/tmp' });
            expect(container.livenessProbe?.httpGet?.path).to.equal('/healthz');
            expect(container.readinessProbe?.httpGet?.path).to.equal('/readyz');
            expect(container.resources?.requests).to.have.keys('cpu', 'memory');
            expect(container.resources?.limits).to.have.keys('cpu', 'memory');
          }
          expect(pod.volumes?.find((v) => v.name === 'tmp')?.emptyDir).to.not.equal(undefined);
        }
      });
    });
  });

  describe('NetworkPolicies', () => {
    it('isolate the operator and API pods by default, allowing DNS and the Kubernetes API out', () => {
      const manifests = rendered.get('default-values.yaml')!;
      const policies = ofKind(manifests, 'NetworkPolicy');
      expect(policies).to.have.length(2);
      for (const deployment of ofKind(manifests, 'Deployment')) {
        const podLabels = (deployment.spec.template.metadata.labels ?? {}) as Record<string, string>;
        const selecting = policies.filter((p) =>
          Object.entries(p.spec.podSelector.matchLabels as Record<string, string>).every(
            ([k, v]) => podLabels[k] === v,
          ),
        );
        expect(selecting, deployment.metadata.name).to.have.length(1);
        const policy = selecting[0]!;
        expect(policy.spec.policyTypes).to.have.members(['Ingress', 'Egress']);
        const ports = (policy.spec.egress as { ports: { port: number; protocol: string }[] }[]).flatMap(
          (rule) => rule.ports.map((p) => `${p.protocol}/${p.port}`),
        );
        expect(ports).to.include.members(['UDP/53', 'TCP/53', 'TCP/443', 'TCP/6443', 'TCP/5432']);
      }
      const api = named(manifests, 'NetworkPolicy', '-api');
      const apiPorts = (api.spec.egress as { ports: { port: number }[] }[]).flatMap((r) =>
        r.ports.map((p) => p.port),
      );
      expect(apiPorts).to.include(6379);
      const operator = named(manifests, 'NetworkPolicy', '-operator');
      const operatorPorts = (operator.spec.egress as { ports: { port: number }[] }[]).flatMap((r) =>
        r.ports.map((p) => p.port),
      );
      expect(operatorPorts).to.include(15672).and.to.not.include(6379);
    });

    it('narrow egress to the configured CIDRs and ingress to the listed namespaces', () => {
      const manifests = rendered.get('ha-values.yaml')!;
      const operator = named(manifests, 'NetworkPolicy', '-operator');
      const egress = operator.spec.egress as {
        to?: { ipBlock?: { cidr: string } }[];
        ports: { port: number }[];
      }[];
      const toPort = (port: number) =>
        egress.find((r) => r.ports.some((p) => p.port === port))?.to?.map((t) => t.ipBlock?.cidr);
      expect(toPort(5432)).to.deep.equal(['10.20.0.0/24']);
      expect(toPort(15671)).to.deep.equal(['10.20.1.0/24']);
      expect(toPort(6443)).to.deep.equal(['10.0.0.1/32', '172.18.0.2/32']);
      const api = named(manifests, 'NetworkPolicy', '-api');
      expect(JSON.stringify(api.spec.ingress)).to.include('ingress-nginx');
      expect(ofKind(rendered.get('minimal-values.yaml')!, 'NetworkPolicy')).to.have.length(0);
    });
  });

  describe('on the control plane', () => {
    let cp: ControlPlane;
    const run = uniqueSuffix().slice(-6);
    const namespace = `helm-${run}`;
    const release = `t${run}`;
    const fullname = `${release}-tenantry`;
    const secretsNamespace = `${namespace}-secrets`;
    const dryRunSecretsNamespace = `${namespace}-dry`;
    // A second fake node, so the spread of the replicas over nodes shows.
    const secondNode = `kwok-node-${namespace}`;
    let installed = false;

    before(async () => {
      cp = await sharedControlPlane();
      await installTenantCrd(cp);
      await cp.kubectl(['create', 'namespace', namespace]);
    });

    after(async () => {
      if (installed) {
        await helm(['uninstall', release, '--namespace', namespace, '--kubeconfig', cp.kubeconfigPath]).catch(
          () => undefined,
        );
      }
      for (const ns of [namespace, secretsNamespace, dryRunSecretsNamespace]) {
        await cp.kubectl(['delete', 'namespace', ns, '--wait=false']).catch(() => undefined);
      }
      await cp
        .kubectl(['delete', 'node', secondNode, '--ignore-not-found', '--wait=false'])
        .catch(() => undefined);
    });

    it('accepts every rendered manifest of every scenario in a server-side dry run', async () => {
      // A dry run creates nothing, so the Roles need a secrets namespace that exists already.
      await cp.kubectl(['create', 'namespace', dryRunSecretsNamespace]);
      for (const scenario of scenarios) {
        const manifests = await render(
          scenario,
          ['--set', `secretsNamespace.name=${dryRunSecretsNamespace}`],
          namespace,
        );
        const yaml = manifests.map((m) => JSON.stringify(m)).join('\n---\n');
        const out = await cp.kubectl(['apply', '--dry-run=server', '-f', '-'], yaml);
        const lines = out.trim().split('\n');
        expect(lines, scenario).to.have.length(manifests.length);
        for (const line of lines) expect(line, scenario).to.match(/\(server dry run\)$/);
      }
    });

    it('installs with helm, prints NOTES, and both Deployments become available, spread over nodes', async function () {
      if (cp.hasKwok) {
        await cp.kubectl(
          ['apply', '-f', '-'],
          JSON.stringify({
            apiVersion: 'v1',
            kind: 'Node',
            metadata: {
              name: secondNode,
              annotations: { 'node.alpha.kubernetes.io/ttl': '0', 'kwok.x-k8s.io/node': 'fake' },
              labels: { 'kubernetes.io/hostname': secondNode, 'kubernetes.io/os': 'linux', type: 'kwok' },
            },
            status: {
              allocatable: { cpu: '32', memory: '256Gi', pods: '110' },
              capacity: { cpu: '32', memory: '256Gi', pods: '110' },
            },
          }),
        );
        await cp.kubectl(['wait', '--for=condition=Ready', `node/${secondNode}`, '--timeout=30s']);
      }
      // Credentials the default scenario points at; KWOK runs the pods without reading them.
      await cp.kubectl(
        ['apply', '-n', namespace, '-f', '-'],
        [
          'apiVersion: v1\nkind: Secret\nmetadata: {name: tenantry-postgres}\nstringData: {password: not-used}',
          'apiVersion: v1\nkind: Secret\nmetadata: {name: tenantry-rabbitmq}\nstringData: {password: not-used}',
        ].join('\n---\n'),
      );
      // The CRD is shared with the other suites on this control plane, so this release does not own it.
      const out = await helm([
        'install',
        release,
        chartDir,
        '--namespace',
        namespace,
        '--kubeconfig',
        cp.kubeconfigPath,
        '-f',
        join(chartDir, 'ci', 'default-values.yaml'),
        '--set',
        'crds.install=false',
      ]);
      installed = true;
      // NOTES.txt: a sample Tenant and how to check it, and where the signing keys come from.
      const notes = out.slice(out.indexOf('NOTES:'));
      expect(notes).to.include('kind: Tenant').and.to.include('kubectl get tenants');
      expect(notes).to.include(`deployment/${fullname}-operator`);
      expect(notes).to.include('tenantry-api-signing-keys');
      expect(notes).to.include(`helm test ${release} -n ${namespace}`);
      const deployments = JSON.parse(
        await cp.kubectl(['get', 'deployments', '-n', namespace, '-o', 'json']),
      ) as {
        items: { metadata: { name: string } }[];
      };
      expect(deployments.items.map((d) => d.metadata.name)).to.have.members([
        `${fullname}-operator`,
        `${fullname}-api`,
      ]);
      const kinds = await cp.kubectl([
        'get',
        'serviceaccounts,roles,rolebindings,networkpolicies,poddisruptionbudgets,services',
        '-n',
        namespace,
        '-l',
        `app.kubernetes.io/instance=${release}`,
        '-o',
        'name',
      ]);
      expect(kinds.trim().split('\n')).to.have.length.greaterThanOrEqual(9);
      // The API's Role, and the operator's for deleting tenant copies, are in the secrets namespace.
      const apart = await cp.kubectl(['get', 'roles,rolebindings', '-n', secretsNamespace, '-o', 'name']);
      expect(apart.trim().split('\n').sort()).to.deep.equal(
        [
          `role.rbac.authorization.k8s.io/${fullname}-api`,
          `role.rbac.authorization.k8s.io/${fullname}-operator`,
          `rolebinding.rbac.authorization.k8s.io/${fullname}-api`,
          `rolebinding.rbac.authorization.k8s.io/${fullname}-operator`,
        ].sort(),
      );
      if (!cp.hasKwok) this.skip();
      await cp.kubectl([
        'wait',
        '--for=condition=Available',
        'deployment',
        '--all',
        '-n',
        namespace,
        '--timeout=60s',
      ]);
      const operator = JSON.parse(
        await cp.kubectl(['get', 'deployment', `${fullname}-operator`, '-n', namespace, '-o', 'json']),
      ) as { status: { availableReplicas?: number } };
      expect(operator.status.availableReplicas).to.equal(2);
      // Each component's two replicas on two nodes (topologySpreadConstraints on kubernetes.io/hostname).
      for (const component of ['operator', 'api']) {
        const pods = JSON.parse(
          await cp.kubectl([
            'get',
            'pods',
            '-n',
            namespace,
            '-l',
            `app.kubernetes.io/instance=${release},app.kubernetes.io/component=${component}`,
            '-o',
            'json',
          ]),
        ) as { items: { spec: { nodeName?: string } }[] };
        const nodes = pods.items.map((p) => p.spec.nodeName);
        expect(nodes, component).to.have.length(2);
        expect(new Set(nodes).size, `${component} pods on ${nodes.join(', ')}`).to.equal(2);
      }
    });

    /** Asks the API server what a ServiceAccount of the release may do, one SubjectAccessReview per question. */
    async function allowed(
      serviceAccount: string,
      questions: { verb: string; resource: string; group?: string; namespace?: string; name?: string }[],
    ): Promise<boolean[]> {
      const user = `system:serviceaccount:${namespace}:${serviceAccount}`;
      const reviews = questions.map((q) => ({
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user,
          groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
          resourceAttributes: {
            verb: q.verb,
            resource: q.resource,
            group: q.group ?? '',
            ...(q.namespace ? { namespace: q.namespace } : {}),
            ...(q.name ? { name: q.name } : {}),
          },
        },
      }));
      // One answer per line, in the order of the questions.
      const out = await cp.kubectl(
        ['create', '-o', 'jsonpath={.status.allowed}{"\\n"}', '-f', '-'],
        JSON.stringify({ apiVersion: 'v1', kind: 'List', items: reviews }),
      );
      const answers = out.trim().split('\n');
      expect(answers).to.have.length(questions.length);
      return answers.map((answer) => answer === 'true');
    }

    it('lets the installed API read the Secrets meant for it and not the admin credentials', async () => {
      if (!installed) throw new Error('the release was not installed');
      const sa = `${fullname}-api`;
      expect(
        await allowed(sa, [
          { verb: 'list', resource: 'secrets', namespace: secretsNamespace },
          { verb: 'watch', resource: 'secrets', namespace: secretsNamespace },
          { verb: 'get', resource: 'secrets', namespace: secretsNamespace, name: 'tenant-acme-db' },
          {
            verb: 'get',
            resource: 'secrets',
            namespace: secretsNamespace,
            name: 'tenantry-api-signing-keys',
          },
          { verb: 'list', resource: 'tenants', group: 'tenantry.io' },
          { verb: 'create', resource: 'tenants', group: 'tenantry.io' },
        ]),
      ).to.deep.equal([true, true, true, true, true, true]);
      expect(
        await allowed(sa, [
          { verb: 'get', resource: 'secrets', namespace, name: 'tenantry-postgres' },
          { verb: 'get', resource: 'secrets', namespace, name: 'tenantry-rabbitmq' },
          { verb: 'list', resource: 'secrets', namespace },
          { verb: 'watch', resource: 'secrets', namespace },
          { verb: 'get', resource: 'secrets', namespace: 'tenant-acme' },
          { verb: 'list', resource: 'secrets' },
          { verb: 'create', resource: 'secrets', namespace: secretsNamespace },
          { verb: 'patch', resource: 'tenants', group: 'tenantry.io', name: 'acme' },
          { verb: 'patch', resource: 'tenants/status', group: 'tenantry.io' },
          { verb: 'create', resource: 'namespaces' },
        ]),
      ).to.deep.equal([false, false, false, false, false, false, false, true, false, false]);

      // The same through the API server's front door, as the ServiceAccount (impersonated).
      const as = ['--as', `system:serviceaccount:${namespace}:${sa}`];
      await cp.kubectl(
        ['apply', '-n', secretsNamespace, '-f', '-'],
        'apiVersion: v1\nkind: Secret\nmetadata: {name: tenant-acme-db, labels: {tenantry.io/tenant: acme, tenantry.io/secret-kind: database}}\nstringData: {password: copy}',
      );
      const copies = await cp.kubectl([
        'get',
        'secrets',
        '-n',
        secretsNamespace,
        '-l',
        'tenantry.io/tenant',
        '-o',
        'name',
        ...as,
      ]);
      expect(copies.trim()).to.equal('secret/tenant-acme-db');
      for (const args of [
        ['get', 'secret', 'tenantry-postgres', '-n', namespace],
        ['get', 'secrets', '-n', namespace],
      ]) {
        const refused = await cp.kubectl([...args, ...as]).then(
          () => 'allowed',
          (error: unknown) => String(error),
        );
        expect(refused, args.join(' ')).to.match(/forbidden/i);
      }
    });

    it('lets the installed operator apply tenant objects but not delete or list them', async () => {
      if (!installed) throw new Error('the release was not installed');
      const sa = `${fullname}-operator`;
      expect(
        await allowed(sa, [
          { verb: 'patch', resource: 'deployments', group: 'apps', namespace: 'tenant-acme' },
          {
            verb: 'create',
            resource: 'networkpolicies',
            group: 'networking.k8s.io',
            namespace: 'tenant-acme',
          },
          { verb: 'get', resource: 'secrets', namespace: 'tenant-acme' },
          { verb: 'delete', resource: 'secrets', namespace },
          { verb: 'delete', resource: 'secrets', namespace: secretsNamespace },
          {
            verb: 'update',
            resource: 'leases',
            group: 'coordination.k8s.io',
            namespace,
            name: `${fullname}-operator`,
          },
          { verb: 'create', resource: 'events', namespace: 'default' },
          { verb: 'watch', resource: 'deployments', group: 'apps' },
        ]),
      ).to.deep.equal([true, true, true, true, true, true, true, true]);
      expect(
        await allowed(sa, [
          { verb: 'delete', resource: 'secrets', namespace: 'tenant-acme' },
          { verb: 'list', resource: 'secrets' },
          { verb: 'delete', resource: 'namespaces' },
          { verb: 'delete', resource: 'deployments', group: 'apps', namespace: 'tenant-acme' },
          {
            verb: 'update',
            resource: 'leases',
            group: 'coordination.k8s.io',
            namespace,
            name: 'kube-scheduler',
          },
          { verb: 'create', resource: 'events', namespace: 'tenant-acme' },
          { verb: 'create', resource: 'pods', namespace: 'tenant-acme' },
        ]),
      ).to.deep.equal([false, false, false, false, false, false, false]);
    });

    it('is enough RBAC for the real operator to bring a Tenant to Ready', async function () {
      if (!installed) throw new Error('the release was not installed');
      if (!cp.hasKwok) this.skip(); // without fake nodes the worker never becomes available
      const token = (
        await cp.kubectl(['create', 'token', `${fullname}-operator`, '-n', namespace, '--duration=15m'])
      ).trim();
      const admin = parse(readFileSync(cp.kubeconfigPath, 'utf8')) as {
        clusters: { name: string; cluster: Record<string, string> }[];
      };
      const dir = mkdtempSync(join(tmpdir(), 'tenantry-sa-'));
      const kubeconfig = join(dir, 'kubeconfig');
      writeFileSync(
        kubeconfig,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: admin.clusters,
          users: [{ name: 'operator', user: { token } }],
          contexts: [{ name: 'operator', context: { cluster: admin.clusters[0]!.name, user: 'operator' } }],
          'current-context': 'operator',
        }),
        { mode: 0o600 },
      );
      let platform: TestPlatform | undefined;
      try {
        platform = await startTestPlatform('helmrbac', {
          KUBECONFIG: kubeconfig,
          OPERATOR_NAMESPACE: namespace,
          PLATFORM_SECRETS_NAMESPACE: secretsNamespace,
          LEASE_NAME: `${fullname}-operator`,
        });
        const name = platform.tenantName('sa');
        await platform.applyTenant(name);
        const tenant = await platform.waitReady(name, 60_000);
        expect(tenant.status?.phase).to.equal('Ready');
        // Deletion runs the finalizer as the same ServiceAccount (Delete policy: drop, remove the platform copy).
        await cp.kubectl(['delete', 'tenant', name, '--timeout=60s']);
        expect(await cp.kubectl(['get', 'tenants', '-o', 'name'])).to.not.include(
          `tenant.tenantry.io/${name}\n`,
        );
        const forbidden = platform.operator.logs.filter((line) => /forbidden|\b403\b/i.test(line));
        expect(forbidden, 'the operator hit a permission it lacks').to.deep.equal([]);
      } finally {
        await platform?.cleanup();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
