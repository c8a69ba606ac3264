// The plan's ResourceQuota and LimitRange. The LimitRange gives every container
// requests and limits, which the quota's requests/limits entries make mandatory.

import type { V1LimitRange, V1ResourceQuota } from '@kubernetes/client-node';
import { planPolicies, tenantNames, type Tenant } from '../../../lib/tenant/index.js';
import { ownedMetadata, type Desired } from './metadata.js';

export const resourceQuotaName = 'tenant-quota';
export const limitRangeName = 'tenant-limits';

export function resourceQuota(tenant: Tenant): Desired<V1ResourceQuota> {
  const { quota } = planPolicies[tenant.spec.plan];
  return {
    apiVersion: 'v1',
    kind: 'ResourceQuota',
    metadata: ownedMetadata(tenant, resourceQuotaName, tenantNames(tenant.metadata.name).namespace),
    spec: {
      hard: {
        'requests.cpu': quota.requestsCpu,
        'requests.memory': quota.requestsMemory,
        'limits.cpu': quota.limitsCpu,
        'limits.memory': quota.limitsMemory,
        pods: String(quota.pods),
      },
    },
  };
}

export function limitRange(tenant: Tenant): Desired<V1LimitRange> {
  const { containerDefaults } = planPolicies[tenant.spec.plan];
  return {
    apiVersion: 'v1',
    kind: 'LimitRange',
    metadata: ownedMetadata(tenant, limitRangeName, tenantNames(tenant.metadata.name).namespace),
    spec: {
      limits: [
        {
          type: 'Container',
          // client-node's name for `default`; its serializer writes `default` on the wire.
          _default: { ...containerDefaults.limits },
          defaultRequest: { ...containerDefaults.requests },
        },
      ],
    },
  };
}
