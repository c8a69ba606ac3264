import { expect } from 'chai';
// The generated serializer alone is what the apply path uses.
import { ObjectSerializer } from '@kubernetes/client-node/dist/gen/models/ObjectSerializer.js';
import type { V1Container, V1NetworkPolicy, V1ObjectMeta } from '@kubernetes/client-node';
import { apiVersion, kind, plans, type Tenant } from '../../lib/tenant/index.js';
import {
  amqpSecret,
  checksum,
  credentialsChecksumAnnotation,
  databaseSecret,
  limitRange,
  namespace,
  networkPolicies,
  networkPolicyNames,
  ownerReference,
  platformDatabaseSecret,
  resourceQuota,
  workerDeployment,
  workerServiceAccount,
  type BuildContext,
} from '../../operator/src/specs/index.js';
import { workerTelemetryEnv } from '../../operator/src/config.js';

const minimal: Tenant = {
  apiVersion,
  kind,
  metadata: { name: 'acme', uid: '1111-aaaa' },
  spec: { plan: 'free', owner: { email: 'owner@acme.test' } },
};

const full: Tenant = {
  apiVersion,
  kind,
  metadata: { name: 'big-co', uid: '2222-bbbb', generation: 3 },
  spec: {
    displayName: 'Big Co',
    plan: 'enterprise',
    owner: { email: 'owner@big.test' },
    domains: ['big.test'],
    database: { deletionPolicy: 'Delete' },
    worker: { replicas: 5, resources: { requests: { cpu: '300m' }, limits: { memory: '3Gi', cpu: 2 } } },
  },
};

const ctx: BuildContext = {
  platformNamespace: 'tenantry-system',
  secretsNamespace: 'tenantry-system',
  workerImage: 'registry.test/tenantry:1.2.3',
  postgres: { host: 'db.test', port: 5432 },
  rabbitmq: { host: 'mq.test', port: 5672 },
};

const fullCtx: BuildContext = {
  ...ctx,
  postgres: { host: 'db.test', port: 6432, cidrs: ['10.1.0.0/16', '10.2.0.5/32'] },
  rabbitmq: { host: 'mq.test', port: 5671, cidrs: ['10.3.0.0/24'] },
  dnsNamespace: 'dns-system',
};

const secretData = { uri: 'postgres://u:p@db.test:5432/tenant_acme', password: 'pä$$=word\n' };

function withSpec(tenant: Tenant, spec: Partial<Tenant['spec']>): Tenant {
  return { ...tenant, spec: { ...tenant.spec, ...spec } };
}

function decode(data: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(
    Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
  );
}

function expectOwnedBy(meta: V1ObjectMeta | undefined, tenant: Tenant): void {
  expect(meta?.ownerReferences).to.deep.equal([
    {
      apiVersion: 'tenantry.io/v1alpha1',
      kind: 'Tenant',
      name: tenant.metadata.name,
      uid: tenant.metadata.uid,
      controller: true,
      blockOwnerDeletion: true,
    },
  ]);
}

function expectTenantLabels(meta: V1ObjectMeta | undefined, tenantName: string): void {
  expect(meta?.labels).to.include({
    'tenantry.io/tenant': tenantName,
    'app.kubernetes.io/managed-by': 'tenantry-operator',
    'app.kubernetes.io/part-of': 'tenantry',
  });
}

function policy(policies: V1NetworkPolicy[], name: string): V1NetworkPolicy {
  const found = policies.find((p) => p.metadata?.name === name);
  if (!found) throw new Error(`no NetworkPolicy ${name}`);
  return found;
}

function workerContainer(tenant: Tenant, buildCtx = ctx): V1Container {
  const container = workerDeployment(tenant, buildCtx, { secretChecksum: 'c1' }).spec?.template.spec
    ?.containers[0];
  if (!container) throw new Error('no worker container');
  return container;
}

