// What each incoming event does to the tenant database. Handlers run inside
// the transaction that marks the event completed, and are idempotent: records
// are keyed by the provider's ids, so a redelivered event upserts the same row.
//
// Users: matched by external_id. A payload only ever reaches the mapped fields
// below; role, password, ids and the tenant are never taken from it. Owners
// are not deleted or deactivated by a provider, and only members' e-mail
// addresses follow the provider (an address change on an admin or owner could
// hand the account to whoever reads the new mailbox).
import type pg from 'pg';
import type { Plan } from '../../../lib/tenant/index.js';
import { PermanentError } from './provider-api.js';

export interface SyncContext {
  client: pg.PoolClient;
  eventType: string;
  eventId: string;
  /** The event as the provider sent it. */
  event: Record<string, unknown>;
  /** GET from the provider's API: the answer's data, or undefined for 404. */
  fetch(path: string): Promise<unknown>;
}

type Handler = (ctx: SyncContext) => Promise<void>;

// ---- reading a payload: wrong types are permanent errors naming the field

type Data = Record<string, unknown>;

function dataOf(ctx: SyncContext): Data {
  const data = ctx.event.data;
  if (data === null || typeof data !== 'object' || Array.isArray(data))
    throw new PermanentError('data must be an object');
  return data as Data;
}

function text(data: Data, field: string, max = 254): string | null {
  const value = data[field];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value.length > max)
    throw new PermanentError(`data.${field} must be a string of at most ${max} characters`);
  return value;
}

function required(data: Data, field: string): string {
  const value = text(data, field, 200);
  if (!value) throw new PermanentError(`data.${field} is required`);
  return value;
}

function amount(data: Data, field: string): number | null {
  const value = data[field];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isFinite(value) || Math.abs(value) >= 1e12)
    throw new PermanentError(`data.${field} must be a number`);
  return value;
}

function time(data: Data, field: string): Date | null {
  const value = text(data, field, 64);
  if (value === null) return null;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new PermanentError(`data.${field} must be a date`);
  return date;
}

function eventTime(ctx: SyncContext): Date {
  const value = ctx.event.timestamp;
  const date = typeof value === 'string' ? new Date(value) : new Date();
  return Number.isNaN(date.getTime()) ? new Date() : date;
}

// ---- users

interface UserRow {
  id: string;
  role: string;
  email: string;
  external_id: string | null;
}

/** Provider field → users column, for the fields a provider may set. */
const userFields: Record<string, string> = {
  first_name: 'first_name',
  last_name: 'last_name',
  department: 'department',
  title: 'title',
  manager_id: 'manager_external_id',
};

const inactiveStatuses = new Set(['inactive', 'deactivated', 'suspended', 'disabled']);

async function findUser(ctx: SyncContext, externalId: string): Promise<UserRow | undefined> {
  const { rows } = await ctx.client.query<UserRow>(
    'SELECT id, role, email, external_id FROM app.users WHERE external_id = $1 FOR UPDATE',
    [externalId],
  );
  return rows[0];
}

/** The mapped columns from provider fields; anything else in `source` is ignored. */
function mappedColumns(source: Data): Record<string, string | boolean | null> {
  const columns: Record<string, string | boolean | null> = {};
  for (const [field, column] of Object.entries(userFields)) {
    if (field in source) columns[column] = text(source, field, 150);
  }
  if ('status' in source) {
    const status = text(source, 'status', 50);
    if (status !== null) columns.is_active = !inactiveStatuses.has(status.toLowerCase());
  }
  return columns;
}

async function updateUser(
  ctx: SyncContext,
  user: UserRow,
  columns: Record<string, string | boolean | null>,
  email: string | null,
) {
  const set = { ...columns };
  if (email !== null && email.toLowerCase() !== user.email.toLowerCase()) {
    if (user.role !== 'member')
      throw new PermanentError(`the e-mail address of an ${user.role} is not changed by a provider`);
    set.email = email.toLowerCase();
    // The new address is not proven (api/src/tenancy/models.ts, email_verified_at).
    set.email_verified_at = null;
  }
  if (set.is_active === false && user.role === 'owner')
    throw new PermanentError('owners are not deactivated by a provider');
  const names = Object.keys(set);
  if (names.length === 0) return;
  // Column names come from the fixed maps above, never from the payload.
  const assignments = names.map((name, i) => `${name} = $${i + 2}`).join(', ');
  await ctx.client.query(`UPDATE app.users SET ${assignments}, updated_at = now() WHERE id = $1`, [
    user.id,
    ...names.map((n) => set[n]),
  ]);
}

