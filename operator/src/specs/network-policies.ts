// NetworkPolicies of a tenant namespace: deny everything, then open only what the
// worker needs (DNS, PostgreSQL, RabbitMQ, and public addresses for outgoing
// webhooks and provider APIs) and what the platform needs (ingress, and the
// metrics port from the monitoring namespaces).

import type {
  V1NetworkPolicy,
  V1NetworkPolicyEgressRule,
  V1NetworkPolicySpec,
} from '@kubernetes/client-node';
import { tenantNames, type Tenant } from '../../../lib/tenant/index.js';
import { defaultDnsNamespace, type BuildContext } from './context.js';
import { ownedMetadata, type Desired } from './metadata.js';
import { metricsPort } from './worker.js';

/** Every NetworkPolicy the operator owns in a tenant namespace, so the controller can spot strays and edits. */
export const networkPolicyNames = [
  'default-deny',
  'allow-from-platform',
  'allow-dns',
  'allow-postgres',
  'allow-rabbitmq',
  'allow-public-egress',
] as const;
export type NetworkPolicyName = (typeof networkPolicyNames)[number];

const namespaceNameLabel = 'kubernetes.io/metadata.name';
const anyIPv4 = '0.0.0.0/0';

/**
 * Private, shared, link-local (cloud metadata) and loopback ranges: outgoing webhooks and
 * provider calls may reach any public address, never these (the worker's own SSRF check
 * refuses them too; this holds even if that check is bypassed).
 */
export const nonPublicCidrs = {
  ipv4: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.0.0/16', '127.0.0.0/8'],
  ipv6: ['fc00::/7', 'fe80::/10', '::1/128'],
};

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
        // Prometheus in its own namespace scrapes the worker's metrics port, and only that.
        ...(ctx.metricsScrapeNamespaces?.length
          ? [
              {
                _from: ctx.metricsScrapeNamespaces.map((namespace) => ({
                  namespaceSelector: { matchLabels: { [namespaceNameLabel]: namespace } },
                })),
                ports: [{ protocol: 'TCP', port: metricsPort }],
              },
            ]
          : []),
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
    'allow-public-egress': {
      podSelector: allPods,
      policyTypes: ['Egress'],
      egress: [
        {
          to: [
            { ipBlock: { cidr: anyIPv4, except: nonPublicCidrs.ipv4 } },
            { ipBlock: { cidr: '::/0', except: nonPublicCidrs.ipv6 } },
          ],
          ports: [{ protocol: 'TCP' }],
        },
      ],
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