describe('specs', () => {
  describe('ownerReference', () => {
    it('makes the Tenant the blocking controller', () => {
      expect(ownerReference(full)).to.deep.equal({
        apiVersion: 'tenantry.io/v1alpha1',
        kind: 'Tenant',
        name: 'big-co',
        uid: '2222-bbbb',
        controller: true,
        blockOwnerDeletion: true,
      });
    });

    it('refuses a Tenant without a uid', () => {
      const noUid: Tenant = { ...minimal, metadata: { name: 'acme' } };
      expect(() => ownerReference(noUid)).to.throw(/acme.*uid/);
    });
  });

  describe('every tenant object', () => {
    for (const [label, tenant, buildCtx] of [
      ['minimal', minimal, ctx],
      ['full', full, fullCtx],
    ] as const) {
      it(`carries the labels, a kind and an apiVersion (${label} tenant)`, () => {
        const objects = [
          namespace(tenant),
          databaseSecret(tenant, secretData),
          amqpSecret(tenant, secretData),
          platformDatabaseSecret(tenant, secretData, buildCtx.platformNamespace),
          ...networkPolicies(tenant, buildCtx),
          resourceQuota(tenant),
          limitRange(tenant),
          workerServiceAccount(tenant),
          workerDeployment(tenant, buildCtx, { secretChecksum: 'x' }),
        ];
        expect(objects).to.have.length(14);
        for (const object of objects) {
          expect(object.apiVersion, object.metadata.name).to.be.a('string').and.not.empty;
          expect(object.kind, object.metadata.name).to.be.a('string').and.not.empty;
          expectTenantLabels(object.metadata, tenant.metadata.name);
        }
      });

      it(`puts namespaced objects in tenant-<name>, owned by the Tenant (${label} tenant)`, () => {
        const namespaced = [
          databaseSecret(tenant, secretData),
          amqpSecret(tenant, secretData),
          ...networkPolicies(tenant, buildCtx),
          resourceQuota(tenant),
          limitRange(tenant),
          workerServiceAccount(tenant),
          workerDeployment(tenant, buildCtx, { secretChecksum: 'x' }),
        ];
        for (const object of namespaced) {
          expect(object.metadata.namespace, object.kind).to.equal(`tenant-${tenant.metadata.name}`);
          expectOwnedBy(object.metadata, tenant);
        }
      });
    }
  });

  describe('namespace', () => {
    it('is tenant-<name>, owned, and enforces the restricted pod security level', () => {
      const ns = namespace(full);
      expect(ns).to.include({ apiVersion: 'v1', kind: 'Namespace' });
      expect(ns.metadata.name).to.equal('tenant-big-co');
      expect(ns.metadata.namespace).to.equal(undefined);
      expect(ns.metadata.labels).to.include({ 'pod-security.kubernetes.io/enforce': 'restricted' });
      expectOwnedBy(ns.metadata, full);
    });
  });

  describe('secrets', () => {
    it('name the tenant Secrets <name>-db and <name>-amqp, Opaque, with base64 data only', () => {
      const db = databaseSecret(minimal, secretData);
      const amqp = amqpSecret(minimal, { uri: 'amqp://x', queuePrefix: 'tenant.acme.' });
      expect(db.metadata.name).to.equal('acme-db');
      expect(amqp.metadata.name).to.equal('acme-amqp');
      for (const secret of [db, amqp]) {
        expect(secret).to.include({ apiVersion: 'v1', kind: 'Secret', type: 'Opaque' });
        expect(secret).not.to.have.property('stringData');
      }
      expect(db.data?.uri).to.equal(Buffer.from(secretData.uri).toString('base64'));
      expect(decode(db.data)).to.deep.equal(secretData);
      expect(decode(amqp.data)).to.deep.equal({ uri: 'amqp://x', queuePrefix: 'tenant.acme.' });
    });

    it('tell database and AMQP Secrets apart by label', () => {
      expect(databaseSecret(minimal, {}).metadata.labels).to.include({
        'tenantry.io/secret-kind': 'database',
      });
      expect(amqpSecret(minimal, {}).metadata.labels).to.include({ 'tenantry.io/secret-kind': 'amqp' });
    });

    it('copy the database Secret to the platform namespace without an owner, so it survives Retain', () => {
      const copy = platformDatabaseSecret(full, secretData, 'tenantry-system');
      expect(copy).to.include({ apiVersion: 'v1', kind: 'Secret', type: 'Opaque' });
      expect(copy.metadata.name).to.equal('tenant-big-co-db');
      expect(copy.metadata.namespace).to.equal('tenantry-system');
      expect(copy.metadata.labels).to.include({
        'tenantry.io/tenant': 'big-co',
        'tenantry.io/secret-kind': 'database',
      });
      expect(copy.metadata).not.to.have.property('ownerReferences');
      expect(copy).not.to.have.property('stringData');
      expect(decode(copy.data)).to.deep.equal(secretData);
    });
  });

  describe('checksum', () => {
    it('is sha256 hex and ignores key order', () => {
      const a = checksum({ uri: 'x', password: 'p' });
      expect(a).to.match(/^[0-9a-f]{64}$/);
      expect(checksum({ password: 'p', uri: 'x' })).to.equal(a);
    });

    it('changes when a value, a key or the set of keys changes', () => {
      const base = checksum({ uri: 'x', password: 'p' });
      expect(checksum({ uri: 'x', password: 'q' })).not.to.equal(base);
      expect(checksum({ uri: 'x', pass: 'p' })).not.to.equal(base);
      expect(checksum({ uri: 'x' })).not.to.equal(base);
    });

    it('does not confuse a value containing a separator with another key', () => {
      expect(checksum({ a: 'b\nc=d' })).not.to.equal(checksum({ a: 'b', c: 'd' }));
      expect(checksum({ 'a=b': 'c' })).not.to.equal(checksum({ a: 'b=c' }));
    });
  });

  describe('network policies', () => {
    it('are exactly the exported names, in order', () => {
      expect(networkPolicies(minimal, ctx).map((p) => p.metadata.name)).to.deep.equal([
        ...networkPolicyNames,
      ]);
      expect(networkPolicyNames).to.have.members([
        'default-deny',
        'allow-from-platform',
        'allow-dns',
        'allow-postgres',
        'allow-rabbitmq',
        'allow-public-egress',
      ]);
    });

    it('let the worker reach public addresses for webhooks and provider APIs, never private or metadata ones', () => {
      const open = policy(networkPolicies(minimal, ctx), 'allow-public-egress');
      expect(open.spec?.policyTypes).to.deep.equal(['Egress']);
      expect(open.spec?.ingress).to.deep.equal([]);
      const [rule] = open.spec?.egress ?? [];
      expect(rule?.ports).to.deep.equal([{ protocol: 'TCP' }]);
      const blocks = (rule?.to ?? []).map((peer) => peer.ipBlock);
      expect(blocks.map((b) => b?.cidr)).to.deep.equal(['0.0.0.0/0', '::/0']);
      expect(blocks[0]?.except).to.include.members([
        '10.0.0.0/8',
        '172.16.0.0/12',
        '192.168.0.0/16',
        '169.254.0.0/16',
      ]);
      expect(blocks[1]?.except).to.include.members(['fc00::/7', 'fe80::/10', '::1/128']);
    });

    it('deny all ingress and egress by default', () => {
      const deny = policy(networkPolicies(minimal, ctx), 'default-deny');
      // Empty rule lists are explicit so server-side apply owns them and removes rules others add.
      expect(deny.spec).to.deep.equal({
        podSelector: {},
        policyTypes: ['Ingress', 'Egress'],
        ingress: [],
        egress: [],
      });
    });

    it('admit ingress from the platform namespace only', () => {
      const allow = policy(networkPolicies(minimal, ctx), 'allow-from-platform');
      expect(allow.spec?.podSelector).to.deep.equal({});
      expect(allow.spec?.policyTypes).to.deep.equal(['Ingress']);
      expect(allow.spec?.ingress).to.deep.equal([
        {
          _from: [
            { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'tenantry-system' } } },
          ],
        },
      ]);
      expect(allow.spec?.egress).to.deep.equal([]);
    });

    it('admit the scrape of the worker metrics port from the configured monitoring namespaces, nothing else from there', () => {
      const allow = policy(
        networkPolicies(minimal, { ...ctx, metricsScrapeNamespaces: ['monitoring', 'observability'] }),
        'allow-from-platform',
      );
      expect(allow.spec?.ingress?.[1]).to.deep.equal({
        _from: [
          { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
          { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'observability' } } },
        ],
        ports: [{ protocol: 'TCP', port: 9090 }],
      });
      expect(allow.spec?.ingress).to.have.length(2);
      expect(
        policy(networkPolicies(minimal, { ...ctx, metricsScrapeNamespaces: [] }), 'allow-from-platform').spec
          ?.ingress,
      ).to.have.length(1);
    });

    it('allow DNS over UDP and TCP 53 to kube-system, or the configured DNS namespace', () => {
      const dns = policy(networkPolicies(minimal, ctx), 'allow-dns');
      expect(dns.spec?.policyTypes).to.deep.equal(['Egress']);
      expect(dns.spec?.egress).to.deep.equal([
        {
          to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } } }],
          ports: [
            { protocol: 'UDP', port: 53 },
            { protocol: 'TCP', port: 53 },
          ],
        },
      ]);
      const custom = policy(networkPolicies(minimal, fullCtx), 'allow-dns');
      expect(custom.spec?.egress?.[0]?.to).to.deep.equal([
        { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'dns-system' } } },
      ]);
    });

    it('allow Postgres and RabbitMQ egress on their ports to any IPv4 address when no CIDRs are set', () => {
      const policies = networkPolicies(minimal, { ...ctx, rabbitmq: { ...ctx.rabbitmq, cidrs: [] } });
      for (const [name, port] of [
        ['allow-postgres', 5432],
        ['allow-rabbitmq', 5672],
      ] as const) {
        const p = policy(policies, name);
        expect(p.spec?.podSelector, name).to.deep.equal({});
        expect(p.spec?.policyTypes, name).to.deep.equal(['Egress']);
        expect(p.spec?.egress, name).to.deep.equal([
          { to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: [{ protocol: 'TCP', port }] },
        ]);
      }
    });

    it('narrow Postgres and RabbitMQ egress to the configured CIDRs', () => {
      const policies = networkPolicies(full, fullCtx);
      expect(policy(policies, 'allow-postgres').spec?.egress).to.deep.equal([
        {
          to: [{ ipBlock: { cidr: '10.1.0.0/16' } }, { ipBlock: { cidr: '10.2.0.5/32' } }],
          ports: [{ protocol: 'TCP', port: 6432 }],
        },
      ]);
      expect(policy(policies, 'allow-rabbitmq').spec?.egress).to.deep.equal([
        { to: [{ ipBlock: { cidr: '10.3.0.0/24' } }], ports: [{ protocol: 'TCP', port: 5671 }] },
      ]);
    });
  });

  describe('quota', () => {
    it('sizes the ResourceQuota by plan', () => {
      const free = resourceQuota(minimal);
      expect(free).to.include({ apiVersion: 'v1', kind: 'ResourceQuota' });
      expect(free.spec?.hard).to.deep.equal({
        'requests.cpu': '1',
        'requests.memory': '1Gi',
        'limits.cpu': '2',
        'limits.memory': '2Gi',
        pods: '10',
      });
      expect(resourceQuota(full).spec?.hard).to.deep.equal({
        'requests.cpu': '16',
        'requests.memory': '32Gi',
        'limits.cpu': '32',
        'limits.memory': '64Gi',
        pods: '160',
      });
    });

    it('differs for every plan', () => {
      const figures = plans.map((plan) =>
        JSON.stringify(resourceQuota(withSpec(minimal, { plan })).spec?.hard),
      );
      expect(new Set(figures).size).to.equal(plans.length);
    });

    it('gives containers the plan defaults through the LimitRange', () => {
      const free = limitRange(minimal);
      expect(free).to.include({ apiVersion: 'v1', kind: 'LimitRange' });
      expect(free.spec?.limits).to.deep.equal([
        {
          type: 'Container',
          _default: { cpu: '250m', memory: '256Mi' },
          defaultRequest: { cpu: '50m', memory: '64Mi' },
        },
      ]);
      expect(limitRange(full).spec?.limits[0]).to.deep.include({
        _default: { cpu: '4', memory: '4Gi' },
        defaultRequest: { cpu: '250m', memory: '256Mi' },
      });
    });
  });

  describe('worker', () => {
    it('has a ServiceAccount without a mounted token', () => {
      const sa = workerServiceAccount(minimal);
      expect(sa).to.include({
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        automountServiceAccountToken: false,
      });
      expect(sa.metadata.name).to.equal('tenantry-worker');
    });

    it('passes the operator’s OTEL_* variables on to the worker, but not its service name', () => {
      const plain = workerContainer(minimal).env!.map((e) => e.name);
      expect(plain.filter((name) => name.startsWith('OTEL_'))).to.deep.equal([]);
      const forwarded = workerTelemetryEnv({
        OTEL_SERVICE_NAME: 'tenantry-operator',
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector.observability:4318',
        LOG_LEVEL: 'debug',
      });
      const env = workerContainer(minimal, { ...ctx, workerTelemetryEnv: forwarded }).env!;
      expect(env.filter((e) => e.name.startsWith('OTEL_'))).to.deep.equal([
        { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://otel-collector.observability:4318' },
        { name: 'OTEL_TRACES_SAMPLER', value: 'parentbased_traceidratio' },
      ]);
      expect(env.map((e) => e.name)).to.not.include('LOG_LEVEL');
    });

    it('is a Deployment tenantry-worker whose selector matches its pods', () => {
      const deployment = workerDeployment(minimal, ctx, { secretChecksum: 'c1' });
      expect(deployment).to.include({ apiVersion: 'apps/v1', kind: 'Deployment' });
      expect(deployment.metadata.name).to.equal('tenantry-worker');
      expect(deployment.spec?.selector.matchLabels).to.deep.equal({
        'app.kubernetes.io/name': 'tenantry-worker',
      });
      expect(deployment.spec?.template.metadata?.labels).to.include({
        'app.kubernetes.io/name': 'tenantry-worker',
        'tenantry.io/tenant': 'acme',
      });
    });

    it('takes replicas from the plan, spec.worker.replicas, and 0 when suspended', () => {
      const replicas = (tenant: Tenant) =>
        workerDeployment(tenant, ctx, { secretChecksum: 'c' }).spec?.replicas;
      expect(replicas(minimal)).to.equal(1);
      expect(replicas(withSpec(minimal, { plan: 'enterprise' }))).to.equal(3);
      expect(replicas(full)).to.equal(5);
      expect(replicas(withSpec(full, { worker: { replicas: 0 } }))).to.equal(0);
      expect(replicas(withSpec(minimal, { suspended: true }))).to.equal(0);
      expect(replicas(withSpec(full, { suspended: true }))).to.equal(0);
    });

    it('puts the credentials checksum on the pod template, so new credentials roll the pods', () => {
      const one = workerDeployment(minimal, ctx, { secretChecksum: checksum({ password: 'a' }) });
      const two = workerDeployment(minimal, ctx, { secretChecksum: checksum({ password: 'b' }) });
      const annotation = (d: typeof one) =>
        d.spec?.template.metadata?.annotations?.[credentialsChecksumAnnotation];
      expect(credentialsChecksumAnnotation).to.equal('tenantry.io/credentials-checksum');
      expect(annotation(one)).to.equal(checksum({ password: 'a' }));
      expect(annotation(two)).not.to.equal(annotation(one));
    });

    it('rolls without dropping below the desired count', () => {
      expect(workerDeployment(minimal, ctx, { secretChecksum: 'c' }).spec?.strategy).to.deep.equal({
        type: 'RollingUpdate',
        rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
      });
    });

    it('runs the worker image for this tenant only, with credentials from its Secrets', () => {
      const container = workerContainer(full);
      expect(container.name).to.equal('worker');
      expect(container.image).to.equal('registry.test/tenantry:1.2.3');
      expect(container.command).to.deep.equal(['node', 'dist/worker/src/main.js']);
      expect(container.env).to.deep.equal([
        { name: 'TENANTRY_TENANT', value: 'big-co' },
        { name: 'DATABASE_URL', valueFrom: { secretKeyRef: { name: 'big-co-db', key: 'uri' } } },
        { name: 'AMQP_URL', valueFrom: { secretKeyRef: { name: 'big-co-amqp', key: 'uri' } } },
        {
          name: 'AMQP_QUEUE_PREFIX',
          valueFrom: { secretKeyRef: { name: 'big-co-amqp', key: 'queuePrefix' } },
        },
      ]);
    });

    it('uses the plan defaults for resources, overridden field by field by spec.worker.resources', () => {
      expect(workerContainer(minimal).resources).to.deep.equal({
        requests: { cpu: '50m', memory: '64Mi' },
        limits: { cpu: '250m', memory: '256Mi' },
      });
      expect(workerContainer(full).resources).to.deep.equal({
        requests: { cpu: '300m', memory: '256Mi' },
        limits: { cpu: '2', memory: '3Gi' },
      });
    });

    it('runs locked down: non-root, read-only root, no privilege escalation, no capabilities', () => {
      const deployment = workerDeployment(minimal, ctx, { secretChecksum: 'c' });
      const pod = deployment.spec?.template.spec;
      expect(pod?.serviceAccountName).to.equal('tenantry-worker');
      expect(pod?.automountServiceAccountToken).to.equal(false);
      expect(pod?.securityContext).to.deep.include({
        runAsNonRoot: true,
        runAsUser: 10001,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(workerContainer(minimal).securityContext).to.deep.include({
        runAsNonRoot: true,
        runAsUser: 10001,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
    });

    it('probes /healthz and /readyz on the http port 8081', () => {
      const container = workerContainer(minimal);
      const port = container.ports?.find((p) => p.containerPort === 8081);
      expect(port?.name).to.be.a('string');
      expect(container.livenessProbe?.httpGet).to.deep.equal({ path: '/healthz', port: port?.name });
      expect(container.readinessProbe?.httpGet).to.deep.equal({ path: '/readyz', port: port?.name });
    });

    it('names the metrics port 9090 "metrics", for the PodMonitor', () => {
      const container = workerContainer(minimal);
      expect(container.ports?.find((p) => p.name === 'metrics')).to.deep.equal({
        name: 'metrics',
        containerPort: 9090,
        protocol: 'TCP',
      });
    });
  });

  describe('on the wire', () => {
    // client-node renames `from` and `default` in its types; the apply body must carry the API's names.
    it('serialises the platform ingress rule and the LimitRange defaults under the API field names', () => {
      const ingress = ObjectSerializer.serialize(
        policy(networkPolicies(minimal, ctx), 'allow-from-platform'),
        'V1NetworkPolicy',
        '',
      ) as { spec: { ingress: Record<string, unknown>[] } };
      expect(ingress.spec.ingress[0]).to.have.property('from').that.has.length(1);
      expect(ingress.spec.ingress[0]).not.to.have.property('_from');

      const limits = ObjectSerializer.serialize(limitRange(minimal), 'V1LimitRange', '') as {
        spec: { limits: Record<string, unknown>[] };
      };
      expect(limits.spec.limits[0])
        .to.have.property('default')
        .that.deep.equals({ cpu: '250m', memory: '256Mi' });
      expect(limits.spec.limits[0]).not.to.have.property('_default');
    });

    it('keeps the Deployment intact through the serializer', () => {
      const deployment = workerDeployment(full, fullCtx, { secretChecksum: 'c1' });
      const wire = ObjectSerializer.serialize(deployment, 'V1Deployment', '') as unknown;
      expect(JSON.parse(JSON.stringify(wire))).to.deep.equal(JSON.parse(JSON.stringify(deployment)));
    });
  });
});