/** Creates the user, or links a member with that address that no provider manages yet. */
async function createUser(ctx: SyncContext, externalId: string, source: Data): Promise<void> {
  const email = text(source, 'email');
  if (!email || !/^[^@\s]+@[^@\s]+$/.test(email)) throw new PermanentError('data.email is required');
  const { rows } = await ctx.client.query<UserRow>(
    'SELECT id, role, email, external_id FROM app.users WHERE lower(email) = lower($1) FOR UPDATE',
    [email],
  );
  const existing = rows[0];
  const columns = mappedColumns(source);
  if (existing) {
    if (existing.external_id !== null || existing.role !== 'member')
      throw new PermanentError('this e-mail address belongs to an account the provider does not manage');
    await ctx.client.query('UPDATE app.users SET external_id = $2 WHERE id = $1', [existing.id, externalId]);
    await updateUser(ctx, existing, columns, null);
    return;
  }
  await ctx.client.query(
    `INSERT INTO app.users
       (email, role, password_hash, external_id, first_name, last_name, department, title,
        manager_external_id, is_active)
     VALUES (lower($1), 'member', NULL, $2, $3, $4, $5, $6, $7, $8)`,
    [
      email,
      externalId,
      columns.first_name ?? null,
      columns.last_name ?? null,
      columns.department ?? null,
      columns.title ?? null,
      columns.manager_external_id ?? null,
      columns.is_active ?? true,
    ],
  );
}

/** The user by external id, created from the provider's API when it is not here yet. */
async function findOrFetchUser(ctx: SyncContext, externalId: string): Promise<UserRow | undefined> {
  const found = await findUser(ctx, externalId);
  if (found) return found;
  const remote = await ctx.fetch(`/users/${encodeURIComponent(externalId)}`);
  if (remote === undefined) return undefined;
  if (remote === null || typeof remote !== 'object')
    throw new PermanentError('the provider API answered no user');
  await createUser(ctx, externalId, remote as Data);
  return findUser(ctx, externalId);
}

const userHandlers: Record<string, Handler> = {
  'user.created': async (ctx) => {
    const data = dataOf(ctx);
    const externalId = required(data, 'user_id');
    const existing = await findUser(ctx, externalId);
    if (existing) {
      await updateUser(ctx, existing, mappedColumns(data), text(data, 'email'));
      return;
    }
    let source = data;
    if (!text(data, 'email')) {
      const remote = await ctx.fetch(`/users/${encodeURIComponent(externalId)}`);
      if (remote === undefined) throw new PermanentError(`user ${externalId} is unknown to the provider`);
      source = { ...(remote as Data), ...data };
    }
    await createUser(ctx, externalId, source);
  },
  'user.updated': async (ctx) => {
    const data = dataOf(ctx);
    const externalId = required(data, 'user_id');
    const changes = data.changes ?? {};
    if (changes === null || typeof changes !== 'object' || Array.isArray(changes))
      throw new PermanentError('data.changes must be an object');
    const user = await findOrFetchUser(ctx, externalId);
    if (!user) throw new PermanentError(`user ${externalId} is unknown here and to the provider`);
    await updateUser(ctx, user, mappedColumns(changes as Data), text(changes as Data, 'email'));
  },
  'user.deleted': async (ctx) => {
    const externalId = required(dataOf(ctx), 'user_id');
    const user = await findUser(ctx, externalId);
    if (!user) return;
    if (user.role === 'owner') throw new PermanentError('owners are not deleted by a provider');
    await ctx.client.query('DELETE FROM app.users WHERE id = $1', [user.id]);
  },
  'user.activated': async (ctx) => {
    const externalId = required(dataOf(ctx), 'user_id');
    const user = await findOrFetchUser(ctx, externalId);
    if (!user) throw new PermanentError(`user ${externalId} is unknown here and to the provider`);
    await updateUser(ctx, user, { is_active: true }, null);
  },
  'user.deactivated': async (ctx) => {
    const externalId = required(dataOf(ctx), 'user_id');
    const user = await findUser(ctx, externalId);
    if (!user) return;
    await updateUser(ctx, user, { is_active: false }, null);
  },
};

