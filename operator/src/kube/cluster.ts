// The operator's only door to the Kubernetes API: server-side apply with our
// field manager, Tenant reads, status and finalizer patches, Secrets and
// watches. The reconcile steps see only its KubeObjects side (controller/context.ts).
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
  type V1Deployment,
  type V1Namespace,
  type V1Secret,
} from '@kubernetes/client-node';
import {
  pageOf,
  pageQuery,
  type ListPage,
  type ListPageRequest,
  type WatchEventType,
} from '../../../lib/kube/list-watch.js';
import { fieldManager, group, plural, version, type Tenant } from '../../../lib/tenant/index.js';
import type { KubeObjects } from '../controller/context.js';

export function isNotFound(error: unknown): boolean {
  return error instanceof ApiException && error.code === 404;
}

export function isConflict(error: unknown): boolean {
  return error instanceof ApiException && error.code === 409;
}

/** A short description of a Kubernetes API error without echoing request bodies. */
export function describeKubeError(error: unknown): string {
  if (error instanceof ApiException) {
    const body = error.body as unknown;
    let message = '';
    if (typeof body === 'string') {
      try {
        message = (JSON.parse(body) as { message?: string }).message ?? '';
      } catch {
        message = '';
      }
    } else if (body && typeof body === 'object' && 'message' in body) {
      message = String(body.message);
    }
    return `Kubernetes API answered ${error.code}${message ? `: ${message}` : ''}`;
  }
  return error instanceof Error ? error.message : String(error);
}

export class Cluster implements KubeObjects {
  private readonly objects: KubernetesObjectApi;
  private readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly watcher: Watch;

  constructor(readonly kubeConfig: KubeConfig) {
    this.objects = KubernetesObjectApi.makeApiClient(kubeConfig);
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.apps = kubeConfig.makeApiClient(AppsV1Api);
    this.watcher = new Watch(kubeConfig);
  }

  /** Server-side apply, forcing ownership of the fields we set. Returns the live object. */
  apply<T extends KubernetesObject>(desired: T): Promise<T> {
    return this.objects.patch(
      desired,
      undefined,
      undefined,
      fieldManager,
      true,
      PatchStrategy.ServerSideApply,
    );
  }

  async delete(object: KubernetesObject): Promise<void> {
    try {
      await this.objects.delete(object);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  async getTenant(name: string): Promise<Tenant | undefined> {
    try {
      return (await this.custom.getClusterCustomObject({ group, version, plural, name })) as Tenant;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** One page of the Tenants (see ListWatchSource.list). */
  async listTenants(page: ListPageRequest): Promise<ListPage<Tenant>> {
    const list = (await this.custom.listClusterCustomObject({
      group,
      version,
      plural,
      ...pageQuery(page),
    })) as { items: Tenant[]; metadata: { resourceVersion: string; continue?: string } };
    return {
      items: list.items,
      resourceVersion: list.metadata.resourceVersion,
      continue: list.metadata.continue,
    };
  }

  /** Applies a JSON merge patch to the status subresource. */
  async patchTenantStatus(name: string, status: unknown): Promise<void> {
    await this.custom.patchClusterCustomObjectStatus(
      { group, version, plural, name, body: { status }, fieldManager },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /** Replaces the finalizer list, guarded by resourceVersion so a concurrent change is not lost. */
  async setFinalizers(tenant: Tenant, finalizers: string[]): Promise<Tenant> {
    return (await this.custom.patchClusterCustomObject(
      {
        group,
        version,
        plural,
        name: tenant.metadata.name,
        body: { metadata: { finalizers, resourceVersion: tenant.metadata.resourceVersion } },
        fieldManager,
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as Tenant;
  }

  async readNamespace(name: string): Promise<V1Namespace | undefined> {
    try {
      return await this.core.readNamespace({ name });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async readSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    try {
      return await this.core.readNamespacedSecret({ namespace, name });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async deleteSecret(namespace: string, name: string): Promise<void> {
    try {
      await this.core.deleteNamespacedSecret({ namespace, name });
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /** Starts a watch on Tenants; `done` is called exactly once when it ends for any reason. */
  watchTenants(
    resourceVersion: string,
    onEvent: (type: WatchEventType, tenant: Tenant) => void,
    done: (error: unknown) => void,
  ): Promise<AbortController> {
    return this.watcher.watch(
      `/apis/${group}/${version}/${plural}`,
      { resourceVersion, allowWatchBookmarks: true },
      (type, object) => onEvent(type as WatchEventType, object as Tenant),
      done,
    );
  }

  /** Deployments in every namespace that match the label selector. */
  async listDeployments(labelSelector: string, page: ListPageRequest): Promise<ListPage<V1Deployment>> {
    const list = await this.apps.listDeploymentForAllNamespaces({
      labelSelector,
      ...pageQuery(page),
    });
    return pageOf(list);
  }

  watchDeployments(
    labelSelector: string,
    resourceVersion: string,
    onEvent: (type: WatchEventType, deployment: V1Deployment) => void,
    done: (error: unknown) => void,
  ): Promise<AbortController> {
    return this.watcher.watch(
      '/apis/apps/v1/deployments',
      { labelSelector, resourceVersion, allowWatchBookmarks: true },
      (type, object) => onEvent(type as WatchEventType, object as V1Deployment),
      done,
    );
  }
}
