// In-memory stand-ins for the operator's narrow dependencies (KubeObjects,
// TenantDatabases, BrokerAdmin, EventSink), so each reconcile step runs in
// milliseconds. They keep only the behaviour the steps rely on: apply merges
// and bumps the generation when the content changes, ownership is judged with
// the same pure claim rules as the real adapters (lib/tenant/ownership.ts), and
// every change is counted so a test can tell that a second run changed nothing.
// The real adapters have integration tests of their own against the real services.
import { isDeepStrictEqual } from 'node:util';
import {
  ApiException,
  type KubernetesObject,
  type V1Namespace,
  type V1Secret,
} from '@kubernetes/client-node';
import { createLogger } from '../../../lib/logger.js';
import { latestSchemaVersion } from '../../../lib/tenant-schema/migrate.js';
import {
  assertClaims,
  claimOf,
  mayUse,
  ownershipMarker,
  tenantNames,
  tenantOwner,
  type Tenant,
  type TenantNames,
  type TenantOwner,
} from '../../../lib/tenant/index.js';
import type {
  BrokerAdmin,
  ControllerDeps,
  KubeObjects,
  ReconcileContext,
  TenantDatabases,
} from '../../../operator/src/controller/context.js';
import type { EventSink, EventType } from '../../../operator/src/controller/events.js';
import type {
  DeleteTenantUserResult,
  EnsureTenantUserResult,
  TenantMessagingNames,
} from '../../../operator/src/messaging/rabbitmq-admin.js';
import type {
  DisableLoginResult,
  DropTenantResult,
  EnsureDatabaseResult,
  LoginState,
  RetireLoginResult,
} from '../../../operator/src/sql/tenant-database.js';

export const platformNamespace = 'tenantry-system';
export const secretsNamespace = 'tenantry-secrets';

/** A Tenant as the API server returns it: with a uid and a generation. */
export function makeTenant(
  name = 'acme',
  options: { uid?: string; spec?: Partial<Tenant['spec']>; status?: Tenant['status'] } = {},
): Tenant {
  return {
    apiVersion: 'tenantry.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name, uid: options.uid ?? `uid-${name}`, generation: 1 },
    spec: { plan: 'starter', owner: { email: `owner@${name}.example` }, ...options.spec },
    ...(options.status ? { status: options.status } : {}),
  };
}

/** Something failing the way the Kubernetes client fails: an ApiException with a status body. */
export function kubeError(code: number, message: string): ApiException<string> {
  return new ApiException(code, message, JSON.stringify({ message }), {});
}

/** Failures to inject, by operation (`readSecret`, `apply:Deployment`, `ensureDatabase`, ...). */
class Failures {
  readonly #byOperation = new Map<string, Error>();

  set(operation: string, error: Error): void {
    this.#byOperation.set(operation, error);
  }

  clear(): void {
    this.#byOperation.clear();
  }

  check(...operations: string[]): void {
    for (const operation of operations) {
      const error = this.#byOperation.get(operation);
      if (error) throw error;
    }
  }
}

function keyOf(kind: string | undefined, namespace: string | undefined, name: string | undefined): string {
  return `${kind ?? '?'}/${namespace ?? ''}/${name ?? '?'}`;
}

/** An object as the fake keeps it; the steps look at the spec and status of some. */
type Stored = KubernetesObject & { spec?: unknown; status?: unknown };

/** The object without metadata and status: what a change of bumps the generation. */
function content(object: Stored | undefined): unknown {
  if (!object) return undefined;
  const { metadata: _metadata, status: _status, ...rest } = object;
  return rest;
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const base =
    target !== null && typeof target === 'object' && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    if (value === null) delete base[key];
    else base[key] = mergePatch(base[key], value);
  }
  return base;
}

export class FakeKube implements KubeObjects {
  readonly failures = new Failures();
  /** Writes that changed something: applies with a different result, deletes, status patches. */
  changes = 0;
  readonly #objects = new Map<string, Stored>();
  readonly #tenants = new Map<string, Tenant>();

