// Driving the reconcile steps against the fakes: a whole reconcile through the
// real TenantReconciler (which turns a step's failure into its condition), or
// the steps in order up to one of them, on a context built from the stored
// Tenant the way one reconcile builds it.
import type { Condition, ConditionType, StepCondition, Tenant } from '../../../lib/tenant/index.js';
import type { ReconcileContext, StepOutcome } from '../../../operator/src/controller/context.js';
import {
  steps,
  TenantReconciler,
  type ReconcileResult,
} from '../../../operator/src/controller/reconciler.js';
import { expect } from 'chai';
import { contextFor, fakes, makeTenant, state, type Fakes } from './fakes.js';

export interface Reconciled {
  tenant: Tenant;
  result?: ReconcileResult;
  error?: unknown;
  condition(type: ConditionType): Condition | undefined;
}

/** One reconcile of the stored Tenant; a failure is returned, not thrown. */
export async function reconcile(fx: Fakes, name = 'acme'): Promise<Reconciled> {
  let result: ReconcileResult | undefined;
  let error: unknown;
  try {
    result = await new TenantReconciler(fx.deps).reconcile(name);
  } catch (caught) {
    error = caught;
  }
  const tenant = fx.kube.tenant(name);
  if (!tenant) throw new Error(`no Tenant ${name}`);
  return {
    tenant,
    ...(result ? { result } : {}),
    ...(error === undefined ? {} : { error }),
    condition: (type) => tenant.status?.conditions?.find((c) => c.type === type),
  };
}

/**
 * Runs the steps in order through `last` on a context built from the stored
 * Tenant; a step before `last` that does not succeed fails the call.
 */
export async function runThrough(
  fx: Fakes,
  last: StepCondition,
  name = 'acme',
): Promise<{ ctx: ReconcileContext; outcome: StepOutcome }> {
  const tenant = fx.kube.tenant(name);
  if (!tenant) throw new Error(`no Tenant ${name}`);
  const ctx = contextFor(tenant, fx.deps);
  for (const step of steps) {
    const outcome = await step.run(ctx);
    if (step.condition === last) return { ctx, outcome };
    if (outcome.pending) throw new Error(`${step.condition} is pending: ${outcome.message}`);
  }
  throw new Error(`no step ${last}`);
}

/** A stored Tenant (see makeTenant) and fakes with nothing else in them yet. */
export function withTenant(fx: Fakes, ...args: Parameters<typeof makeTenant>): Tenant {
  const tenant = makeTenant(...args);
  fx.kube.addTenant(tenant);
  return tenant;
}

/** Reconciles until Ready: once to create everything, then again after the worker rolled out. */
export async function provisioned(fx: Fakes, name = 'acme'): Promise<Tenant> {
  await reconcile(fx, name);
  fx.kube.rollOut(`tenant-${name}`, 'tenantry-worker');
  const done = await reconcile(fx, name);
  if (done.error !== undefined || done.tenant.status?.phase !== 'Ready')
    throw new Error(`tenant ${name} did not become Ready: ${String(done.error)}`);
  return done.tenant;
}

/**
 * The idempotence every step promises: on a provisioned Tenant, running the steps through `last` again
 * reports `reason` and changes nothing: no write through any fake, no event, the same state.
 */
export async function rerunOfProvisioned(
  last: StepCondition,
  reason = 'Ready',
): Promise<{ ctx: ReconcileContext; outcome: StepOutcome }> {
  const fx = fakes();
  withTenant(fx);
  await provisioned(fx);
  const counters = () => ({
    kube: fx.kube.changes,
    db: fx.db.changes,
    mq: fx.mq.changes,
    events: fx.events.recorded.length,
  });
  const before = { state: state(fx), counters: counters() };
  const run = await runThrough(fx, last);
  expect(run.outcome.reason).to.equal(reason);
  expect({ state: state(fx), counters: counters() }).to.deep.equal(before);
  return run;
}
