// Connection Secrets. The builders only encode; the controller computes the values.

import type { V1Secret } from '@kubernetes/client-node';
import { tenantNames, type Tenant } from '../../../lib/tenant/index.js';
import { ownedMetadata, secretKindLabel, tenantLabels, type Desired } from './metadata.js';

export type SecretKind = 'database' | 'amqp';

/** Name of the platform-namespace copy of a tenant's database Secret. */
export function platformDatabaseSecretName(tenantName: string): string {
  return tenantNames(tenantName).platformDbSecret;
}

// Base64 `data` rather than `stringData`: the API server stores only `data`, so an
// apply with stringData would differ from the live object on every comparison.
function encode(data: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(data).map(([key, value]) => [key, Buffer.from(value, 'utf8').toString('base64')]),
  );
}

function tenantSecret(
  tenant: Tenant,
  name: string,
  kind: SecretKind,
  data: Record<string, string>,
): Desired<V1Secret> {
  const metadata = ownedMetadata(tenant, name, tenantNames(tenant.metadata.name).namespace);
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { ...metadata, labels: { ...metadata.labels, [secretKindLabel]: kind } },
    type: 'Opaque',
    data: encode(data),
  };
}

export function databaseSecret(tenant: Tenant, data: Record<string, string>): Desired<V1Secret> {
  return tenantSecret(tenant, tenantNames(tenant.metadata.name).dbSecret, 'database', data);
}

export function amqpSecret(tenant: Tenant, data: Record<string, string>): Desired<V1Secret> {
  return tenantSecret(tenant, tenantNames(tenant.metadata.name).amqpSecret, 'amqp', data);
}

/**
 * The copy of the database Secret the platform (API) reads. It has no owner
 * reference so that it outlives the Tenant under deletionPolicy Retain.
 */
export function platformDatabaseSecret(
  tenant: Tenant,
  data: Record<string, string>,
  platformNamespace: string,
): Desired<V1Secret> {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: platformDatabaseSecretName(tenant.metadata.name),
      namespace: platformNamespace,
      labels: { ...tenantLabels(tenant), [secretKindLabel]: 'database' },
    },
    type: 'Opaque',
    data: encode(data),
  };
}