  /** Puts an object in place as if someone else had created it. */
  seed(object: KubernetesObject): void {
    const metadata = object.metadata ?? {};
    this.#objects.set(keyOf(object.kind, metadata.namespace, metadata.name), structuredClone(object));
  }

  get<T extends KubernetesObject>(kind: string, name: string, namespace?: string): T | undefined {
    const found = this.#objects.get(keyOf(kind, namespace, name));
    return found === undefined ? undefined : (structuredClone(found) as T);
  }

  /** Every stored object, for comparing whole states. */
  snapshot(): Record<string, unknown> {
    return structuredClone({
      objects: Object.fromEntries(this.#objects),
      tenants: Object.fromEntries(this.#tenants),
    });
  }

  /** A Deployment's controller catching up: the current template fully rolled out. */
  rollOut(namespace: string, name: string): void {
    const key = keyOf('Deployment', namespace, name);
    const deployment = this.#objects.get(key);
    if (!deployment) throw new Error(`no Deployment ${namespace}/${name}`);
    const replicas = (deployment.spec as { replicas?: number } | undefined)?.replicas ?? 1;
    deployment.status = {
      observedGeneration: deployment.metadata?.generation ?? 1,
      replicas,
      updatedReplicas: replicas,
      availableReplicas: replicas,
    };
  }

  apply<T extends KubernetesObject>(desired: T): Promise<T> {
    return Promise.resolve().then(() => {
      this.failures.check('apply', `apply:${desired.kind}`);
      const metadata = desired.metadata ?? {};
      const key = keyOf(desired.kind, metadata.namespace, metadata.name);
      const existing = this.#objects.get(key);
      const changed = existing === undefined || !isDeepStrictEqual(content(existing), content(desired));
      const generation = (existing?.metadata?.generation ?? 0) + (changed ? 1 : 0);
      const merged: Stored = {
        ...structuredClone(desired),
        metadata: {
          ...existing?.metadata,
          ...structuredClone(metadata),
          // Labels other managers set stay; ours are forced.
          labels: { ...existing?.metadata?.labels, ...metadata.labels },
          generation,
        },
      };
      const status = existing?.status ?? (desired.kind === 'Namespace' ? { phase: 'Active' } : undefined);
      if (status !== undefined) merged.status = status;
      if (!isDeepStrictEqual(existing, merged)) this.changes += 1;
      this.#objects.set(key, merged);
      return structuredClone(merged) as T;
    });
  }

  readNamespace(name: string): Promise<V1Namespace | undefined> {
    return Promise.resolve().then(() => {
      this.failures.check('readNamespace');
      return this.get<V1Namespace>('Namespace', name);
    });
  }

  readSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    return Promise.resolve().then(() => {
      this.failures.check('readSecret');
      return this.get<V1Secret>('Secret', name, namespace);
    });
  }

  deleteSecret(namespace: string, name: string): Promise<void> {
    return Promise.resolve().then(() => {
      this.failures.check('deleteSecret');
      if (this.#objects.delete(keyOf('Secret', namespace, name))) this.changes += 1;
    });
  }

  addTenant(tenant: Tenant): void {
    this.#tenants.set(tenant.metadata.name, structuredClone(tenant));
  }

  tenant(name: string): Tenant | undefined {
    const found = this.#tenants.get(name);
    return found === undefined ? undefined : structuredClone(found);
  }

  getTenant(name: string): Promise<Tenant | undefined> {
    return Promise.resolve().then(() => {
      this.failures.check('getTenant');
      return this.tenant(name);
    });
  }

  setFinalizers(tenant: Tenant, finalizers: string[]): Promise<Tenant> {
    return Promise.resolve().then(() => {
      this.failures.check('setFinalizers');
      const stored = this.#tenants.get(tenant.metadata.name);
      if (!stored) throw kubeError(404, `tenants "${tenant.metadata.name}" not found`);
      if (!isDeepStrictEqual(stored.metadata.finalizers ?? [], finalizers)) this.changes += 1;
      stored.metadata.finalizers = [...finalizers];
      return structuredClone(stored);
    });
  }

  patchTenantStatus(name: string, status: unknown): Promise<void> {
    return Promise.resolve().then(() => {
      this.failures.check('patchTenantStatus');
      const stored = this.#tenants.get(name);
      if (!stored) throw kubeError(404, `tenants "${name}" not found`);
      this.changes += 1;
      stored.status = mergePatch(stored.status, status) as Tenant['status'];
    });
  }
}

interface FakeRole {
  marker: string | undefined;
  canLogin: boolean;
  password: string | undefined;
}

function markerOf(owner: TenantOwner | undefined): string | undefined {
  return owner?.uid === undefined ? undefined : ownershipMarker(owner.uid);
}

export class FakeDatabases implements TenantDatabases {
  readonly failures = new Failures();
  /** Calls that changed something. */
  changes = 0;
  readonly databases = new Map<string, { marker: string | undefined; locale: string }>();
  readonly roles = new Map<string, FakeRole>();

  /** A database and roles under the tenant's names that `uid` (another Tenant) holds. */
  seedForeign(names: TenantNames, uid: string): void {
    const marker = ownershipMarker(uid);
    this.databases.set(names.database, { marker, locale: 'C' });
    for (const role of [names.ownerRole, names.appRole, ...names.loginRoles])
      this.roles.set(role, { marker, canLogin: false, password: undefined });
  }

  ensureDatabase(
    names: TenantNames,
    options: { locale?: string; owner?: TenantOwner },
  ): Promise<EnsureDatabaseResult> {
    return Promise.resolve().then(() => {
      this.failures.check('ensureDatabase');
      const owner = options.owner ?? {};
      const roleNames = [names.ownerRole, names.appRole, ...names.loginRoles];
      const database = this.databases.get(names.database);
      assertClaims([
        {
          what: `database "${names.database}"`,
          claim: claimOf({ name: names.database, exists: !!database, marker: database?.marker }, owner),
        },
        ...roleNames.map((name) => {
          const role = this.roles.get(name);
          return {
            what: `role "${name}"`,
            claim: claimOf({ name, exists: !!role, marker: role?.marker }, owner),
          };
        }),
      ]);
      const repaired: string[] = [];
      const note = (what: string) => {
        if (database) repaired.push(what);
      };
      const marker = markerOf(owner);
      for (const name of roleNames) {
        const role = this.roles.get(name);
        if (!role) {
          this.roles.set(name, { marker, canLogin: false, password: undefined });
          this.changes += 1;
          note(`recreated role ${name}`);
        } else if (marker !== undefined && role.marker !== marker) {
          role.marker = marker;
          this.changes += 1;
          note(`marked role ${name} as the tenant's`);
        }
      }
      if (!database) {
        this.databases.set(names.database, { marker, locale: options.locale ?? 'C' });
        this.changes += 1;
      } else if (marker !== undefined && database.marker !== marker) {
        database.marker = marker;
        this.changes += 1;
        note(`marked database ${names.database} as the tenant's`);
      }
      return { created: !database, repaired };
    });
  }

  setLoginPassword(role: string, password: string): Promise<LoginState> {
    return Promise.resolve().then(() => {
      this.failures.check('setLoginPassword');
      const found = this.roles.get(role);
      if (!found) throw new Error(`setting the password of role "${role}" failed: role does not exist`);
      if (!found.canLogin || found.password !== password) this.changes += 1;
      found.canLogin = true;
      found.password = password;
      return { exists: true, canLogin: true };
    });
  }

  loginState(role: string): Promise<LoginState> {
    return Promise.resolve().then(() => {
      this.failures.check('loginState');
      const found = this.roles.get(role);
      return { exists: !!found, canLogin: found?.canLogin ?? false };
    });
  }

  retireLogin(role: string, owner: TenantOwner = {}): Promise<RetireLoginResult> {
    return Promise.resolve().then(() => {
      this.failures.check('retireLogin');
      const found = this.roles.get(role);
      if (!found) return { existed: false, terminatedSessions: 0 };
      assertClaims([
        { what: `role "${role}"`, claim: claimOf({ name: role, exists: true, marker: found.marker }, owner) },
      ]);
      if (found.canLogin || found.password !== undefined) this.changes += 1;
      found.canLogin = false;
      found.password = undefined;
      return { existed: true, terminatedSessions: 0 };
    });
  }

  disableLogin(names: TenantNames, owner: TenantOwner = {}): Promise<DisableLoginResult> {
    return Promise.resolve().then(() => {
      this.failures.check('disableLogin');
      const { mine, skipped } = this.#split([...names.loginRoles], owner);
      for (const name of mine) {
        const role = this.roles.get(name)!;
        if (role.canLogin) this.changes += 1;
        role.canLogin = false;
      }
      return { disabled: mine, terminatedSessions: 0, ...(skipped.length ? { skipped } : {}) };
    });
  }

  dropTenant(names: TenantNames, owner: TenantOwner = {}): Promise<DropTenantResult> {
    return Promise.resolve().then(() => {
      this.failures.check('dropTenant');
      const { mine, skipped } = this.#split([names.ownerRole, names.appRole, ...names.loginRoles], owner);
      const database = this.databases.get(names.database);
      const databaseOwned =
        !!database && mayUse(claimOf({ name: names.database, exists: true, marker: database.marker }, owner));
      if (database && !databaseOwned) skipped.push(`database "${names.database}"`);
      if (databaseOwned) this.databases.delete(names.database);
      for (const name of mine) this.roles.delete(name);
      if (databaseOwned || mine.length > 0) this.changes += 1;
      return {
        droppedDatabase: databaseOwned,
        droppedRoles: mine,
        terminatedSessions: 0,
        ...(skipped.length ? { skipped } : {}),
      };
    });
  }

  /** The existing roles among `names`: those `owner` may use, and the others as "role "x"". */
  #split(names: string[], owner: TenantOwner): { mine: string[]; skipped: string[] } {
    const mine: string[] = [];
    const skipped: string[] = [];
    for (const name of names) {
      const role = this.roles.get(name);
      if (!role) continue;
      if (mayUse(claimOf({ name, exists: true, marker: role.marker }, owner))) mine.push(name);
      else skipped.push(`role "${name}"`);
    }
    return { mine, skipped };
  }
}

interface FakeUser {
  marker: string | undefined;
  password: string;
  /** The queue prefix its permissions match. */
  prefix: string | undefined;
}

export class FakeBroker implements BrokerAdmin {
  readonly failures = new Failures();
  changes = 0;
  readonly users = new Map<string, FakeUser>();

