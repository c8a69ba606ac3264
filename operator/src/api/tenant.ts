// The Tenant resource as the operator sees it, its condition names and the
// per-plan policies. The CRD in crds/ is the validating source of truth; these
// types mirror it.

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

export const plans = ['free', 'starter', 'professional', 'premium', 'enterprise'] as const;
export type Plan = (typeof plans)[number];
export type Role = 'owner' | 'admin' | 'member';

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
      defaultRole?: 'admin' | 'member';
      /** Treat an ID token without `email_verified` as verified; default false (docs/sso.md). */
      assumeEmailVerified?: boolean;
    };
    saml?: {
      idpMetadataXml?: string;
      idpMetadataUrl?: string;
      groupsAttribute?: string;
      allowIdpInitiated?: boolean;
      roleMapping?: Record<string, Role>;
      defaultRole?: 'admin' | 'member';
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
export type ConditionType = StepCondition | 'Ready';

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
  };
  messaging?: { username?: string; secretName?: string; vhost?: string; queuePrefix?: string };
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

/**
 * Names derived from a tenant's name; every component uses these and nothing else.
 * Each is unique to its tenant, across tenants and across kinds: tenant names
 * hold no `_` or `.`, so `tenant_<ident>` (ident: the name with `-` as `_`) is
 * injective, and the roles beside the owner add a `.` that no owner, database or
 * other tenant's role can contain (test/unit/tenant-names.test.ts proves it).
 */
export interface TenantNames {
  namespace: string;
  database: string;
  /** NOLOGIN role that owns the database and its schema. */
  ownerRole: string;
  /** NOLOGIN group role that holds the application's privileges; the login roles are its members. */
  appRole: string;
  /** The two LOGIN roles that take turns so that password rotation has no downtime. */
  loginRoles: readonly [string, string];
  dbSecret: string;
  /** The copy of the database Secret in the platform namespace, which the API reads. */
  platformDbSecret: string;
  amqpSecret: string;
  amqpUser: string;
  queuePrefix: string;
  workerName: string;
}

/** PostgreSQL identifier of a tenant: `tenant_` and the name with `-` as `_`. */
function databaseIdent(name: string): string {
  return `tenant_${name.replaceAll('-', '_')}`;
}

/** Every tenant namespace starts with this; the platform's own namespace must not. */
export const tenantNamespacePrefix = 'tenant-';

export function tenantNames(name: string): TenantNames {
  const ident = databaseIdent(name);
  return {
    namespace: `${tenantNamespacePrefix}${name}`,
    database: ident,
    ownerRole: ident,
    appRole: `${ident}.app`,
    loginRoles: [`${ident}.a`, `${ident}.b`],
    dbSecret: `${name}-db`,
    platformDbSecret: `tenant-${name}-db`,
    amqpSecret: `${name}-amqp`,
    amqpUser: `tenant-${name}`,
    queuePrefix: `tenant.${name}.`,
    workerName: 'tenantry-worker',
  };
}

/**
 * The roles of the scheme before ownership markers, which collided across
 * tenants (`acme`'s login `tenant_acme_a` was the owner of `acme-a`). The
 * operator moves a tenant off them: it renames the app role and rotates onto a
 * current login role, then drops the old logins (docs/operator.md).
 */
export function legacyRoleNames(names: Pick<TenantNames, 'ownerRole'>): {
  appRole: string;
  loginRoles: readonly [string, string];
} {
  const ident = names.ownerRole;
  return { appRole: `${ident}_app`, loginRoles: [`${ident}_a`, `${ident}_b`] };
}

export interface PlanPolicy {
  quota: {
    requestsCpu: string;
    requestsMemory: string;
    limitsCpu: string;
    limitsMemory: string;
    pods: number;
  };
  containerDefaults: { requests: { cpu: string; memory: string }; limits: { cpu: string; memory: string } };
  workerReplicas: number;
  requestsPerMinute: number;
}

export const planPolicies: Record<Plan, PlanPolicy> = {
  free: {
    quota: { requestsCpu: '1', requestsMemory: '1Gi', limitsCpu: '2', limitsMemory: '2Gi', pods: 10 },
    containerDefaults: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '250m', memory: '256Mi' } },
    workerReplicas: 1,
    requestsPerMinute: 600,
  },
  starter: {
    quota: { requestsCpu: '2', requestsMemory: '4Gi', limitsCpu: '4', limitsMemory: '8Gi', pods: 20 },
    containerDefaults: {
      requests: { cpu: '100m', memory: '128Mi' },
      limits: { cpu: '500m', memory: '512Mi' },
    },
    workerReplicas: 1,
    requestsPerMinute: 1200,
  },
  professional: {
    quota: { requestsCpu: '4', requestsMemory: '8Gi', limitsCpu: '8', limitsMemory: '16Gi', pods: 40 },
    containerDefaults: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '1Gi' } },
    workerReplicas: 2,
    requestsPerMinute: 3000,
  },
  premium: {
    quota: { requestsCpu: '8', requestsMemory: '16Gi', limitsCpu: '16', limitsMemory: '32Gi', pods: 80 },
    containerDefaults: { requests: { cpu: '200m', memory: '256Mi' }, limits: { cpu: '2', memory: '2Gi' } },
    workerReplicas: 2,
    requestsPerMinute: 6000,
  },
  enterprise: {
    quota: { requestsCpu: '16', requestsMemory: '32Gi', limitsCpu: '32', limitsMemory: '64Gi', pods: 160 },
    containerDefaults: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '4', memory: '4Gi' } },
    workerReplicas: 3,
    requestsPerMinute: 12000,
  },
};

export function workerReplicas(tenant: Tenant): number {
  if (tenant.spec.suspended) return 0;
  return tenant.spec.worker?.replicas ?? planPolicies[tenant.spec.plan].workerReplicas;
}
