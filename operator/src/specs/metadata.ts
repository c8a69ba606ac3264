// Labels and ownership shared by every object the operator applies.

import type { V1ObjectMeta, V1OwnerReference } from '@kubernetes/client-node';
import {
  tenantUidLabel,
  apiVersion,
  kind,
  managedByLabel,
  tenantLabel,
  type Tenant,
} from '../../../lib/tenant/index.js';

export const partOfLabel = 'app.kubernetes.io/part-of';
export const secretKindLabel = 'tenantry.io/secret-kind';
export const managedByValue = 'tenantry-operator';
export const partOfValue = 'tenantry';

/**
 * A desired object as sent with server-side apply: the client-node types leave
 * apiVersion, kind and name optional, but an apply without them is rejected.
 */
export type Desired<T> = T & {
  apiVersion: string;
  kind: string;
  metadata: V1ObjectMeta & { name: string };
};

export function tenantLabels(tenant: Tenant): Record<string, string> {
  return {
    [tenantLabel]: tenant.metadata.name,
    // The ownership marker: a name is reused by a later Tenant, its uid never is.
    ...(tenant.metadata.uid === undefined ? {} : { [tenantUidLabel]: tenant.metadata.uid }),
    [managedByLabel]: managedByValue,
    [partOfLabel]: partOfValue,
  };
}

/** Makes the Tenant the controller of an object, so deleting it garbage-collects the object. */
export function ownerReference(tenant: Tenant): V1OwnerReference {
  const uid = tenant.metadata.uid;
  // An owner reference without the uid is rejected by the API server; fail here with the reason instead.
  if (!uid) throw new Error(`Tenant ${tenant.metadata.name} has no metadata.uid; read it from the API first`);
  return {
    apiVersion,
    kind,
    name: tenant.metadata.name,
    uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** Metadata of an object the Tenant owns: its labels plus the controller reference. */
export function ownedMetadata(
  tenant: Tenant,
  name: string,
  namespace?: string,
): V1ObjectMeta & { name: string } {
  return {
    name,
    ...(namespace === undefined ? {} : { namespace }),
    labels: tenantLabels(tenant),
    ownerReferences: [ownerReference(tenant)],
  };
}
