// Step 5: default-deny NetworkPolicies with the few allowances a tenant needs.
import { networkPolicies } from '../specs/index.js';
import type { Step } from './context.js';

export const networkPolicyStep: Step = {
  condition: 'NetworkPolicy',
  async run(ctx) {
    const policies = networkPolicies(ctx.tenant, ctx.deps.build);
    for (const policy of policies) await ctx.deps.cluster.apply(policy);
    return { reason: 'Ready', message: `${policies.length} NetworkPolicies applied` };
  },
};