// ---- payments

/** Provider plan names → the platform's plans; unmapped names are kept but change nothing. */
export const planMapping: Readonly<Record<string, Plan>> = {
  free: 'free',
  starter: 'starter',
  basic: 'starter',
  professional: 'professional',
  pro: 'professional',
  premium: 'premium',
  enterprise: 'enterprise',
};

async function upsertSubscription(ctx: SyncContext, data: Data, status: string | null): Promise<void> {
  const plan = text(data, 'plan', 100);
  const platformPlan = plan ? (planMapping[plan.toLowerCase()] ?? null) : null;
  const { rows } = await ctx.client.query<{
    external_id: string;
    status: string;
    platform_plan: string | null;
  }>(
    `INSERT INTO app.subscriptions AS s
       (external_id, customer_id, plan, platform_plan, status, billing_cycle, amount, currency, trial_end,
        current_period_start, current_period_end, canceled_at, last_event_id)
     VALUES ($1, $2, $3, $4, coalesce($5, 'active'), $6, $7, $8, $9, $10, $11, $12, $13)
     ON CONFLICT (external_id) DO UPDATE SET
       customer_id = coalesce(EXCLUDED.customer_id, s.customer_id),
       plan = coalesce(EXCLUDED.plan, s.plan),
       platform_plan = coalesce(EXCLUDED.platform_plan, s.platform_plan),
       status = coalesce($5, s.status),
       billing_cycle = coalesce(EXCLUDED.billing_cycle, s.billing_cycle),
       amount = coalesce(EXCLUDED.amount, s.amount),
       currency = coalesce(EXCLUDED.currency, s.currency),
       trial_end = coalesce(EXCLUDED.trial_end, s.trial_end),
       current_period_start = coalesce(EXCLUDED.current_period_start, s.current_period_start),
       current_period_end = coalesce(EXCLUDED.current_period_end, s.current_period_end),
       canceled_at = coalesce(EXCLUDED.canceled_at, s.canceled_at),
       last_event_id = EXCLUDED.last_event_id,
       updated_at = now()
     RETURNING external_id, status, platform_plan`,
    [
      required(data, 'subscription_id'),
      text(data, 'customer_id', 200),
      plan,
      platformPlan,
      status,
      text(data, 'billing_cycle', 50),
      amount(data, 'amount'),
      text(data, 'currency', 10),
      time(data, 'trial_end'),
      time(data, 'current_period_start'),
      time(data, 'current_period_end'),
      status === 'canceled' ? (time(data, 'canceled_at') ?? eventTime(ctx)) : null,
      ctx.eventId,
    ],
  );
  const row = rows[0]!;
  // A domain event for the tenant's own outgoing webhooks (and anything that
  // follows the tenant's plan); the Tenant resource itself is not changed.
  await ctx.client.query('INSERT INTO app.outbox (topic, payload) VALUES ($1, $2)', [
    'subscription.changed',
    { subscription_id: row.external_id, status: row.status, platform_plan: row.platform_plan },
  ]);
}

/** The subscription a payment names, fetched from the provider when it is not here yet. */
async function ensureSubscription(ctx: SyncContext, subscriptionId: string | null): Promise<boolean> {
  if (!subscriptionId) return false;
  const { rowCount } = await ctx.client.query('SELECT 1 FROM app.subscriptions WHERE external_id = $1', [
    subscriptionId,
  ]);
  if (rowCount) return true;
  const remote = await ctx.fetch(`/subscriptions/${encodeURIComponent(subscriptionId)}`);
  if (remote === undefined || remote === null || typeof remote !== 'object') return false;
  await upsertSubscription(
    ctx,
    { ...(remote as Data), subscription_id: subscriptionId },
    text(remote as Data, 'status', 50),
  );
  return true;
}

