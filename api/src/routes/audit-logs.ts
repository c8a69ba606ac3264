// /api/audit-logs: read the tenant's audit log and check its hash chain (admins and owners).
import { Router } from 'express';
import { z } from 'zod';
import { AuditLog } from '../audit/audit-log.js';
import { tenantScope } from '../auth/context.js';
import { parse } from '../http/problem.js';
import type { TenantDatabases } from '../tenancy/tenant-databases.js';
import type { TenantDirectory } from '../tenancy/tenant-directory.js';
import { pageOf } from './users.js';

export const auditQuerySchema = z.strictObject({
  page: z.coerce.number().int().min(1).default(1),
  page_size: z.coerce.number().int().min(1).max(100).default(20),
  actor: z.string().max(200).optional(),
  action: z.string().max(50).optional(),
  resource_type: z.string().max(50).optional(),
  resource_id: z.string().max(200).optional(),
  since: z.iso
    .datetime({ offset: true })
    .transform((v) => new Date(v))
    .optional(),
  until: z.iso
    .datetime({ offset: true })
    .transform((v) => new Date(v))
    .optional(),
});

export function auditLogRoutes(deps: { directory: TenantDirectory; databases: TenantDatabases }): Router {
  const router = Router();
  router.get('/', async (req, res) => {
    const scope = tenantScope(res, deps.directory, deps.databases, 'admin');
    const q = parse(auditQuerySchema, req.query);
    const { count, results } = await AuditLog.list(
      scope.db.sequelize,
      {
        ...(q.actor ? { actor: q.actor } : {}),
        ...(q.action ? { action: q.action } : {}),
        ...(q.resource_type ? { resourceType: q.resource_type } : {}),
        ...(q.resource_id ? { resourceId: q.resource_id } : {}),
        ...(q.since ? { since: q.since } : {}),
        ...(q.until ? { until: q.until } : {}),
      },
      { page: q.page, pageSize: q.page_size },
    );
    res.json(pageOf(req, q.page, q.page_size, count, results));
  });
  router.get('/verify', async (_req, res) => {
    const scope = tenantScope(res, deps.directory, deps.databases, 'admin');
    const result = await AuditLog.verify(scope.db.sequelize);
    res.json({ intact: result.intact, checked: result.checked, first_bad_id: result.firstBadId ?? null });
  });
  return router;
}
