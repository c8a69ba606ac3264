// The tenant's user directory. Every function takes the caller's tenant scope
// first; the scope's database is the only one it can reach.
import { Op, UniqueConstraintError, type Transaction } from 'sequelize';
import { z } from 'zod';
import { roleRank, roles, type Role } from '../../../lib/tenant/index.js';
import { passwordHashing } from '../auth/password-hashing.js';
import { passwordProblems } from '../auth/passwords.js';
import type { TenantScope } from '../auth/context.js';
import { problems, type FieldError } from '../http/problem.js';
import type { UserModel } from '../tenancy/models.js';
import { recordDomainEvent } from '../webhooks/domain-events.js';
import { setEmailVerified } from './email-verification.js';
import { userView, type UserView } from './user-schema.js';
import { UserStore } from './user-store.js';

export { userPageSchema, userSchema, userView, type UserView } from './user-schema.js';

const name = z.string().trim().max(150);
export const email = z.string().trim().toLowerCase().max(254).email();

export const createUserSchema = z.strictObject({
  email,
  first_name: name.optional(),
  last_name: name.optional(),
  role: z.enum(roles).default('member'),
  department: z.string().trim().max(150).optional(),
  password: z.string().max(256).optional(),
});

export const updateUserSchema = z
  .strictObject({
    email: email.optional(),
    first_name: name.nullable().optional(),
    last_name: name.nullable().optional(),
    role: z.enum(roles).optional(),
    department: z.string().trim().max(150).nullable().optional(),
    is_active: z.boolean().optional(),
  })
  .refine((v) => Object.keys(v).length > 0, { message: 'send at least one field to change' });

const orderings = ['email', 'first_name', 'last_name', 'role', 'created_at', 'updated_at'] as const;
type Ordering = (typeof orderings)[number];

export const listUsersSchema = z.strictObject({
  page: z.coerce.number().int().min(1).default(1),
  page_size: z.coerce.number().int().min(1).max(100).default(20),
  role: z.enum(roles).optional(),
  is_active: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
  department: z.string().max(150).optional(),
  search: z.string().max(254).optional(),
  ordering: z
    .string()
    .refine((v) => orderings.includes(v.replace(/^-/, '') as Ordering), {
      message: `one of ${orderings.join(', ')}, optionally prefixed with -`,
    })
    .default('email'),
});

export type CreateUser = z.infer<typeof createUserSchema>;
export type UpdateUser = z.infer<typeof updateUserSchema>;
export type ListUsers = z.infer<typeof listUsersSchema>;

function ensureStrongPassword(password: string, user: { email: string; first_name?: string | null }): void {
  const found = passwordProblems(password, { email: user.email, name: user.first_name ?? undefined });
  if (found.length > 0) {
    throw problems.validation(found.map((p): FieldError => ({ field: 'password', message: p.message })));
  }
}

/** Admins manage members and admins; only owners touch owners. */
function mayManage(scope: TenantScope, targetRole: Role): void {
  if (roleRank(scope.auth.role) < roleRank('admin'))
    throw problems.forbidden('managing users needs the admin role');
  if (targetRole === 'owner' && scope.auth.role !== 'owner')
    throw problems.forbidden('only owners manage owners');
}

export async function listUsers(scope: TenantScope, query: ListUsers) {
  const { count, rows } = await new UserStore(scope.db).listPage(
    {
      ...(query.role ? { role: query.role } : {}),
      ...(query.is_active !== undefined ? { isActive: query.is_active } : {}),
      ...(query.department ? { department: query.department } : {}),
      ...(query.search ? { search: query.search } : {}),
    },
    // The schema admits only the listed orderings, each a view column.
    { column: query.ordering.replace(/^-/, '') as Ordering, descending: query.ordering.startsWith('-') },
    { limit: query.page_size, offset: (query.page - 1) * query.page_size },
  );
  return { count, results: rows };
}

export async function getUser(scope: TenantScope, id: string, transaction?: Transaction): Promise<UserModel> {
  if (!z.uuid().safeParse(id).success) throw problems.notFound(`no user ${id}`);
  const user = await scope.db.models.User.findByPk(id, transaction ? { transaction, lock: true } : {});
  if (!user) throw problems.notFound(`no user ${id}`);
  return user;
}

