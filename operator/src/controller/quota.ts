// Step 6: ResourceQuota and LimitRange sized by the plan.
import { limitRange, resourceQuota } from '../specs/index.js';
import type { Step } from './context.js';

export const quotaStep: Step = {
  condition: 'Quota',
  async run(ctx) {
    await ctx.deps.cluster.apply(resourceQuota(ctx.tenant));
    await ctx.deps.cluster.apply(limitRange(ctx.tenant));
    return { reason: 'Ready', message: `quota for plan ${ctx.tenant.spec.plan} applied` };
  },
};
