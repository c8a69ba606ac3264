// The tenant's worker: a Deployment that runs the integration worker for this
// tenant only, with its ServiceAccount.

import type {
  V1Container,
  V1Deployment,
  V1ResourceRequirements,
  V1SecurityContext,
  V1ServiceAccount,
} from '@kubernetes/client-node';
import {
  planPolicies,
  tenantNames,
  workerReplicas,
  type ResourceList,
  type Tenant,
} from '../../../lib/tenant/index.js';
import { defaultHealthPort, defaultMetricsPort } from '../../../lib/health-server.js';
import type { BuildContext } from './context.js';
import { ownedMetadata, type Desired } from './metadata.js';

export const credentialsChecksumAnnotation = 'tenantry.io/credentials-checksum';
export const workerNameLabel = 'app.kubernetes.io/name';
export const workerUid = 10001;
export const healthPort = defaultHealthPort;
export const metricsPort = defaultMetricsPort;

export function workerServiceAccount(tenant: Tenant): Desired<V1ServiceAccount> {
  const names = tenantNames(tenant.metadata.name);
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: ownedMetadata(tenant, names.workerName, names.namespace),
    // The worker never calls the Kubernetes API, so it gets no token to steal.
    automountServiceAccountToken: false,
  };
}

function quantities(list: ResourceList | undefined, defaults: { cpu: string; memory: string }) {
  return { cpu: String(list?.cpu ?? defaults.cpu), memory: String(list?.memory ?? defaults.memory) };
}

/** spec.worker.resources per field, falling back to the plan's container defaults. */
export function workerResources(tenant: Tenant): V1ResourceRequirements {
  const defaults = planPolicies[tenant.spec.plan].containerDefaults;
  const custom = tenant.spec.worker?.resources;
  return {
    requests: quantities(custom?.requests, defaults.requests),
    limits: quantities(custom?.limits, defaults.limits),
  };
}

const restrictedSecurityContext: V1SecurityContext = {
  runAsNonRoot: true,
  runAsUser: workerUid,
  runAsGroup: workerUid,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

function workerContainer(tenant: Tenant, ctx: BuildContext): V1Container {
  const names = tenantNames(tenant.metadata.name);
  const fromSecret = (name: string, secret: string, key: string) => ({
    name,
    valueFrom: { secretKeyRef: { name: secret, key } },
  });
  const probe = (path: string) => ({
    httpGet: { path, port: 'health' },
    periodSeconds: 10,
    timeoutSeconds: 2,
  });
  return {
    name: 'worker',
    image: ctx.workerImage,
    command: ['node', 'dist/worker/src/main.js'],
    env: [
      { name: 'TENANTRY_TENANT', value: tenant.metadata.name },
      fromSecret('DATABASE_URL', names.dbSecret, 'uri'),
      fromSecret('AMQP_URL', names.amqpSecret, 'uri'),
      fromSecret('AMQP_QUEUE_PREFIX', names.amqpSecret, 'queuePrefix'),
      ...(ctx.workerTelemetryEnv ?? []),
    ],
    // The worker's defaults of HTTP_PORT and METRICS_PORT; a PodMonitor scrapes the port named metrics.
    ports: [
      { name: 'health', containerPort: healthPort, protocol: 'TCP' },
      { name: 'metrics', containerPort: metricsPort, protocol: 'TCP' },
    ],
    livenessProbe: probe('/healthz'),
    readinessProbe: probe('/readyz'),
    resources: workerResources(tenant),
    securityContext: restrictedSecurityContext,
    // The root filesystem is read-only; Node and its libraries still expect a writable /tmp.
    volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
  };
}

/**
 * The worker Deployment. `secretChecksum` goes into a pod-template annotation, so new
 * credentials (a rotated password) roll the pods onto them.
 */
export function workerDeployment(
  tenant: Tenant,
  ctx: BuildContext,
  options: { secretChecksum: string },
): Desired<V1Deployment> {
  const names = tenantNames(tenant.metadata.name);
  const metadata = ownedMetadata(tenant, names.workerName, names.namespace);
  // The selector is immutable once created, so it holds only the stable name label.
  const selector = { [workerNameLabel]: names.workerName };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { ...metadata, labels: { ...metadata.labels, ...selector } },
    spec: {
      replicas: workerReplicas(tenant),
      selector: { matchLabels: selector },
      // Start a new pod before stopping an old one: during password rotation the old
      // login stays valid only until the workload has rolled onto the new one.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: {
          labels: { ...metadata.labels, ...selector },
          annotations: { [credentialsChecksumAnnotation]: options.secretChecksum },
        },
        spec: {
          serviceAccountName: names.workerName,
          automountServiceAccountToken: false,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: workerUid,
            runAsGroup: workerUid,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [workerContainer(tenant, ctx)],
          volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }],
        },
      },
    },
  };
}
