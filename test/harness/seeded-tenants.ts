// The common start of a suite that calls the API as a tenant's owner, admin or
// member: Ready Tenants, and users seeded straight into their databases and
// signed in through the API's password login.
import { hashPassword } from '../../api/src/auth/passwords.js';
import { roles, type Role } from '../../lib/tenant/index.js';
import { platformAdminClient, type TestApi } from './api-server.js';
import type { TestPlatform } from './platform.js';

/** The password of every user seeded here. */
export const seededPassword = 'correct horse battery staple 42';

export interface SeededProfile {
  first_name: string | null;
  last_name: string | null;
  department: string | null;
}

export interface SeededUser {
  id: string;
  tenant: string;
  role: Role;
  email: string;
  /** Access and refresh token of the user's sign-in. */
  access: string;
  refresh: string;
}

export interface SeededTenants {
  /** Every user by `<tenant>/<role>`. */
  users: Record<string, SeededUser>;
  /** Every user's access token by `<tenant>/<role>`. */
  access: Record<string, string>;
}

export interface SeedOptions {
  /** Default: every role. */
  roles?: readonly Role[];
  /** Default: `<role>@<tenant>.example`. */
  email?: (tenant: string, role: Role) => string;
  /** Default: first name the role, last name the tenant, no department. */
  profile?: (tenant: string, role: Role) => Partial<SeededProfile>;
  /** Headers of each sign-in request, e.g. an X-Forwarded-For of its own. */
  signInHeaders?: () => Record<string, string>;
}

/** A Tenant per label, applied together; resolves with their names once all are Ready. */
export async function readyTenants<const Labels extends readonly string[]>(
  platform: TestPlatform,
  labels: Labels,
): Promise<{ [K in keyof Labels]: string }> {
  const names = labels.map((label) => platform.tenantName(label));
  await Promise.all(names.map((name) => platform.applyTenant(name)));
  await Promise.all(names.map((name) => platform.waitReady(name)));
  return names as { [K in keyof Labels]: string };
}

/** The tenant must be servable: Ready, and seen by the API's directory. */
export async function seedUser(
  api: TestApi,
  tenant: string,
  role: Role,
  email: string,
  profile: Partial<SeededProfile> = {},
): Promise<{ id: string }> {
  const db = api.databases.for(tenant, api.directory.servable(tenant).credentials);
  const user = await db.models.User.create({
    email,
    role,
    first_name: role,
    last_name: tenant,
    department: null,
    ...profile,
    external_id: null,
    password_hash: await hashPassword(seededPassword),
  });
  return { id: user.id };
}

/** Password login; throws with the response unless it succeeds. */
export async function signIn(
  api: TestApi,
  tenant: string,
  email: string,
  headers?: Record<string, string>,
): Promise<{ access: string; refresh: string }> {
  const res = await api.call('POST', '/api/auth/login', {
    body: { tenant, email, password: seededPassword },
    ...(headers ? { headers } : {}),
  });
  if (res.status !== 200) {
    throw new Error(`sign-in of ${email} at ${tenant}: ${res.status} ${JSON.stringify(res.body)}`);
  }
  const body = res.body as { access_token: string; refresh_token: string };
  return { access: body.access_token, refresh: body.refresh_token };
}

/** The platform admin's access token, by client credentials; throws with the response unless it succeeds. */
export async function platformAdminToken(api: TestApi): Promise<string> {
  const res = await api.call('POST', '/api/auth/token', {
    body: {
      grant_type: 'client_credentials',
      client_id: platformAdminClient.clientId,
      client_secret: platformAdminClient.clientSecret,
    },
  });
  if (res.status !== 200) {
    throw new Error(`platform admin token: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return (res.body as { access_token: string }).access_token;
}

/** Seeds a user of each role in each tenant, in that order, then signs each one in. */
export async function seedTenants(
  api: TestApi,
  tenants: readonly string[],
  options: SeedOptions = {},
): Promise<SeededTenants> {
  const email = options.email ?? ((tenant: string, role: Role) => `${role}@${tenant}.example`);
  const seeded: { tenant: string; role: Role; email: string; id: string }[] = [];
  for (const tenant of tenants) {
    for (const role of options.roles ?? roles) {
      const address = email(tenant, role);
      const { id } = await seedUser(api, tenant, role, address, options.profile?.(tenant, role));
      seeded.push({ tenant, role, email: address, id });
    }
  }
  const result: SeededTenants = { users: {}, access: {} };
  for (const user of seeded) {
    const session = await signIn(api, user.tenant, user.email, options.signInHeaders?.());
    const key = `${user.tenant}/${user.role}`;
    result.users[key] = { ...user, ...session };
    result.access[key] = session.access;
  }
  return result;
}
