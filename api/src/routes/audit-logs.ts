// /api/audit-logs: read the tenant's audit log and check its hash chain (admins and owners).
import { Router } from 'express';
import { z } from 'zod';
import { AuditLog } from '../audit/audit-log.js';
import { tenantScope } from '../auth/context.js';
import { parse } from '../http/problem.js';
import type { TenantDatabases } from '../tenancy/tenant-databases.js';
import type { TenantDirectory } from '../tenancy/tenant-directory.js';
import { named, pageOf, pageSchema, reply, timestamp } from '../http/responses.js';

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

const jsonObject = z.record(z.string(), z.unknown());

export const auditEntrySchema = named(
  'AuditEntry',
  z.object({
    id: z.string().describe('A bigserial, as a string so it never loses precision.'),
    occurredAt: timestamp,
    actor: z
      .string()
      .nullable()
      .describe('The user or API client; null for the system or an anonymous caller.'),
    action: z.string(),
    resourceType: z.string(),
    resourceId: z.string().nullable(),
    diff: z
      .object({ before: jsonObject.optional(), after: jsonObject.optional() })
      .nullable()
      .describe('The resource before and after the change, secrets redacted.'),
    ip: z.string().nullable(),
    requestId: z.string().nullable(),
    prevHash: z.string().nullable(),
    hash: z.string(),
  }),
  'One entry of the hash-chained audit log.',
);

export const auditPageSchema = pageSchema('AuditEntryPage', auditEntrySchema);

export const auditVerificationSchema = named(
  'AuditVerification',
  z.object({
    intact: z.boolean(),
    checked: z.int().min(0).describe('Rows examined; when broken, up to and including the first bad one.'),
    first_bad_id: z.string().nullable(),
  }),
  "The result of recomputing the audit log's hash chain.",
);

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
    const entries = results.map((r) => ({ ...r, occurredAt: r.occurredAt.toISOString() }));
    reply(res, 200, auditPageSchema, pageOf(req, q.page, q.page_size, count, entries));
  });
  router.get('/verify', async (_req, res) => {
    const scope = tenantScope(res, deps.directory, deps.databases, 'admin');
    const result = await AuditLog.verify(scope.db.sequelize);
    reply(res, 200, auditVerificationSchema, {
      intact: result.intact,
      checked: result.checked,
      first_bad_id: result.firstBadId ?? null,
    });
  });
  return router;
}
