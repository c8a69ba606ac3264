// The operator's SQL for one tenant: its database, its roles and their
// privileges. Runs as an admin role with CREATEDB and CREATEROLE only, never as
// a superuser. Every method is idempotent and repairs drift it finds.
import pg from 'pg';
import { ServiceUnreachableError } from '../../../lib/services.js';
import { appendOnlyTables } from '../../../lib/tenant-schema/migrations.js';
import {
  quoteIdent,
  reapplyAppPrivileges,
  SchemaMigrationError,
} from '../../../lib/tenant-schema/migrate.js';
import {
  assertClaims,
  claimOf,
  markedUid,
  mayUse,
  NameConflictError,
  ownershipMarker,
  type Claim,
  type TenantOwner,
  legacyRoleNames,
  type TenantNames,
} from '../../../lib/tenant/index.js';
import { withTransaction } from '../../../lib/transaction.js';
import type { TenantDatabases } from '../controller/context.js';
import { scramSha256Verifier } from './connection-info.js';
import { closePublicConnect, type PublicConnectReport } from './server-privileges.js';

export { quoteIdent };

/** The NOLOGIN group role that holds the application's privileges; the login roles are its members. */
export function appRoleName(names: TenantNames): string {
  return names.appRole;
}

/** PostgreSQL cannot be reached or dropped the connection; the controller reports `DatabaseUnreachable`. */
export class DatabaseUnavailableError extends ServiceUnreachableError {
  constructor(url: string, cause: unknown) {
    super('PostgreSQL', url, cause);
    this.name = 'DatabaseUnavailableError';
  }
}

/** A statement PostgreSQL refused. The message never carries a password. */
export class TenantSqlError extends Error {
  /** The SQLSTATE, e.g. `42501` for a missing privilege. */
  readonly code: string | undefined;

  constructor(operation: string, error: unknown, options: { hideDetail?: boolean } = {}) {
    const code = sqlState(error);
    const detail =
      options.hideDetail || !(error instanceof Error) ? 'the server refused the statement' : error.message;
    super(`${operation} failed: ${detail}${code ? ` (SQLSTATE ${code})` : ''}`, {
      cause: options.hideDetail ? undefined : error,
    });
    this.name = 'TenantSqlError';
    this.code = code;
  }
}

export interface EnsureDatabaseResult {
  /** True when this call created the database. */
  created: boolean;
  /** What was fixed on a database that already existed, e.g. `revoked CONNECT from PUBLIC`. */
  repaired: string[];
}

export interface LoginState {
  exists: boolean;
  canLogin: boolean;
}

export interface DisableLoginResult {
  /** Login roles now NOLOGIN. */
  disabled: string[];
  terminatedSessions: number;
  /** Objects under the tenant's names that another owner holds; left untouched. Absent when none. */
  skipped?: string[];
}

export interface RetireLoginResult {
  existed: boolean;
  terminatedSessions: number;
}

export interface DropTenantResult {
  droppedDatabase: boolean;
  droppedRoles: string[];
  terminatedSessions: number;
  /** Objects under the tenant's names that another owner holds; left untouched. Absent when none. */
  skipped?: string[];
}

export type DriftCode =
  | 'DatabaseMissing'
  | 'DatabaseOwner'
  | 'PublicAccess'
  | 'AppConnectMissing'
  | 'RoleMissing'
  | 'RoleCanLogin'
  | 'MembershipMissing'
  | 'LoginDisabled';

export interface DriftProblem {
  code: DriftCode;
  message: string;
}

export interface TenantDatabaseAdminOptions {
  maxConnections?: number;
  connectionTimeoutMillis?: number;
}

interface RoleRow {
  name: string;
  exists: boolean;
  /** The role's comment: the ownership marker. */
  comment: string | null;
  /** The role owns some database, so it is some tenant's owner role. */
  owns_database: boolean;
  can_login: boolean;
  inherit: boolean;
  /** The admin has the role's privileges (needed to own objects as it and end its sessions). */
  claimed: boolean;
  search_path: boolean;
  in_app: boolean;
}

