// The rows of app.audit_log. The app role may only SELECT and INSERT them
// (migration v1). The chain rules (hashing, redaction, the lock protocol) are
// in audit-log.ts; this module only reads and writes.
import { QueryTypes, type Sequelize, type Transaction } from 'sequelize';
import type { AuditFilters, JsonObject } from './audit-log.js';

/** The hashed part of a row: everything but id (the chain orders rows) and the hashes. */
export interface HashedContent {
  occurred_at: string;
  actor: string | null;
  action: string;
  resource_type: string;
  resource_id: string | null;
  diff: JsonObject | null;
  ip: string | null;
  request_id: string | null;
}

/** A stored row: the hashed content (with the time as PostgreSQL returns it), its id and its hashes. */
export interface AuditRow extends Omit<HashedContent, 'occurred_at'> {
  id: string;
  occurred_at: Date;
  prev_hash: string | null;
  hash: string;
}

const columns =
  'id, occurred_at, actor, action, resource_type, resource_id, diff, ip, request_id, prev_hash, hash';

// Advisory locks are per database, so this serialises appends within one
// tenant database only. Distinct from the schema migration lock.
const auditChainLockKey = '7315846202';

// Every statement is SQL: the chain needs an advisory lock, and the casts
// (inet, jsonb, timestamptz) make PostgreSQL spell stored values exactly as
// they are hashed.
export class AuditStore {
  readonly #sequelize: Sequelize;

  constructor(sequelize: Sequelize) {
    this.#sequelize = sequelize;
  }

  /** Takes the chain lock until `transaction` ends. */
  async lockChain(transaction: Transaction): Promise<void> {
    await this.#select('SELECT pg_advisory_xact_lock($1::bigint)', [auditChainLockKey], transaction);
  }

  /**
   * The chain's newest hash, the transaction's isolation level, and `ip` as PostgreSQL spells it
   * (lower case, no /32 or /128). A statement of its own, to run after the lock: under READ
   * COMMITTED its snapshot then includes the row the previous lock holder committed.
   */
  async head(
    ip: string | null,
    transaction: Transaction,
  ): Promise<{ isolation: string; prev_hash: string | null; ip: string | null }> {
    const [head] = await this.#select<{ isolation: string; prev_hash: string | null; ip: string | null }>(
      `SELECT current_setting('transaction_isolation') AS isolation,
              (SELECT hash FROM app.audit_log ORDER BY id DESC LIMIT 1) AS prev_hash,
              $1::inet AS ip`,
      [ip],
      transaction,
    );
    if (!head) throw new Error('reading the audit chain head returned no row');
    return head;
  }

  async insert(
    content: HashedContent,
    hashes: { prevHash: string | null; hash: string },
    transaction: Transaction,
  ): Promise<AuditRow> {
    const [row] = await this.#select<AuditRow>(
      `INSERT INTO app.audit_log
         (occurred_at, actor, action, resource_type, resource_id, diff, ip, request_id, prev_hash, hash)
       VALUES ($1::timestamptz, $2, $3, $4, $5, $6::jsonb, $7::inet, $8, $9, $10)
       RETURNING ${columns}`,
      [
        content.occurred_at,
        content.actor,
        content.action,
        content.resource_type,
        content.resource_id,
        content.diff === null ? null : JSON.stringify(content.diff),
        content.ip,
        content.request_id,
        hashes.prevHash,
        hashes.hash,
      ],
      transaction,
    );
    if (!row) throw new Error('inserting an audit entry returned no row');
    return row;
  }

  /** Up to `limit` rows after `afterId`, in id order (keyset pages). */
  after(afterId: string, limit: number): Promise<AuditRow[]> {
    return this.#select<AuditRow>(
      `SELECT ${columns} FROM app.audit_log WHERE id > $1::bigint ORDER BY id LIMIT $2`,
      [afterId, limit],
    );
  }

  /** The matching rows, newest first, and how many match in all. */
  async list(
    filter: AuditFilters,
    slice: { limit: number; offset: number },
  ): Promise<{ count: number; rows: AuditRow[] }> {
    const conditions: string[] = [];
    const bind: unknown[] = [];
    const where = (sql: string, value: unknown): void => {
      bind.push(value);
      conditions.push(sql.replace('?', `$${bind.length}`));
    };
    if (filter.actor !== undefined) where('actor = ?', filter.actor);
    if (filter.action !== undefined) where('action = ?', filter.action);
    if (filter.resourceType !== undefined) where('resource_type = ?', filter.resourceType);
    if (filter.resourceId !== undefined) where('resource_id = ?', filter.resourceId);
    if (filter.since !== undefined) where('occurred_at >= ?::timestamptz', filter.since.toISOString());
    if (filter.until !== undefined) where('occurred_at < ?::timestamptz', filter.until.toISOString());
    const whereSql = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
    const [counted] = await this.#select<{ count: number }>(
      `SELECT count(*)::int AS count FROM app.audit_log ${whereSql}`,
      bind,
    );
    const rows = await this.#select<AuditRow>(
      `SELECT ${columns} FROM app.audit_log ${whereSql}
        ORDER BY id DESC LIMIT $${bind.length + 1} OFFSET $${bind.length + 2}`,
      [...bind, slice.limit, slice.offset],
    );
    return { count: counted?.count ?? 0, rows };
  }

  #select<T extends object>(sql: string, bind: unknown[], transaction?: Transaction): Promise<T[]> {
    return this.#sequelize.query<T>(sql, {
      bind,
      type: QueryTypes.SELECT,
      ...(transaction ? { transaction } : {}),
    });
  }
}
