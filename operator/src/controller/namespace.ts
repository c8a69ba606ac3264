// Step 1: the tenant's namespace, owned by the Tenant.
import { namespace } from '../specs/index.js';
import type { Step } from './context.js';

export const namespaceStep: Step = {
  condition: 'Namespace',
  async run(ctx) {
    const applied = await ctx.deps.cluster.apply(namespace(ctx.tenant));
    ctx.status.namespace = ctx.names.namespace;
    if (applied.status?.phase === 'Terminating') {
      // A namespace from a previous incarnation of this tenant is still going away.
      return {
        reason: 'Terminating',
        message: `namespace ${ctx.names.namespace} is still terminating`,
        pending: { requeueAfterMs: 2000 },
      };
    }
    return { reason: 'Ready', message: `namespace ${ctx.names.namespace} ready` };
  },
};
