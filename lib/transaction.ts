// One way to run a transaction on a node-postgres pool or client, for every
// component that talks to PostgreSQL with `pg` directly.

import pg from 'pg';

/**
 * Runs `fn` between BEGIN and COMMIT on `db` and returns its result; when `fn`
 * (or COMMIT) fails, rolls back and rethrows that error, not a failed ROLLBACK's.
 * A pool lends a client for the transaction and gets it back afterwards,
 * destroyed rather than reused when its ROLLBACK failed; a client is used as is.
 */
export function withTransaction<T>(db: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T>;
export function withTransaction<T, C extends pg.ClientBase>(
  db: pg.Pool | C,
  fn: (client: C) => Promise<T>,
): Promise<T>;
export async function withTransaction<T>(
  db: pg.Pool | pg.ClientBase,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  // The overloads say which client `fn` gets; the queries here are the same for both.
  if (!(db instanceof pg.Pool)) return run(db as pg.PoolClient, fn);
  const client = await db.connect();
  // The pool only listens for errors on idle clients; a lent one whose
  // connection drops between queries (a database restart while a batch waits
  // for broker confirms) would otherwise raise an uncaught 'error' and crash
  // the process. The next query fails instead.
  const ignore = () => undefined;
  client.on('error', ignore);
  let broken = false;
  try {
    return await run(client, fn, () => {
      broken = true;
    });
  } finally {
    client.removeListener('error', ignore);
    client.release(broken);
  }
}

async function run<T, C extends pg.ClientBase>(
  client: C,
  fn: (client: C) => Promise<T>,
  rollbackFailed: () => void = () => undefined,
): Promise<T> {
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(rollbackFailed);
    throw error;
  }
}
