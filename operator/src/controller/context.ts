// What every reconcile step sees: the Tenant, its derived names, the
// dependencies behind small interfaces, and the status draft the steps fill in.
import { randomBytes } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import type { Logger } from '../../../lib/logger.js';
import type {
  TenantOwner,
  StepCondition,
  Tenant,
  TenantNames,
  TenantStatus,
} from '../../../lib/tenant/index.js';
import type { Cluster } from '../kube/cluster.js';
import type { RabbitMqAdmin } from '../messaging/rabbitmq-admin.js';
import type { BuildContext } from '../specs/index.js';
import type { TenantDatabaseAdmin } from '../sql/tenant-database.js';
import type { EventSink } from './events.js';

export interface ControllerDeps {
  cluster: Cluster;
  db: TenantDatabaseAdmin;
  mq: RabbitMqAdmin;
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

/** What a step reports; `pending` means "not done yet, look again later", not an error. */
export interface StepOutcome {
  reason: string;
  message: string;
  pending?: { requeueAfterMs: number };
}

export interface Step {
  condition: StepCondition;
  run(ctx: ReconcileContext): Promise<StepOutcome>;
}

export function secretString(secret: V1Secret | undefined, key: string): string | undefined {
  const value = secret?.data?.[key];
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
}
