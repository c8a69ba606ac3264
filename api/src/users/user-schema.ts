// What the API shows of a user, in answers and in webhook payloads: never a
// password hash or anything else of the row the schema does not name.
import { z } from 'zod';
import { roles } from '../../../lib/tenant/index.js';
import { encode, named, pageSchema, timestamp } from '../http/responses.js';
import type { UserModel } from '../tenancy/models.js';
import type { UserViewColumn } from './user-store.js';

export const userSchema = named(
  'User',
  z.object({
    id: z.uuid(),
    email: z.string(),
    first_name: z.string().nullable(),
    last_name: z.string().nullable(),
    role: z.enum(roles),
    is_active: z.boolean(),
    department: z.string().nullable(),
    external_id: z.string().nullable().describe('The id at the provider that synchronises this user.'),
    created_at: timestamp,
    updated_at: timestamp,
  }),
  'A user of the tenant. Never a password hash.',
);

export const userPageSchema = pageSchema('UserPage', userSchema);

export type UserView = z.output<typeof userSchema>;

export function userView(user: Pick<UserModel, UserViewColumn>): UserView {
  return encode(userSchema, {
    id: user.id,
    email: user.email,
    first_name: user.first_name,
    last_name: user.last_name,
    role: user.role,
    is_active: user.is_active,
    department: user.department,
    external_id: user.external_id,
    created_at: user.created_at.toISOString(),
    updated_at: user.updated_at.toISOString(),
  });
}
