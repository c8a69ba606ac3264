// The API benchmark's baseline: bare Express and `pg` serving the same user list
// on the same tenant databases, with no authentication, rate limiting, ORM,
// validation or logging. It reads TENANT_DATABASES (JSON: tenant → connection
// URI) and PORT, and prints `listening <port>` once it accepts requests.
import express from 'express';
import pg from 'pg';

const databases = JSON.parse(process.env.TENANT_DATABASES ?? '{}') as Record<string, string>;
// The API's pool settings: 5 connections per tenant, closed after 30 s idle (pg's default of 10 s
// would close and reopen connections during the measurement).
const pools = new Map(
  Object.entries(databases).map(([tenant, uri]) => [
    tenant,
    new pg.Pool({ connectionString: uri, max: 5, idleTimeoutMillis: 30_000 }),
  ]),
);

// The query behind GET /api/users?page_size=20, as two plain statements: the count, then the page
// (the API gets both from one statement).
const countSql = 'SELECT count(*)::int AS count FROM app.users';
const pageSql = `SELECT id, email, first_name, last_name, role, is_active, department, external_id, created_at, updated_at
  FROM app.users ORDER BY email ASC, id ASC LIMIT $1 OFFSET 0`;

const app = express();
app.get('/t/:tenant/users', async (req, res) => {
  const pool = pools.get(req.params.tenant);
  if (!pool) {
    res.status(404).end();
    return;
  }
  const pageSize = Math.min(Number(req.query.page_size ?? 20) || 20, 100);
  const count = await pool.query<{ count: number }>(countSql);
  const page = await pool.query(pageSql, [pageSize]);
  res.json({ count: count.rows[0]?.count ?? 0, next: null, previous: null, results: page.rows });
});

// Failures fail the benchmark run; say why.
app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
  res.status(500).type('text/plain').send(error.message);
});

const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : ''}\n`);
});
process.once('SIGTERM', () => {
  server.close();
  void Promise.all([...pools.values()].map((p) => p.end())).then(() => process.exit(0));
});
