// The audit log of one tenant database (its statements are in audit-store.ts).
// The app role may only SELECT and INSERT on app.audit_log (migration v1), and every row carries
// hash = sha256(prev_hash || canonical JSON of its content), so a row that an
// owner or superuser edits, or removes from the middle, breaks the chain and
// verify() names the first row that no longer fits.
//
// Diff format: `{ before?, after? }`, each a JSON object with secret-ish
// fields replaced by "[redacted]". A create has only `after`, a delete only
// `before`; an update keeps only the top-level fields whose value changed (a
// changed secret still appears, redacted on both sides, so "the password was
// changed" stays visible). Nested objects are kept whole, redacted inside.
import { createHash } from 'node:crypto';
import { Transaction, type Sequelize } from 'sequelize';
import { problems, type FieldError } from '../http/problem.js';
import { AuditStore, type AuditRow, type HashedContent } from './audit-store.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export interface AuditDiff {
  before?: JsonObject;
  after?: JsonObject;
}

/** Well-known actions; any other non-empty string is accepted too. */
export type AuditAction = 'create' | 'update' | 'delete' | 'login' | 'login_failed' | (string & {});

export interface AuditEntry {
  /** The user or API client id; null for the system or an anonymous caller (e.g. a failed login). */
  actor: string | null;
  action: AuditAction;
  resourceType: string;
  resourceId?: string | null;
  /** The resource before the change, unredacted: append() redacts it. */
  before?: object | null;
  /** The resource after the change, unredacted: append() redacts it. */
  after?: object | null;
  ip?: string | null;
  requestId?: string | null;
}

export interface AppendOptions {
  /**
   * The caller's transaction, so the audit row commits or rolls back with the
   * change it records. It must be READ COMMITTED (Sequelize's default), and the
   * chain lock is held until it ends: append as the transaction's last step.
   */
  transaction?: Transaction;
  /** Clock, for tests. */
  now?: () => Date;
}

export interface AuditRecord {
  /** bigserial, as a string so it never loses precision. */
  id: string;
  occurredAt: Date;
  actor: string | null;
  action: string;
  resourceType: string;
  resourceId: string | null;
  diff: AuditDiff | null;
  ip: string | null;
  requestId: string | null;
  prevHash: string | null;
  hash: string;
}

export interface AuditVerification {
  intact: boolean;
  /** Rows examined; when the chain is broken, up to and including the first bad one. */
  checked: number;
  /** The first row that does not fit: its content was changed, or its predecessor is not the row before it. */
  firstBadId?: string;
  /**
   * The newest row of an intact chain. The chain cannot show that rows were cut
   * off its end; recording this head elsewhere from time to time can.
   */
  head?: { id: string; hash: string };
}

export interface AuditFilters {
  actor?: string;
  action?: string;
  resourceType?: string;
  resourceId?: string;
  /** Inclusive. */
  since?: Date;
  /** Exclusive. */
  until?: Date;
}

export interface AuditPage {
  /** 1-based. */
  page: number;
  /** Capped at `maxAuditPageSize`. */
  pageSize: number;
}

export const maxAuditPageSize = 100;

export const redactedValue = '[redacted]';

const secretKeys = new Set([
  'password',
  'password_hash',
  'secret',
  'token',
  'client_secret',
  'refresh_token',
  'api_key',
  'private_key',
  'authorization',
  'cookie',
]);
// Also catches camelCase and prefixed names: clientSecret, accessToken, webhookSigningKey, privateKey.
const secretKeyPattern = /secret|password|token|key$/i;

/** Whether a field's value must never reach the audit log. */
export function isSecretKey(key: string): boolean {
  return secretKeys.has(key.toLowerCase()) || secretKeyPattern.test(key);
}

const maxDepth = 32;

/**
 * A JSON value that survives a round trip through jsonb unchanged, so the hash
 * computed now matches the one recomputed from the stored row. `redact`
 * replaces values of secret-ish keys at every depth; null stays null, since
 * "no password set" is worth recording and reveals nothing.
 */
