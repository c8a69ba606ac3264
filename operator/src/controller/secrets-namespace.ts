// Moves the Secrets the API reads into their own namespace on upgrade. Before
// PLATFORM_SECRETS_NAMESPACE existed they lived in the operator's namespace,
// next to the PostgreSQL and RabbitMQ admin credentials, and the API could read
// them all. Runs at start, before any reconcile, on every replica (create and
// delete are idempotent). Tenant database copies and the signing keys are the
// operator's own: they move. OIDC client secrets belong to platform engineers:
// they are copied, and a warning says to manage them in the new namespace.
import type { V1Secret } from '@kubernetes/client-node';
import type { Logger } from '../../../lib/logger.js';
import { signingKeySecretName } from '../../../lib/signing-keys.js';
import { tenantLabel } from '../../../lib/tenant/index.js';
import type { Cluster } from '../kube/cluster.js';
import { secretKindLabel } from '../specs/metadata.js';

export interface SecretsMove {
  moved: string[];
  copied: string[];
}

export async function moveApiSecrets(
  cluster: Cluster,
  from: string,
  to: string,
  log: Logger,
): Promise<SecretsMove> {
  const result: SecretsMove = { moved: [], copied: [] };
  if (from === to) return result;
  const labelled = await cluster.core.listNamespacedSecret({ namespace: from, labelSelector: tenantLabel });
  const signingKeys = await cluster.readSecret(from, signingKeySecretName);
  for (const secret of [...labelled.items, ...(signingKeys ? [signingKeys] : [])]) {
    const name = secret.metadata?.name ?? '';
    // One already in place is newer (the operator or an engineer wrote it there): keep it.
    if (!(await cluster.readSecret(to, name))) await cluster.apply(copyOf(secret, to));
    if (secret.metadata?.labels?.[secretKindLabel] === 'oidc-client') {
      result.copied.push(name);
    } else {
      await cluster.deleteSecret(from, name);
      result.moved.push(name);
    }
  }
  if (result.moved.length > 0)
    log.info({ from, to, secrets: result.moved }, 'moved the API-readable Secrets');
  if (result.copied.length > 0) {
    log.warn(
      { from, to, secrets: result.copied },
      'copied OIDC client secrets to the namespace the API reads; manage them there from now on and delete the originals',
    );
  }
  return result;
}

// kubectl's record of the object it applied names the old namespace.
const lastApplied = 'kubectl.kubernetes.io/last-applied-configuration';

function copyOf(secret: V1Secret, namespace: string): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: secret.metadata?.name ?? '',
      namespace,
      ...(secret.metadata?.labels ? { labels: secret.metadata.labels } : {}),
      annotations: Object.fromEntries(
        Object.entries(secret.metadata?.annotations ?? {}).filter(([key]) => key !== lastApplied),
      ),
    },
    ...(secret.type ? { type: secret.type } : {}),
    ...(secret.data ? { data: secret.data } : {}),
  };
}
