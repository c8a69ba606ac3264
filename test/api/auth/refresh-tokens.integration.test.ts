// Refresh token rotation against a real tenant database: provisioned by the
// operator's SQL layer, migrated by migrateTenantSchema, and used through the
// tenant's login role, so the app role's privileges are what the store gets.
import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import { Sequelize } from 'sequelize';
import {
  RefreshTokenError,
  RefreshTokenExpiredError,
  RefreshTokenReuseError,
  RefreshTokenStore,
  type IssuedRefreshToken,
} from '../../../api/src/auth/refresh-tokens.js';
import {
  latestSchemaVersion,
  migrateTenantSchema,
  tenantUidMigrationVersion,
} from '../../../lib/tenant-schema/migrate.js';
import { migrations } from '../../../lib/tenant-schema/migrations.js';
import { tenantNames } from '../../../lib/tenant/index.js';
import { appRoleName, TenantDatabaseAdmin } from '../../../operator/src/sql/tenant-database.js';
import { serviceUrls, uniqueSuffix } from '../../harness/services.js';

const day = 24 * 60 * 60 * 1000;
const tenant = tenantNames(`rt-${uniqueSuffix()}`);
const racerApplication = `tenantry-test-racer-${uniqueSuffix()}`;
// The uid of the Tenant the test database serves.
const tenantUid = '5d3f0c1e-7a2b-4c59-8e16-0f9b2d4a6c71';

function tenantUrl(): string {
  const url = new URL(serviceUrls.postgres);
  url.username = encodeURIComponent(tenant.loginRoles[0]);
  url.password = '';
  url.pathname = `/${encodeURIComponent(tenant.database)}`;
  return url.toString();
}

async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => expect.fail('expected a rejection'),
    (error: unknown) => {
      expect(error).to.be.instanceOf(Error);
      return error as Error;
    },
  );
}

interface StoredRow {
  id: string;
  user_id: string;
  family_id: string;
  token_hash: Buffer;
  parent_id: string | null;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
  revoked_at: Date | null;
  revoked_reason: string | null;
  client: string | null;
  ip: string | null;
}