function toJson(value: unknown, redact: boolean, seen: Set<object>, depth: number): JsonValue | undefined {
  if (value === null || value === undefined) return value === null ? null : undefined;
  switch (typeof value) {
    case 'string':
      return cleanString(value);
    case 'number':
      return Number.isFinite(value) ? value + 0 : null; // + 0 turns -0 into 0, as jsonb does
    case 'boolean':
      return value;
    case 'bigint':
      return value.toString();
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (ArrayBuffer.isView(value)) return `[binary ${value.byteLength} bytes]`;
  if (seen.has(value)) return '[circular]';
  if (depth >= maxDepth) return '[too deep]';
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      return value.map((item: unknown) => toJson(item, redact, seen, depth + 1) ?? null);
    }
    const withToJson = value as { toJSON?: () => unknown };
    if (typeof withToJson.toJSON === 'function') {
      // Sequelize instances and the like: their plain form.
      return toJson(withToJson.toJSON(), redact, seen, depth + 1);
    }
    const out: JsonObject = {};
    for (const [rawKey, item] of Object.entries(value)) {
      const key = cleanString(rawKey);
      const json = toJson(item, redact, seen, depth + 1);
      if (json === undefined) continue;
      out[key] = redact && json !== null && isSecretKey(rawKey) ? redactedValue : json;
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

// jsonb refuses \u0000 and unpaired surrogates; replacing them keeps an append from failing on odd input.
function cleanString(value: string): string {
  return value.replaceAll(
    /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
    '\uFFFD',
  );
}

function isAbsent(value: unknown): value is null | undefined {
  return value === null || value === undefined;
}

function toJsonObject(value: object, redact: boolean): JsonObject {
  const json = toJson(value, redact, new Set(), 0);
  if (json === null || json === undefined || typeof json !== 'object' || Array.isArray(json)) {
    throw new TypeError('an audited resource must be an object');
  }
  return json;
}

/**
 * The before/after diff to store, with secrets redacted (see the top of this
 * file for the format). An update with nothing changed gives two empty objects.
 */
export function redactDiff(before?: object | null, after?: object | null): AuditDiff {
  const diff: AuditDiff = {};
  if (isAbsent(before) || isAbsent(after)) {
    if (!isAbsent(before)) diff.before = toJsonObject(before, true);
    if (!isAbsent(after)) diff.after = toJsonObject(after, true);
    return diff;
  }
  // Compare unredacted values, so a changed secret counts as a change.
  const plainBefore = toJsonObject(before, false);
  const plainAfter = toJsonObject(after, false);
  const shownBefore = toJsonObject(before, true);
  const shownAfter = toJsonObject(after, true);
  diff.before = {};
  diff.after = {};
  for (const key of new Set([...Object.keys(plainBefore), ...Object.keys(plainAfter)])) {
    const old = plainBefore[key];
    const next = plainAfter[key];
    if (old !== undefined && next !== undefined && canonicalJson(old) === canonicalJson(next)) continue;
    if (old !== undefined) diff.before[key] = shownBefore[key] ?? null;
    if (next !== undefined) diff.after[key] = shownAfter[key] ?? null;
  }
  return diff;
}

/** JSON with object keys sorted at every depth and no whitespace: the same bytes for equal values. */
export function canonicalJson(value: JsonValue): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k] ?? null)}`).join(',')}}`;
}

/** sha256(prev_hash || canonical JSON of the content), hex. The first row has no prev_hash. */
export function chainHash(prevHash: string | null, content: HashedContent): string {
  return createHash('sha256')
    .update(prevHash ?? '')
    .update(canonicalJson(content as unknown as JsonObject))
    .digest('hex');
}

function contentOf(row: AuditRow): HashedContent {
  return {
    occurred_at: row.occurred_at.toISOString(),
    actor: row.actor,
    action: row.action,
    resource_type: row.resource_type,
    resource_id: row.resource_id,
    diff: row.diff,
    ip: row.ip,
    request_id: row.request_id,
  };
}

