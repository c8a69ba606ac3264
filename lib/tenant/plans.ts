// The plans a Tenant can be on and what each one grants.
import type { Tenant } from './resource.js';

export const plans = ['free', 'starter', 'professional', 'premium', 'enterprise'] as const;
export type Plan = (typeof plans)[number];

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
