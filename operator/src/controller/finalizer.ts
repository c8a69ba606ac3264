// Deletion under the Tenant's deletionPolicy. Every action tolerates what is
// already gone, so the finalizer always finishes once the services answer.
// Retain: logins disabled, data and the platform copy of the credentials kept
// (re-creating the Tenant brings the same database and password back).
// Delete: sessions terminated, database and roles dropped, RabbitMQ user and
// queues deleted, platform copy removed. The namespace goes with the Tenant
// through its ownerReference.
import { finalizerName, tenantNames, type Tenant } from '../api/tenant.js';
import { platformDatabaseSecretName } from '../specs/index.js';
import type { ControllerDeps } from './context.js';

export async function finalizeTenant(tenant: Tenant, deps: ControllerDeps): Promise<void> {
  const names = tenantNames(tenant.metadata.name);
  const policy = tenant.spec.database?.deletionPolicy ?? 'Retain';
  if (policy === 'Delete') {
    const dropped = await deps.db.dropTenant(names);
    await deps.mq.deleteTenantUser(names);
    await deps.cluster.deleteSecret(
      deps.build.secretsNamespace,
      platformDatabaseSecretName(tenant.metadata.name),
    );
    deps.events.record(
      tenant,
      'Normal',
      'Deleted',
      `dropped database ${names.database} (${dropped.terminatedSessions} sessions terminated) and its roles; deleted RabbitMQ user ${names.amqpUser}`,
    );
  } else {
    const disabled = await deps.db.disableLogin(names);
    await deps.mq.deleteTenantUser(names);
    deps.events.record(
      tenant,
      'Normal',
      'Retained',
      `kept database ${names.database}; disabled login for ${disabled.disabled.join(', ') || 'no roles'}`,
    );
  }
  await deps.cluster.setFinalizers(
    tenant,
    (tenant.metadata.finalizers ?? []).filter((f) => f !== finalizerName),
  );
}
