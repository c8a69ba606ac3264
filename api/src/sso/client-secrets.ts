// OIDC client secrets named by a Tenant's `spec.sso.oidc.clientSecretRef`,
// read from Secrets in the platform namespace. A Tenant spec names the Secret,
// and the secret is then sent to the tenant's own issuer; so the Secret must be
// labelled for that very tenant and as an OIDC client secret. Otherwise a
// spec could name another tenant's database Secret and ship it to an IdP of
// its choosing.
import { ApiException, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { tenantLabel } from '../../../lib/tenant/index.js';
import { SsoError } from './identity.js';

export const secretKindLabel = 'tenantry.io/secret-kind';
export const oidcClientSecretKind = 'oidc-client';

export interface SecretRef {
  name: string;
  key: string;
}

/** The client secret for `tenant`; undefined when it names none. Throws SsoError when it is unusable. */
export type ClientSecretSource = (tenant: string, ref: SecretRef | undefined) => Promise<string | undefined>;

const cacheTtlMs = 60_000;
const maxCached = 1000;

export class KubernetesClientSecrets {
  private readonly core: CoreV1Api;
  private readonly cache = new Map<string, { value: string; expiresAt: number }>();

  constructor(
    kubeConfig: KubeConfig,
    private readonly namespace: string,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  readonly get: ClientSecretSource = async (tenant, ref) => {
    if (!ref) return undefined;
    const cacheKey = `${tenant}\0${ref.name}\0${ref.key}`;
    const cached = this.cache.get(cacheKey);
    if (cached && cached.expiresAt > Date.now()) return cached.value;
    let secret;
    try {
      secret = await this.core.readNamespacedSecret({ namespace: this.namespace, name: ref.name });
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) {
        throw new SsoError('not_configured', `the client secret ${ref.name} does not exist`);
      }
      throw error;
    }
    const labels = secret.metadata?.labels ?? {};
    if (labels[tenantLabel] !== tenant || labels[secretKindLabel] !== oidcClientSecretKind) {
      throw new SsoError(
        'not_configured',
        `Secret ${ref.name} is not labelled ${tenantLabel}=${tenant}, ${secretKindLabel}=${oidcClientSecretKind}`,
      );
    }
    const encoded = secret.data?.[ref.key];
    if (encoded === undefined)
      throw new SsoError('not_configured', `Secret ${ref.name} has no key ${ref.key}`);
    const value = Buffer.from(encoded, 'base64').toString('utf8');
    // Rotation reaches running replicas within the TTL.
    if (this.cache.size >= maxCached) this.cache.clear();
    this.cache.set(cacheKey, { value, expiresAt: Date.now() + cacheTtlMs });
    return value;
  };
}
