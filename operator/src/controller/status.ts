// Conditions and phase. Ready is honest: True only when every step succeeded
// for the generation being reconciled.
import {
  conditionTypes,
  type Condition,
  type ConditionType,
  type Phase,
  type StepCondition,
  type Tenant,
  type TenantStatus,
} from '../api/tenant.js';

export interface ConditionUpdate {
  status: Condition['status'];
  reason: string;
  message: string;
}

/** Sets a condition, keeping lastTransitionTime unless the status flips. */
export function setCondition(
  conditions: Condition[],
  type: ConditionType,
  update: ConditionUpdate,
  generation: number | undefined,
  now: Date,
): Condition[] {
  const previous = conditions.find((c) => c.type === type);
  const next: Condition = {
    type,
    ...update,
    ...(generation === undefined ? {} : { observedGeneration: generation }),
    lastTransitionTime:
      previous && previous.status === update.status ? previous.lastTransitionTime : now.toISOString(),
  };
  return [...conditions.filter((c) => c.type !== type), next].sort(
    (a, b) => conditionOrder(a.type) - conditionOrder(b.type),
  );
}

function conditionOrder(type: ConditionType): number {
  const index = (conditionTypes as readonly string[]).indexOf(type);
  return index === -1 ? conditionTypes.length : index;
}

export function allStepsTrue(conditions: Condition[], generation: number | undefined): boolean {
  return conditionTypes.every((type: StepCondition) => {
    const c = conditions.find((x) => x.type === type);
    return c?.status === 'True' && c.observedGeneration === generation;
  });
}

export function phaseFor(tenant: Tenant, ready: boolean): Phase {
  if (tenant.metadata.deletionTimestamp) return 'Deleting';
  if (ready) return tenant.spec.suspended ? 'Suspended' : 'Ready';
  const before = tenant.status?.phase;
  return before === 'Ready' || before === 'Degraded' || before === 'Suspended' ? 'Degraded' : 'Provisioning';
}

/** Whether two statuses differ in anything but condition timestamps we would keep anyway. */
export function statusChanged(before: TenantStatus | undefined, after: TenantStatus): boolean {
  return JSON.stringify(before ?? {}) !== JSON.stringify(after);
}