describe('refresh tokens (tenant database)', function () {
  this.timeout(60_000);

  let admin: TenantDatabaseAdmin;
  let pool: pg.Pool;
  // The store runs on Sequelize, as in the API; `pool` only sets up and inspects rows.
  let sequelize: Sequelize;
  let store: RefreshTokenStore;
  let now: Date;
  const extraClients: pg.Client[] = [];
  const extraSequelizes: Sequelize[] = [];

  before(async () => {
    admin = new TenantDatabaseAdmin(serviceUrls.postgres);
    await admin.ensureDatabase(tenant);
    const migrated = await admin.withTenantDatabase(tenant.database, (c) =>
      migrateTenantSchema(c, { ownerRole: tenant.ownerRole, appRole: appRoleName(tenant) }),
    );
    expect(migrated.to).to.equal(latestSchemaVersion);
    expect(migrated.applied).to.include(2);
    // Trust auth: the password only gives the role LOGIN.
    await admin.setLoginPassword(tenant.loginRoles[0], randomBytes(16).toString('hex'));
    pool = new pg.Pool({ connectionString: tenantUrl(), max: 4 });
    sequelize = tenantSequelize('tenantry-test', 4);
  });

  beforeEach(() => {
    now = new Date();
    store = new RefreshTokenStore(sequelize, { ttlMs: 30 * day, tenantUid, now: () => now });
  });

  afterEach(async () => {
    await Promise.all(extraClients.splice(0).map((c) => c.end().catch(() => undefined)));
    await Promise.all(extraSequelizes.splice(0).map((s) => s.close().catch(() => undefined)));
  });

  after(async () => {
    await pool?.end();
    await sequelize?.close();
    if (admin) {
      await admin.dropTenant(tenant);
      await admin.close();
    }
  });

  async function createUser(options: { active?: boolean } = {}): Promise<string> {
    const { rows } = await pool.query<{ id: string }>(
      'INSERT INTO users (email, is_active) VALUES ($1, $2) RETURNING id',
      [`user-${uniqueSuffix()}@example.com`, options.active ?? true],
    );
    const id = rows[0]?.id;
    if (!id) throw new Error('no user id');
    return id;
  }

  async function rowOf(token: string): Promise<StoredRow | undefined> {
    const hash = createHash('sha256').update(token).digest();
    const { rows } = await pool.query<StoredRow>('SELECT * FROM refresh_tokens WHERE token_hash = $1', [
      hash,
    ]);
    return rows[0];
  }

  async function familyRows(familyId: string): Promise<StoredRow[]> {
    const { rows } = await pool.query<StoredRow>(
      'SELECT * FROM refresh_tokens WHERE family_id = $1 ORDER BY created_at, id',
      [familyId],
    );
    return rows;
  }

  function tenantSequelize(applicationName: string, max: number): Sequelize {
    return new Sequelize(tenantUrl(), {
      dialect: 'postgres',
      logging: false,
      pool: { max, min: 0 },
      dialectOptions: { application_name: applicationName },
    });
  }

  /** A store on a connection of its own, as another API replica would have. */
  function ownStore(applicationName: string, options: { now?: () => Date } = {}): RefreshTokenStore {
    const own = tenantSequelize(applicationName, 1);
    extraSequelizes.push(own);
    return new RefreshTokenStore(own, { tenantUid, ...options });
  }

  async function connect(applicationName: string): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: tenantUrl(), application_name: applicationName });
    client.on('error', () => undefined);
    await client.connect();
    extraClients.push(client);
    return client;
  }

  it('migration 2 creates the table with its indexes, for the app role to use', async () => {
    const { rows } = await pool.query<{ indexdef: string }>(
      `SELECT indexdef FROM pg_indexes WHERE schemaname = 'app' AND tablename = 'refresh_tokens' ORDER BY indexname`,
    );
    const definitions = rows.map((r) => r.indexdef).join('\n');
    expect(definitions).to.match(/USING btree \(family_id\)/);
    expect(definitions).to.match(/USING btree \(user_id\)/);
    expect(definitions).to.match(/UNIQUE INDEX .* USING btree \(token_hash\)/);
    const privileges = await pool.query<{ dml: boolean; truncate: boolean }>(
      `SELECT has_table_privilege('app.refresh_tokens', 'SELECT, INSERT, UPDATE, DELETE') AS dml,
              has_table_privilege('app.refresh_tokens', 'TRUNCATE') AS truncate`,
    );
    expect(privileges.rows[0]).to.deep.equal({ dml: true, truncate: false });
  });

  it('issues an opaque token and stores only its SHA-256', async () => {
    const userId = await createUser();
    const issued = await store.issue(userId, { client: 'cli/1.0', ip: '203.0.113.7' });
    expect(issued.token).to.match(/^rt_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(issued.token.slice(3), 'base64url')).to.have.length(32);
    expect(issued.userId).to.equal(userId);
    expect(issued.expiresAt.getTime()).to.equal(now.getTime() + 30 * day);
    const row = await rowOf(issued.token);
    expect(row).to.include({
      id: issued.id,
      user_id: userId,
      family_id: issued.familyId,
      parent_id: null,
      used_at: null,
      revoked_at: null,
      client: 'cli/1.0',
      ip: '203.0.113.7',
    });
    expect(row?.expires_at.getTime()).to.equal(issued.expiresAt.getTime());
    const { rows } = await pool.query<{ text: string }>(
      'SELECT row_to_json(t)::text AS text FROM refresh_tokens t WHERE id = $1',
      [issued.id],
    );
    expect(rows[0]?.text).to.not.include(issued.token.slice(3));
    expect((await store.issue(userId)).familyId).to.not.equal(issued.familyId);
  });

  it('rotates along a chain in one family, each token usable once', async () => {
    const userId = await createUser();
    const first = await store.issue(userId);
    now = new Date(now.getTime() + 1000);
    const second = await store.rotate(first.token, { client: 'web' });
    now = new Date(now.getTime() + 1000);
    const third = await store.rotate(second.token);
    expect(new Set([first.token, second.token, third.token]).size).to.equal(3);
    expect([second.familyId, third.familyId]).to.deep.equal([first.familyId, first.familyId]);
    expect(third.userId).to.equal(userId);
    expect(third.expiresAt.getTime()).to.equal(now.getTime() + 30 * day);

    const rows = await familyRows(first.familyId);
    expect(rows.map((r) => r.id)).to.deep.equal([first.id, second.id, third.id]);
    expect(rows.map((r) => r.parent_id)).to.deep.equal([null, first.id, second.id]);
    expect(rows.map((r) => r.used_at !== null)).to.deep.equal([true, true, false]);
    expect(rows.map((r) => r.revoked_at)).to.deep.equal([null, null, null]);
    expect(rows[1]?.client).to.equal('web');
  });

  it('revokes the whole family when a used token comes back', async () => {
    const userId = await createUser();
    const other = await store.issue(userId);
    const first = await store.issue(userId);
    const second = await store.rotate(first.token);
    const third = await store.rotate(second.token);

    const error = await rejectionOf(store.rotate(first.token));
    expect(error).to.be.instanceOf(RefreshTokenReuseError);
    expect(error).to.include({ reason: 'reused', familyId: first.familyId, userId });
    expect(error.message).to.not.include(first.token);

    const rows = await familyRows(first.familyId);
    expect(rows).to.have.length(3);
    for (const row of rows) {
      expect(row.revoked_reason).to.equal('reuse');
      expect(row.revoked_at?.getTime()).to.equal(now.getTime());
    }
    // The thief's and the owner's newest token are both dead now.
    expect(await rejectionOf(store.rotate(third.token))).to.be.instanceOf(RefreshTokenReuseError);
    // Another session of the same user is untouched.
    expect((await store.rotate(other.token)).familyId).to.equal(other.familyId);
  });

  it('lets only one of two simultaneous rotations of a token succeed', async () => {
    const userId = await createUser();
    const issued = await store.issue(userId);
    const racers = [
      ownStore(racerApplication, { now: () => now }),
      ownStore(racerApplication, { now: () => now }),
    ];
    // Hold the row so both rotations are inside their transactions, waiting, before either goes on.
    const blocker = await connect('tenantry-test-blocker');
    await blocker.query('BEGIN');
    await blocker.query('SELECT 1 FROM refresh_tokens WHERE id = $1 FOR UPDATE', [issued.id]);
    const results = Promise.allSettled(racers.map((racer) => racer.rotate(issued.token)));
    await waitForLockWaiters(racerApplication, 2);
    await blocker.query('COMMIT');

    const settled = await results;
    const fulfilled = settled.filter((r) => r.status === 'fulfilled');
    const rejected = settled.filter((r) => r.status === 'rejected');
    expect(fulfilled).to.have.length(1);
    expect(rejected).to.have.length(1);
    expect(rejected[0]?.reason).to.be.instanceOf(RefreshTokenReuseError);
    // The loser's reuse revoked the winner's new token too.
    const winner = (fulfilled[0] as PromiseFulfilledResult<IssuedRefreshToken>).value;
    const rows = await familyRows(issued.familyId);
    expect(rows.map((r) => r.id)).to.have.members([issued.id, winner.id]);
    expect(rows.map((r) => r.revoked_reason)).to.deep.equal(['reuse', 'reuse']);
  });

  it('lets exactly one of many concurrent rotations through', async () => {
    const userId = await createUser();
    const issued = await store.issue(userId);
    const racers = Array.from({ length: 6 }, () => ownStore('tenantry-test-many'));
    const settled = await Promise.allSettled(racers.map((racer) => racer.rotate(issued.token)));
    expect(settled.filter((r) => r.status === 'fulfilled')).to.have.length(1);
    for (const result of settled.filter((r) => r.status === 'rejected')) {
      expect(result.reason).to.be.instanceOf(RefreshTokenReuseError);
    }
    const rows = await familyRows(issued.familyId);
    expect(rows).to.have.length(2);
  });

  it('refuses an expired token without touching its family', async () => {
    const userId = await createUser();
    const fresh = await store.issue(userId);
    const issued = await store.issue(userId);
    now = new Date(now.getTime() + 30 * day - 1);
    const justInTime = await store.rotate(fresh.token);
    expect(justInTime.familyId).to.equal(fresh.familyId);

    now = new Date(issued.expiresAt.getTime());
    const error = await rejectionOf(store.rotate(issued.token));
    expect(error).to.be.instanceOf(RefreshTokenExpiredError);
    expect(error).to.include({ reason: 'expired' });
    expect(await rowOf(issued.token)).to.include({ used_at: null, revoked_at: null });
  });

  it('revokes every session of a user and no one else', async () => {
    const userId = await createUser();
    const bystander = await createUser();
    const laptop = await store.issue(userId);
    const phone = await store.rotate((await store.issue(userId)).token);
    const theirs = await store.issue(bystander);

    // Every row not yet revoked: the laptop's, the phone's newest and the one it replaced.
    expect(await store.revokeAllForUser(userId, 'password_change')).to.equal(3);
    for (const token of [laptop.token, phone.token]) {
      expect(await rejectionOf(store.rotate(token))).to.be.instanceOf(RefreshTokenReuseError);
      // Presenting a revoked token does not rewrite the reason it was revoked for.
      expect((await rowOf(token))?.revoked_reason).to.equal('password_change');
    }
    expect((await store.rotate(theirs.token)).userId).to.equal(bystander);
    expect(await store.revokeAllForUser(userId)).to.equal(0);
  });

  it('revokes one family, or the family of one token at logout', async () => {
    const userId = await createUser();
    const a = await store.issue(userId);
    const b = await store.issue(userId);
    const c = await store.issue(userId);
    expect(await store.revokeFamily(a.familyId)).to.equal(1);
    expect((await rowOf(a.token))?.revoked_reason).to.equal('logout');
    expect(await store.revokeFamily('00000000-0000-4000-8000-000000000000')).to.equal(0);

    expect(await store.revokeToken(b.token)).to.be.true;
    expect((await rowOf(b.token))?.revoked_reason).to.equal('logout');
    expect(await store.revokeToken(`rt_${randomBytes(32).toString('base64url')}`)).to.be.false;
    expect(await store.revokeToken('not a token')).to.be.false;

    expect((await store.rotate(c.token)).familyId).to.equal(c.familyId);
  });

  it('rejects malformed and unknown tokens without echoing them', async () => {
    const malformed = await rejectionOf(store.rotate('rt_short'));
    expect(malformed).to.be.instanceOf(RefreshTokenError);
    expect(malformed).to.include({ reason: 'malformed' });
    const unknownToken = `rt_${randomBytes(32).toString('base64url')}`;
    const unknown = await rejectionOf(store.rotate(unknownToken));
    expect(unknown).to.include({ reason: 'unknown' });
    expect(unknown.message).to.not.include(unknownToken);
  });

  it('ends the sessions of a deactivated user, and of a deleted one', async () => {
    const userId = await createUser();
    const issued = await store.issue(userId);
    await pool.query('UPDATE users SET is_active = false WHERE id = $1', [userId]);
    const error = await rejectionOf(store.rotate(issued.token));
    expect(error).to.include({ reason: 'user_inactive' });
    expect((await rowOf(issued.token))?.revoked_reason).to.equal('user_inactive');

    const deleted = await createUser();
    const gone = await store.issue(deleted);
    await pool.query('DELETE FROM users WHERE id = $1', [deleted]);
    expect(await rowOf(gone.token)).to.be.undefined;
    expect(await rejectionOf(store.rotate(gone.token))).to.include({ reason: 'unknown' });
  });

  it('issues into an existing family only for its user and while it is live', async () => {
    const userId = await createUser();
    const family = await store.issue(userId);
    const again = await store.issue(userId, { familyId: family.familyId });
    expect(again.familyId).to.equal(family.familyId);

    const intruder = await createUser();
    expect(await rejectionOf(store.issue(intruder, { familyId: family.familyId }))).to.include({
      reason: 'family_of_other_user',
    });
    await store.revokeFamily(family.familyId);
    expect(await rejectionOf(store.issue(userId, { familyId: family.familyId }))).to.include({
      reason: 'family_revoked',
    });
  });

  it('records the Tenant uid, and a later Tenant of the same name refuses the token untouched', async () => {
    const userId = await createUser();
    const issued = await store.issue(userId);
    expect(
      (await pool.query('SELECT tenant_uid FROM refresh_tokens WHERE id = $1', [issued.id])).rows,
    ).to.deep.equal([{ tenant_uid: tenantUid }]);
    const later = new RefreshTokenStore(sequelize, { tenantUid: 'a-later-tenant-uid', now: () => now });
    expect(await rejectionOf(later.rotate(issued.token))).to.include({ reason: 'issued_to_earlier_tenant' });
    // Neither used nor revoked: refusing it changed nothing.
    expect(await rowOf(issued.token)).to.include({ used_at: null, revoked_at: null });
    // A token from before uids were recorded has none, and is refused the same way.
    const legacy = await store.issue(userId);
    await pool.query('UPDATE refresh_tokens SET tenant_uid = NULL WHERE id = $1', [legacy.id]);
    expect(await rejectionOf(store.rotate(legacy.token))).to.include({ reason: 'issued_to_earlier_tenant' });
    // Issuing or rotating without knowing the Tenant is a programming error.
    expect(await rejectionOf(new RefreshTokenStore(sequelize).issue(userId))).to.be.instanceOf(TypeError);
  });

  it('deletes tokens that expired before a cutoff', async () => {
    const userId = await createUser();
    const old = await store.issue(userId);
    now = new Date(now.getTime() + 10 * day);
    const recent = await store.issue(userId);
    expect(await store.deleteExpired(new Date(old.expiresAt.getTime() + 1))).to.be.at.least(1);
    expect(await rowOf(old.token)).to.be.undefined;
    expect(await rowOf(recent.token)).to.not.be.undefined;
  });
});