async function recordPayment(ctx: SyncContext, status: 'succeeded' | 'failed'): Promise<void> {
  const data = dataOf(ctx);
  const subscriptionId = text(data, 'subscription_id', 200);
  const attempt = data.attempt_number;
  await ctx.client.query(
    `INSERT INTO app.payments AS p
       (external_id, subscription_external_id, status, amount, currency, failure_reason, failure_code,
        retry_at, attempt_number, occurred_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (external_id) DO UPDATE SET
       status = EXCLUDED.status, amount = EXCLUDED.amount, currency = EXCLUDED.currency,
       failure_reason = EXCLUDED.failure_reason, failure_code = EXCLUDED.failure_code,
       retry_at = EXCLUDED.retry_at, attempt_number = EXCLUDED.attempt_number,
       occurred_at = EXCLUDED.occurred_at, updated_at = now()`,
    [
      required(data, 'payment_id'),
      subscriptionId,
      status,
      amount(data, 'amount'),
      text(data, 'currency', 10),
      text(data, 'failure_reason', 200),
      text(data, 'failure_code', 100),
      time(data, 'retry_at'),
      typeof attempt === 'number' && Number.isInteger(attempt) ? attempt : null,
      eventTime(ctx),
    ],
  );
  if (await ensureSubscription(ctx, subscriptionId)) {
    // A failed payment puts the subscription past due; a later success makes it active again.
    await ctx.client.query(
      `UPDATE app.subscriptions SET status = $2, updated_at = now()
        WHERE external_id = $1 AND status IN ('active', 'past_due', 'trialing')`,
      [subscriptionId, status === 'failed' ? 'past_due' : 'active'],
    );
  }
}

const paymentHandlers: Record<string, Handler> = {
  'subscription.created': (ctx) => upsertSubscription(ctx, dataOf(ctx), text(dataOf(ctx), 'status', 50)),
  'subscription.updated': (ctx) => upsertSubscription(ctx, dataOf(ctx), text(dataOf(ctx), 'status', 50)),
  'subscription.canceled': (ctx) => upsertSubscription(ctx, dataOf(ctx), 'canceled'),
  'payment.succeeded': (ctx) => recordPayment(ctx, 'succeeded'),
  'payment.failed': (ctx) => recordPayment(ctx, 'failed'),
  'invoice.created': async (ctx) => {
    const data = dataOf(ctx);
    await ctx.client.query(
      `INSERT INTO app.invoices AS i
         (external_id, subscription_external_id, customer_id, status, amount, currency, due_date, issued_at)
       VALUES ($1, $2, $3, coalesce($4, 'open'), $5, $6, $7, $8)
       ON CONFLICT (external_id) DO UPDATE SET
         subscription_external_id = EXCLUDED.subscription_external_id, customer_id = EXCLUDED.customer_id,
         status = EXCLUDED.status, amount = EXCLUDED.amount, currency = EXCLUDED.currency,
         due_date = EXCLUDED.due_date, issued_at = EXCLUDED.issued_at, updated_at = now()`,
      [
        required(data, 'invoice_id'),
        text(data, 'subscription_id', 200),
        text(data, 'customer_id', 200),
        text(data, 'status', 50),
        amount(data, 'amount') ?? amount(data, 'amount_due'),
        text(data, 'currency', 10),
        time(data, 'due_date'),
        eventTime(ctx),
      ],
    );
  },
};

// ---- messages

async function recordMessage(ctx: SyncContext): Promise<void> {
  const data = dataOf(ctx);
  const status = ctx.eventType.slice('message.'.length);
  const detail: Data = {};
  for (const [key, value] of Object.entries(data)) {
    if (!['message_id', 'recipient', 'template', 'status'].includes(key)) detail[key] = value;
  }
  // Events can arrive out of order: an older event never overwrites a newer status.
  await ctx.client.query(
    `INSERT INTO app.message_deliveries AS m (message_id, recipient, template, status, detail, last_event_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (message_id) DO UPDATE SET
       recipient = coalesce(EXCLUDED.recipient, m.recipient),
       template = coalesce(EXCLUDED.template, m.template),
       status = EXCLUDED.status,
       detail = m.detail || EXCLUDED.detail,
       last_event_at = EXCLUDED.last_event_at,
       updated_at = now()
     WHERE m.last_event_at IS NULL OR EXCLUDED.last_event_at >= m.last_event_at`,
    [
      required(data, 'message_id'),
      text(data, 'recipient'),
      text(data, 'template', 200),
      status,
      detail,
      eventTime(ctx),
    ],
  );
}

export const syncHandlers: Readonly<Record<string, Handler>> = {
  ...userHandlers,
  ...paymentHandlers,
  'message.sent': recordMessage,
  'message.delivered': recordMessage,
  'message.bounced': recordMessage,
  'message.opened': recordMessage,
  'message.clicked': recordMessage,
  'message.failed': recordMessage,
};
