// /api/clients: the tenant's API clients for the client_credentials grant.
// Owners and admins list, create and revoke them (auth/api-clients.ts has the rules).
import { Router } from 'express';
import { audited } from '../audit/audited.js';
import {
  createApiClient,
  createApiClientSchema,
  listApiClients,
  apiClientPageSchema,
  listApiClientsSchema,
  newApiClientSchema,
  revokeApiClient,
} from '../auth/api-clients.js';
import { requireUser, tenantScope } from '../auth/context.js';
import { parse } from '../http/problem.js';
import type { TenantDatabases } from '../tenancy/tenant-databases.js';
import type { TenantDirectory } from '../tenancy/tenant-directory.js';
import { encode, pageOf, reply } from '../http/responses.js';

export function apiClientRoutes(deps: { directory: TenantDirectory; databases: TenantDatabases }): Router {
  const { directory, databases } = deps;
  const router = Router();
  // Checked before the body, so an API client's token learns nothing but 403.
  const scopeOf = (res: Parameters<typeof tenantScope>[0]) =>
    requireUser(tenantScope(res, directory, databases, 'admin'), 'manage API clients');

  router.get('/', async (req, res) => {
    const scope = scopeOf(res);
    const query = parse(listApiClientsSchema, req.query);
    const { count, results } = await listApiClients(scope, query);
    reply(res, 200, apiClientPageSchema, pageOf(req, query.page, query.page_size, count, results));
  });

  router.post('/', async (req, res) => {
    const scope = scopeOf(res);
    const input = parse(createApiClientSchema, req.body);
    const { client, secret } = await audited(scope, req, res, async (transaction) => {
      const created = await createApiClient(scope, input, transaction);
      return {
        result: created,
        // The view has no secret; the secret only ever travels in this response.
        audit: {
          action: 'create',
          resourceType: 'api_client',
          resourceId: created.client.id,
          after: created.client,
        },
      };
    });
    res
      .status(201)
      .set('Cache-Control', 'no-store')
      .location(`/api/clients/${client.id}`)
      .json(encode(newApiClientSchema, { ...client, client_secret: secret }));
  });

  router.delete('/:id', async (req, res) => {
    const scope = scopeOf(res);
    await audited(scope, req, res, async (transaction) => {
      const { before, after } = await revokeApiClient(scope, req.params.id, transaction);
      return {
        result: undefined,
        audit: { action: 'revoke', resourceType: 'api_client', resourceId: before.id, before, after },
      };
    });
    res.status(204).end();
  });
  return router;
}
