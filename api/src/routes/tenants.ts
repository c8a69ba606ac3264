// /api/tenants: the platform admin's tenant CRUD over Tenant resources.
// `GET /api/tenants/current` (for tenant users) is served by app.ts before this router.
import { Router } from 'express';
import type { Logger } from '../../../lib/logger.js';
import { requirePlatformAdmin } from '../auth/context.js';
import { tenantName } from '../auth/sessions.js';
import { parse, problems } from '../http/problem.js';
import {
  createTenantSchema,
  listTenantsSchema,
  tenantDeletionSchema,
  tenantPageSchema,
  updateTenantSchema,
  type TenantAdmin,
} from '../tenancy/tenant-admin.js';
import { pageOf, reply } from '../http/responses.js';

function nameOf(value: unknown): string {
  const parsed = tenantName.safeParse(value);
  if (!parsed.success) throw problems.notFound(`tenant ${String(value)} does not exist`);
  return parsed.data;
}

export function tenantRoutes(deps: { tenantAdmin: TenantAdmin; log: Logger }): Router {
  const { tenantAdmin, log } = deps;
  const router = Router();
  router.use((_req, res, next) => {
    requirePlatformAdmin(res);
    next();
  });

  router.get('/', (req, res) => {
    const query = parse(listTenantsSchema, req.query);
    const { count, results } = tenantAdmin.list(query);
    reply(res, 200, tenantPageSchema, pageOf(req, query.page, query.page_size, count, results));
  });

  router.post('/', async (req, res) => {
    const input = parse(createTenantSchema, req.body);
    const created = await tenantAdmin.create(input);
    log.info(
      { tenant: created.name, by: requirePlatformAdmin(res).clientId },
      'platform admin created a tenant',
    );
    res.status(201).location(`/api/tenants/${created.name}`).json(created);
  });

  router.get('/:name', async (req, res) => {
    res.json(await tenantAdmin.get(nameOf(req.params.name)));
  });

  router.patch('/:name', async (req, res) => {
    const name = nameOf(req.params.name);
    const input = parse(updateTenantSchema, req.body);
    const updated = await tenantAdmin.update(name, input);
    log.info(
      { tenant: name, fields: Object.keys(input), by: requirePlatformAdmin(res).clientId },
      'platform admin changed a tenant',
    );
    res.json(updated);
  });

  router.delete('/:name', async (req, res) => {
    const name = nameOf(req.params.name);
    await tenantAdmin.delete(name);
    log.info({ tenant: name, by: requirePlatformAdmin(res).clientId }, 'platform admin deleted a tenant');
    reply(res, 202, tenantDeletionSchema, { name, phase: 'Deleting' });
  });

  return router;
}