/** Waits until `count` sessions of `applicationName` are blocked on a lock. */
async function waitForLockWaiters(applicationName: string, count: number): Promise<void> {
  const observer = new pg.Client({ connectionString: serviceUrls.postgres });
  await observer.connect();
  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const { rows } = await observer.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
        [applicationName],
      );
      if ((rows[0]?.n ?? 0) >= count) return;
      if (Date.now() > deadline)
        throw new Error(`${count} sessions of ${applicationName} never waited on a lock`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    await observer.end();
  }
}

describe('tenant uid of rows from before the upgrade (migration 8)', function () {
  this.timeout(60_000);
  const own = tenantNames(`rt-own-${uniqueSuffix()}`);
  const restored = tenantNames(`rt-restored-${uniqueSuffix()}`);
  let admin: TenantDatabaseAdmin;

  const rolesOf = (names: typeof own) => ({ ownerRole: names.ownerRole, appRole: appRoleName(names) });

  /** A database at schema v6 with one user, refresh token and API client, as an older release left it. */
  async function legacyDatabase(names: typeof own): Promise<void> {
    await admin.ensureDatabase(names);
    await admin.withTenantDatabase(names.database, async (c) => {
      await migrateTenantSchema(c, rolesOf(names), {
        migrations: migrations.filter((m) => m.version < tenantUidMigrationVersion),
      });
      const user = await c.query<{ id: string }>(
        `INSERT INTO app.users (email) VALUES ('old@example.com') RETURNING id`,
      );
      await c.query(
        `INSERT INTO app.refresh_tokens (user_id, family_id, token_hash, expires_at)
         VALUES ($1, gen_random_uuid(), $2, now() + interval '1 day')`,
        [user.rows[0]!.id, randomBytes(32)],
      );
      await c.query(
        `INSERT INTO app.api_clients (client_id, secret_hash, name, role, created_by)
         VALUES ('x.cl_0123456789abcdef', $1, 'ci', 'member', 'someone')`,
        [randomBytes(32)],
      );
    });
  }

  const uidsOf = (names: typeof own) =>
    admin.withTenantDatabase(names.database, async (c) => {
      const { rows } = await c.query<{ uid: string | null }>(
        `SELECT tenant_uid AS uid FROM app.refresh_tokens UNION ALL SELECT tenant_uid FROM app.api_clients`,
      );
      return rows.map((r) => r.uid);
    });

  before(async () => {
    admin = new TenantDatabaseAdmin(serviceUrls.postgres);
    await legacyDatabase(own);
    await legacyDatabase(restored);
  });

  after(async () => {
    if (admin) {
      await admin.dropTenant(own).catch(() => undefined);
      await admin.dropTenant(restored).catch(() => undefined);
      await admin.close();
    }
  });

  it('gives them the uid of the Tenant that owned the database, and leaves a restored one without', async () => {
    await admin.withTenantDatabase(own.database, (c) =>
      migrateTenantSchema(c, rolesOf(own), { legacyOwnerUid: tenantUid }),
    );
    await admin.withTenantDatabase(restored.database, (c) => migrateTenantSchema(c, rolesOf(restored)));
    expect(await uidsOf(own)).to.deep.equal([tenantUid, tenantUid]);
    expect(await uidsOf(restored)).to.deep.equal([null, null]);
    // Only the migration itself stamps: a later run with a uid changes nothing.
    await admin.withTenantDatabase(restored.database, (c) =>
      migrateTenantSchema(c, rolesOf(restored), { legacyOwnerUid: 'another-uid' }),
    );
    expect(await uidsOf(restored)).to.deep.equal([null, null]);
  });
});
