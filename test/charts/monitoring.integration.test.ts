// The chart's monitoring objects, checked the way Prometheus and Grafana meet
// them: the ServiceMonitor, PodMonitor and PrometheusRule pass the Prometheus
// Operator's own CRD schemas on the test control plane (server-side dry-run),
// every alert expression passes `promtool check rules` and fires in a
// `promtool test rules` case, and every metric the alerts and the dashboard use
// is exported by the running operator, API and tenant worker.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { parseAllDocuments, stringify } from 'yaml';
import { tenantNames } from '../../lib/tenant/index.js';
import { kubernetesVersion, toolPath, type ControlPlane } from '../harness/control-plane.js';
import { kubectlError } from '../harness/crds.js';
import { startTestApi, type TestApi } from '../harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../harness/platform.js';
import { repoRoot } from '../harness/repo-root.js';
import { readyTenants } from '../harness/seeded-tenants.js';
import { uniqueSuffix } from '../harness/services.js';
import { sharedControlPlane } from '../harness/shared-cluster.js';
import { eventually } from '../harness/wait.js';
import { tenantAmqp } from '../harness/webhook-harness.js';

const chartDir = join(repoRoot, 'charts/tenantry');
const everySwitch = [
  'metrics.serviceMonitor.enabled=true',
  'metrics.podMonitor.enabled=true',
  'metrics.prometheusRule.enabled=true',
  'metrics.grafanaDashboard.enabled=true',
].flatMap((value) => ['--set', value]);

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
}

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

function run(tool: string, args: readonly string[]): Promise<string> {
  return new Promise((ok, fail) => {
    execFile(toolPath(tool), args, { maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error)
        fail(new Error(`${tool} ${args[0]} failed: ${stderr.trim() || stdout.trim() || error.message}`));
      else ok(stdout);
    });
  });
}

/** `helm template` of the chart; offline, helm assumes Kubernetes 1.20, below the chart's kubeVersion. */
const helmTemplate = (args: readonly string[]) =>
  run('helm', ['template', 'tenantry', chartDir, '--kube-version', kubernetesVersion, ...args]);