interface DatabaseRow {
  owner: string;
  /** The database's comment: the ownership marker. */
  comment: string | null;
  owner_comment: string | null;
  public_privileges: string[];
  app_connect: boolean;
}

const applicationName = 'tenantry-operator';
const terminateWaitMillis = 5000;

export class TenantDatabaseAdmin implements TenantDatabases {
  readonly #url: string;
  readonly #pool: pg.Pool;
  readonly #connectionTimeoutMillis: number;

  constructor(adminUrl: string, options: TenantDatabaseAdminOptions = {}) {
    this.#url = adminUrl;
    this.#connectionTimeoutMillis = options.connectionTimeoutMillis ?? 5000;
    this.#pool = new pg.Pool({
      connectionString: adminUrl,
      max: options.maxConnections ?? 4,
      connectionTimeoutMillis: this.#connectionTimeoutMillis,
      idleTimeoutMillis: 10_000,
      application_name: applicationName,
    });
    // An idle connection that breaks is discarded; the next query reconnects.
    this.#pool.on('error', () => undefined);
  }

  /**
   * Creates whatever is missing of the tenant's roles, database and schema
   * `app`, and puts privileges back where they drifted.
   */
  async ensureDatabase(
    names: TenantNames,
    options: { locale?: string; owner?: TenantOwner } = {},
  ): Promise<EnsureDatabaseResult> {
    const owner = options.owner ?? {};
    const app = appRoleName(names);
    const repaired: string[] = [];
    const created = await this.#withAdmin(`ensuring database "${names.database}"`, async (c) => {
      const database = await readDatabase(c, names.database, app);
      const existed = database !== undefined;
      const note = (what: string): void => {
        if (existed) repaired.push(what);
      };
      const roles = await readRoles(c, tenantRoleNames(names), [app]);
      const databaseClaim = claimOfDatabase(names.database, database, owner);
      // Nothing is touched unless every name is free or this Tenant's.
      assertClaims([
        { what: `database "${names.database}"`, claim: databaseClaim },
        ...roles.map((r) => ({ what: `role "${r.name}"`, claim: claimOfRole(r, owner) })),
      ]);
      const legacy = await legacyRolesOf(c, names, owner);
      const appRow = roles.find((r) => r.name === app);
      if (!appRow?.exists && legacy.appRole) {
        // Renaming keeps every grant, default privilege and membership, so the
        // old login roles keep working until the tenant has rotated off them.
        await claimRoles(c, [legacy.appRole]);
        await c.query(`ALTER ROLE ${quoteIdent(legacy.appRole.name)} RENAME TO ${quoteIdent(app)}`);
        await markRole(c, app, owner);
        note(`renamed role ${legacy.appRole.name} to ${app}`);
      }
      await ensureRoles(c, names, owner, note);
      let created = false;
      if (!existed) {
        try {
          await c.query(
            `CREATE DATABASE ${quoteIdent(names.database)} OWNER ${quoteIdent(names.ownerRole)}
                 TEMPLATE template0 ENCODING 'UTF8' LOCALE ${pg.escapeLiteral(options.locale ?? 'C')}`,
          );
          created = true;
        } catch (error) {
          // Another reconcile created it in the meantime; carry on as if it existed.
          if (sqlState(error) !== '42P04') throw error;
        }
      }
      await ensureDatabasePrivileges(c, names, note);
      if (owner.uid !== undefined && markedUid(database?.comment) !== owner.uid) {
        await c.query(
          `COMMENT ON DATABASE ${quoteIdent(names.database)} IS ${pg.escapeLiteral(ownershipMarker(owner.uid))}`,
        );
        if (databaseClaim !== 'absent') note(`marked database ${names.database} as the tenant's`);
      }
      // The old login roles go once the tenant no longer uses them (status records the ones in use).
      for (const role of legacy.loginRoles) {
        if (owner.recorded?.includes(role.name)) continue;
        try {
          await c.query(`DROP ROLE ${quoteIdent(role.name)}`);
          note(`dropped old login role ${role.name}`);
        } catch (error) {
          if (sqlState(error) !== '2BP01') throw error;
          note(`kept old login role ${role.name}: objects depend on it`);
        }
      }
      return created;
    });
    const note = (what: string): void => {
      if (!created) repaired.push(what);
    };
    await this.withTenantDatabase(
      names.database,
      (c) => ensureSchema(c, names, note),
      `ensuring schema app in "${names.database}"`,
    );
    return { created, repaired };
  }

  /** Sets a login role's password and lets it log in. Only a SCRAM verifier reaches the server. */
  async setLoginPassword(role: string, password: string): Promise<LoginState> {
    const verifier = scramSha256Verifier(password);
    return this.#withAdmin(
      `setting the password of role "${role}"`,
      async (c) => {
        await c.query(`ALTER ROLE ${quoteIdent(role)} WITH LOGIN PASSWORD ${pg.escapeLiteral(verifier)}`);
        return readLoginState(c, role);
      },
      { secret: true },
    );
  }

  /** Whether the role exists and may log in. Passwords cannot be checked under trust auth, so this does not try. */
  async loginState(role: string): Promise<LoginState> {
    return this.#withAdmin(`reading role "${role}"`, (c) => readLoginState(c, role));
  }

  /** Makes both login roles NOLOGIN and ends their sessions; the data stays. Fine if they are gone. */
  async disableLogin(names: TenantNames, owner: TenantOwner = {}): Promise<DisableLoginResult> {
    return this.#withAdmin(`disabling the logins of "${names.database}"`, async (c) => {
      const found = (await readRoles(c, [...names.loginRoles], [names.appRole])).filter((r) => r.exists);
      const skipped = found.filter((r) => !mayUse(claimOfRole(r, owner))).map((r) => `role "${r.name}"`);
      const roles = [
        ...found.filter((r) => mayUse(claimOfRole(r, owner))),
        ...(await legacyRolesOf(c, names, owner)).loginRoles,
      ];
      await claimRoles(c, roles);
      for (const role of roles) {
        if (role.can_login) await c.query(`ALTER ROLE ${quoteIdent(role.name)} NOLOGIN`);
      }
      const terminatedSessions = await terminateSessionsOf(
        c,
        roles.map((r) => r.name),
      );
      return {
        disabled: roles.map((r) => r.name),
        terminatedSessions,
        ...(skipped.length ? { skipped } : {}),
      };
    });
  }

  /** Retires one login role after a rotation: NOLOGIN, no password, sessions ended. */
  async retireLogin(role: string, owner: TenantOwner = {}): Promise<RetireLoginResult> {
    return this.#withAdmin(`retiring role "${role}"`, async (c) => {
      const [row] = await readRoles(c, [role], [role]);
      if (!row?.exists) return { existed: false, terminatedSessions: 0 };
      assertClaims([{ what: `role "${role}"`, claim: claimOfRole(row, owner) }]);
      await claimRoles(c, [row]);
      await c.query(`ALTER ROLE ${quoteIdent(role)} NOLOGIN PASSWORD NULL`);
      return { existed: true, terminatedSessions: await terminateSessionsOf(c, [role]) };
    });
  }

  /** Drops the tenant's database and roles, ending open sessions. Fine if some or all are gone. */
  async dropTenant(names: TenantNames, owner: TenantOwner = {}): Promise<DropTenantResult> {
    const app = appRoleName(names);
    return this.#withAdmin(`dropping tenant "${names.database}"`, async (c) => {
      // Only what this Tenant owns goes; a name another owner holds is reported and left alone.
      const found = (await readRoles(c, tenantRoleNames(names), [app])).filter((r) => r.exists);
      const skipped = found.filter((r) => !mayUse(claimOfRole(r, owner))).map((r) => `role "${r.name}"`);
      const legacy = await legacyRolesOf(c, names, owner);
      const roles = [
        ...found.filter((r) => mayUse(claimOfRole(r, owner))),
        ...legacy.loginRoles,
        ...(legacy.appRole ? [legacy.appRole] : []),
      ];
      await claimRoles(c, roles);
      const existing = await readDatabase(c, names.database, app);
      const databaseOwned =
        existing !== undefined && mayUse(claimOfDatabase(names.database, existing, owner));
      if (existing !== undefined && !databaseOwned) skipped.push(`database "${names.database}"`);
      const database = databaseOwned ? existing : undefined;
      let terminatedSessions = 0;
      if (database) {
        // Close the door first so nothing reconnects between terminate and drop.
        const grantees = ['PUBLIC', ...(roles.some((r) => r.name === app) ? [quoteIdent(app)] : [])];
        await c.query(`REVOKE CONNECT ON DATABASE ${quoteIdent(names.database)} FROM ${grantees.join(', ')}`);
      }
      for (const role of roles) {
        if (role.can_login) await c.query(`ALTER ROLE ${quoteIdent(role.name)} NOLOGIN`);
      }
      if (database) {
        const { rows } = await c.query<{ n: number }>(
          `SELECT count(*) FILTER (WHERE ok)::int AS n FROM (
             SELECT pg_terminate_backend(pid, $2) AS ok FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid() AND pg_has_role(usesysid, 'USAGE')) t`,
          [names.database, terminateWaitMillis],
        );
        terminatedSessions = rows[0]?.n ?? 0;
      }
      if (database) await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(names.database)} WITH (FORCE)`);
      if (roles.length > 0) {
        // Clears grants the roles may still hold on shared objects and in this database.
        await c.query(`DROP OWNED BY ${roles.map((r) => quoteIdent(r.name)).join(', ')}`);
      }
      for (const role of roles) await c.query(`DROP ROLE IF EXISTS ${quoteIdent(role.name)}`);
      return {
        droppedDatabase: database !== undefined,
        droppedRoles: roles.map((r) => r.name),
        terminatedSessions,
        ...(skipped.length ? { skipped } : {}),
      };
    });
  }

  /**
   * A cheap look at the tenant's database and roles from the admin database.
   * Empty when nothing drifted. `activeLoginRole` is the role the workload
   * uses; it must be able to log in.
   */
  async driftReport(names: TenantNames, options: { activeLoginRole?: string } = {}): Promise<DriftProblem[]> {
    const app = appRoleName(names);
    return this.#withAdmin(`checking "${names.database}" for drift`, async (c) => {
      const problems: DriftProblem[] = [];
      const database = await readDatabase(c, names.database, app);
      if (!database) {
        problems.push({ code: 'DatabaseMissing', message: `database "${names.database}" does not exist` });
      } else {
        if (database.owner !== names.ownerRole) {
          problems.push({
            code: 'DatabaseOwner',
            message: `database "${names.database}" is owned by "${database.owner}", not "${names.ownerRole}"`,
          });
        }
        if (database.public_privileges.length > 0) {
          problems.push({
            code: 'PublicAccess',
            message: `PUBLIC has ${database.public_privileges.join(', ')} on database "${names.database}"`,
          });
        }
        if (!database.app_connect) {
          problems.push({
            code: 'AppConnectMissing',
            message: `role "${app}" lacks CONNECT on "${names.database}"`,
          });
        }
      }
      for (const role of await readRoles(c, tenantRoleNames(names), [app])) {
        const isLogin = names.loginRoles.includes(role.name);
        if (!role.exists) {
          problems.push({ code: 'RoleMissing', message: `role "${role.name}" does not exist` });
          continue;
        }
        if (!isLogin && role.can_login) {
          problems.push({ code: 'RoleCanLogin', message: `role "${role.name}" must be NOLOGIN` });
        }
        if (isLogin && !role.in_app) {
          problems.push({
            code: 'MembershipMissing',
            message: `role "${role.name}" is not a member of "${app}"`,
          });
        }
        if (role.name === options.activeLoginRole && !role.can_login) {
          problems.push({ code: 'LoginDisabled', message: `active login role "${role.name}" cannot log in` });
        }
      }
      return problems;
    });
  }

  /**
   * Runs `fn` with a connection to `database` as the admin role. Connection
   * failures become `DatabaseUnavailableError`, refused statements `TenantSqlError`.
   */
  async withTenantDatabase<T>(
    database: string,
    fn: (client: pg.Client) => Promise<T>,
    operation = `using database "${database}"`,
  ): Promise<T> {
    const url = new URL(this.#url);
    url.pathname = `/${encodeURIComponent(database)}`;
    const client = new pg.Client({
      connectionString: url.toString(),
      connectionTimeoutMillis: this.#connectionTimeoutMillis,
      application_name: applicationName,
    });
    // A connection that breaks while idle fails the next query, which reports it.
    client.on('error', () => undefined);
    try {
      await client.connect();
      return await fn(client);
    } catch (error) {
      throw translateError(url.toString(), operation, error, false);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Revokes PUBLIC's CONNECT on the databases the admin owns and names the others (server-privileges.ts). */
  async closePublicConnect(): Promise<PublicConnectReport> {
    return this.#withAdmin('checking which databases PUBLIC may connect to', closePublicConnect);
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  async #withAdmin<T>(
    operation: string,
    fn: (client: pg.PoolClient) => Promise<T>,
    options: { secret?: boolean } = {},
  ): Promise<T> {
    const secret = options.secret ?? false;
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw translateError(this.#url, operation, error, secret);
    }
    try {
      const result = await fn(client);
      client.release();
      return result;
    } catch (error) {
      // Discard the connection: it may sit in an aborted transaction or be broken.
      client.release(true);
      throw translateError(this.#url, operation, error, secret);
    }
  }
}

const connectionSqlStates = new Set(['57P01', '57P02', '57P03', '53300']);
const connectionSyscallCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);
const connectionMessages =
  /Connection terminated|timeout exceeded when trying to connect|not queryable|Connection ended/i;

/** True when `error` (or what caused it) means the server is unreachable or the connection was lost. */
export function isConnectionFailure(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (connectionSqlStates.has(code) || code.startsWith('08') || connectionSyscallCodes.has(code))
        return true;
    } else if (connectionMessages.test(e.message)) {
      return true;
    }
    if (e instanceof AggregateError && e.errors.some(isConnectionFailure)) return true;
  }
  return false;
}

function translateError(url: string, operation: string, error: unknown, secret: boolean): Error {
  if (error instanceof DatabaseUnavailableError || error instanceof TenantSqlError) return error;
  if (isConnectionFailure(error)) {
    // With a secret in play, keep only the error code: nothing of the statement may leak.
    return new DatabaseUnavailableError(
      url,
      secret ? new Error(errorCode(error) ?? 'connection failed') : error,
    );
  }
  if (error instanceof SchemaMigrationError || error instanceof NameConflictError) return error;
  return new TenantSqlError(operation, error, { hideDetail: secret });
}

function sqlState(error: unknown): string | undefined {
  return error instanceof pg.DatabaseError ? error.code : undefined;
}

function errorCode(error: unknown): string | undefined {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

function tenantRoleNames(names: TenantNames): string[] {
  return [...names.loginRoles, appRoleName(names), names.ownerRole];
}

/** The roles named, in order, with `in_app` telling membership of any of `apps`. */
async function readRoles(c: pg.ClientBase, roles: string[], apps: string[]): Promise<RoleRow[]> {
  const { rows } = await c.query<RoleRow>(
    `SELECT w.name,
            r.oid IS NOT NULL AS exists,
            shobj_description(r.oid, 'pg_authid') AS comment,
            EXISTS (SELECT 1 FROM pg_database d WHERE d.datdba = r.oid) AS owns_database,
            coalesce(r.rolcanlogin, false) AS can_login,
            coalesce(r.rolinherit, false) AS inherit,
            coalesce(pg_has_role(r.oid, 'USAGE'), false) AS claimed,
            coalesce('search_path=app' = ANY (r.rolconfig), false) AS search_path,
            EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                     WHERE m.member = r.oid AND g.rolname = ANY ($2::text[])) AS in_app
       FROM unnest($1::text[]) WITH ORDINALITY AS w(name, ord)
       LEFT JOIN pg_roles r ON r.rolname = w.name
      ORDER BY w.ord`,
    [roles, apps],
  );
  return rows;
}

async function readDatabase(
  c: pg.ClientBase,
  database: string,
  app: string,
): Promise<DatabaseRow | undefined> {
  // A NULL datacl means the built-in defaults, which give PUBLIC CONNECT and TEMPORARY.
  const { rows } = await c.query<DatabaseRow>(
    `SELECT pg_get_userbyid(d.datdba) AS owner,
            shobj_description(d.oid, 'pg_database') AS comment,
            shobj_description(d.datdba, 'pg_authid') AS owner_comment,
            ARRAY(SELECT a.privilege_type FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                   WHERE a.grantee = 0 ORDER BY 1) AS public_privileges,
            EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                      JOIN pg_roles g ON g.oid = a.grantee
                     WHERE g.rolname = $2 AND a.privilege_type = 'CONNECT') AS app_connect
       FROM pg_database d WHERE d.datname = $1`,
    [database, app],
  );
  return rows[0];
}

async function readLoginState(c: pg.ClientBase, role: string): Promise<LoginState> {
  const { rows } = await c.query<{ rolcanlogin: boolean }>(
    'SELECT rolcanlogin FROM pg_roles WHERE rolname = $1',
    [role],
  );
  return { exists: rows.length > 0, canLogin: rows[0]?.rolcanlogin ?? false };
}

function claimOfRole(role: RoleRow, owner: TenantOwner): Claim {
  return claimOf({ name: role.name, exists: role.exists, marker: role.comment }, owner);
}

function claimOfDatabase(name: string, database: DatabaseRow | undefined, owner: TenantOwner): Claim {
  const claim = claimOf({ name, exists: database !== undefined, marker: database?.comment }, owner);
  // CREATE DATABASE cannot share a transaction with its COMMENT. An unmarked
  // database owned by a role marked with this Tenant's uid was created by this
  // Tenant just before the operator stopped.
  if (
    claim === 'foreign' &&
    owner.uid !== undefined &&
    markedUid(database?.comment) === undefined &&
    markedUid(database?.owner_comment) === owner.uid
  ) {
    return 'recognised';
  }
  return claim;
}

/** Sets the ownership marker on a role; nothing for an owner without a uid. */
async function markRole(c: pg.ClientBase, role: string, owner: TenantOwner): Promise<void> {
  if (owner.uid === undefined) return;
  await c.query(`COMMENT ON ROLE ${quoteIdent(role)} IS ${pg.escapeLiteral(ownershipMarker(owner.uid))}`);
}

/**
 * The tenant's roles under the names before ownership markers, when the
 * catalog shows they are its own: unmarked (or marked with its uid), owning no
 * database (an owner role is some other tenant's), and the app role granted
 * CONNECT on the tenant's database, the login roles members of its app role.
 */
async function legacyRolesOf(
  c: pg.ClientBase,
  names: TenantNames,
  owner: TenantOwner,
): Promise<{ appRole?: RoleRow; loginRoles: RoleRow[] }> {
  const legacy = legacyRoleNames(names);
  const ours = (r: RoleRow): boolean =>
    r.exists && !r.owns_database && (r.comment === null || markedUid(r.comment) === owner.uid);
  const [appRole] = await readRoles(c, [legacy.appRole], []);
  const database = await readDatabase(c, names.database, legacy.appRole);
  const databaseOurs = database !== undefined && mayUse(claimOfDatabase(names.database, database, owner));
  const app = appRole && ours(appRole) && databaseOurs && database.app_connect ? appRole : undefined;
  const apps = [names.appRole, ...(app ? [app.name] : [])];
  const logins = (await readRoles(c, [...legacy.loginRoles], apps)).filter((r) => ours(r) && r.in_app);
  return { ...(app ? { appRole: app } : {}), loginRoles: logins };
}

/**
 * Makes the admin a member of the roles. Under PG15 a CREATEROLE admin is not
 * a member of the roles it creates, but it must be one to create a database
 * owned by the role, act as the role and end the role's sessions.
 */
async function claimRoles(c: pg.ClientBase, roles: RoleRow[]): Promise<void> {
  for (const role of roles) {
    if (role.exists && !role.claimed) await c.query(`GRANT ${quoteIdent(role.name)} TO CURRENT_USER`);
  }
}

async function terminateSessionsOf(c: pg.ClientBase, roles: string[]): Promise<number> {
  if (roles.length === 0) return 0;
  const { rows } = await c.query<{ n: number }>(
    `SELECT count(*) FILTER (WHERE ok)::int AS n FROM (
       SELECT pg_terminate_backend(pid, $2) AS ok FROM pg_stat_activity
        WHERE usename = ANY ($1::text[]) AND pid <> pg_backend_pid()) t`,
    [roles, terminateWaitMillis],
  );
  return rows[0]?.n ?? 0;
}

/**
 * Creates missing roles, each with its ownership marker in the same
 * transaction, marks roles this Tenant recognises or restores, and fixes
 * attributes and memberships. The caller has checked that every role is the
 * Tenant's or free.
 */
async function ensureRoles(
  c: pg.ClientBase,
  names: TenantNames,
  owner: TenantOwner,
  note: (what: string) => void,
): Promise<void> {
  const app = appRoleName(names);
  const all = tenantRoleNames(names);
  for (const role of await readRoles(c, all, [app])) {
    if (role.exists) {
      if (owner.uid !== undefined && markedUid(role.comment) !== owner.uid) {
        await markRole(c, role.name, owner);
        note(`marked role ${role.name} as the tenant's`);
      }
      continue;
    }
    // Login roles start NOLOGIN: they get LOGIN with their first password.
    const inherit = names.loginRoles.includes(role.name) ? ' INHERIT' : '';
    await withTransaction(c, async () => {
      await c.query(`CREATE ROLE ${quoteIdent(role.name)} NOLOGIN${inherit}`);
      await markRole(c, role.name, owner);
    });
    note(`recreated role ${role.name}`);
  }
  const roles = await readRoles(c, all, [app]);
  await claimRoles(
    c,
    roles.filter((r) => r.name !== app),
  );
  for (const role of roles) {
    const quoted = quoteIdent(role.name);
    if (!names.loginRoles.includes(role.name)) {
      if (role.can_login) {
        await c.query(`ALTER ROLE ${quoted} NOLOGIN`);
        note(`removed LOGIN from role ${role.name}`);
      }
      continue;
    }
    if (!role.inherit) {
      await c.query(`ALTER ROLE ${quoted} INHERIT`);
      note(`made role ${role.name} INHERIT`);
    }
    if (!role.in_app) {
      await c.query(`GRANT ${quoteIdent(app)} TO ${quoted}`);
      note(`made role ${role.name} a member of ${app}`);
    }
    if (!role.search_path) {
      await c.query(`ALTER ROLE ${quoted} SET search_path = app`);
      note(`set search_path of role ${role.name}`);
    }
  }
}

