/**
 * Names derived from a tenant's name; every component uses these and nothing else.
 * Each is unique to its tenant, across tenants and across kinds: tenant names
 * hold no `_` or `.`, so `tenant_<ident>` (ident: the name with `-` as `_`) is
 * injective, and the roles beside the owner add a `.` that no owner, database or
 * other tenant's role can contain (test/lib/tenant/names.test.ts proves it).
 */
export interface TenantNames {
  namespace: string;
  database: string;
  /** NOLOGIN role that owns the database and its schema. */
  ownerRole: string;
  /** NOLOGIN group role that holds the application's privileges; the login roles are its members. */
  appRole: string;
  /** The two LOGIN roles that take turns so that password rotation has no downtime. */
  loginRoles: readonly [string, string];
  dbSecret: string;
  /** The copy of the database Secret in the platform namespace, which the API reads. */
  platformDbSecret: string;
  amqpSecret: string;
  amqpUser: string;
  queuePrefix: string;
  workerName: string;
}

/** PostgreSQL identifier of a tenant: `tenant_` and the name with `-` as `_`. */
function databaseIdent(name: string): string {
  return `tenant_${name.replaceAll('-', '_')}`;
}

/** Every tenant namespace starts with this; the platform's own namespace must not. */
export const tenantNamespacePrefix = 'tenant-';

export function tenantNames(name: string): TenantNames {
  const ident = databaseIdent(name);
  return {
    namespace: `${tenantNamespacePrefix}${name}`,
    database: ident,
    ownerRole: ident,
    appRole: `${ident}.app`,
    loginRoles: [`${ident}.a`, `${ident}.b`],
    dbSecret: `${name}-db`,
    platformDbSecret: `tenant-${name}-db`,
    amqpSecret: `${name}-amqp`,
    amqpUser: `tenant-${name}`,
    queuePrefix: `tenant.${name}.`,
    workerName: 'tenantry-worker',
  };
}

/**
 * The roles of the scheme before ownership markers, which collided across
 * tenants (`acme`'s login `tenant_acme_a` was the owner of `acme-a`). The
 * operator moves a tenant off them: it renames the app role and rotates onto a
 * current login role, then drops the old logins (docs/operator.md).
 */
export function legacyRoleNames(names: Pick<TenantNames, 'ownerRole'>): {
  appRole: string;
  loginRoles: readonly [string, string];
} {
  const ident = names.ownerRole;
  return { appRole: `${ident}_app`, loginRoles: [`${ident}_a`, `${ident}_b`] };
}
