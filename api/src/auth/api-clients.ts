// Per-tenant API clients for the OAuth client_credentials grant.
//
// A client id is `<tenant>.cl_<22 random base64url chars>`: the prefix tells the
// token endpoint which tenant database to look in, and since the whole id is
// stored, swapping the prefix for another tenant's finds nothing. The secret is
// `cs_` and 32 random bytes, shown once at creation; only its SHA-256 is kept
// and it is compared in constant time. Clients are admins or members, never
// owners. Admins create and revoke member clients; owners any.
//
// A client's token carries `sub` = the client's row id, `role` = its role and
// `client_id`; it acts in the tenant with that role but never as a user: it
// cannot manage API clients, change a password or read or change a profile
// (requireUser). Revoking stops new tokens at once; a token already issued
// stays valid until it expires (ACCESS_TOKEN_TTL_SECONDS).
//
// A client records the uid of the Tenant it was created under. A database kept
// under deletionPolicy Retain can come back under a new Tenant of the same
// name; that Tenant refuses the clients of the earlier one.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Transaction } from 'sequelize';
import { z } from 'zod';
import { AuditLog } from '../audit/audit-log.js';
import { ProblemError, problems } from '../http/problem.js';
import { encode, named, pageSchema, timestamp } from '../http/responses.js';
import type { TenantDatabases, TenantDb } from '../tenancy/tenant-databases.js';
import type { TenantDirectory } from '../tenancy/tenant-directory.js';
import { nonOwnerRoles, roleRank } from '../../../lib/tenant/index.js';
import { ApiClientStore, type ApiClientRow } from './api-client-store.js';
import { requireUser, type TenantScope } from './context.js';
import type { TokenResponse } from './sessions.js';
import type { TokenService } from './tokens.js';

/** An API client never holds the owner role. */
export const apiClientRoles = nonOwnerRoles;
export type ApiClientRole = (typeof apiClientRoles)[number];

export const createApiClientSchema = z.strictObject({
  name: z.string().trim().min(1).max(150),
  role: z.enum(apiClientRoles),
});

export const listApiClientsSchema = z.strictObject({
  page: z.coerce.number().int().min(1).default(1),
  page_size: z.coerce.number().int().min(1).max(100).default(20),
});

export type CreateApiClient = z.infer<typeof createApiClientSchema>;
export type ListApiClients = z.infer<typeof listApiClientsSchema>;

/** What the API shows of a client: never the secret or its hash. */
export const apiClientSchema = named(
  'ApiClient',
  z.object({
    id: z.uuid(),
    client_id: z.string(),
    name: z.string(),
    role: z.enum(apiClientRoles),
    created_by: z.string(),
    created_at: timestamp,
    last_used_at: timestamp.nullable(),
    revoked_at: timestamp.nullable(),
  }),
  'An API client for the client_credentials grant. Never its secret or hash.',
);

export const apiClientPageSchema = pageSchema('ApiClientPage', apiClientSchema);

export const newApiClientSchema = named(
  'NewApiClient',
  apiClientSchema.extend({
    client_secret: z.string().describe('Shown in this answer only; store it now.'),
  }),
  'A created API client with its secret, which no other answer shows.',
);

export type ApiClientView = z.output<typeof apiClientSchema>;

