// The outbox rows not yet relayed, per relay, for the metrics: how many, and
// how long the oldest has waited. The integration relay owns `integration.*`
// topics, the webhook relay the rest (as their queries in webhook-store.ts and
// integrations/integration-store.ts split them). The partial index on unsent
// rows keeps this cheap while the relays keep up.
import type pg from 'pg';
import type { OutboxBacklog } from './metrics.js';

export async function outboxBacklog(
  pool: pg.Pool,
): Promise<Record<'webhooks' | 'integrations', OutboxBacklog>> {
  const { rows } = await pool.query<{
    relay: 'webhooks' | 'integrations';
    pending: string;
    age: number | null;
  }>(
    `SELECT CASE WHEN topic LIKE 'integration.%' THEN 'integrations' ELSE 'webhooks' END AS relay,
            count(*) AS pending,
            extract(epoch FROM now() - min(created_at))::float8 AS age
       FROM app.outbox
      WHERE sent_at IS NULL
      GROUP BY 1`,
  );
  const backlog = {
    webhooks: { pending: 0, oldestAgeSeconds: 0 },
    integrations: { pending: 0, oldestAgeSeconds: 0 },
  };
  for (const row of rows) {
    backlog[row.relay] = { pending: Number(row.pending), oldestAgeSeconds: Math.max(0, row.age ?? 0) };
  }
  return backlog;
}
