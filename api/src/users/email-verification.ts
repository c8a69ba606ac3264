// When a user last proved to control their address (`users.email_verified_at`,
// tenant schema v7); null means never. Set by a used mailed token (verified
// self-registration, password reset, owner invite) and by SSO; cleared when the
// address changes. SSO links only to proven accounts (docs/sso.md).
//
// Plain SQL rather than a model attribute, so nothing else touches the column:
// sign-in keeps working on a tenant not yet migrated to v7 (tenancy/models.ts).
import { QueryTypes, type Transaction } from 'sequelize';
import type { TenantDb } from '../tenancy/tenant-databases.js';

export async function emailVerifiedAt(
  db: TenantDb,
  userId: string,
  transaction?: Transaction,
): Promise<Date | null> {
  const rows = await db.sequelize.query<{ email_verified_at: Date | null }>(
    'SELECT email_verified_at FROM app.users WHERE id = $1',
    { bind: [userId], type: QueryTypes.SELECT, ...(transaction ? { transaction } : {}) },
  );
  return rows[0]?.email_verified_at ?? null;
}

/** Marks the user's current address proven now (`true`) or unproven (`false`). */
export async function setEmailVerified(
  db: TenantDb,
  userId: string,
  verified: boolean,
  transaction?: Transaction,
): Promise<void> {
  await db.sequelize.query(
    `UPDATE app.users SET email_verified_at = ${verified ? 'now()' : 'NULL'} WHERE id = $1`,
    { bind: [userId], ...(transaction ? { transaction } : {}) },
  );
}
