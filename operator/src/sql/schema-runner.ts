// Runs the tenant schema migrations for the operator, a bounded number of
// tenants at a time so that a fleet-wide upgrade does not open a connection
// (and take locks) in every tenant database at once.
import {
  migrateTenantSchema,
  type MigrateOptions,
  type MigrationResult,
} from '../../../lib/tenant-schema/migrate.js';
import type { TenantNames } from '../../../lib/tenant/index.js';
import { appRoleName, type TenantDatabaseAdmin } from './tenant-database.js';

/** Lets at most `limit` tasks run at once; the others wait in arrival order. */
export class Semaphore {
  #limit: number;
  #active = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.#limit = checkedLimit(limit);
  }

  get active(): number {
    return this.#active;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /** Changes the limit; a higher one starts waiting tasks at once, a lower one takes effect as tasks finish. */
  setLimit(limit: number): void {
    this.#limit = checkedLimit(limit);
    this.#wakeWaiting();
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#active >= this.#limit) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#active += 1;
    }
    try {
      return await task();
    } finally {
      this.#active -= 1;
      this.#wakeWaiting();
    }
  }

  #wakeWaiting(): void {
    while (this.#active < this.#limit) {
      const next = this.#waiting.shift();
      if (!next) return;
      // The slot passes to the woken task before it resumes, so no newcomer can take it.
      this.#active += 1;
      next();
    }
  }
}

function checkedLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1)
    throw new RangeError(`concurrency limit must be a positive integer`);
  return limit;
}

/** The process-wide slots for migrations; `setLimit` configures it (default 4). */
export const migrationSlots = new Semaphore(4);

/**
 * Connects as the admin to the tenant database and brings its schema up to
 * date, waiting for a free slot first. Returns the versions before and after.
 */
export async function runTenantMigrations(
  admin: TenantDatabaseAdmin,
  names: TenantNames,
  options: { slots?: Semaphore } & MigrateOptions = {},
): Promise<MigrationResult> {
  const roles = { ownerRole: names.ownerRole, appRole: appRoleName(names) };
  const { slots: _slots, ...migrateOptions } = options;
  return (options.slots ?? migrationSlots).run(() =>
    admin.withTenantDatabase(
      names.database,
      (client) => migrateTenantSchema(client, roles, migrateOptions),
      `migrating the schema of "${names.database}"`,
    ),
  );
}
