// The outer reconcile: fetch the Tenant, handle deletion, make sure the
// finalizer is there, then run the ordered, idempotent steps and write the
// status once. A failing step marks its condition False (the steps after it
// Unknown), records a Warning event and rethrows so the work queue retries
// with backoff. A pending step asks for a requeue without counting as failure.
// A failure that only a change to the Tenant can get past sets Stalled=True
// (and a Stalled event); any other leaves Reconciling=True (status.ts).
import { ApiException } from '@kubernetes/client-node';
import {
  NameConflictError,
  tenantOwner,
  finalizerName,
  tenantNames,
  type Tenant,
} from '../../../lib/tenant/index.js';
import { describeKubeError } from '../kube/cluster.js';
import { MessagingUnavailableError } from '../messaging/rabbitmq-admin.js';
import { DatabaseUnavailableError } from '../sql/tenant-database.js';
import type { ControllerDeps, ReconcileContext, Step } from './context.js';
import { databaseStep } from './database.js';
import { finalizeTenant } from './finalizer.js';
import { messagingStep } from './messaging.js';
import { namespaceStep } from './namespace.js';
import { networkPolicyStep } from './network-policy.js';
import { quotaStep } from './quota.js';
import { schemaStep } from './schema.js';
import { secretsStep } from './secrets.js';
import {
  allStepsTrue,
  mergePatch,
  phaseFor,
  setCondition,
  setSummaryConditions,
  type Progress,
} from './status.js';
import { workloadStep } from './workload.js';

export const steps: readonly Step[] = [
  namespaceStep,
  databaseStep,
  schemaStep,
  secretsStep,
  networkPolicyStep,
  quotaStep,
  messagingStep,
  workloadStep,
];

export interface ReconcileResult {
  requeueAfterMs?: number;
  phase?: string;
}

/** Sorts a step failure into a condition reason. */
export function failureReason(error: unknown): string {
  if (error instanceof NameConflictError) return 'NameConflict';
  if (error instanceof DatabaseUnavailableError) return 'DatabaseUnreachable';
  if (error instanceof MessagingUnavailableError) return 'MessagingUnreachable';
  // The client's ApiException leaves `name` as "Error", so only its class tells it apart.
  if (error instanceof ApiException) return isRejection(error) ? 'Invalid' : 'KubernetesApiError';
  return 'Failed';
}

/**
 * The API server refused an object built from the spec as invalid (422) or
 * malformed (400), e.g. worker requests above the limits the plan gives: the
 * same spec gets the same answer, however often it is tried.
 */
function isRejection(error: ApiException<unknown>): boolean {
  return error.code === 422 || error.code === 400;
}

/**
 * Whether a step failure needs a change to the Tenant to get past (Stalled),
 * rather than time (a dependency down, an API error: Reconciling).
 * A name another owner holds stays taken until the Tenant is renamed or told
 * to restore it (restore-from-uid annotation).
 */
export function isStalled(error: unknown): boolean {
  if (error instanceof NameConflictError) return true;
  return error instanceof ApiException && isRejection(error);
}

function errorMessage(error: unknown): string {
  return describeKubeError(error);
}

export class TenantReconciler {
  /** The last phase of each known Tenant, for the tenants-by-phase metric. */
  readonly phases = new Map<string, string>();

  constructor(private readonly deps: ControllerDeps) {}

  async reconcile(name: string): Promise<ReconcileResult> {
    const { cluster } = this.deps;
    let tenant = await cluster.getTenant(name);
    if (!tenant) {
      this.phases.delete(name);
      return {};
    }
    if (tenant.metadata.deletionTimestamp) {
      this.phases.set(name, 'Deleting');
      if (tenant.metadata.finalizers?.includes(finalizerName)) await this.finalize(tenant);
      return { phase: 'Deleting' };
    }
    if (!tenant.metadata.finalizers?.includes(finalizerName)) {
      tenant = await cluster.setFinalizers(tenant, [...(tenant.metadata.finalizers ?? []), finalizerName]);
    }
    return this.provision(tenant);
  }

