// Baseline of bench/integrations.bench.ts: bare Express parsing JSON and
// inserting each event and its outbox row into the same tenant database with
// `pg`, without signature verification, tenant lookup or validation. Prints
// `port=<n>` once it listens.
import express from 'express';
import pg from 'pg';

const pool = new pg.Pool({ connectionString: process.env.BENCH_DATABASE_URL, max: 4 });
const app = express();
app.use(express.json());
app.post('/hook', async (req, res) => {
  const event = req.body as { event_id: string; event_type: string };
  await pool.query(
    `WITH ev AS (
       INSERT INTO app.integration_events (provider, event_id, event_type, payload)
       VALUES ('communication-service', $1, $2, $3) ON CONFLICT DO NOTHING RETURNING id, event_type)
     INSERT INTO app.outbox (topic, payload) SELECT 'bench.baseline', jsonb_build_object('event', id) FROM ev`,
    [`base_${event.event_id}`, event.event_type, event],
  );
  res.status(202).json({ status: 'accepted' });
});
const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`port=${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.on('SIGTERM', () => server.close(() => void pool.end().then(() => process.exit(0))));
