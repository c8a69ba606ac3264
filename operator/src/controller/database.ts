// Step 2: the tenant's database and roles, and the credentials of the active
// login role. The password lives in the platform copy of the connection Secret
// and is never regenerated while it exists. Rotation switches to the other
// login role, so connections and pods using the old one keep working until the
// workload has rolled (see workload.ts, which retires the old role). A tenant
// still on a login role of the scheme before ownership markers moves onto a
// current one the same way.
import {
  legacyRoleNames,
  rotatePasswordAnnotation,
  type Tenant,
  type TenantStatus,
} from '../../../lib/tenant/index.js';
import { platformDatabaseSecretName } from '../specs/index.js';
import {
  secretString,
  type Credentials,
  type ReconcileContext,
  type Step,
  type StepOutcome,
} from './context.js';

const durationUnits: Record<string, number> = { h: 3_600_000, d: 86_400_000 };

export function rotationIntervalMs(interval: string | undefined): number | undefined {
  const match = interval?.match(/^([1-9][0-9]*)(h|d)$/);
  return match ? Number(match[1]) * durationUnits[match[2]!]! : undefined;
}

/** The value whose change requests a rotation: the spec trigger and the annotation together. */
export function rotationToken(tenant: Tenant): string {
  const trigger = tenant.spec.database?.passwordRotation?.trigger ?? '';
  const annotation = tenant.metadata.annotations?.[rotatePasswordAnnotation] ?? '';
  return `${trigger}|${annotation}`;
}

export function rotationDue(
  tenant: Tenant,
  status: TenantStatus,
  now: Date,
): 'trigger' | 'interval' | undefined {
  const db = status.database ?? {};
  if (db.lastRotationTrigger !== undefined && db.lastRotationTrigger !== rotationToken(tenant))
    return 'trigger';
  const interval = rotationIntervalMs(tenant.spec.database?.passwordRotation?.interval);
  if (
    interval !== undefined &&
    db.passwordRotatedAt &&
    now.getTime() - Date.parse(db.passwordRotatedAt) >= interval
  ) {
    return 'interval';
  }
  return undefined;
}

async function storedCredentials(ctx: ReconcileContext): Promise<Credentials | undefined> {
  const { cluster, build } = ctx.deps;
  const sources = [
    () => cluster.readSecret(build.secretsNamespace, platformDatabaseSecretName(ctx.tenant.metadata.name)),
    () => cluster.readSecret(ctx.names.namespace, ctx.names.dbSecret),
  ];
  const known = [...ctx.names.loginRoles, ...legacyRoleNames(ctx.names).loginRoles];
  for (const read of sources) {
    const secret = await read();
    const username = secretString(secret, 'username');
    const password = secretString(secret, 'password');
    if (username && password && known.includes(username)) return { username, password };
  }
  return undefined;
}

export const databaseStep: Step = {
  condition: 'Database',
  async run(ctx): Promise<StepOutcome> {
    const { tenant, names, deps, status } = ctx;
    const { db, events } = deps;
    const now = deps.now();
    const ensured = await db.ensureDatabase(names, {
      locale: tenant.spec.database?.locale ?? 'C',
      owner: ctx.owner,
    });
    ctx.databaseCreated = ensured.created;
    if (ensured.created)
      events.record(tenant, 'Normal', 'DatabaseCreated', `created database ${names.database}`);
    if (ensured.repaired.length > 0) {
      events.record(tenant, 'Normal', 'DriftRepaired', `database: ${ensured.repaired.join('; ')}`);
    }

    const dbStatus = (status.database ??= {});
    dbStatus.name = names.database;
    dbStatus.ownerRole = names.ownerRole;
    dbStatus.server = deps.databaseServer;
    let credentials = await storedCredentials(ctx);
    const legacyLogin = credentials !== undefined && !names.loginRoles.includes(credentials.username);
    const due = legacyLogin ? 'migration' : credentials ? rotationDue(tenant, status, now) : undefined;
    // A new rotation waits until the previous one has retired its old login role.
    let postponed = false;

    if (!credentials) {
      credentials = { username: names.loginRoles[0], password: deps.newPassword() };
      await db.setLoginPassword(credentials.username, credentials.password);
      dbStatus.passwordRotatedAt = now.toISOString();
      events.record(tenant, 'Normal', 'CredentialsCreated', `login role ${credentials.username} is ready`);
    } else if (due && !dbStatus.retiringUsername) {
      const next = names.loginRoles.find((role) => role !== credentials!.username)!;
      const rotated = { username: next, password: deps.newPassword() };
      await db.setLoginPassword(rotated.username, rotated.password);
      dbStatus.retiringUsername = credentials.username;
      dbStatus.passwordRotatedAt = now.toISOString();
      events.record(
        tenant,
        'Normal',
        'PasswordRotated',
        `switched from ${credentials.username} to ${rotated.username} (${due}); the old login stays valid until the worker has rolled`,
      );
      credentials = rotated;
    } else {
      postponed = due !== undefined;
      // A role that was dropped and recreated, or disabled under Retain, gets its known password back.
      const state = await db.loginState(credentials.username);
      if (!state.canLogin) {
        await db.setLoginPassword(credentials.username, credentials.password);
        events.record(tenant, 'Normal', 'LoginRestored', `re-enabled login for ${credentials.username}`);
      }
    }
    if (!postponed) dbStatus.lastRotationTrigger = rotationToken(tenant);
    dbStatus.passwordRotatedAt ??= now.toISOString();
    dbStatus.username = credentials.username;
    ctx.dbCredentials = credentials;
    return {
      reason: ensured.created ? 'Created' : 'Ready',
      message: `database ${names.database} and login role ready`,
    };
  },
};
