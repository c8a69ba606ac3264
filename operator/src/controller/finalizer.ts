// Deletion under the Tenant's deletionPolicy. Every action tolerates what is
// already gone, so the finalizer always finishes once the services answer.
// Retain: logins disabled, data and the platform copy of the credentials kept
// (re-creating the Tenant brings the same database and password back).
// Delete: sessions terminated, database and roles dropped, RabbitMQ user and
// queues deleted, platform copy removed. The namespace goes with the Tenant
// through its ownerReference. Only what carries this Tenant's uid (or what its
// status records, from before ownership markers) is disabled or dropped: a name
// another owner holds is left alone and reported, and the finalizer finishes.
import {
  tenantOwner,
  tenantUidLabel,
  finalizerName,
  tenantNames,
  type Tenant,
} from '../../../lib/tenant/index.js';
import type { ControllerDeps } from './context.js';

export async function finalizeTenant(tenant: Tenant, deps: ControllerDeps): Promise<void> {
  const names = tenantNames(tenant.metadata.name);
  const owner = tenantOwner(tenant);
  const policy = tenant.spec.database?.deletionPolicy ?? 'Retain';
  const reportSkipped = (skipped: string[] | undefined): void => {
    if (!skipped?.length) return;
    deps.events.record(
      tenant,
      'Warning',
      'NameConflict',
      `left ${skipped.join(', ')} untouched: another owner holds ${skipped.length === 1 ? 'it' : 'them'}`,
    );
  };
  if (policy === 'Delete') {
    const dropped = await deps.db.dropTenant(names, owner);
    const mq = await deps.mq.deleteTenantUser(names, owner);
    const skipped = [...(dropped.skipped ?? []), ...(mq.skipped ?? [])];
    // The platform copy goes only when it is this Tenant's: a retained tenant's copy keeps its password.
    const copy = await deps.cluster.readSecret(deps.build.secretsNamespace, names.platformDbSecret);
    const copyUid = copy?.metadata?.labels?.[tenantUidLabel];
    const copyOurs = copyUid === undefined ? !dropped.skipped?.length : copyUid === owner.uid;
    if (copy && copyOurs)
      await deps.cluster.deleteSecret(deps.build.secretsNamespace, names.platformDbSecret);
    if (copy && !copyOurs) skipped.push(`Secret ${deps.build.secretsNamespace}/${names.platformDbSecret}`);
    reportSkipped(skipped);
    const what = [
      dropped.droppedDatabase
        ? `dropped database ${names.database}`
        : `no database ${names.database} of its own`,
      `${dropped.terminatedSessions} sessions terminated`,
      `dropped roles ${dropped.droppedRoles.join(', ') || 'none'}`,
      mq.userDeleted ? `deleted RabbitMQ user ${names.amqpUser}` : `no RabbitMQ user of its own`,
    ];
    deps.events.record(tenant, 'Normal', 'Deleted', what.join('; '));
  } else {
    const disabled = await deps.db.disableLogin(names, owner);
    const mq = await deps.mq.deleteTenantUser(names, owner);
    reportSkipped([...(disabled.skipped ?? []), ...(mq.skipped ?? [])]);
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