export async function createUser(
  scope: TenantScope,
  input: CreateUser,
  options: {
    externalId?: string;
    transaction?: Transaction;
    /** An argon2id hash made earlier (a verified self-registration); `input.password` is then unset. */
    passwordHash?: string;
    /** The address is proven (a verified self-registration); never for users an admin or an import creates. */
    emailVerified?: boolean;
  } = {},
) {
  mayManage(scope, input.role);
  if (input.password !== undefined) ensureStrongPassword(input.password, input);
  const passwordHash =
    input.password === undefined
      ? (options.passwordHash ?? null)
      : await passwordHashing.hash(scope.db.tenant, input.password);
  // The user and its user.created event commit together.
  const create = async (transaction: Transaction) => {
    const user = await scope.db.models.User.create(
      {
        email: input.email,
        first_name: input.first_name ?? null,
        last_name: input.last_name ?? null,
        role: input.role,
        department: input.department ?? null,
        external_id: options.externalId ?? null,
        password_hash: passwordHash,
      },
      { transaction },
    );
    if (options.emailVerified) await setEmailVerified(scope.db, user.id, true, transaction);
    await recordDomainEvent(scope.db, 'user.created', { user: userView(user) }, transaction);
    return user;
  };
  try {
    return await (options.transaction ? create(options.transaction) : scope.db.sequelize.transaction(create));
  } catch (error) {
    if (error instanceof UniqueConstraintError)
      throw problems.conflict(`a user with email ${input.email} already exists`);
    throw error;
  }
}

export async function updateUser(
  scope: TenantScope,
  id: string,
  input: UpdateUser,
  transaction?: Transaction,
) {
  const user = await getUser(scope, id, transaction);
  const before = userView(user);
  mayManage(scope, user.role);
  if (input.role) mayManage(scope, input.role);
  if (
    user.role === 'owner' &&
    ((input.role !== undefined && input.role !== 'owner') || input.is_active === false)
  ) {
    await ensureAnotherOwner(scope, user.id, transaction);
  }
  const newAddress = input.email !== undefined && input.email !== user.email.toLowerCase();
  const save = async (t: Transaction) => {
    await user.update(input, { transaction: t });
    // A new address is not proven by the old one's proof.
    if (newAddress) await setEmailVerified(scope.db, user.id, false, t);
    await recordUserChanges(scope, before, userView(user), t);
  };
  try {
    await (transaction ? save(transaction) : scope.db.sequelize.transaction(save));
  } catch (error) {
    if (error instanceof UniqueConstraintError)
      throw problems.conflict(`a user with email ${input.email} already exists`);
    throw error;
  }
  return { before, after: userView(user), user };
}

/** user.updated for changed fields, user.activated / user.deactivated for is_active; nothing if nothing changed. */
async function recordUserChanges(
  scope: TenantScope,
  before: UserView,
  after: UserView,
  transaction: Transaction,
): Promise<void> {
  const changed = (Object.keys(after) as (keyof UserView)[]).filter(
    (key) => key !== 'updated_at' && key !== 'is_active' && before[key] !== after[key],
  );
  if (changed.length > 0) {
    await recordDomainEvent(scope.db, 'user.updated', { user: after, changed_fields: changed }, transaction);
  }
  if (before.is_active !== after.is_active) {
    const type = after.is_active ? 'user.activated' : 'user.deactivated';
    await recordDomainEvent(scope.db, type, { user: after }, transaction);
  }
}

export async function deleteUser(scope: TenantScope, id: string, transaction?: Transaction) {
  const user = await getUser(scope, id, transaction);
  mayManage(scope, user.role);
  if (user.role === 'owner') await ensureAnotherOwner(scope, user.id, transaction);
  const before = userView(user);
  const destroy = async (t: Transaction) => {
    await user.destroy({ transaction: t });
    await recordDomainEvent(scope.db, 'user.deleted', { user: before }, t);
  };
  await (transaction ? destroy(transaction) : scope.db.sequelize.transaction(destroy));
  return before;
}

async function ensureAnotherOwner(
  scope: TenantScope,
  exceptId: string,
  transaction?: Transaction,
): Promise<void> {
  const others = await scope.db.models.User.count({
    where: { role: 'owner', is_active: true, id: { [Op.ne]: exceptId } },
    ...(transaction ? { transaction } : {}),
  });
  if (others === 0) throw problems.conflict('a tenant must keep at least one active owner');
}
