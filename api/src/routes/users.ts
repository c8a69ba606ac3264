// /api/users: the tenant's directory. Members read; admins and owners manage.
import { Router, type Request, type Response } from 'express';
import { audited } from '../audit/audited.js';
import { z } from 'zod';
import { tenantScope } from '../auth/context.js';
import { parse, ProblemError } from '../http/problem.js';
import { fieldErrorSchema, named, pageOf, reply } from '../http/responses.js';
import type { TenantDatabases } from '../tenancy/tenant-databases.js';
import type { TenantDirectory } from '../tenancy/tenant-directory.js';
import {
  createUser,
  createUserSchema,
  deleteUser,
  getUser,
  listUsers,
  listUsersSchema,
  updateUser,
  updateUserSchema,
  userPageSchema,
  userSchema,
  userView,
  type UpdateUser,
} from '../users/users.js';

export const bulkSchema = z.strictObject({ users: z.array(z.unknown()).min(1).max(100) });

export const bulkResultSchema = named(
  'BulkUserResult',
  z.object({
    created: z.int().min(0),
    failed: z.int().min(0),
    results: z.array(
      z.object({
        index: z.int().min(0),
        status: z.int(),
        user: userSchema.optional(),
        detail: z.string().optional(),
        errors: z.array(fieldErrorSchema).optional(),
      }),
    ),
  }),
  'Per item: 201 and the user, or the status and detail of the problem it met.',
);

export function userRoutes(deps: { directory: TenantDirectory; databases: TenantDatabases }): Router {
  const { directory, databases } = deps;
  const router = Router();
  const scopeOf = (res: Parameters<typeof tenantScope>[0], minimum?: 'admin') =>
    tenantScope(res, directory, databases, minimum);

  router.get('/', async (req, res) => {
    const scope = scopeOf(res);
    const query = parse(listUsersSchema, req.query);
    const { count, results } = await listUsers(scope, query);
    reply(res, 200, userPageSchema, pageOf(req, query.page, query.page_size, count, results));
  });

  router.post('/', async (req, res) => {
    const scope = scopeOf(res, 'admin');
    const input = parse(createUserSchema, req.body);
    const user = await audited(scope, req, res, async (transaction) => {
      const created = await createUser(scope, input, { transaction });
      return {
        result: created,
        audit: { action: 'create', resourceType: 'user', resourceId: created.id, after: userView(created) },
      };
    });
    res.status(201).location(`/api/users/${user.id}`).json(userView(user));
  });

  router.post('/bulk', async (req, res) => {
    const scope = scopeOf(res, 'admin');
    const { users } = parse(bulkSchema, req.body);
    const results = [];
    for (const [index, item] of users.entries()) {
      try {
        const input = parse(createUserSchema, item);
        const user = await audited(scope, req, res, async (transaction) => {
          const created = await createUser(scope, input, { transaction });
          return {
            result: created,
            audit: {
              action: 'create',
              resourceType: 'user',
              resourceId: created.id,
              after: userView(created),
            },
          };
        });
        results.push({ index, status: 201, user: userView(user) });
      } catch (error) {
        if (!(error instanceof ProblemError)) throw error;
        results.push({
          index,
          status: error.status,
          detail: error.message,
          ...(error.extra.errors ? { errors: error.extra.errors } : {}),
        });
      }
    }
    reply(res, 200, bulkResultSchema, {
      created: results.filter((r) => r.status === 201).length,
      failed: results.filter((r) => r.status !== 201).length,
      results,
    });
  });

  router.get('/:id', async (req, res) => {
    res.json(userView(await getUser(scopeOf(res), req.params.id)));
  });

  const change = (req: Request<{ id: string }>, res: Response, input: UpdateUser) => {
    const scope = scopeOf(res, 'admin');
    return audited(scope, req, res, async (transaction) => {
      const { before, after } = await updateUser(scope, req.params.id, input, transaction);
      return {
        result: after,
        audit: { action: 'update', resourceType: 'user', resourceId: after.id, before, after },
      };
    });
  };

  router.patch('/:id', async (req, res) => {
    res.json(await change(req, res, parse(updateUserSchema, req.body)));
  });

  for (const [action, active] of [
    ['activate', true],
    ['deactivate', false],
  ] as const) {
    router.post(`/:id/${action}`, async (req, res) => {
      res.json(await change(req, res, { is_active: active }));
    });
  }

  router.delete('/:id', async (req, res) => {
    const scope = scopeOf(res, 'admin');
    await audited(scope, req, res, async (transaction) => {
      const before = await deleteUser(scope, req.params.id, transaction);
      return {
        result: undefined,
        audit: { action: 'delete', resourceType: 'user', resourceId: before.id, before },
      };
    });
    res.status(204).end();
  });
  return router;
}
