// The tenant's transactional outbox as the API writes it: one row per event,
// in the transaction of the change it reports. The worker's relay reads and
// publishes it (worker/), in the trace of the request that wrote the row.
import type { Transaction } from 'sequelize';
import { inOutboxSpan } from '../../../lib/telemetry/index.js';
import type { TenantDb } from '../tenancy/tenant-databases.js';

/** Appends an event to the outbox and returns its row id. */
export async function appendToOutbox(
  db: TenantDb,
  topic: string,
  payload: object,
  transaction: Transaction,
): Promise<string> {
  return inOutboxSpan(topic, async (traceContext) => {
    // Without a trace the column is left out of the INSERT altogether.
    const values = traceContext ? { topic, payload, trace_context: traceContext } : { topic, payload };
    const row = await db.models.Outbox.create(values, { transaction, returning: ['id'] });
    return row.get({ plain: true }).id;
  });
}
