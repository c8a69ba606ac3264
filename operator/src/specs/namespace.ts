import type { V1Namespace } from '@kubernetes/client-node';
import { tenantNames, type Tenant } from '../../../lib/tenant/index.js';
import { ownedMetadata, type Desired } from './metadata.js';

export function namespace(tenant: Tenant): Desired<V1Namespace> {
  const metadata = ownedMetadata(tenant, tenantNames(tenant.metadata.name).namespace);
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      ...metadata,
      // Pod Security admission rejects any tenant pod that is not locked down.
      labels: { ...metadata.labels, 'pod-security.kubernetes.io/enforce': 'restricted' },
    },
  };
}
