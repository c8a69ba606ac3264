// Ownership markers: every PostgreSQL role and database, RabbitMQ user and
// Kubernetes object the operator creates carries the uid of its Tenant, so a
// name that some other Tenant (or anything else) already holds is never
// adopted, altered or dropped. Pure, so it is unit-tested without services.
import type { Tenant } from './resource.js';

/** Label on Kubernetes objects; also the key of the marker in PostgreSQL comments and RabbitMQ tags. */
export const tenantUidLabel = 'tenantry.io/tenant-uid';

/**
 * Set by a platform engineer on a re-created Tenant to take over what a deleted
 * Tenant of the same name left under `Retain`: objects marked with this uid are
 * re-stamped with the new Tenant's uid.
 */
export const restoreFromUidAnnotation = 'tenantry.io/restore-from-uid';

/** Who is asking for an object: the Tenant's uid, and what else it may take over. */
export interface TenantOwner {
  /** The Tenant's uid. Undefined only for callers outside the operator: they own unmarked objects only. */
  uid?: string;
  /** The uid of a deleted Tenant whose retained objects may be taken over (the restore annotation). */
  restoreFromUid?: string;
  /**
   * Names the Tenant's status already records as its own (database, owner and
   * login roles, RabbitMQ user). An unmarked object with such a name predates
   * ownership markers and is recognised.
   */
  recorded?: readonly string[];
}

/** How an object found under a derived name relates to the Tenant asking for it. */
export type Claim =
  | 'absent' // nothing there: create it, marked
  | 'own' // marked with the Tenant's uid
  | 'restore' // marked with the uid the restore annotation names: re-stamp it
  | 'recognised' // unmarked, and the Tenant's status records it: stamp it
  | 'foreign'; // marked by another Tenant, or unmarked and not recorded: leave it alone

const markerPattern = /^tenantry\.io\/tenant-uid=([0-9A-Za-z-]{1,64})$/;

/** The marker text: the body of a PostgreSQL `COMMENT` and a RabbitMQ user tag. */
export function ownershipMarker(uid: string): string {
  if (!markerPattern.test(`${tenantUidLabel}=${uid}`))
    throw new Error(`not a Tenant uid: ${JSON.stringify(uid)}`);
  return `${tenantUidLabel}=${uid}`;
}

/** The uid a comment or tag marks, or undefined when it is not a marker. */
export function markedUid(text: string | null | undefined): string | undefined {
  return markerPattern.exec(text ?? '')?.[1];
}

/** The uid among a RabbitMQ user's tags, or undefined when none is a marker. */
export function markedUidOfTags(tags: readonly string[]): string | undefined {
  return tags.map(markedUid).find((uid) => uid !== undefined);
}

/**
 * What `owner` may do with an object found under `name`. `marker` is its
 * comment or marker tag; `exists` false means the name is free.
 */
export function claimOf(
  found: { name: string; exists: boolean; marker: string | null | undefined },
  owner: TenantOwner,
): Claim {
  if (!found.exists) return 'absent';
  const uid = markedUid(found.marker);
  if (uid === undefined) {
    if (owner.uid === undefined) return 'own';
    return owner.recorded?.includes(found.name) ? 'recognised' : 'foreign';
  }
  if (uid === owner.uid) return 'own';
  if (owner.restoreFromUid !== undefined && uid === owner.restoreFromUid) return 'restore';
  return 'foreign';
}

/**
 * What `owner` may do with a Kubernetes object found under `name`: its
 * `tenantry.io/tenant-uid` label or its controlling Tenant reference is the marker.
 */
export function claimOfKubernetesObject(
  name: string,
  metadata:
    | {
        labels?: Record<string, string>;
        ownerReferences?: { kind: string; uid: string; controller?: boolean }[];
      }
    | undefined,
  owner: TenantOwner,
): Claim {
  if (metadata === undefined) return 'absent';
  const uid =
    metadata.labels?.[tenantUidLabel] ??
    metadata.ownerReferences?.find((r) => r.kind === 'Tenant' && r.controller)?.uid;
  return claimOf(
    { name, exists: true, marker: uid === undefined ? null : `${tenantUidLabel}=${uid}` },
    owner,
  );
}

/** True when the claim lets the owner use (and stamp) the object. */
export function mayUse(claim: Claim): boolean {
  return claim !== 'foreign';
}

/**
 * A derived name is held by something this Tenant does not own. The
 * controller reports it as reason `NameConflict`. The message names the objects,
 * never another Tenant's uid or any secret.
 */
export class NameConflictError extends Error {
  constructor(readonly objects: readonly string[]) {
    super(
      `${objects.join(', ')} already ${objects.length === 1 ? 'exists' : 'exist'} and ${objects.length === 1 ? 'belongs' : 'belong'} to another owner; ` +
        `the operator leaves ${objects.length === 1 ? 'it' : 'them'} untouched (see ${restoreFromUidAnnotation} to restore a retained tenant)`,
    );
    this.name = 'NameConflictError';
  }
}

/** Throws NameConflictError for every found object the owner may not use. */
export function assertClaims(found: readonly { what: string; claim: Claim }[]): void {
  const foreign = found.filter((f) => f.claim === 'foreign').map((f) => f.what);
  if (foreign.length > 0) throw new NameConflictError(foreign);
}

/** The owner a Tenant reconciles as: its uid, its restore annotation, and the names its status records. */
export function tenantOwner(tenant: Tenant): TenantOwner {
  const db = tenant.status?.database;
  const recorded = [
    tenant.status?.namespace,
    db?.name,
    db?.ownerRole,
    db?.username,
    db?.retiringUsername,
    tenant.status?.messaging?.username,
  ];
  const restoreFromUid = tenant.metadata.annotations?.[restoreFromUidAnnotation]?.trim();
  return {
    ...(tenant.metadata.uid === undefined ? {} : { uid: tenant.metadata.uid }),
    ...(restoreFromUid ? { restoreFromUid } : {}),
    recorded: recorded.filter((n): n is string => typeof n === 'string' && n.length > 0),
  };
}
