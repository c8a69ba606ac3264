// The API's door to Tenant resources in the Kubernetes API: create, read,
// merge-patch and delete, for signup and the platform admin. Provisioning
// stays the operator's job; the API only writes what a Tenant should be.
// Needs RBAC on tenants.tenantry.io: get, list, watch, create, patch, delete.
import {
  ApiException,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { group, plural, version, type Tenant } from '../../../lib/tenant/index.js';
import type { ProblemError } from '../http/problem.js';
import { problems, type FieldError } from '../http/problem.js';

export const apiFieldManager = 'tenantry-api';
/** Set on Tenants created by self-service signup; ties the Tenant to its pending owner. */
export const signupAnnotation = 'tenantry.io/signup-id';
/** Set once the tenant's first owner exists, so no replica looks again. */
export const ownerProvisionedAnnotation = 'tenantry.io/owner-provisioned';

interface KubeStatus {
  message?: string;
  details?: { causes?: { field?: string; message?: string }[] };
}

function statusOf(error: ApiException<unknown>): KubeStatus {
  const body = error.body;
  if (typeof body === 'string') {
    try {
      return JSON.parse(body) as KubeStatus;
    } catch {
      return {};
    }
  }
  return body && typeof body === 'object' ? body : {};
}

export function kubeErrorCode(error: unknown): number | undefined {
  return error instanceof ApiException ? error.code : undefined;
}

/**
 * A Kubernetes answer that is the caller's fault, as a problem: 404, 409, and
 * 422 (the CRD's schema or CEL rules refused the Tenant) as a 400 naming the
 * fields. Anything else is left to the error mapper (a logged 500).
 */
export function kubeProblem(error: unknown, name: string): ProblemError | undefined {
  if (!(error instanceof ApiException)) return undefined;
  if (error.code === 404) return problems.notFound(`tenant ${name} does not exist`);
  if (error.code === 409) return problems.conflict(`tenant ${name} already exists or was changed meanwhile`);
  if (error.code === 422 || error.code === 400) {
    const status = statusOf(error);
    const errors: FieldError[] = (status.details?.causes ?? []).map((c) => ({
      field: c.field ?? 'body',
      message: c.message ?? 'is not valid',
    }));
    return problems.validation(
      errors.length > 0 ? errors : [{ field: 'body', message: status.message ?? 'is not a valid Tenant' }],
    );
  }
  return undefined;
}

export class TenantResources {
  private readonly custom: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig) {
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  async create(tenant: Tenant): Promise<Tenant> {
    return (await this.custom.createClusterCustomObject({
      group,
      version,
      plural,
      body: tenant,
      fieldManager: apiFieldManager,
    })) as Tenant;
  }

  async get(name: string): Promise<Tenant | undefined> {
    try {
      return (await this.custom.getClusterCustomObject({ group, version, plural, name })) as Tenant;
    } catch (error) {
      if (kubeErrorCode(error) === 404) return undefined;
      throw error;
    }
  }

  /** A JSON merge patch (RFC 7386): null removes a field. */
  async mergePatch(name: string, patch: { metadata?: object; spec?: object }): Promise<Tenant> {
    return (await this.custom.patchClusterCustomObject(
      { group, version, plural, name, body: patch, fieldManager: apiFieldManager },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as Tenant;
  }

  async delete(name: string): Promise<void> {
    await this.custom.deleteClusterCustomObject({ group, version, plural, name });
  }
}
