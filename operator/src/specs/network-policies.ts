// NetworkPolicies of a tenant namespace: deny everything, then open only what the
// worker needs (DNS, PostgreSQL, RabbitMQ) and what the platform needs (ingress).

import type {
  V1NetworkPolicy,
  V1NetworkPolicyEgressRule,
  V1NetworkPolicySpec,
} from '@kubernetes/client-node';
import { tenantNames, type Tenant } from '../api/tenant.js';
import { defaultDnsNamespace, type BuildContext } from './context.js';
import { ownedMetadata, type Desired } from './metadata.js';

/** Every NetworkPolicy the operator owns in a tenant namespace, so the controller can spot strays and edits. */
export const networkPolicyNames = [
  'default-deny',
  'allow-from-platform',
  'allow-dns',
  'allow-postgres',
  'allow-rabbitmq',
] as const;
export type NetworkPolicyName = (typeof networkPolicyNames)[number];

const namespaceNameLabel = 'kubernetes.io/metadata.name';
const anyIPv4 = '0.0.0.0/0';

function egressToService(service: { port: number; cidrs?: string[] }): V1NetworkPolicyEgressRule {
  // An empty list would otherwise mean "no peers" to us but "everyone" to Kubernetes; make both explicit.
  const cidrs = service.cidrs?.length ? service.cidrs : [anyIPv4];
  return {
    to: cidrs.map((cidr) => ({ ipBlock: { cidr } })),
    ports: [{ protocol: 'TCP', port: service.port }],
  };
}

function policySpecs(ctx: BuildContext): Record<NetworkPolicyName, V1NetworkPolicySpec> {
  const allPods = {};
  return {
    'default-deny': { podSelector: allPods, policyTypes: ['Ingress', 'Egress'] },
    'allow-from-platform': {
      podSelector: allPods,
      policyTypes: ['Ingress'],
      // `_from` is client-node's name for `from`; its serializer writes `from` on the wire.
      ingress: [
        { _from: [{ namespaceSelector: { matchLabels: { [namespaceNameLabel]: ctx.platformNamespace } } }] },
      ],
    },
    'allow-dns': {
      podSelector: allPods,
      policyTypes: ['Egress'],
      egress: [
        {
          to: [
            {
              namespaceSelector: {
                matchLabels: { [namespaceNameLabel]: ctx.dnsNamespace ?? defaultDnsNamespace },
              },
            },
          ],
          ports: [
            { protocol: 'UDP', port: 53 },
            { protocol: 'TCP', port: 53 },
          ],
        },
      ],
    },
    'allow-postgres': {
      podSelector: allPods,
      policyTypes: ['Egress'],
      egress: [egressToService(ctx.postgres)],
    },
    'allow-rabbitmq': {
      podSelector: allPods,
      policyTypes: ['Egress'],
      egress: [egressToService(ctx.rabbitmq)],
    },
  };
}

/** The tenant's NetworkPolicies, in the order of networkPolicyNames. */
export function networkPolicies(tenant: Tenant, ctx: BuildContext): Desired<V1NetworkPolicy>[] {
  const ns = tenantNames(tenant.metadata.name).namespace;
  const specs = policySpecs(ctx);
  return networkPolicyNames.map((name) => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: ownedMetadata(tenant, name, ns),
    // Both rule lists are always set, empty where unused, so server-side apply owns them and
    // removes rules someone else added.
    spec: { ingress: [], egress: [], ...specs[name] },
  }));
}
