// The tenant's transactional outbox as the API writes it: one row per event,
// in the transaction of the change it reports. The worker's relay reads and
// publishes it (worker/).
import { QueryTypes, type Sequelize, type Transaction } from 'sequelize';

/** Appends an event to the outbox and returns its row id. */
export async function appendToOutbox(
  sequelize: Sequelize,
  topic: string,
  payload: object,
  transaction: Transaction,
): Promise<string> {
  const [row] = await sequelize.query<{ id: string }>(
    'INSERT INTO app.outbox (topic, payload) VALUES ($1, $2::jsonb) RETURNING id',
    { bind: [topic, JSON.stringify(payload)], type: QueryTypes.SELECT, transaction },
  );
  return row!.id;
}
