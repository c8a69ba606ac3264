import { expect } from 'chai';
import pg from 'pg';
import { withTransaction } from '../../lib/transaction.js';
import { createTestDatabase, type TestDatabase } from '../harness/services.js';

describe('withTransaction', function () {
  this.timeout(30_000);
  let db: TestDatabase;
  let pool: pg.Pool;

  before(async () => {
    db = await createTestDatabase('transaction');
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
    await pool.query('CREATE TABLE notes (body text PRIMARY KEY)');
  });

  after(async () => {
    await pool?.end();
    await db?.drop();
  });

  beforeEach(() => pool.query('TRUNCATE notes'));

  const bodies = async () =>
    (await pool.query<{ body: string }>('SELECT body FROM notes ORDER BY body')).rows;

  it('commits what the callback wrote, returns its result and gives the client back to the pool', async () => {
    const result = await withTransaction(pool, async (client) => {
      await client.query(`INSERT INTO notes VALUES ('a'), ('b')`);
      return 'done';
    });
    expect(result).to.equal('done');
    expect(await bodies()).to.deep.equal([{ body: 'a' }, { body: 'b' }]);
    expect(pool.totalCount).to.equal(pool.idleCount);
    const client = await pool.connect();
    try {
      // The listener that keeps a dropped connection from crashing the process is gone again.
      expect(client.listenerCount('error')).to.equal(0);
    } finally {
      client.release();
    }
  });

  it('rolls back and rethrows the callback error, a failed statement included', async () => {
    const thrown = new Error('changed my mind');
    const error = await withTransaction(pool, async (client) => {
      await client.query(`INSERT INTO notes VALUES ('gone')`);
      throw thrown;
    }).catch((e: unknown) => e);
    expect(error).to.equal(thrown);
    const failed = await withTransaction(pool, async (client) => {
      await client.query(`INSERT INTO notes VALUES ('also gone')`);
      await client.query(`INSERT INTO notes VALUES ('also gone')`);
    }).catch((e: unknown) => e);
    expect((failed as { code?: string }).code).to.equal('23505');
    expect(await bodies()).to.deep.equal([]);
    expect(pool.totalCount).to.equal(pool.idleCount);
  });

  it('runs on a client it is given, leaving it connected for the next transaction', async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      await withTransaction(client, async (c) => {
        await c.query(`INSERT INTO notes VALUES ('kept')`);
      });
      await withTransaction(client, async (c) => {
        await c.query(`INSERT INTO notes VALUES ('dropped')`);
        throw new Error('undo');
      }).catch(() => undefined);
      const { rows } = await client.query<{ open: boolean }>('SELECT now() <> statement_timestamp() AS open');
      expect(rows[0]?.open).to.equal(false);
    } finally {
      await client.end();
    }
    expect(await bodies()).to.deep.equal([{ body: 'kept' }]);
  });

  it('rethrows the callback error when the connection died, and destroys the pooled client instead of reusing it', async () => {
    const thrown = new Error('the connection went away');
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      const error = await withTransaction(pool, async (client) => {
        await client.query(`INSERT INTO notes VALUES ('lost')`);
        // The server ends this session: the client emits 'error' and ROLLBACK fails.
        await client.query('SELECT pg_terminate_backend(pg_backend_pid())').catch(() => undefined);
        throw thrown;
      }).catch((e: unknown) => e);
      expect(error).to.equal(thrown);
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).to.deep.equal([]);
    expect(pool.totalCount).to.equal(pool.idleCount);
    expect(await bodies()).to.deep.equal([]);
  });
});