  ensureTenantUser(
    names: TenantMessagingNames,
    password: string,
    options: { resetPassword?: boolean; owner?: TenantOwner },
  ): Promise<EnsureTenantUserResult> {
    return Promise.resolve().then(() => {
      this.failures.check('ensureTenantUser');
      if (password.length === 0) throw new TypeError(`empty AMQP password for ${names.amqpUser}`);
      const owner = options.owner ?? {};
      const user = this.users.get(names.amqpUser);
      if (user) {
        const claim = claimOf({ name: names.amqpUser, exists: true, marker: user.marker }, owner);
        assertClaims([{ what: `RabbitMQ user "${names.amqpUser}"`, claim }]);
      }
      const marker = markerOf(owner);
      const tagsDrifted = !!user && user.marker !== marker;
      const result: EnsureTenantUserResult = {
        created: !user,
        passwordReset: !!user && options.resetPassword === true,
        permissionsRepaired: !!user && user.prefix !== names.queuePrefix,
        tagsRepaired: tagsDrifted,
      };
      const next: FakeUser = {
        marker,
        password: !user || options.resetPassword ? password : user.password,
        prefix: names.queuePrefix,
      };
      if (!isDeepStrictEqual(user, next) || result.passwordReset) this.changes += 1;
      this.users.set(names.amqpUser, next);
      return result;
    });
  }

