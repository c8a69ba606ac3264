// Leader election on a coordination.k8s.io/v1 Lease, so that of several operator
// replicas only one reconciles. The Lease's resourceVersion arbitrates races: of
// two replicas writing the same version, the API server accepts one and answers
// the other 409. A leader that cannot renew within renewDeadline steps down
// before its lease can expire for the others (renewDeadline < leaseDuration).
import {
  ApiException,
  Observable,
  V1MicroTime,
  type ConfigurationOptions,
  type CoordinationV1Api,
  type ObservableMiddleware,
  type V1Lease,
  type V1LeaseSpec,
} from '@kubernetes/client-node';

export type ElectionPhase = 'acquire' | 'renew' | 'release' | 'callback';

export interface LeaderElectorOptions {
  api: CoordinationV1Api;
  namespace: string;
  leaseName: string;
  /** Unique per replica, e.g. the pod name. */
  identity: string;
  /** How long others wait after the last renewal before taking over (default 15). */
  leaseDurationSeconds?: number;
  /** A leader that has not renewed for this long steps down (default 10 000). */
  renewDeadlineMs?: number;
  /** Pause between attempts to acquire or renew (default 2 000). */
  retryPeriodMs?: number;
  /** Called, not awaited, when this replica becomes leader. */
  onStartedLeading?: () => void | Promise<void>;
  /** Called when this replica stops leading: lost lease, missed renew deadline or stop(). */
  onStoppedLeading?: () => void | Promise<void>;
  /** API failures and callback errors; the elector keeps going after each. */
  onError?: (error: unknown, phase: ElectionPhase) => void;
}

type Attempt = { acquired: true } | { acquired: false; heldByOther: boolean };

export class LeaderElector {
  readonly identity: string;
  private readonly api: CoordinationV1Api;
  private readonly namespace: string;
  private readonly leaseName: string;
  private readonly leaseDurationSeconds: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly options: LeaderElectorOptions;

  private running = false;
  private leading = false;
  private lastRenewAt = 0;
  private observedHolder: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<void> | undefined;

