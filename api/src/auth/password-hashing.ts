// The password-hashing budget: every argon2 hash and verification the API runs
// for a tenant goes through one scheduler per process, because argon2 runs on
// the process's libuv thread pool (4 threads by default), which DNS lookups
// and file reads share. At most `concurrency` run at once, at most
// `perTenant` of them for one tenant; the rest wait in a queue per tenant.
// A free slot goes to the waiting tenant with the fewest running, and among
// those to the one served longest ago. So one tenant's bulk import queues
// behind its own cap, and another tenant's sign-in takes the next free slot
// instead of waiting for the import's backlog.
import {
  defaultPasswordHashParameters,
  hashPassword,
  verifyAgainstDummy,
  verifyPassword,
  type PasswordHashParameters,
  type PasswordVerification,
} from './passwords.js';

export interface PasswordHashingLimits {
  /** Hashes and verifications running at once in this process; keep it below the libuv pool's size. */
  concurrency: number;
  /** Of those, at most this many for one tenant. */
  perTenant: number;
}

export const defaultPasswordHashingLimits: Readonly<PasswordHashingLimits> = Object.freeze({
  concurrency: 3,
  perTenant: 2,
});

interface TenantQueue {
  waiting: (() => void)[];
  running: number;
  /** When this tenant last got a slot (a sequence number), for round-robin among equals. */
  lastServed: number;
}

export interface PasswordHashingState {
  running: number;
  /** Waiting jobs per tenant (tenants with none are left out). */
  waiting: Record<string, number>;
}

export class PasswordHashing {
  #limits: PasswordHashingLimits;
  readonly #tenants = new Map<string, TenantQueue>();
  #running = 0;
  #served = 0;

  constructor(
    limits: PasswordHashingLimits = defaultPasswordHashingLimits,
    private readonly parameters: PasswordHashParameters = defaultPasswordHashParameters,
  ) {
    this.#limits = checkedLimits(limits);
  }

  /** Takes new limits; jobs already running finish, waiting ones start under the new limits. */
  configure(limits: PasswordHashingLimits): void {
    this.#limits = checkedLimits(limits);
    this.#startWaiting();
  }

  get limits(): Readonly<PasswordHashingLimits> {
    return this.#limits;
  }

  hash(tenant: string, password: string): Promise<string> {
    return this.#run(tenant, () => hashPassword(password, this.parameters));
  }

  verify(tenant: string, storedHash: string, password: string): Promise<PasswordVerification> {
    return this.#run(tenant, () => verifyPassword(storedHash, password, this.parameters));
  }

  /** `verifyAgainstDummy` under the same budget, so an unknown account costs its tenant what a known one does. */
  verifyAgainstDummy(tenant: string, password: string): Promise<false> {
    return this.#run(tenant, () => verifyAgainstDummy(password, this.parameters));
  }

  /** What runs and waits now, for metrics and tests. */
  state(): PasswordHashingState {
    const waiting: Record<string, number> = {};
    for (const [tenant, queue] of this.#tenants) {
      if (queue.waiting.length > 0) waiting[tenant] = queue.waiting.length;
    }
    return { running: this.#running, waiting };
  }

  async #run<T>(tenant: string, job: () => Promise<T>): Promise<T> {
    const queue = this.#queueOf(tenant);
    if (queue.waiting.length === 0 && this.#mayStart(queue)) this.#start(queue);
    else await new Promise<void>((started) => queue.waiting.push(started));
    try {
      return await job();
    } finally {
      this.#running -= 1;
      queue.running -= 1;
      if (queue.running === 0 && queue.waiting.length === 0) this.#tenants.delete(tenant);
      this.#startWaiting();
    }
  }

  #queueOf(tenant: string): TenantQueue {
    let queue = this.#tenants.get(tenant);
    if (!queue) {
      queue = { waiting: [], running: 0, lastServed: -1 };
      this.#tenants.set(tenant, queue);
    }
    return queue;
  }

  #mayStart(queue: TenantQueue): boolean {
    return this.#running < this.#limits.concurrency && queue.running < this.#limits.perTenant;
  }

  #start(queue: TenantQueue): void {
    this.#running += 1;
    queue.running += 1;
    queue.lastServed = this.#served++;
  }

  #startWaiting(): void {
    while (this.#running < this.#limits.concurrency) {
      let next: TenantQueue | undefined;
      for (const queue of this.#tenants.values()) {
        if (queue.waiting.length === 0 || !this.#mayStart(queue)) continue;
        if (
          !next ||
          queue.running < next.running ||
          (queue.running === next.running && queue.lastServed < next.lastServed)
        )
          next = queue;
      }
      if (!next) return;
      this.#start(next);
      next.waiting.shift()!();
    }
  }
}

function checkedLimits(limits: PasswordHashingLimits): PasswordHashingLimits {
  const { concurrency, perTenant } = limits;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1)
    throw new RangeError(`concurrency must be a whole number of at least 1, not ${concurrency}`);
  if (!Number.isSafeInteger(perTenant) || perTenant < 1 || perTenant > concurrency)
    throw new RangeError(
      `perTenant must be a whole number from 1 to concurrency (${concurrency}), not ${perTenant}`,
    );
  return { concurrency, perTenant };
}

/**
 * The process's budget: one, like the thread pool it guards. main.ts sets its limits from the
 * configuration (PASSWORD_HASH_CONCURRENCY, PASSWORD_HASH_CONCURRENCY_PER_TENANT).
 */
export const passwordHashing = new PasswordHashing();
