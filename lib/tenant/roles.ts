// A tenant user's role. The tenant schema's CHECK constraint on users.role
// (lib/tenant-schema/migrations.ts) and the CRD's roleMapping enum list the same three.

/** Every role, highest first. */
export const roles = ['owner', 'admin', 'member'] as const;
export type Role = (typeof roles)[number];

/** The roles below owner: what an SSO provider may grant by default, and what an API client may hold. */
export const nonOwnerRoles = ['admin', 'member'] as const satisfies readonly Role[];
export type NonOwnerRole = (typeof nonOwnerRoles)[number];

const ranks: Record<Role, number> = { member: 1, admin: 2, owner: 3 };

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (roles as readonly string[]).includes(value);
}

/** A number that orders roles: a higher role has a higher rank. */
export function roleRank(role: Role): number {
  return ranks[role];
}
