import { expect } from 'chai';
import { CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import { LeaderElector, type LeaderElectorOptions } from '../../../operator/src/runtime/leader-election.js';
import type { ControlPlane } from '../../harness/control-plane.js';
import { sharedControlPlane } from '../../harness/shared-cluster.js';
import { eventually } from '../../harness/wait.js';

const namespace = 'default';
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface LeaseView {
  metadata: { resourceVersion: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    leaseTransitions?: number;
    renewTime?: string;
    acquireTime?: string;
  };
}

/** An elector plus a record of its callbacks, for assertions. */
interface Candidate {
  elector: LeaderElector;
  started: number[];
  stopped: number[];
  errors: unknown[];
}

describe('LeaderElector against a real API server', function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  let api: CoordinationV1Api;
  let leaseName: string;
  let counter = 0;
  const candidates: Candidate[] = [];

  before(async () => {
    cp = await sharedControlPlane();
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    api = kc.makeApiClient(CoordinationV1Api);
  });

  beforeEach(() => {
    counter += 1;
    leaseName = `election-${process.pid}-${counter}`;
  });

  afterEach(async () => {
    await Promise.all(candidates.splice(0).map((c) => c.elector.stop()));
    await cp.kubectl(['delete', 'lease', leaseName, '-n', namespace, '--ignore-not-found']);
  });

  function candidate(identity: string, overrides: Partial<LeaderElectorOptions> = {}): Candidate {
    const record: Candidate = {
      elector: undefined as unknown as LeaderElector,
      started: [],
      stopped: [],
      errors: [],
    };
    record.elector = new LeaderElector({
      api,
      namespace,
      leaseName,
      identity,
      leaseDurationSeconds: 3,
      renewDeadlineMs: 2_000,
      retryPeriodMs: 500,
      onStartedLeading: () => void record.started.push(Date.now()),
      onStoppedLeading: () => void record.stopped.push(Date.now()),
      onError: (error) => void record.errors.push(error),
      ...overrides,
    });
    candidates.push(record);
    return record;
  }

  async function readLease(): Promise<LeaseView> {
    return JSON.parse(
      await cp.kubectl(['get', 'lease', leaseName, '-n', namespace, '-o', 'json']),
    ) as LeaseView;
  }

  function leaderOf(...group: Candidate[]): Promise<Candidate> {
    return eventually('a leader', () => Promise.resolve(group.find((c) => c.elector.isLeader)), {
      timeoutMs: 20_000,
      intervalMs: 50,
    });
  }

  it('elects exactly one of two replicas and keeps it leading past the lease duration', async () => {
    const a = candidate('replica-a');
    const b = candidate('replica-b');
    a.elector.start();
    b.elector.start();
    const leader = await leaderOf(a, b);
    const follower = leader === a ? b : a;

    const first = await readLease();
    expect(first.spec.holderIdentity).to.equal(leader.elector.identity);
    expect(first.spec.leaseDurationSeconds).to.equal(3);
    // The API server accepts only six fractional digits for MicroTime.
    expect(first.spec.renewTime).to.match(/\.\d{6}Z$/);

    // Longer than the 3 s lease: without renewals the follower would take over.
    await sleep(4_500);
    const later = await readLease();
    expect(later.spec.holderIdentity).to.equal(leader.elector.identity);
    expect(Date.parse(later.spec.renewTime ?? '')).to.be.greaterThan(Date.parse(first.spec.renewTime ?? ''));
    expect(later.spec.leaseTransitions).to.equal(first.spec.leaseTransitions);
    expect(leader.elector.isLeader).to.be.true;
    expect(follower.elector.isLeader).to.be.false;
    expect(leader.started).to.have.length(1);
    expect(leader.stopped).to.have.length(0);
    expect(follower.started).to.have.length(0);
    expect(follower.elector.observedLeader).to.equal(leader.elector.identity);
  });

  it('hands over at once when the leader stops, well before the lease would expire', async () => {
    // A 10 s lease: a takeover within 3 s can only come from the release.
    const options = { leaseDurationSeconds: 10, renewDeadlineMs: 5_000, retryPeriodMs: 500 };
    const a = candidate('replica-a', options);
    a.elector.start();
    await leaderOf(a);
    const b = candidate('replica-b', options);
    b.elector.start();
    await sleep(1_200);
    expect(b.elector.isLeader).to.be.false;
    const before = await readLease();

    await a.elector.stop();
    const stoppedAt = Date.now();
    expect(a.stopped).to.have.length(1);
    expect(a.elector.isLeader).to.be.false;

    await leaderOf(b);
    expect((b.started[0] ?? Infinity) - stoppedAt).to.be.below(3_000);
    const after = await readLease();
    expect(after.spec.holderIdentity).to.equal('replica-b');
    expect(after.spec.leaseTransitions).to.equal((before.spec.leaseTransitions ?? 0) + 1);
    expect(after.spec.leaseDurationSeconds).to.equal(10);
  });

  it('leaves a released lease free of any holder', async () => {
    const a = candidate('replica-a');
    a.elector.start();
    await leaderOf(a);
    await a.elector.stop();
    const lease = await readLease();
    expect(lease.spec.holderIdentity).to.equal(undefined);
    expect(lease.spec.leaseDurationSeconds).to.equal(1);
  });

  it('lets another replica take over a crashed leader once the lease expires, not before', async () => {
    const a = candidate('replica-a');
    a.elector.start();
    await leaderOf(a);
    const b = candidate('replica-b');
    b.elector.start();
    await sleep(700);

    a.elector.abandon();
    const crashedAt = Date.now();
    await leaderOf(b);
    const takeoverMs = (b.started[0] ?? Infinity) - crashedAt;
    // The last renewal was at most one retry period (0.5 s) before the crash, so the 3 s lease
    // cannot expire sooner than 2.5 s after it; allow generous lateness on a loaded machine.
    expect(takeoverMs).to.be.at.least(2_000);
    expect(takeoverMs).to.be.below(8_000);
    expect(a.stopped, 'a crash does not call back').to.have.length(0);
    expect((await readLease()).spec.holderIdentity).to.equal('replica-b');
  });

  it('steps down when it cannot renew within the renew deadline', async () => {
    let apiDown = false;
    const unreachable = () => Promise.reject(new Error('connection refused'));
    // Only the calls the elector makes; each fails while the "network" is down.
    const flaky = {
      readNamespacedLease: (...args: Parameters<CoordinationV1Api['readNamespacedLease']>) =>
        apiDown ? unreachable() : api.readNamespacedLease(...args),
      createNamespacedLease: (...args: Parameters<CoordinationV1Api['createNamespacedLease']>) =>
        apiDown ? unreachable() : api.createNamespacedLease(...args),
      replaceNamespacedLease: (...args: Parameters<CoordinationV1Api['replaceNamespacedLease']>) =>
        apiDown ? unreachable() : api.replaceNamespacedLease(...args),
    } as unknown as CoordinationV1Api;
    const a = candidate('replica-a', { api: flaky });
    a.elector.start();
    await leaderOf(a);

    apiDown = true;
    const downAt = Date.now();
    await eventually('the leader to step down', () => Promise.resolve(a.stopped[0]), {
      timeoutMs: 10_000,
      intervalMs: 50,
    });
    expect(a.elector.isLeader).to.be.false;
    // It must give up before its 3 s lease could expire for the others.
    expect((a.stopped[0] ?? Infinity) - downAt).to.be.below(3_000);
    expect(a.errors.length).to.be.greaterThan(0);

    // Once the API answers again it campaigns and, the lease being its own, leads again.
    apiDown = false;
    await eventually('leading again', () => Promise.resolve(a.started.length === 2 ? true : undefined), {
      timeoutMs: 10_000,
      intervalMs: 50,
    });
  });

  it('does not take a lease another holder keeps renewing', async () => {
    const foreign = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: leaseName, namespace },
      spec: {
        holderIdentity: 'someone-else',
        leaseDurationSeconds: 60,
        renewTime: new Date().toISOString().replace(/Z$/, '000Z'),
      },
    };
    await cp.kubectl(['apply', '-f', '-'], JSON.stringify(foreign));
    const a = candidate('replica-a');
    a.elector.start();
    await sleep(2_000);
    expect(a.elector.isLeader).to.be.false;
    expect(a.started).to.have.length(0);
    expect(a.elector.observedLeader).to.equal('someone-else');
    expect((await readLease()).spec.holderIdentity).to.equal('someone-else');
  });

  it('refuses timings where the renew deadline does not fit in the lease', () => {
    const base = { api, namespace, leaseName: 'unused', identity: 'x' };
    expect(() => new LeaderElector({ ...base, leaseDurationSeconds: 2, renewDeadlineMs: 2_000 })).to.throw(
      RangeError,
    );
    expect(
      () =>
        new LeaderElector({ ...base, leaseDurationSeconds: 3, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }),
    ).to.throw(RangeError);
    expect(() => new LeaderElector({ ...base, identity: '' })).to.throw(RangeError);
  });
});
