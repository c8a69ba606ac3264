// /api/users: the tenant's directory. Members read; admins and owners manage.
import { Router, type Request } from 'express';
import { z } from 'zod';
import { tenantScope } from '../auth/context.js';
import { parse, ProblemError } from '../http/problem.js';
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
  userView,
} from '../users/users.js';

const bulkSchema = z.strictObject({ users: z.array(z.unknown()).min(1).max(100) });

/** `{count, next, previous, results}`, with next/previous as full URLs like the prototype. */
export function pageOf<T>(req: Request, page: number, pageSize: number, count: number, results: T[]) {
  const link = (p: number) => {
    const url = new URL(req.originalUrl, `${req.protocol}://${req.get('host') ?? 'localhost'}`);
    url.searchParams.set('page', String(p));
    url.searchParams.set('page_size', String(pageSize));
    return url.toString();
  };
  return {
    count,
    next: page * pageSize < count ? link(page + 1) : null,
    previous: page > 1 ? link(page - 1) : null,
    results,
  };
}

export function userRoutes(deps: { directory: TenantDirectory; databases: TenantDatabases }): Router {
  const { directory, databases } = deps;
  const router = Router();
  const scopeOf = (res: Parameters<typeof tenantScope>[0], minimum?: 'admin') =>
    tenantScope(res, directory, databases, minimum);

  router.get('/', async (req, res) => {
    const scope = scopeOf(res);
    const query = parse(listUsersSchema, req.query);
    const { count, results } = await listUsers(scope, query);
    res.json(pageOf(req, query.page, query.page_size, count, results));
  });

  router.post('/', async (req, res) => {
    const scope = scopeOf(res, 'admin');
    const user = await createUser(scope, parse(createUserSchema, req.body));
    res.status(201).location(`/api/users/${user.id}`).json(userView(user));
  });

  router.post('/bulk', async (req, res) => {
    const scope = scopeOf(res, 'admin');
    const { users } = parse(bulkSchema, req.body);
    const results = [];
    for (const [index, item] of users.entries()) {
      try {
        const user = await createUser(scope, parse(createUserSchema, item));
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
    res.json({
      created: results.filter((r) => r.status === 201).length,
      failed: results.filter((r) => r.status !== 201).length,
      results,
    });
  });

  router.get('/:id', async (req, res) => {
    res.json(userView(await getUser(scopeOf(res), req.params.id)));
  });

  router.patch('/:id', async (req, res) => {
    const { after } = await updateUser(
      scopeOf(res, 'admin'),
      req.params.id,
      parse(updateUserSchema, req.body),
    );
    res.json(after);
  });

  router.delete('/:id', async (req, res) => {
    await deleteUser(scopeOf(res, 'admin'), req.params.id);
    res.status(204).end();
  });

  for (const [action, active] of [
    ['activate', true],
    ['deactivate', false],
  ] as const) {
    router.post(`/:id/${action}`, async (req, res) => {
      const { after } = await updateUser(scopeOf(res, 'admin'), req.params.id, { is_active: active });
      res.json(after);
    });
  }
  return router;
}