async function render(namespace: string, extra: readonly string[] = []): Promise<Manifest[]> {
  const out = await helmTemplate([
    '--namespace',
    namespace,
    '-f',
    join(chartDir, 'ci', 'default-values.yaml'),
    ...everySwitch,
    ...extra,
  ]);
  return parseAllDocuments(out)
    .map((doc) => doc.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

const one = (manifests: Manifest[], kind: string) => {
  const found = manifests.filter((m) => m.kind === kind);
  expect(found, kind).to.have.length(1);
  return found[0]!;
};

const rulesOf = (rule: Manifest): Rule[] =>
  (rule.spec.groups as { rules: Rule[] }[]).flatMap((group) => group.rules);

/** Every tenantry_* metric name a PromQL text uses. */
const metricNames = (text: string) => text.match(/\btenantry_[a-z0-9_]+/g) ?? [];

/** Whether a scrape declares `name`: its own `# TYPE`, or a histogram's _bucket/_count/_sum series. */
function exported(scrape: string, name: string): boolean {
  const types = new Map([...scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  if (types.has(name)) return true;
  const series = /^(.*)_(bucket|count|sum)$/.exec(name);
  if (!series) return false;
  const type = types.get(series[1]!);
  return type === 'histogram' || (type === 'summary' && series[2] !== 'bucket');
}

/** The real worker process (worker/src/main.ts) for a Ready tenant, on the operator's Secrets. */
async function startWorker(
  cp: ControlPlane,
  tenant: string,
): Promise<{ child: ChildProcess; metricsPort: number }> {
  const names = tenantNames(tenant);
  const secret = JSON.parse(
    await cp.kubectl(['get', 'secret', '-n', names.namespace, names.dbSecret, '-o', 'json']),
  ) as { data: Record<string, string> };
  const amqp = await tenantAmqp(cp, tenant);
  const child = spawn(process.execPath, ['--import', 'tsx', 'worker/src/main.ts'], {
    cwd: repoRoot,
    env: {
      ...process.env,
      TENANTRY_TENANT: tenant,
      DATABASE_URL: Buffer.from(secret.data.uri!, 'base64').toString('utf8'),
      AMQP_URL: amqp.url,
      AMQP_QUEUE_PREFIX: amqp.queuePrefix,
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: '0',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const metricsPort = await new Promise<number>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`the worker did not start:\n${logs.join('')}`)), 30_000);
    const onData = (chunk: Buffer) => {
      logs.push(chunk.toString());
      const match = /"metricsPort":(\d+).*"msg":"worker started"/.exec(chunk.toString());
      if (match) {
        clearTimeout(timer);
        ok(Number(match[1]));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => fail(new Error(`the worker exited with ${code}:\n${logs.join('')}`)));
  });
  return { child, metricsPort };
}

describe('chart monitoring: CRD schemas, alert rules, exported metrics', function () {
  this.timeout(600_000);
  const namespace = `mon-${uniqueSuffix().slice(-6)}`;
  let manifests: Manifest[];
  let alerts: Rule[];
  let dashboard: { panels: { type: string; title: string; targets?: { expr: string }[] }[]; templating: any };
  const work = mkdtempSync(join(tmpdir(), 'tenantry-monitoring-'));

  before(async () => {
    manifests = await render(namespace);
    alerts = rulesOf(one(manifests, 'PrometheusRule'));
    dashboard = JSON.parse(one(manifests, 'ConfigMap').data!['tenantry.json']!);
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  describe('rendered', () => {
    it('renders none of the monitoring objects by default, the metrics Services only', async () => {
      const plain = parseAllDocuments(
        await helmTemplate(['-f', join(chartDir, 'ci', 'default-values.yaml')]),
      ).map((doc) => doc.toJS() as Manifest | null);
      const kinds = plain.filter((m) => m !== null).map((m) => m.kind);
      for (const kind of ['ServiceMonitor', 'PodMonitor', 'PrometheusRule'])
        expect(kinds).to.not.include(kind);
      expect(plain.filter((m) => m?.metadata.name.endsWith('-metrics'))).to.have.length(2);
    });

    it('scrapes the metrics Services of this release, never the public API Service', () => {
      const monitor = one(manifests, 'ServiceMonitor');
      const services = manifests.filter((m) => m.kind === 'Service');
      const selected = services.filter((s) =>
        Object.entries(monitor.spec.selector.matchLabels as Record<string, string>).every(
          ([k, v]) => s.metadata.labels?.[k] === v,
        ),
      );
      expect(selected.map((s) => s.metadata.name).sort()).to.deep.equal([
        'tenantry-api-metrics',
        'tenantry-operator-metrics',
      ]);
      expect(monitor.spec.endpoints[0].port).to.equal('metrics');
      const portNames = (s: Manifest) => (s.spec.ports as { name: string }[]).map((p) => p.name);
      for (const s of selected) expect(portNames(s)).to.deep.equal(['metrics']);
      expect(portNames(services.find((s) => s.metadata.name === 'tenantry-api')!)).to.deep.equal(['http']);
    });

    it('opens the metrics ports to the monitoring namespaces, tenant workers included', async () => {
      const open = await render(namespace, ['--set', 'networkPolicy.metricsNamespaces={monitoring}']);
      const policy = open.find((m) => m.kind === 'NetworkPolicy' && m.metadata.name.endsWith('-api'))!;
      const scrape = (policy.spec.ingress as { ports: { port: number }[]; from: unknown[] }[]).find((rule) =>
        rule.ports.some((p) => p.port === 9090),
      );
      expect(scrape?.from).to.deep.include({
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
      });
      // Without the chart's own policies the operator still writes the tenant ones, so it still gets the list.
      for (const enabled of ['true', 'false']) {
        const rendered = await render(namespace, [
          '--set',
          'networkPolicy.metricsNamespaces={monitoring,observability}',
          '--set',
          `networkPolicy.enabled=${enabled}`,
        ]);
        const operator = rendered.find(
          (m) => m.kind === 'Deployment' && m.metadata.name.endsWith('-operator'),
        )!;
        const env = operator.spec.template.spec.containers[0].env as { name: string; value?: string }[];
        expect(env.find((e) => e.name === 'METRICS_SCRAPE_NAMESPACES')?.value, enabled).to.equal(
          'monitoring,observability',
        );
        expect(env.find((e) => e.name === 'METRICS_PORT')?.value).to.equal('9090');
        expect(env.find((e) => e.name === 'HTTP_PORT')?.value).to.equal('8081');
      }
    });

    it('selects tenant worker pods by the labels the operator gives them', async () => {
      const { workerDeployment } = await import('../../operator/src/specs/worker.js');
      const tenant = {
        apiVersion: 'tenantry.io/v1alpha1',
        kind: 'Tenant',
        metadata: { name: 'acme', uid: 'u-1' },
        spec: { plan: 'starter' },
      };
      const pod = workerDeployment(tenant as never, { workerImage: 'x' } as never, { secretChecksum: 'c' })
        .spec!.template;
      const monitor = one(manifests, 'PodMonitor');
      expect(monitor.spec.namespaceSelector).to.deep.equal({ any: true });
      for (const [k, v] of Object.entries(monitor.spec.selector.matchLabels as Record<string, string>)) {
        expect(pod.metadata?.labels?.[k], k).to.equal(v);
      }
      for (const e of monitor.spec.selector.matchExpressions as { key: string }[]) {
        expect(pod.metadata?.labels).to.have.property(e.key);
      }
      const port = monitor.spec.podMetricsEndpoints[0].port as string;
      expect(pod.spec?.containers[0]?.ports?.map((p) => p.name)).to.include(port);
    });

    it('gives every alert a severity, a summary, a description and a runbook anchor that exists', () => {
      const runbooks = readFileSync(join(repoRoot, 'docs/runbooks.md'), 'utf8');
      const anchors = new Set([...runbooks.matchAll(/^## (\S+)$/gm)].map((m) => m[1]!.toLowerCase()));
      expect(alerts.map((a) => a.alert).sort()).to.deep.equal(
        [
          'TenantryApiErrors',
          'TenantryApiLatencyHigh',
          'TenantryOperatorNoLeader',
          'TenantryOperatorReconcileErrors',
          'TenantryOutboxRelayBehind',
          'TenantrySigningKeyRotationOverdue',
          'TenantryTenantNotReady',
          'TenantryWebhookDeliveriesFailing',
          'TenantryWebhookDeliveriesParked',
        ].sort(),
      );
      for (const alert of alerts) {
        expect(alert.labels.severity, alert.alert).to.be.oneOf(['warning', 'critical']);
        expect(alert.annotations.summary, alert.alert).to.be.a('string').and.not.empty;
        expect(alert.annotations.description, alert.alert).to.be.a('string').and.not.empty;
        const [, anchor] = alert.annotations.runbook_url!.split('#');
        expect(anchor, alert.alert).to.equal(alert.alert.toLowerCase());
        expect(anchors.has(anchor!), `docs/runbooks.md has no section ${alert.alert}`).to.equal(true);
      }
    });

    it('labels the dashboard ConfigMap for the Grafana sidecar and shows the panels the platform needs', () => {
      const map = one(manifests, 'ConfigMap');
      expect(map.metadata.labels).to.include({ grafana_dashboard: '1' });
      const titles = dashboard.panels.filter((p) => p.type !== 'row').map((p) => p.title);
      expect(titles).to.include.members([
        'Tenants by phase',
        'Reconcile rate by result',
        'Reconcile duration',
        'API request rate by route',
        'API errors by route',
        'API p99 latency by route',
        'Webhook attempts by outcome',
        'Webhook delivery latency',
        'Outbox queue depth',
        'Operator work-queue depth',
      ]);
      for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
        expect(panel.targets, panel.title).to.not.be.empty;
      }
    });
  });

  describe('on the control plane, against the Prometheus Operator CRDs', () => {
    let cp: ControlPlane;

    before(async () => {
      cp = await sharedControlPlane();
      const crdDir = toolPath('prometheus-operator-crds');
      for (const file of readdirSync(crdDir)
        .filter((f) => f.endsWith('.yaml'))
        .sort()) {
        await cp.kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(crdDir, file)]);
      }
      for (const crd of ['servicemonitors', 'podmonitors', 'prometheusrules']) {
        await cp.kubectl([
          'wait',
          '--for=condition=Established',
          `crd/${crd}.monitoring.coreos.com`,
          '--timeout=60s',
        ]);
      }
      await cp.kubectl(['create', 'namespace', namespace]);
    });

    after(async () => {
      await cp?.kubectl(['delete', 'namespace', namespace, '--wait=false']).catch(() => undefined);
    });

    const dryRun = (objects: Manifest[]) =>
      kubectlError(
        cp,
        ['apply', '--server-side', '--dry-run=server', '--field-manager=helm', '-f', '-'],
        objects.map((o) => stringify(o)).join('---\n'),
      );

    it('accepts the ServiceMonitor, PodMonitor, PrometheusRule, metrics Services and dashboard', async () => {
      const monitoring = manifests.filter(
        (m) =>
          ['ServiceMonitor', 'PodMonitor', 'PrometheusRule', 'ConfigMap'].includes(m.kind) ||
          m.metadata.name.endsWith('-metrics'),
      );
      expect(monitoring).to.have.length(6);
      expect(await dryRun(monitoring)).to.equal('');
    });

    it('rejects objects the schemas do not allow, so the check can fail', async () => {
      const monitor = structuredClone(one(manifests, 'PodMonitor'));
      monitor.spec.podMetricsEndpoints[0].interval = 'every thirty seconds';
      expect(await dryRun([monitor])).to.match(/interval/);
      const rule = structuredClone(one(manifests, 'PrometheusRule'));
      rule.spec.groups[0].rules[0].keep_firing = '5m';
      expect(await dryRun([rule])).to.match(/unknown field|keep_firing/);
    });
  });

  describe('promtool', () => {
    it('finds every alert expression valid', async () => {
      const file = join(work, 'rules.yaml');
      writeFileSync(file, stringify({ groups: one(manifests, 'PrometheusRule').spec.groups }));
      const out = await run('promtool', ['check', 'rules', file]);
      expect(out).to.include(`SUCCESS: ${alerts.length} rules found`);
    });

    it('rejects a broken expression, so the check can fail', async () => {
      const file = join(work, 'broken.yaml');
      const groups = structuredClone(one(manifests, 'PrometheusRule').spec.groups);
      groups[0].rules[0].expr = 'sum(rate(tenantry_operator_reconcile_total[5m]) >';
      writeFileSync(file, stringify({ groups }));
      const failed = await run('promtool', ['check', 'rules', file]).then(
        () => '',
        (error: Error) => error.message,
      );
      expect(failed).to.match(/parse error|unexpected/);
    });

    it('fires each alert on series that should fire it, and not before its `for`', async () => {
      // Without annotations: the unit tests compare labels; `check rules` parsed the annotation templates.
      const rules = join(work, 'unit-rules.yaml');
      const groups = structuredClone(one(manifests, 'PrometheusRule').spec.groups) as { rules: Rule[] }[];
      for (const rule of groups.flatMap((g) => g.rules)) delete (rule as Partial<Rule>).annotations;
      writeFileSync(rules, stringify({ groups }));
      const ns = `namespace="${namespace}"`;
      const alert = (name: string, labels: Record<string, string>) => ({
        exp_labels: { severity: alerts.find((a) => a.alert === name)!.labels.severity, ...labels },
      });
      const tests = [
        {
          interval: '1m',
          input_series: [
            { series: `tenantry_operator_tenants{${ns},phase="Provisioning"}`, values: '1x30' },
            { series: `tenantry_operator_tenants{${ns},phase="Suspended"}`, values: '2x30' },
            { series: `tenantry_operator_tenants{${ns},phase="Ready"}`, values: '5x30' },
            { series: `tenantry_operator_leader{${ns},pod="op-0"}`, values: '1x30' },
            { series: `tenantry_operator_reconcile_errors_total{${ns},pod="op-0"}`, values: '0+2x30' },
            { series: `tenantry_operator_signing_key_rotation_due_timestamp_seconds{${ns}}`, values: '0x30' },
          ],
          alert_rule_test: [
            { eval_time: '10m', alertname: 'TenantryTenantNotReady', exp_alerts: [] },
            {
              eval_time: '20m',
              alertname: 'TenantryTenantNotReady',
              exp_alerts: [{ ...alert('TenantryTenantNotReady', { phase: 'Provisioning' }) }],
            },
            { eval_time: '20m', alertname: 'TenantryOperatorNoLeader', exp_alerts: [] },
            {
              eval_time: '25m',
              alertname: 'TenantryOperatorReconcileErrors',
              exp_alerts: [{ ...alert('TenantryOperatorReconcileErrors', {}) }],
            },
            {
              eval_time: '30m',
              alertname: 'TenantrySigningKeyRotationOverdue',
              exp_alerts: [],
            },
          ],
        },
        {
          // Due at 0 s; 3600 s of grace and 10 minutes of `for`.
          interval: '5m',
          input_series: [
            { series: `tenantry_operator_signing_key_rotation_due_timestamp_seconds{${ns}}`, values: '0x20' },
          ],
          alert_rule_test: [
            { eval_time: '65m', alertname: 'TenantrySigningKeyRotationOverdue', exp_alerts: [] },
            {
              eval_time: '75m',
              alertname: 'TenantrySigningKeyRotationOverdue',
              exp_alerts: [{ ...alert('TenantrySigningKeyRotationOverdue', {}) }],
            },
            {
              eval_time: '10m',
              alertname: 'TenantryOperatorNoLeader',
              exp_alerts: [{ ...alert('TenantryOperatorNoLeader', {}) }],
            },
          ],
        },
        {
          interval: '1m',
          input_series: [
            {
              series: `tenantry_worker_webhook_attempts_total{namespace="tenant-a",tenant="a",outcome="succeeded"}`,
              values: '0+10x60',
            },
            {
              series: `tenantry_worker_webhook_attempts_total{namespace="tenant-a",tenant="a",outcome="server_error"}`,
              values: '0+10x60',
            },
            {
              series: `tenantry_worker_webhook_attempts_total{namespace="tenant-b",tenant="b",outcome="succeeded"}`,
              values: '0+10x60',
            },
            {
              series: `tenantry_worker_webhook_deliveries_parked_total{namespace="tenant-a",tenant="a"}`,
              values: '0+1x60',
            },
            {
              series: `tenantry_worker_outbox_oldest_pending_age_seconds{namespace="tenant-b",tenant="b",relay="webhooks"}`,
              values: '0+60x60',
            },
            {
              series: `tenantry_worker_outbox_oldest_pending_age_seconds{namespace="tenant-b",tenant="b",relay="integrations"}`,
              values: '0x60',
            },
          ],
          alert_rule_test: [
            {
              eval_time: '40m',
              alertname: 'TenantryWebhookDeliveriesFailing',
              exp_alerts: [
                { ...alert('TenantryWebhookDeliveriesFailing', { namespace: 'tenant-a', tenant: 'a' }) },
              ],
            },
            {
              eval_time: '59m',
              alertname: 'TenantryWebhookDeliveriesParked',
              exp_alerts: [
                { ...alert('TenantryWebhookDeliveriesParked', { namespace: 'tenant-a', tenant: 'a' }) },
              ],
            },
            { eval_time: '10m', alertname: 'TenantryOutboxRelayBehind', exp_alerts: [] },
            {
              eval_time: '20m',
              alertname: 'TenantryOutboxRelayBehind',
              exp_alerts: [
                {
                  ...alert('TenantryOutboxRelayBehind', {
                    namespace: 'tenant-b',
                    tenant: 'b',
                    relay: 'webhooks',
                  }),
                },
              ],
            },
          ],
        },
        {
          interval: '1m',
          input_series: [
            {
              series: `tenantry_api_http_request_duration_seconds_count{${ns},method="GET",route="/api/users",status="200"}`,
              values: '0+90x30',
            },
            {
              series: `tenantry_api_http_request_duration_seconds_count{${ns},method="GET",route="/api/users",status="503"}`,
              values: '0+10x30',
            },
            {
              series: `tenantry_api_http_request_duration_seconds_bucket{${ns},method="GET",route="/api/users",status="200",le="1"}`,
              values: '0+90x30',
            },
            {
              series: `tenantry_api_http_request_duration_seconds_bucket{${ns},method="GET",route="/api/users",status="200",le="5"}`,
              values: '0+90x30',
            },
            {
              series: `tenantry_api_http_request_duration_seconds_bucket{${ns},method="GET",route="/api/users",status="200",le="+Inf"}`,
              values: '0+100x30',
            },
          ],
          alert_rule_test: [
            {
              eval_time: '20m',
              alertname: 'TenantryApiErrors',
              exp_alerts: [{ ...alert('TenantryApiErrors', {}) }],
            },
            {
              eval_time: '20m',
              alertname: 'TenantryApiLatencyHigh',
              exp_alerts: [{ ...alert('TenantryApiLatencyHigh', {}) }],
            },
          ],
        },
      ];
      const file = join(work, 'unit.yaml');
      writeFileSync(file, stringify({ rule_files: [rules], evaluation_interval: '1m', tests }));
      const out = await run('promtool', ['test', 'rules', file]);
      expect(out).to.include('SUCCESS');
    });
  });

  describe('the running operator, API and tenant worker', () => {
    let platform: TestPlatform;
    let api: TestApi;
    let worker: { child: ChildProcess; metricsPort: number } | undefined;
    const scrapes: Record<string, string> = {};

    before(async () => {
      platform = await startTestPlatform('monitor');
      const [tenant] = await readyTenants(platform, ['a']);
      api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace);
      worker = await startWorker(platform.cp, tenant);
      expect((await api.call('GET', '/api/tenants/current')).status).to.equal(401);
      scrapes.operator = await eventually(
        'the leader to report the tenants and the key schedule',
        async () => {
          const text = await platform.operator.metrics();
          return /^tenantry_operator_tenants\{phase="Ready"\} 1$/m.test(text) &&
            /^tenantry_operator_leader 1$/m.test(text) &&
            /^tenantry_operator_signing_key_rotation_due_timestamp_seconds \d{10}/m.test(text)
            ? text
            : undefined;
        },
      );
      scrapes.api = await api.metrics();
      scrapes.worker = await eventually('the worker to be ready', async () => {
        const text = await (await fetch(`http://127.0.0.1:${worker!.metricsPort}/metrics`)).text();
        return /^tenantry_worker_ready 1$/m.test(text) ? text : undefined;
      });
    });

    after(async () => {
      worker?.child.kill('SIGTERM');
      await api?.close();
      await platform?.cleanup();
    });

    it('export every metric the alerts and the dashboard use, each from its own process', () => {
      const queries = [
        ...alerts.map((a) => a.expr),
        ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
        JSON.stringify(dashboard.templating),
      ];
      const used = [...new Set(queries.flatMap(metricNames))].sort();
      expect(used.length).to.be.greaterThan(15);
      const missing = used.filter((name) => {
        const scrape = scrapes[name.split('_')[1]!];
        return scrape === undefined || !exported(scrape, name);
      });
      expect(missing, 'used but not exported').to.deep.equal([]);
      expect(exported(scrapes.api!, 'tenantry_api_no_such_metric')).to.equal(false);
    });

    it('fill the series the alerts read: request histogram by route, outbox backlog per relay', () => {
      expect(scrapes.api).to.match(
        /^tenantry_api_http_request_duration_seconds_count\{method="GET",route="\/api\/tenants\/current",status="401"\} 1$/m,
      );
      for (const relay of ['webhooks', 'integrations']) {
        expect(scrapes.worker).to.match(
          new RegExp(`^tenantry_worker_outbox_pending\\{relay="${relay}"\\} 0$`, 'm'),
        );
        expect(scrapes.worker).to.match(
          new RegExp(`^tenantry_worker_outbox_oldest_pending_age_seconds\\{relay="${relay}"\\} 0$`, 'm'),
        );
      }
      expect(scrapes.worker).to.match(/^tenantry_worker_webhook_deliveries_parked_total 0$/m);
    });
  });
});
