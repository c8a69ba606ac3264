// The tenant's transactional outbox as the API writes it: one row per event,
// in the transaction of the change it reports. The worker's relay reads and
// publishes it (worker/).
import type { Transaction } from 'sequelize';
import type { TenantDb } from '../tenancy/tenant-databases.js';

/** Appends an event to the outbox and returns its row id. */
export async function appendToOutbox(
  db: TenantDb,
  topic: string,
  payload: object,
  transaction: Transaction,
): Promise<string> {
  const row = await db.models.Outbox.create({ topic, payload }, { transaction, returning: ['id'] });
  return row.get({ plain: true }).id;
}
