// Who is calling the token, revocation and introspection endpoints: a tenant's
// API client (auth/api-clients.ts) or the platform admin, by their secrets.
import { authenticateApiClient, tenantOfClientId, type AuthenticatedApiClient } from '../auth/api-clients.js';
import type { Sessions } from '../auth/sessions.js';
import { ProblemError } from '../http/problem.js';
import type { TenantDatabases } from '../tenancy/tenant-databases.js';
import type { TenantDirectory } from '../tenancy/tenant-directory.js';
import type { PresentedClient } from './client-auth.js';
import { OAuthError } from './errors.js';

export type OAuthClient =
  { kind: 'platform'; clientId: string } | ({ kind: 'tenant' } & AuthenticatedApiClient);

export interface ClientDeps {
  sessions: Sessions;
  directory: TenantDirectory;
  databases: TenantDatabases;
}

/** The authenticated client, or `invalid_client`. Tenant clients' attempts land in their tenant's audit log. */
export async function authenticateClient(
  deps: ClientDeps,
  presented: PresentedClient,
  request: { ip: string | null; requestId: string | null },
  options: { auditSuccess?: boolean } = {},
): Promise<OAuthClient> {
  // `<tenant>.cl_...` names a tenant's client; anything else can only be the platform admin.
  if (tenantOfClientId(presented.clientId) !== undefined) {
    try {
      const client = await authenticateApiClient(
        deps,
        presented.clientId,
        presented.clientSecret,
        request,
        options,
      );
      return { kind: 'tenant', ...client };
    } catch (error) {
      if (error instanceof ProblemError && error.status === 401)
        throw new OAuthError('invalid_client', error.message);
      throw error;
    }
  }
  if (deps.sessions.isPlatformClient(presented.clientId, presented.clientSecret))
    return { kind: 'platform', clientId: presented.clientId };
  throw new OAuthError('invalid_client', 'unknown client or wrong secret');
}
