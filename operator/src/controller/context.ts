// What every reconcile step sees: the Tenant, its derived names, the
// dependencies behind small interfaces, and the status draft the steps fill in.
import { randomBytes } from 'node:crypto';
import type { KubernetesObject, V1Namespace, V1Secret } from '@kubernetes/client-node';
import type { Logger } from '../../../lib/logger.js';
import type {
  TenantOwner,
  StepCondition,
  Tenant,
  TenantNames,
  TenantStatus,
} from '../../../lib/tenant/index.js';
import type {
  DeleteTenantUserResult,
  EnsureTenantUserResult,
  TenantMessagingNames,
} from '../messaging/rabbitmq-admin.js';
import type { BuildContext } from '../specs/index.js';
import type {
  DisableLoginResult,
  DropTenantResult,
  EnsureDatabaseResult,
  LoginState,
  RetireLoginResult,
} from '../sql/tenant-database.js';
import type { EventSink } from './events.js';

/**
 * The Kubernetes objects the controller reads and writes: server-side apply,
 * reads of namespaces and Secrets, and the Tenant itself. `Cluster`
 * (kube/cluster.ts) does it against the API server.
 */
export interface KubeObjects {
  /** Server-side apply, forcing ownership of the fields set; returns the live object. */
  apply<T extends KubernetesObject>(desired: T): Promise<T>;
  readNamespace(name: string): Promise<V1Namespace | undefined>;
  readSecret(namespace: string, name: string): Promise<V1Secret | undefined>;
  /** Already gone is success. */
  deleteSecret(namespace: string, name: string): Promise<void>;
  getTenant(name: string): Promise<Tenant | undefined>;
  setFinalizers(tenant: Tenant, finalizers: string[]): Promise<Tenant>;
  /** A JSON merge patch of the status subresource. */
  patchTenantStatus(name: string, status: unknown): Promise<void>;
}

/**
 * A tenant's database, its roles and their logins. Every method is idempotent
 * and refuses, with NameConflictError, names that another owner holds.
 * `TenantDatabaseAdmin` (sql/tenant-database.ts) does it in PostgreSQL.
 */
export interface TenantDatabases {
  ensureDatabase(
    names: TenantNames,
    options: { locale?: string; owner?: TenantOwner },
  ): Promise<EnsureDatabaseResult>;
  /** Sets the password and lets the role log in. */
  setLoginPassword(role: string, password: string): Promise<LoginState>;
  loginState(role: string): Promise<LoginState>;
  /** NOLOGIN, no password, sessions ended: the login role a rotation left behind. */
  retireLogin(role: string, owner?: TenantOwner): Promise<RetireLoginResult>;
  disableLogin(names: TenantNames, owner?: TenantOwner): Promise<DisableLoginResult>;
  dropTenant(names: TenantNames, owner?: TenantOwner): Promise<DropTenantResult>;
}

/**
 * The tenant's broker user, confined to its queue prefix. `RabbitMqAdmin`
 * (messaging/rabbitmq-admin.ts) does it through the management API.
 */
export interface BrokerAdmin {
  /** Writes the password only on creation or with `resetPassword`; refuses another owner's user. */
  ensureTenantUser(
    names: TenantMessagingNames,
    password: string,
    options: { resetPassword?: boolean; owner?: TenantOwner },
  ): Promise<EnsureTenantUserResult>;
  /** Deletes the user and everything under its prefix; another owner's user is reported as skipped. */
  deleteTenantUser(names: TenantMessagingNames, owner?: TenantOwner): Promise<DeleteTenantUserResult>;
}

export interface ControllerDeps {
  cluster: KubeObjects;
  db: TenantDatabases;
  mq: BrokerAdmin;
  /**
   * Runs pending tenant schema migrations with bounded concurrency; returns the
   * schema version. `legacyOwnerUid`: see MigrateOptions in lib/tenant-schema/migrate.ts.
   */
  migrate(names: TenantNames, options?: { legacyOwnerUid?: string }): Promise<number>;
  events: EventSink;
  log: Logger;
  build: BuildContext;
  /** How workloads reach PostgreSQL and RabbitMQ; goes into the connection Secrets. */
  endpoints: {
    postgres: { host: string; port: number };
    rabbitmq: { host: string; port: number; vhost: string; tls: boolean };
  };
  /** The PostgreSQL server (host:port) the tenant databases live on; recorded in status.database.server. */
  databaseServer: string;
  now(): Date;
  newPassword(): string;
}

export function randomPassword(): string {
  // 192 bits, URL-safe so it needs no escaping in URIs or .pgpass.
  return randomBytes(24).toString('base64url');
}

export interface Credentials {
  username: string;
  password: string;
}

/** State passed from one step to the next within a single reconcile. */
export interface ReconcileContext {
  tenant: Tenant;
  names: TenantNames;
  /** The Tenant's uid and what it may take over; every service object is checked against it. */
  owner: TenantOwner;
  deps: ControllerDeps;
  /** The status being built; written back once at the end. */
  status: TenantStatus;
  databaseCreated?: boolean;
  dbCredentials?: Credentials;
  dbSecretData?: Record<string, string>;
  amqpSecretData?: Record<string, string>;
}

/**
 * What a step reports; `pending` means "not done yet, look again later", not an error.
 * A pending step that is `serving` still provides what it stands for (a worker rolling
 * to a new template while the previous pods stay available): its condition stays True,
 * the later steps run, and the Tenant stays Ready while Reconciling.
 */
export interface StepOutcome {
  reason: string;
  message: string;
  pending?: { requeueAfterMs: number; serving?: boolean };
}

export interface Step {
  condition: StepCondition;
  run(ctx: ReconcileContext): Promise<StepOutcome>;
}

export function secretString(secret: V1Secret | undefined, key: string): string | undefined {
  const value = secret?.data?.[key];
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
}