  constructor(options: LeaderElectorOptions) {
    this.options = options;
    this.api = options.api;
    this.identity = options.identity;
    this.namespace = options.namespace;
    this.leaseName = options.leaseName;
    this.leaseDurationSeconds = options.leaseDurationSeconds ?? 15;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    if (!options.identity) throw new RangeError('leader election needs a non-empty identity');
    if (!Number.isInteger(this.leaseDurationSeconds) || this.leaseDurationSeconds < 1) {
      throw new RangeError('leaseDurationSeconds must be a whole number of seconds, at least 1');
    }
    if (!(this.renewDeadlineMs < this.leaseDurationSeconds * 1000)) {
      throw new RangeError('renewDeadlineMs must be shorter than the lease duration');
    }
    if (!(this.retryPeriodMs > 0 && this.retryPeriodMs < this.renewDeadlineMs)) {
      throw new RangeError('retryPeriodMs must be positive and shorter than renewDeadlineMs');
    }
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** The holder seen on the Lease at the last attempt ('' when released), if any. */
  get observedLeader(): string | undefined {
    return this.observedHolder;
  }

  /** Starts campaigning; after losing the lease the elector campaigns again until stop(). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /** Stops campaigning and, when holding the Lease, releases it so another replica takes over at once. */
  async stop(): Promise<void> {
    const wasStarted = this.running || this.current !== undefined;
    this.running = false;
    clearTimeout(this.timer);
    await this.current;
    if (!wasStarted) return;
    // Release even when not notified as leader: the attempt in flight at stop() may just have won.
    try {
      await this.release();
    } catch (error) {
      this.report(error, 'release');
    }
    if (!this.leading) return;
    this.leading = false;
    await this.invoke(this.options.onStoppedLeading);
  }

  /** Test hook simulating a crash: stops renewing without releasing the Lease or calling back. */
  abandon(): void {
    this.running = false;
    this.leading = false;
    clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.current = this.cycle();
    }, ms);
  }

  /** One acquire-or-renew attempt and the state change it implies; never rejects. */
  private async cycle(): Promise<void> {
    const startedAt = Date.now();
    // A leader's attempt may not outlive its renew deadline, or a hung request would keep it leading.
    const budgetMs = this.leading
      ? Math.max(1, this.lastRenewAt + this.renewDeadlineMs - startedAt)
      : this.renewDeadlineMs;
    let attempt: Attempt;
    try {
      attempt = await this.tryAcquireOrRenew(new Date(startedAt), budgetMs);
    } catch (error) {
      attempt = { acquired: false, heldByOther: false };
      this.report(error, this.leading ? 'renew' : 'acquire');
    }
    // After stop() or abandon() the outcome changes nothing; stop() releases what this attempt won.
    if (!this.running) return;

    if (attempt.acquired) {
      // The renewal counts from when it was sent, as the Lease's renewTime does.
      this.lastRenewAt = startedAt;
      if (!this.leading) {
        this.leading = true;
        void this.invoke(this.options.onStartedLeading);
      }
    } else if (
      this.leading &&
      (attempt.heldByOther || Date.now() - this.lastRenewAt >= this.renewDeadlineMs)
    ) {
      this.leading = false;
      void this.invoke(this.options.onStoppedLeading);
    }

    // Candidates spread their retries so replicas started together do not collide each period.
    const jitter = this.leading ? 0 : Math.random() * 0.2 * this.retryPeriodMs;
    this.schedule(this.retryPeriodMs + jitter);
  }

  private async tryAcquireOrRenew(now: Date, budgetMs: number): Promise<Attempt> {
    const options = withDeadline(budgetMs);
    const ref = { name: this.leaseName, namespace: this.namespace };
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease(ref, options);
    } catch (error) {
      if (!hasCode(error, 404)) throw error;
      try {
        await this.api.createNamespacedLease(
          { namespace: this.namespace, body: this.newLease(now) },
          options,
        );
        this.observedHolder = this.identity;
        return { acquired: true };
      } catch (createError) {
        if (hasCode(createError, 409)) return { acquired: false, heldByOther: true };
        throw createError;
      }
    }

    const spec: V1LeaseSpec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    this.observedHolder = holder;
    if (holder !== '' && holder !== this.identity && !isExpired(spec, now, this.leaseDurationSeconds)) {
      return { acquired: false, heldByOther: true };
    }
    const takingOver = holder !== this.identity;
    const body: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: this.identity,
        leaseDurationSeconds: this.leaseDurationSeconds,
        renewTime: microTime(now),
        acquireTime: takingOver ? microTime(now) : spec.acquireTime,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver ? 1 : 0),
      },
    };
    try {
      // Carries the read resourceVersion: a concurrent writer makes this a 409, not a silent overwrite.
      await this.api.replaceNamespacedLease({ ...ref, body }, options);
    } catch (error) {
      if (hasCode(error, 409)) return { acquired: false, heldByOther: takingOver };
      throw error;
    }
    this.observedHolder = this.identity;
    return { acquired: true };
  }

  private async release(): Promise<void> {
    const ref = { name: this.leaseName, namespace: this.namespace };
    const options = withDeadline(this.renewDeadlineMs);
    const lease = await this.api.readNamespacedLease(ref, options);
    if (lease.spec?.holderIdentity !== this.identity) return;
    const now = new Date();
    const body: V1Lease = {
      ...lease,
      // No holder means free to take now; the 1 s duration covers electors that only check expiry.
      spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: microTime(now) },
    };
    await this.api.replaceNamespacedLease({ ...ref, body }, options);
    this.observedHolder = '';
  }

  private newLease(now: Date): V1Lease {
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.leaseName, namespace: this.namespace },
      spec: {
        holderIdentity: this.identity,
        leaseDurationSeconds: this.leaseDurationSeconds,
        acquireTime: microTime(now),
        renewTime: microTime(now),
        leaseTransitions: 0,
      },
    };
  }

  private async invoke(callback: (() => void | Promise<void>) | undefined): Promise<void> {
    try {
      await callback?.();
    } catch (error) {
      this.report(error, 'callback');
    }
  }

  private report(error: unknown, phase: ElectionPhase): void {
    try {
      this.options.onError?.(error, phase);
    } catch {
      // An error reporter that throws must not stop the election loop.
    }
  }
}

/**
 * The API server parses MicroTime only with exactly six fractional digits. A plain Date
 * serialises with three and is rejected (400); V1MicroTime's toISOString pads to six.
 */
function microTime(date: Date): V1MicroTime {
  return new V1MicroTime(date.getTime());
}

/**
 * Whether the lease ran out by `now`. The 2.0.1 deserialiser leaves MicroTime fields as the
 * server's strings despite their Date type, so both forms are read.
 */
export function isExpired(spec: V1LeaseSpec, now: Date, fallbackDurationSeconds: number): boolean {
  const renewed = timeOf(spec.renewTime ?? spec.acquireTime);
  if (renewed === undefined) return true;
  const durationSeconds = spec.leaseDurationSeconds ?? fallbackDurationSeconds;
  return renewed + durationSeconds * 1000 <= now.getTime();
}

function timeOf(value: unknown): number | undefined {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'string') {
    const parsed = Date.parse(value);
    return Number.isNaN(parsed) ? undefined : parsed;
  }
  return undefined;
}

function hasCode(error: unknown, code: number): boolean {
  return error instanceof ApiException && error.code === code;
}

/** Call options that abort the request after `ms`, so no attempt hangs past its deadline. */
function withDeadline(ms: number): ConfigurationOptions<ObservableMiddleware> {
  const signal = AbortSignal.timeout(ms);
  return {
    middleware: [
      {
        pre: (request) => {
          request.setSignal(signal);
          return new Observable(Promise.resolve(request));
        },
        post: (response) => new Observable(Promise.resolve(response)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}
