// The Tenant resource: its group, version and kind, the labels and annotations
// components read, its condition names and its spec and status types. The CRD
// in crds/ is the validating source of truth; these types mirror it.
import type { Plan } from './plans.js';
import type { NonOwnerRole, Role } from './roles.js';

export const group = 'tenantry.io';
export const version = 'v1alpha1';
export const apiVersion = `${group}/${version}`;
export const kind = 'Tenant';
export const plural = 'tenants';

export const finalizerName = 'tenantry.io/finalizer';
export const fieldManager = 'tenantry-operator';
export const tenantLabel = 'tenantry.io/tenant';
export const managedByLabel = 'app.kubernetes.io/managed-by';
export const rotatePasswordAnnotation = 'tenantry.io/rotate-password';

export interface ResourceList {
  cpu?: string | number;
  memory?: string | number;
}

export interface TenantSpec {
  displayName?: string;
  plan: Plan;
  owner: { email: string };
  domains?: string[];
  suspended?: boolean;
  selfRegistration?: boolean;
  database?: {
    deletionPolicy?: 'Retain' | 'Delete';
    locale?: string;
    passwordRotation?: { interval?: string; trigger?: string };
  };
  sso?: {
    oidc?: {
      issuer: string;
      clientId: string;
      clientSecretRef?: { name: string; key: string };
      scopes?: string[];
      groupsClaim?: string;
      roleMapping?: Record<string, Role>;
      defaultRole?: NonOwnerRole;
      /** Treat an ID token without `email_verified` as verified; default false (docs/sso.md). */
      assumeEmailVerified?: boolean;
    };
    saml?: {
      idpMetadataXml?: string;
      idpMetadataUrl?: string;
      groupsAttribute?: string;
      allowIdpInitiated?: boolean;
      roleMapping?: Record<string, Role>;
      defaultRole?: NonOwnerRole;
    };
  };
  rateLimit?: { requestsPerMinute?: number };
  worker?: { replicas?: number; resources?: { requests?: ResourceList; limits?: ResourceList } };
}

export const conditionTypes = [
  'Namespace',
  'Database',
  'Schema',
  'Secrets',
  'NetworkPolicy',
  'Quota',
  'Messaging',
  'Workload',
] as const;
export type StepCondition = (typeof conditionTypes)[number];
/**
 * The summary conditions, after the steps', by the kstatus rules
 * (sigs.k8s.io/cli-utils/pkg/kstatus): Ready is True once every step succeeded
 * for the observed generation; Reconciling is True while the operator is still
 * working towards the spec (a step pending, or failing on something that may
 * pass, such as a dependency being down); Stalled is True when it cannot get
 * further without a change to the Tenant (docs/tenant-status.md).
 */
export const summaryConditionTypes = ['Ready', 'Reconciling', 'Stalled'] as const;
export type SummaryCondition = (typeof summaryConditionTypes)[number];
export type ConditionType = StepCondition | SummaryCondition;

export interface Condition {
  type: ConditionType;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export type Phase = 'Pending' | 'Provisioning' | 'Ready' | 'Degraded' | 'Suspended' | 'Deleting';

export interface TenantStatus {
  observedGeneration?: number;
  phase?: Phase;
  namespace?: string;
  database?: {
    name?: string;
    ownerRole?: string;
    username?: string;
    secretName?: string;
    schemaVersion?: number;
    passwordRotatedAt?: string;
    lastRotationTrigger?: string;
    /** The previous login role, valid until the workload has rolled onto the new one. */
    retiringUsername?: string;
    /** The PostgreSQL server (host:port) the database lives on, as the operator reaches it. */
    server?: string;
  };
  messaging?: { username?: string; secretName?: string; vhost?: string; queuePrefix?: string };
  /** The worker Deployment: the replicas asked for and those available on the current template. */
  worker?: { replicas?: number; availableReplicas?: number };
  conditions?: Condition[];
}

export interface Tenant {
  apiVersion: typeof apiVersion;
  kind: typeof kind;
  metadata: {
    name: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    finalizers?: string[];
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: TenantSpec;
  status?: TenantStatus;
}
