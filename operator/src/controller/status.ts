// Conditions and phase. Ready is honest: True only when every step succeeded
// for the generation being reconciled. Reconciling and Stalled follow the
// kstatus rules (sigs.k8s.io/cli-utils/pkg/kstatus), so that Flux, kpt, Helm's
// waiter and kubectl plugins can tell "still working" from "cannot work".
import {
  conditionTypes,
  summaryConditionTypes,
  type Condition,
  type ConditionType,
  type Phase,
  type StepCondition,
  type Tenant,
} from '../../../lib/tenant/index.js';

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

const conditionOrderList: readonly string[] = [...conditionTypes, ...summaryConditionTypes];

function conditionOrder(type: ConditionType): number {
  const index = conditionOrderList.indexOf(type);
  return index === -1 ? conditionOrderList.length : index;
}

/**
 * Where one reconcile got to: every step done; serving (every step provides what it
 * stands for, one is still completing, such as a worker rollout with the previous
 * pods available); still working (a step pending, or failing on something that may
 * pass by itself); or stalled (a step failing on something only a change to the
 * Tenant can get past).
 */
export type Progress =
  | { state: 'done' }
  | { state: 'serving' | 'working' | 'stalled'; step: StepCondition; reason: string; message: string };

/** Sets Ready, Reconciling and Stalled from the reconcile's progress. */
export function setSummaryConditions(
  conditions: Condition[],
  progress: Progress,
  generation: number | undefined,
  now: Date,
): Condition[] {
  const set = (list: Condition[], type: ConditionType, update: ConditionUpdate) =>
    setCondition(list, type, update, generation, now);
  if (progress.state === 'done') {
    const message = `every step succeeded for generation ${generation ?? 'unknown'}`;
    conditions = set(conditions, 'Ready', { status: 'True', reason: 'Provisioned', message });
    conditions = set(conditions, 'Reconciling', { status: 'False', reason: 'Reconciled', message });
    return set(conditions, 'Stalled', { status: 'False', reason: 'Reconciled', message });
  }
  const detail = `${progress.step}: ${progress.message}`;
  if (progress.state === 'serving') {
    // kstatus reads Ready=True with Reconciling=True as InProgress: serving, not yet Current.
    conditions = set(conditions, 'Ready', {
      status: 'True',
      reason: progress.reason,
      message: `serving while ${detail}`,
    });
    conditions = set(conditions, 'Reconciling', { status: 'True', reason: progress.reason, message: detail });
    return set(conditions, 'Stalled', {
      status: 'False',
      reason: 'Reconciling',
      message: 'the operator is still working towards the spec',
    });
  }
  conditions = set(conditions, 'Ready', { status: 'False', reason: progress.reason, message: detail });
  if (progress.state === 'working') {
    conditions = set(conditions, 'Reconciling', { status: 'True', reason: progress.reason, message: detail });
    return set(conditions, 'Stalled', {
      status: 'False',
      reason: 'Reconciling',
      message: 'the operator is still working towards the spec',
    });
  }
  conditions = set(conditions, 'Reconciling', {
    status: 'False',
    reason: 'Stalled',
    message: 'the operator cannot progress without a change to the Tenant',
  });
  return set(conditions, 'Stalled', { status: 'True', reason: progress.reason, message: detail });
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

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/**
 * An RFC 7386 merge patch turning `before` into `after`: removed keys become
 * null (a plain copy of `after` would leave them in place), arrays are replaced.
 */
export function mergePatch(before: unknown, after: unknown): Json | undefined {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(before) || !isObject(after)) {
    return JSON.stringify(before) === JSON.stringify(after) ? undefined : (after as Json);
  }
  const patch: Record<string, Json> = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (after[key] === undefined) {
      if (before[key] !== undefined) patch[key] = null;
      continue;
    }
    const sub = mergePatch(before[key], after[key]);
    if (sub !== undefined) patch[key] = sub;
  }
  return Object.keys(patch).length === 0 ? undefined : patch;
}
