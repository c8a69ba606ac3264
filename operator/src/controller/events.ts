// Kubernetes Events about Tenants, visible in `kubectl describe tenant`. A
// repeated event bumps the count of the existing one instead of adding another.
import type { CoreV1Api } from '@kubernetes/client-node';
import type { Logger } from '../../../lib/logger.js';
import { apiVersion, kind, type Tenant } from '../../../lib/tenant/index.js';

/** Events about cluster-scoped objects live in the default namespace. */
const eventNamespace = 'default';
const component = 'tenantry-operator';
const remembered = 2000;

export type EventType = 'Normal' | 'Warning';

export interface EventSink {
  record(tenant: Tenant, type: EventType, reason: string, message: string): void;
}

export class EventRecorder implements EventSink {
  private readonly recent = new Map<string, { name: string; count: number }>();

  constructor(
    private readonly core: CoreV1Api,
    private readonly instance: string,
    private readonly log: Logger,
  ) {}

  record(tenant: Tenant, type: EventType, reason: string, message: string): void {
    void this.write(tenant, type, reason, message.slice(0, 1024)).catch((error: unknown) =>
      this.log.warn({ err: error, reason }, 'could not record event'),
    );
  }

  private async write(tenant: Tenant, type: EventType, reason: string, message: string): Promise<void> {
    const key = `${tenant.metadata.uid ?? tenant.metadata.name}|${type}|${reason}|${message}`;
    const now = new Date();
    const seen = this.recent.get(key);
    if (seen) {
      seen.count += 1;
      this.recent.delete(key);
      this.recent.set(key, seen);
      try {
        await this.core.patchNamespacedEvent({
          namespace: eventNamespace,
          name: seen.name,
          body: [
            { op: 'replace', path: '/count', value: seen.count },
            { op: 'replace', path: '/lastTimestamp', value: now.toISOString() },
          ],
        });
        return;
      } catch {
        this.recent.delete(key); // expired or deleted; create a fresh one
      }
    }
    const created = await this.core.createNamespacedEvent({
      namespace: eventNamespace,
      body: {
        metadata: { generateName: `${tenant.metadata.name}.`, namespace: eventNamespace },
        involvedObject: { apiVersion, kind, name: tenant.metadata.name, uid: tenant.metadata.uid },
        type,
        reason,
        message,
        count: 1,
        firstTimestamp: now,
        lastTimestamp: now,
        source: { component },
        reportingComponent: component,
        reportingInstance: this.instance,
      },
    });
    if (created.metadata?.name) this.recent.set(key, { name: created.metadata.name, count: 1 });
    if (this.recent.size > remembered) this.recent.delete(this.recent.keys().next().value!);
  }
}