function recordOf(row: AuditRow): AuditRecord {
  return {
    id: row.id,
    occurredAt: row.occurred_at,
    actor: row.actor,
    action: row.action,
    resourceType: row.resource_type,
    resourceId: row.resource_id,
    diff: row.diff,
    ip: row.ip,
    requestId: row.request_id,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

async function append(
  sequelize: Sequelize,
  entry: AuditEntry,
  options: AppendOptions = {},
): Promise<AuditRecord> {
  if (typeof entry.action !== 'string' || entry.action === '') throw new TypeError('action is required');
  if (typeof entry.resourceType !== 'string' || entry.resourceType === '') {
    throw new TypeError('resourceType is required');
  }
  // redactDiff leaves no key undefined, so its result is a plain JSON object.
  const diff =
    isAbsent(entry.before) && isAbsent(entry.after)
      ? null
      : (redactDiff(entry.before, entry.after) as JsonObject);
  const now = options.now ?? (() => new Date());
  const store = new AuditStore(sequelize);

  const run = async (transaction: Transaction): Promise<AuditRecord> => {
    await store.lockChain(transaction);
    // After the lock, so the head is the row the previous lock holder committed.
    const head = await store.head(entry.ip ?? null, transaction);
    // A REPEATABLE READ or SERIALIZABLE snapshot may predate the lock, and would fork the chain.
    if (head.isolation !== 'read committed') {
      throw new Error(`audit entries need a READ COMMITTED transaction, not ${head.isolation.toUpperCase()}`);
    }
    const content: HashedContent = {
      occurred_at: now().toISOString(),
      actor: entry.actor,
      action: entry.action,
      resource_type: entry.resourceType,
      resource_id: entry.resourceId ?? null,
      diff,
      // As PostgreSQL spells it (lower case, no /32 or /128), which is what verify() reads back.
      ip: head.ip,
      request_id: entry.requestId ?? null,
    };
    const hash = chainHash(head.prev_hash, content);
    const row = await store.insert(content, { prevHash: head.prev_hash, hash }, transaction);
    return recordOf(row);
  };

  if (options.transaction) return run(options.transaction);
  return sequelize.transaction({ isolationLevel: Transaction.ISOLATION_LEVELS.READ_COMMITTED }, run);
}

async function verify(sequelize: Sequelize, options: { pageSize?: number } = {}): Promise<AuditVerification> {
  const pageSize = options.pageSize ?? 1000;
  let checked = 0;
  let previous: { id: string; hash: string } | undefined;
  const store = new AuditStore(sequelize);
  // Keyset pages in id order; rows appended meanwhile only extend the chain.
  for (;;) {
    const rows = await store.after(previous?.id ?? '0', pageSize);
    for (const row of rows) {
      checked += 1;
      const linked = row.prev_hash === (previous?.hash ?? null);
      if (!linked || row.hash !== chainHash(row.prev_hash, contentOf(row))) {
        return { intact: false, checked, firstBadId: row.id };
      }
      previous = { id: row.id, hash: row.hash };
    }
    if (rows.length < pageSize) break;
  }
  return { intact: true, checked, ...(previous ? { head: previous } : {}) };
}

async function list(
  sequelize: Sequelize,
  filters: AuditFilters,
  page: AuditPage,
): Promise<{ count: number; results: AuditRecord[] }> {
  const errors: FieldError[] = [];
  if (!Number.isSafeInteger(page.page) || page.page < 1) {
    errors.push({ field: 'page', message: 'must be a whole number from 1' });
  }
  if (!Number.isSafeInteger(page.pageSize) || page.pageSize < 1) {
    errors.push({ field: 'page_size', message: 'must be a whole number from 1' });
  }
  for (const field of ['since', 'until'] as const) {
    const value = filters[field];
    if (value !== undefined && (!(value instanceof Date) || Number.isNaN(value.getTime()))) {
      errors.push({ field, message: 'must be a valid date' });
    }
  }
  if (errors.length > 0) throw problems.validation(errors);

  const pageSize = Math.min(page.pageSize, maxAuditPageSize);
  const { count, rows } = await new AuditStore(sequelize).list(filters, {
    limit: pageSize,
    offset: (page.page - 1) * pageSize,
  });
  return { count, results: rows.map(recordOf) };
}

/** The audit log of the tenant database behind `sequelize` (connected as the tenant's app role). */
export const AuditLog = {
  /** Appends one entry to the chain, inside `options.transaction` when given. */
  append,
  /** Recomputes the chain in id order and reports the first row that does not fit. */
  verify,
  /** Entries matching every given filter, newest first. */
  list,
} as const;