const clientIdPattern = /^([a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?)\.cl_[A-Za-z0-9_-]{16,64}$/;
// Same work for an unknown client as for a known one with a wrong secret.
const dummyHash = createHash('sha256').update('tenantry api client dummy').digest();

/** The tenant a client id belongs to, or undefined when it is not a tenant client id. */
export function tenantOfClientId(clientId: string): string | undefined {
  return clientIdPattern.exec(clientId)?.[1];
}

export function apiClientView(row: ApiClientRow): ApiClientView {
  return encode(apiClientSchema, {
    id: row.id,
    client_id: row.client_id,
    name: row.name,
    role: row.role,
    created_by: row.created_by,
    created_at: row.created_at.toISOString(),
    last_used_at: row.last_used_at?.toISOString() ?? null,
    revoked_at: row.revoked_at?.toISOString() ?? null,
  });
}

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Only users with the admin role or above manage clients, and only owners manage admin clients. */
function mayManage(scope: TenantScope, role: ApiClientRole): void {
  requireUser(scope, 'manage API clients');
  if (roleRank(scope.auth.role) < roleRank('admin'))
    throw problems.forbidden('managing API clients needs the admin role');
  if (role === 'admin' && scope.auth.role !== 'owner')
    throw problems.forbidden('only owners create or revoke admin API clients');
}

export async function listApiClients(
  scope: TenantScope,
  query: ListApiClients,
): Promise<{ count: number; results: ApiClientView[] }> {
  mayManage(scope, 'member');
  const store = new ApiClientStore(scope.db);
  const count = await store.count();
  const rows = await store.list({ limit: query.page_size, offset: (query.page - 1) * query.page_size });
  return { count, results: rows.map(apiClientView) };
}

/** Creates a client; the secret in the answer exists nowhere else. */
export async function createApiClient(
  scope: TenantScope,
  input: CreateApiClient,
  transaction: Transaction,
): Promise<{ client: ApiClientView; secret: string }> {
  mayManage(scope, input.role);
  const clientId = `${scope.auth.tenant}.cl_${randomBytes(16).toString('base64url')}`;
  const secret = `cs_${randomBytes(32).toString('base64url')}`;
  const row = await new ApiClientStore(scope.db).insert(
    {
      clientId,
      secretHash: hashSecret(secret),
      name: input.name,
      role: input.role,
      createdBy: scope.auth.userId,
      tenantUid: scope.entry.uid,
    },
    transaction,
  );
  return { client: apiClientView(row), secret };
}

/** Revokes a client (idempotent); answers its view before and after. */
export async function revokeApiClient(
  scope: TenantScope,
  id: string,
  transaction: Transaction,
): Promise<{ before: ApiClientView; after: ApiClientView }> {
  mayManage(scope, 'member');
  if (!z.uuid().safeParse(id).success) throw problems.notFound(`no API client ${id}`);
  const store = new ApiClientStore(scope.db);
  const row = await store.lock(id, transaction);
  if (!row) throw problems.notFound(`no API client ${id}`);
  mayManage(scope, row.role);
  const after = await store.revoke(id, transaction);
  return { before: apiClientView(row), after: apiClientView(after) };
}

function invalidClient(detail: string): ProblemError {
  return new ProblemError(401, 'Unauthorized', detail, {
    type: 'https://tenantry.io/problems/invalid-client',
    headers: { 'WWW-Authenticate': 'Bearer' },
  });
}

const wrongCredentials = 'unknown client or wrong secret';

/** A tenant API client whose secret was just checked. */
export interface AuthenticatedApiClient {
  /** The row id: the `sub` of its tokens. */
  id: string;
  clientId: string;
  role: ApiClientRole;
  tenant: string;
  tenantUid: string;
}

/**
 * Checks a tenant client's secret and records the outcome in the tenant's
 * audit log (`login` or `login_failed`), for the token endpoint and for the
 * revocation and introspection endpoints, which the client calls with its
 * secret too. `auditSuccess: false` records failures only: a resource server
 * introspects on every request it serves.
 */
export async function authenticateApiClient(
  deps: { directory: TenantDirectory; databases: TenantDatabases },
  clientId: string,
  secret: string,
  request: { ip: string | null; requestId: string | null },
  options: { auditSuccess?: boolean } = {},
): Promise<AuthenticatedApiClient> {
  const tenant = tenantOfClientId(clientId);
  const presented = hashSecret(secret);
  let db: TenantDb;
  let tenantUid: string;
  try {
    if (!tenant) throw problems.notFound();
    const entry = deps.directory.servable(tenant);
    db = deps.databases.for(tenant, entry.credentials);
    tenantUid = entry.uid;
  } catch (error) {
    // An unknown tenant looks like any other unknown client.
    if (error instanceof ProblemError && error.status === 404) {
      timingSafeEqual(presented, dummyHash);
      throw invalidClient(wrongCredentials);
    }
    throw error;
  }
  const store = new ApiClientStore(db);
  const row = await store.findByClientId(clientId);
  const matches = timingSafeEqual(presented, row?.secret_hash ?? dummyHash) && row !== undefined;
  const audit = (entry: { actor: string | null; action: string; resourceId: string }) =>
    AuditLog.append(db.sequelize, { ...entry, resourceType: 'api_client', ...request });
  if (!row || !matches) {
    await audit({ actor: null, action: 'login_failed', resourceId: clientId });
    throw invalidClient(wrongCredentials);
  }
  if (row.revoked_at) {
    await audit({ actor: null, action: 'login_failed', resourceId: row.id });
    throw invalidClient('this API client has been revoked');
  }
  // Only the holder of the right secret learns this; anyone else got the answer above.
  if (row.tenant_uid !== tenantUid) {
    await audit({ actor: null, action: 'login_failed', resourceId: row.id });
    throw invalidClient(`this API client was issued to an earlier tenant named ${tenant}`);
  }
  await store.recordUse(row.id);
  if (options.auditSuccess !== false) await audit({ actor: row.id, action: 'login', resourceId: row.id });
  return { id: row.id, clientId: row.client_id, role: row.role, tenant: tenant, tenantUid };
}

/**
 * The client_credentials grant for a tenant client: checks the secret and
 * issues an access token (no refresh token: the client simply asks again).
 */
export async function clientCredentialsToken(
  deps: { tokens: TokenService; directory: TenantDirectory; databases: TenantDatabases },
  client: AuthenticatedApiClient,
): Promise<TokenResponse> {
  const access = await deps.tokens.issueAccessToken({
    sub: client.id,
    tid: client.tenant,
    tenantUid: client.tenantUid,
    role: client.role,
    clientId: client.clientId,
  });
  return { access_token: access.token, token_type: 'Bearer', expires_in: access.expiresIn };
}