  private async finalize(tenant: Tenant): Promise<void> {
    try {
      await finalizeTenant(tenant, this.deps);
    } catch (error) {
      this.deps.events.record(
        tenant,
        'Warning',
        'DeletionFailed',
        `${failureReason(error)}: ${errorMessage(error)}`,
      );
      throw error;
    }
  }

  private async provision(tenant: Tenant): Promise<ReconcileResult> {
    const generation = tenant.metadata.generation;
    const now = this.deps.now();
    const ctx: ReconcileContext = {
      tenant,
      names: tenantNames(tenant.metadata.name),
      owner: tenantOwner(tenant),
      deps: this.deps,
      status: structuredClone(tenant.status ?? {}),
    };
    let conditions = ctx.status.conditions ?? [];
    let failure: unknown;
    let pending: number | undefined;
    let progress: Progress = { state: 'done' };
    let blockedBy: string | undefined;

    for (const step of steps) {
      if (blockedBy) {
        conditions = setCondition(
          conditions,
          step.condition,
          { status: 'Unknown', reason: 'Blocked', message: `waiting for ${blockedBy}` },
          generation,
          now,
        );
        continue;
      }
      try {
        const outcome = await step.run(ctx);
        const serving = outcome.pending?.serving === true;
        const status = outcome.pending && !serving ? 'False' : 'True';
        conditions = setCondition(
          conditions,
          step.condition,
          { status, reason: outcome.reason, message: outcome.message },
          generation,
          now,
        );
        if (outcome.pending) {
          pending = outcome.pending.requeueAfterMs;
          if (!serving) blockedBy = step.condition;
          progress = {
            state: serving ? 'serving' : 'working',
            step: step.condition,
            reason: outcome.reason,
            message: outcome.message,
          };
        }
      } catch (error) {
        failure = error;
        blockedBy = step.condition;
        const reason = failureReason(error);
        const message = errorMessage(error);
        conditions = setCondition(
          conditions,
          step.condition,
          { status: 'False', reason, message },
          generation,
          now,
        );
        progress = { state: isStalled(error) ? 'stalled' : 'working', step: step.condition, reason, message };
        this.deps.events.record(tenant, 'Warning', reason, `${step.condition}: ${message}`);
      }
    }

    // Every step ran and reported True for this generation exactly when progress is 'done'
    // or 'serving' (a step still completing while what it provides keeps working).
    const ready =
      (progress.state === 'done' || progress.state === 'serving') && allStepsTrue(conditions, generation);
    conditions = setSummaryConditions(conditions, progress, generation, now);
    const wasStalled = tenant.status?.conditions?.find((c) => c.type === 'Stalled');
    if (
      progress.state === 'stalled' &&
      (wasStalled?.status !== 'True' || wasStalled.observedGeneration !== generation)
    ) {
      this.deps.events.record(
        tenant,
        'Warning',
        'Stalled',
        `${progress.step}: ${progress.message}; the operator cannot progress until the Tenant is changed`,
      );
    }
    const wasReady = tenant.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    ctx.status.conditions = conditions;
    ctx.status.phase = phaseFor(tenant, ready);
    this.phases.set(tenant.metadata.name, ctx.status.phase);
    if (generation !== undefined) ctx.status.observedGeneration = generation;
    const patch = mergePatch(tenant.status ?? {}, ctx.status);
    if (patch !== undefined) await this.deps.cluster.patchTenantStatus(tenant.metadata.name, patch);
    if (ready && !wasReady)
      this.deps.events.record(tenant, 'Normal', 'Ready', `tenant ${tenant.metadata.name} is ready`);
    if (failure !== undefined) throw failure instanceof Error ? failure : new Error(JSON.stringify(failure));
    return { phase: ctx.status.phase, ...(pending === undefined ? {} : { requeueAfterMs: pending }) };
  }
}