async function ensureDatabasePrivileges(
  c: pg.ClientBase,
  names: TenantNames,
  note: (what: string) => void,
): Promise<void> {
  const app = appRoleName(names);
  const database = await readDatabase(c, names.database, app);
  if (!database) throw new Error(`database "${names.database}" vanished while it was being ensured`);
  const db = quoteIdent(names.database);
  if (database.owner !== names.ownerRole) {
    await c.query(`ALTER DATABASE ${db} OWNER TO ${quoteIdent(names.ownerRole)}`);
    note(`made ${names.ownerRole} the owner of database ${names.database}`);
  }
  if (database.public_privileges.length > 0) {
    await c.query(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
    note(`revoked ${database.public_privileges.join(', ')} from PUBLIC`);
  }
  if (!database.app_connect) {
    await c.query(`GRANT CONNECT ON DATABASE ${db} TO ${quoteIdent(app)}`);
    note(`granted CONNECT on database ${names.database} to ${app}`);
  }
}

async function ensureSchema(
  c: pg.ClientBase,
  names: TenantNames,
  note: (what: string) => void,
): Promise<void> {
  const app = appRoleName(names);
  const owner = quoteIdent(names.ownerRole);
  const quotedApp = quoteIdent(app);
  const { rows } = await c.query<{ app_owner: string | null; public_open: boolean }>(
    `SELECT (SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'app') AS app_owner,
            EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
                     WHERE n.nspname = 'public' AND a.grantee = 0) AS public_open`,
  );
  const state = rows[0];
  if (!state?.app_owner) {
    await c.query(`CREATE SCHEMA IF NOT EXISTS app AUTHORIZATION ${owner}`);
    note('recreated schema app');
  } else if (state.app_owner !== names.ownerRole) {
    await c.query(`ALTER SCHEMA app OWNER TO ${owner}`);
    note(`made ${names.ownerRole} the owner of schema app`);
  }
  if (state?.public_open) {
    await c.query('REVOKE ALL ON SCHEMA public FROM PUBLIC');
    note('revoked PUBLIC privileges on schema public');
  }
  const privileges = await c.query<{
    usage: boolean;
    create: boolean;
    defaults: string[];
    stale_tables: boolean;
  }>(
    `SELECT has_schema_privilege($1, 'app', 'USAGE') AS usage,
            has_schema_privilege($1, 'app', 'CREATE') AS create,
            ARRAY(SELECT d.defaclobjtype::text || ':' || a.privilege_type
                    FROM pg_default_acl d, aclexplode(d.defaclacl) a
                   WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = $2)
                     AND d.defaclnamespace = 'app'::regnamespace
                     AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1) ORDER BY 1) AS defaults,
            EXISTS (SELECT 1 FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
                     WHERE n.nspname = 'app' AND t.relkind IN ('r', 'p')
                       AND (NOT has_table_privilege($1, t.oid, 'SELECT')
                            OR (t.relname = ANY ($3::text[]) AND has_table_privilege($1, t.oid, 'UPDATE, DELETE, TRUNCATE')))
                   ) AS stale_tables`,
    [app, names.ownerRole, appendOnlyTables],
  );
  const granted = privileges.rows[0];
  if (!granted?.usage) {
    await c.query(`GRANT USAGE ON SCHEMA app TO ${quotedApp}`);
    note(`granted USAGE on schema app to ${app}`);
  }
  if (granted?.create) {
    await c.query(`REVOKE CREATE ON SCHEMA app FROM ${quotedApp}`);
    note(`revoked CREATE on schema app from ${app}`);
  }
  const wanted = ['S:SELECT', 'S:USAGE', 'r:DELETE', 'r:INSERT', 'r:SELECT', 'r:UPDATE'];
  if (!wanted.every((w) => granted?.defaults.includes(w))) {
    await c.query(
      `ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} IN SCHEMA app GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${quotedApp}`,
    );
    await c.query(
      `ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} IN SCHEMA app GRANT USAGE, SELECT ON SEQUENCES TO ${quotedApp}`,
    );
    note(`restored default privileges of ${app} in schema app`);
  }
  // A recreated app role lacks every table privilege: default privileges only reach new tables.
  if (granted?.stale_tables) {
    await reapplyAppPrivileges(c, { ownerRole: names.ownerRole, appRole: app });
    note(`restored table privileges of ${app}`);
  }
}
