// The audit log against a real tenant database, used through the tenant's
// login role (the API's role), with the superuser playing an insider who
// edits or removes rows behind the API's back.
import { expect } from 'chai';
import pg from 'pg';
import { Sequelize, Transaction } from 'sequelize';
import {
  AuditLog,
  chainHash,
  maxAuditPageSize,
  redactedValue,
  type AuditRecord,
} from '../../../api/src/audit/audit-log.js';
import { ProblemError } from '../../../api/src/http/problem.js';
import { createTestTenantDatabase, type TestTenantDatabase } from '../../harness/tenant-database.js';

function sqlStateOf(error: unknown): string | undefined {
  const e = error as { original?: { code?: string }; code?: string } | undefined;
  return e?.original?.code ?? e?.code;
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.fail('expected a rejection'),
    (error: unknown) => error,
  );
}

interface RawRow {
  id: string;
  occurred_at: Date;
  actor: string | null;
  action: string;
  resource_type: string;
  resource_id: string | null;
  diff: Record<string, unknown> | null;
  ip: string | null;
  request_id: string | null;
  prev_hash: string | null;
  hash: string;
}

describe('audit log (tenant database)', function () {
  this.timeout(60_000);

  let db: TestTenantDatabase;
  let app: Sequelize;
  const extraApps: Sequelize[] = [];
  let superuser: pg.Client;

  before(async () => {
    db = await createTestTenantDatabase('audit');
    app = new Sequelize(db.loginUrl, { dialect: 'postgres', logging: false, pool: { max: 4 } });
    superuser = new pg.Client({ connectionString: db.superuserUrl });
    await superuser.connect();
  });

  beforeEach(async () => {
    await superuser.query('TRUNCATE app.audit_log RESTART IDENTITY');
  });

  afterEach(async () => {
    await Promise.all(extraApps.splice(0).map((s) => s.close()));
  });

  after(async () => {
    await app?.close();
    await superuser?.end();
    await db?.drop();
  });

  async function rawRows(): Promise<RawRow[]> {
    const { rows } = await superuser.query<RawRow>('SELECT * FROM app.audit_log ORDER BY id');
    return rows;
  }

  async function appendMany(count: number): Promise<AuditRecord[]> {
    const records: AuditRecord[] = [];
    for (let i = 0; i < count; i += 1) {
      records.push(
        await AuditLog.append(app, {
          actor: 'u-admin',
          action: 'update',
          resourceType: 'user',
          resourceId: `u-${i}`,
          before: { department: 'sales' },
          after: { department: `team-${i}` },
        }),
      );
    }
    return records;
  }

  it('appends a chain: each row links to the one before, and verify recomputes every hash', async () => {
    const created = await AuditLog.append(app, {
      actor: 'u-admin',
      action: 'create',
      resourceType: 'user',
      resourceId: 'u-1',
      after: { email: 'ada@example.com', role: 'member' },
      ip: '2001:DB8::1',
      requestId: 'req-1',
    });
    const updated = await AuditLog.append(app, {
      actor: 'u-admin',
      action: 'update',
      resourceType: 'user',
      resourceId: 'u-1',
      before: { email: 'ada@example.com', role: 'member' },
      after: { email: 'ada@example.com', role: 'admin' },
      ip: '203.0.113.7',
    });
    const deleted = await AuditLog.append(app, {
      actor: null,
      action: 'delete',
      resourceType: 'user',
      resourceId: 'u-1',
      before: { email: 'ada@example.com', role: 'admin' },
    });

    expect(created.prevHash).to.be.null;
    expect(updated.prevHash).to.equal(created.hash);
    expect(deleted.prevHash).to.equal(updated.hash);
    expect(created.ip).to.equal('2001:db8::1');
    expect(updated.diff).to.deep.equal({ before: { role: 'member' }, after: { role: 'admin' } });

    const rows = await rawRows();
    expect(rows.map((r) => r.id)).to.deep.equal([created.id, updated.id, deleted.id]);
    expect(rows[0]).to.include({
      actor: 'u-admin',
      action: 'create',
      request_id: 'req-1',
      ip: '2001:db8::1',
    });
    // The stored row alone reproduces its hash.
    const first = rows[0]!;
    expect(
      chainHash(null, {
        occurred_at: first.occurred_at.toISOString(),
        actor: first.actor,
        action: first.action,
        resource_type: first.resource_type,
        resource_id: first.resource_id,
        diff: first.diff as never,
        ip: first.ip,
        request_id: first.request_id,
      }),
    ).to.equal(first.hash);

    expect(await AuditLog.verify(app)).to.deep.equal({
      intact: true,
      checked: 3,
      head: { id: deleted.id, hash: deleted.hash },
    });
    // Page boundaries do not change the outcome.
    expect(await AuditLog.verify(app, { pageSize: 2 })).to.include({ intact: true, checked: 3 });
    expect(await AuditLog.verify(app, { pageSize: 1 })).to.include({ intact: true, checked: 3 });
  });

  it('verifies an empty log as intact', async () => {
    expect(await AuditLog.verify(app)).to.deep.equal({ intact: true, checked: 0 });
  });

  it('keeps a single chain under 20 concurrent appends from several connections', async () => {
    const replicas = [app];
    for (let i = 0; i < 2; i += 1) {
      const extra = new Sequelize(db.loginUrl, { dialect: 'postgres', logging: false, pool: { max: 4 } });
      extraApps.push(extra);
      replicas.push(extra);
    }
    const appended = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        AuditLog.append(replicas[i % replicas.length]!, {
          actor: `u-${i}`,
          action: 'create',
          resourceType: 'widget',
          resourceId: `w-${i}`,
          after: { n: i },
        }),
      ),
    );
    expect(new Set(appended.map((r) => r.id)).size).to.equal(20);

    const rows = await rawRows();
    expect(rows).to.have.length(20);
    // No fork: every prev_hash is used once, and only the first row has none.
    expect(new Set(rows.map((r) => r.prev_hash)).size).to.equal(20);
    expect(rows.filter((r) => r.prev_hash === null)).to.have.length(1);
    rows.slice(1).forEach((row, i) => expect(row.prev_hash).to.equal(rows[i]!.hash));
    expect(await AuditLog.verify(app)).to.include({ intact: true, checked: 20 });
  });

  it("commits with the caller's transaction and rolls back with it", async () => {
    const email = `rollback-${Date.now()}@example.com`;
    const rolledBack = await app.transaction();
    await app.query('INSERT INTO app.users (email) VALUES ($1)', { bind: [email], transaction: rolledBack });
    await AuditLog.append(
      app,
      { actor: 'u-admin', action: 'create', resourceType: 'user', after: { email } },
      { transaction: rolledBack },
    );
    await rolledBack.rollback();
    expect(await rawRows()).to.have.length(0);

    const committed = await app.transaction();
    await app.query('INSERT INTO app.users (email) VALUES ($1)', { bind: [email], transaction: committed });
    const record = await AuditLog.append(
      app,
      { actor: 'u-admin', action: 'create', resourceType: 'user', after: { email } },
      { transaction: committed },
    );
    // Not visible outside the transaction until it commits.
    expect(await rawRows()).to.have.length(0);
    await committed.commit();
    expect((await rawRows()).map((r) => r.id)).to.deep.equal([record.id]);
    expect(await AuditLog.verify(app)).to.include({ intact: true, checked: 1 });
  });

  it('refuses a REPEATABLE READ transaction, whose snapshot could fork the chain', async () => {
    const transaction = await app.transaction({
      isolationLevel: Transaction.ISOLATION_LEVELS.REPEATABLE_READ,
    });
    try {
      const error = await rejectionOf(
        AuditLog.append(app, { actor: null, action: 'login', resourceType: 'session' }, { transaction }),
      );
      expect(String(error)).to.match(/READ COMMITTED/);
    } finally {
      await transaction.rollback();
    }
    expect(await rawRows()).to.have.length(0);
  });

  it('stores diffs with secrets redacted', async () => {
    await AuditLog.append(app, {
      actor: 'u-admin',
      action: 'update',
      resourceType: 'user',
      resourceId: 'u-1',
      before: { email: 'a@example.com', password_hash: '$argon2id$old-hash', department: 'ops' },
      after: { email: 'a@example.com', password_hash: '$argon2id$new-hash', department: 'ops' },
    });
    await AuditLog.append(app, {
      actor: 'u-admin',
      action: 'create',
      resourceType: 'integration',
      after: { provider: 'payments', client_secret: 'cs-live-123', settings: { apiKey: 'ak-live-456' } },
    });
    const { rows } = await superuser.query<{ diff: string }>('SELECT diff::text AS diff FROM app.audit_log');
    const stored = rows.map((r) => r.diff).join('\n');
    for (const secret of ['old-hash', 'new-hash', 'cs-live-123', 'ak-live-456']) {
      expect(stored).to.not.include(secret);
    }
    const [update, create] = await rawRows();
    expect(update?.diff).to.deep.equal({
      before: { password_hash: redactedValue },
      after: { password_hash: redactedValue },
    });
    expect(create?.diff).to.deep.equal({
      after: { provider: 'payments', client_secret: redactedValue, settings: { apiKey: redactedValue } },
    });
  });

  it("refuses UPDATE, DELETE and TRUNCATE from the API's role", async () => {
    const [record] = await appendMany(1);
    for (const sql of [
      `UPDATE app.audit_log SET actor = 'someone-else'`,
      'DELETE FROM app.audit_log',
      'TRUNCATE app.audit_log',
    ]) {
      expect(sqlStateOf(await rejectionOf(app.query(sql))), sql).to.equal('42501');
    }
    expect((await rawRows()).map((r) => [r.id, r.actor])).to.deep.equal([[record!.id, 'u-admin']]);
  });

  it('catches a row whose diff an insider changed, naming that row', async () => {
    const records = await appendMany(5);
    const victim = records[2]!;
    await superuser.query(
      `UPDATE app.audit_log SET diff = jsonb_set(diff, '{after,department}', '"sales"') WHERE id = $1`,
      [victim.id],
    );
    expect(await AuditLog.verify(app)).to.deep.equal({ intact: false, checked: 3, firstBadId: victim.id });
    expect(await AuditLog.verify(app, { pageSize: 2 })).to.include({ firstBadId: victim.id });
  });

  it('catches an edited row whose hash was recomputed, at the next row', async () => {
    const records = await appendMany(5);
    const victim = (await rawRows())[2]!;
    const diff = { before: { department: 'sales' }, after: { department: 'sales' } };
    const forged = chainHash(victim.prev_hash, {
      occurred_at: victim.occurred_at.toISOString(),
      actor: victim.actor,
      action: victim.action,
      resource_type: victim.resource_type,
      resource_id: victim.resource_id,
      diff,
      ip: victim.ip,
      request_id: victim.request_id,
    });
    await superuser.query('UPDATE app.audit_log SET diff = $2, hash = $3 WHERE id = $1', [
      victim.id,
      JSON.stringify(diff),
      forged,
    ]);
    expect(await AuditLog.verify(app)).to.deep.equal({
      intact: false,
      checked: 4,
      firstBadId: records[3]!.id,
    });
  });

  it('catches a row deleted from the middle, and a first row deleted', async () => {
    const records = await appendMany(5);
    await superuser.query('DELETE FROM app.audit_log WHERE id = $1', [records[2]!.id]);
    expect(await AuditLog.verify(app)).to.deep.equal({
      intact: false,
      checked: 3,
      firstBadId: records[3]!.id,
    });

    await superuser.query('TRUNCATE app.audit_log RESTART IDENTITY');
    const again = await appendMany(3);
    await superuser.query('DELETE FROM app.audit_log WHERE id = $1', [again[0]!.id]);
    expect(await AuditLog.verify(app)).to.deep.equal({ intact: false, checked: 1, firstBadId: again[1]!.id });
  });

  describe('list', () => {
    const start = new Date('2026-05-01T12:00:00.000Z');
    const minute = 60_000;
    let records: AuditRecord[];

    beforeEach(async () => {
      const entries = [
        { actor: 'u-ada', action: 'create', resourceType: 'user', resourceId: 'u-1' },
        { actor: 'u-ada', action: 'update', resourceType: 'user', resourceId: 'u-1' },
        { actor: 'u-bob', action: 'create', resourceType: 'webhook', resourceId: 'w-1' },
        { actor: null, action: 'login_failed', resourceType: 'session' },
        { actor: 'u-bob', action: 'update', resourceType: 'user', resourceId: 'u-2' },
        { actor: 'u-ada', action: 'delete', resourceType: 'user', resourceId: 'u-1' },
        { actor: 'u-bob', action: 'login', resourceType: 'session', resourceId: 's-9' },
      ];
      records = [];
      for (const [i, entry] of entries.entries()) {
        records.push(
          await AuditLog.append(
            app,
            { ...entry, ip: '198.51.100.4', requestId: `req-${i}` },
            { now: () => new Date(start.getTime() + i * minute) },
          ),
        );
      }
    });

    const ids = (results: AuditRecord[]) => results.map((r) => r.id);

    it('pages newest first with a total count', async () => {
      const first = await AuditLog.list(app, {}, { page: 1, pageSize: 3 });
      expect(first.count).to.equal(7);
      expect(ids(first.results)).to.deep.equal([records[6]!.id, records[5]!.id, records[4]!.id]);
      const third = await AuditLog.list(app, {}, { page: 3, pageSize: 3 });
      expect(ids(third.results)).to.deep.equal([records[0]!.id]);
      const beyond = await AuditLog.list(app, {}, { page: 4, pageSize: 3 });
      expect(beyond).to.deep.equal({ count: 7, results: [] });
      expect(first.results[0]).to.deep.include({
        actor: 'u-bob',
        action: 'login',
        resourceType: 'session',
        resourceId: 's-9',
        ip: '198.51.100.4',
        requestId: 'req-6',
        diff: null,
        occurredAt: new Date(start.getTime() + 6 * minute),
      });
    });

    it('filters by actor, action, resource and time window, together', async () => {
      const by = async (filters: Parameters<typeof AuditLog.list>[1]) =>
        AuditLog.list(app, filters, { page: 1, pageSize: 50 });

      expect(ids((await by({ actor: 'u-ada' })).results)).to.deep.equal([5, 1, 0].map((i) => records[i]!.id));
      expect((await by({ action: 'create' })).count).to.equal(2);
      expect(ids((await by({ resourceType: 'user', resourceId: 'u-1' })).results)).to.deep.equal(
        [5, 1, 0].map((i) => records[i]!.id),
      );
      // since is inclusive, until exclusive.
      const window = await by({
        since: new Date(start.getTime() + 2 * minute),
        until: new Date(start.getTime() + 5 * minute),
      });
      expect(ids(window.results)).to.deep.equal([4, 3, 2].map((i) => records[i]!.id));
      const combined = await by({ actor: 'u-bob', resourceType: 'user', since: start });
      expect(ids(combined.results)).to.deep.equal([records[4]!.id]);
      expect(await by({ actor: 'nobody' })).to.deep.equal({ count: 0, results: [] });
      // Values are bound, not spliced into SQL.
      expect((await by({ actor: "' OR '1'='1" })).count).to.equal(0);
    });

    it('caps the page size and rejects bad paging with the field named', async () => {
      await Promise.all(
        Array.from({ length: maxAuditPageSize }, (_, i) =>
          AuditLog.append(app, {
            actor: 'bulk',
            action: 'create',
            resourceType: 'thing',
            resourceId: `t-${i}`,
          }),
        ),
      );
      const page = await AuditLog.list(app, {}, { page: 1, pageSize: 10_000 });
      expect(page.count).to.equal(maxAuditPageSize + 7);
      expect(page.results).to.have.length(maxAuditPageSize);

      for (const [paging, field] of [
        [{ page: 0, pageSize: 10 }, 'page'],
        [{ page: 1.5, pageSize: 10 }, 'page'],
        [{ page: 1, pageSize: 0 }, 'page_size'],
      ] as const) {
        const error = await rejectionOf(AuditLog.list(app, {}, paging));
        expect(error).to.be.instanceOf(ProblemError);
        expect((error as ProblemError).status).to.equal(400);
        expect((error as ProblemError).extra.errors?.map((e) => e.field)).to.deep.equal([field]);
      }
      const badDate = await rejectionOf(
        AuditLog.list(app, { since: new Date('nope') }, { page: 1, pageSize: 1 }),
      );
      expect((badDate as ProblemError).extra.errors?.map((e) => e.field)).to.deep.equal(['since']);
    });
  });
});