  deleteTenantUser(names: TenantMessagingNames, owner: TenantOwner = {}): Promise<DeleteTenantUserResult> {
    return Promise.resolve().then(() => {
      this.failures.check('deleteTenantUser');
      const user = this.users.get(names.amqpUser);
      const none = { queuesDeleted: [], exchangesDeleted: [] };
      if (user && !mayUse(claimOf({ name: names.amqpUser, exists: true, marker: user.marker }, owner)))
        return { userDeleted: false, ...none, skipped: [`RabbitMQ user "${names.amqpUser}"`] };
      if (user) this.changes += 1;
      this.users.delete(names.amqpUser);
      return { userDeleted: !!user, ...none };
    });
  }
}

export interface RecordedEvent {
  tenant: string;
  type: EventType;
  reason: string;
  message: string;
}

export class FakeEvents implements EventSink {
  readonly recorded: RecordedEvent[] = [];

  record(tenant: Tenant, type: EventType, reason: string, message: string): void {
    this.recorded.push({ tenant: tenant.metadata.name, type, reason, message });
  }

  reasons(): string[] {
    return this.recorded.map((e) => e.reason);
  }
}

/** Every fake, and ControllerDeps made of them; the clock and the passwords are fixed. */
export interface Fakes {
  kube: FakeKube;
  db: FakeDatabases;
  mq: FakeBroker;
  events: FakeEvents;
  /** The migrations run, as database names; `migrateError` makes the next ones fail. */
  migrations: { database: string; legacyOwnerUid: string | undefined }[];
  migrateError: Error | undefined;
  /** Advances the clock the deps report. */
  clock: { now: Date };
  deps: ControllerDeps;
}

export function fakes(): Fakes {
  let passwords = 0;
  const fx: Fakes = {
    kube: new FakeKube(),
    db: new FakeDatabases(),
    mq: new FakeBroker(),
    events: new FakeEvents(),
    migrations: [],
    migrateError: undefined,
    clock: { now: new Date('2026-12-01T12:00:00Z') },
    deps: undefined as unknown as ControllerDeps,
  };
  fx.deps = {
    cluster: fx.kube,
    db: fx.db,
    mq: fx.mq,
    migrate: (names, options) =>
      Promise.resolve().then(() => {
        if (fx.migrateError) throw fx.migrateError;
        fx.migrations.push({ database: names.database, legacyOwnerUid: options?.legacyOwnerUid });
        return latestSchemaVersion;
      }),
    events: fx.events,
    log: createLogger('operator-test', 'silent'),
    build: {
      platformNamespace,
      secretsNamespace,
      workerImage: 'registry.example/tenantry-worker:test',
      postgres: { host: 'postgres.example', port: 5432 },
      rabbitmq: { host: 'rabbitmq.example', port: 5672 },
    },
    endpoints: {
      postgres: { host: 'postgres.example', port: 5432 },
      rabbitmq: { host: 'rabbitmq.example', port: 5672, vhost: 'tenantry', tls: false },
    },
    databaseServer: 'postgres-admin.example:5432',
    now: () => fx.clock.now,
    newPassword: () => `password-${++passwords}`,
  };
  return fx;
}

/** The context the reconciler builds for one reconcile of `tenant`. */
export function contextFor(tenant: Tenant, deps: ControllerDeps): ReconcileContext {
  return {
    tenant,
    names: tenantNames(tenant.metadata.name),
    owner: tenantOwner(tenant),
    deps,
    status: structuredClone(tenant.status ?? {}),
  };
}

/** Everything the fakes hold, to show that a run changed nothing. */
export function state(fx: Fakes): unknown {
  return structuredClone({
    kube: fx.kube.snapshot(),
    databases: Object.fromEntries(fx.db.databases),
    roles: Object.fromEntries(fx.db.roles),
    users: Object.fromEntries(fx.mq.users),
  });
}
