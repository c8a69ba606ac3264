// Step 1: the tenant's namespace, owned by the Tenant. A namespace of that name
// that is not the Tenant's (another uid, or unmarked and not in its status) is
// left alone and reported as NameConflict.
import { assertClaims, claimOfKubernetesObject } from '../../../lib/tenant/index.js';
import { namespace } from '../specs/index.js';
import type { Step } from './context.js';

export const namespaceStep: Step = {
  condition: 'Namespace',
  async run(ctx) {
    const existing = await ctx.deps.cluster.readNamespace(ctx.names.namespace);
    // A namespace still going away (a previous incarnation) is waited for below, not judged.
    if (existing && !existing.metadata?.deletionTimestamp) {
      const claim = claimOfKubernetesObject(ctx.names.namespace, existing.metadata, ctx.owner);
      assertClaims([{ what: `namespace "${ctx.names.namespace}"`, claim }]);
    }
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
