import { expect } from 'chai';
import { conditionTypes, type Condition, type Tenant } from '../../../lib/tenant/index.js';
import { rotationDue, rotationIntervalMs, rotationToken } from '../../../operator/src/controller/database.js';
import {
  allStepsTrue,
  mergePatch,
  phaseFor,
  setCondition,
  setSummaryConditions,
} from '../../../operator/src/controller/status.js';

const now = new Date('2026-11-28T12:00:00Z');

function tenant(overrides: Partial<Tenant['spec']> = {}, meta: Partial<Tenant['metadata']> = {}): Tenant {
  return {
    apiVersion: 'tenantry.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name: 'acme', generation: 3, ...meta },
    spec: { plan: 'starter', owner: { email: 'o@acme.example' }, ...overrides },
  };
}

describe('operator status helpers', () => {
  it('keeps lastTransitionTime unless the status flips', () => {
    const first = setCondition([], 'Database', { status: 'False', reason: 'X', message: 'm' }, 1, now);
    const later = new Date(now.getTime() + 60_000);
    const same = setCondition(first, 'Database', { status: 'False', reason: 'Y', message: 'n' }, 2, later);
    expect(same[0]?.lastTransitionTime).to.equal(now.toISOString());
    expect(same[0]?.reason).to.equal('Y');
    const flipped = setCondition(
      same,
      'Database',
      { status: 'True', reason: 'Ready', message: 'ok' },
      2,
      later,
    );
    expect(flipped[0]?.lastTransitionTime).to.equal(later.toISOString());
  });

  it('orders conditions by step and keeps one per type', () => {
    let conditions: Condition[] = [];
    for (const type of ['Stalled', 'Workload', 'Namespace', 'Ready', 'Reconciling', 'Namespace'] as const) {
      conditions = setCondition(conditions, type, { status: 'True', reason: 'r', message: 'm' }, 1, now);
    }
    expect(conditions.map((c) => c.type)).to.deep.equal([
      'Namespace',
      'Workload',
      'Ready',
      'Reconciling',
      'Stalled',
    ]);
  });

  describe('summary conditions by the kstatus rules', () => {
    const summary = (progress: Parameters<typeof setSummaryConditions>[1]) =>
      Object.fromEntries(
        setSummaryConditions([], progress, 4, now).map((c) => [
          c.type,
          { status: c.status, reason: c.reason, message: c.message, gen: c.observedGeneration },
        ]),
      );

    it('done: Ready, neither Reconciling nor Stalled', () => {
      const s = summary({ state: 'done' });
      expect(s.Ready).to.include({ status: 'True', reason: 'Provisioned', gen: 4 });
      expect(s.Reconciling).to.include({ status: 'False', reason: 'Reconciled', gen: 4 });
      expect(s.Stalled).to.include({ status: 'False', reason: 'Reconciled', gen: 4 });
    });

    it('working: Reconciling with the step’s reason, not Ready, not Stalled', () => {
      const s = summary({
        state: 'working',
        step: 'Messaging',
        reason: 'MessagingUnreachable',
        message: 'down',
      });
      expect(s.Reconciling).to.include({
        status: 'True',
        reason: 'MessagingUnreachable',
        message: 'Messaging: down',
      });
      expect(s.Ready).to.include({ status: 'False', reason: 'MessagingUnreachable' });
      expect(s.Stalled).to.include({ status: 'False', reason: 'Reconciling' });
    });

    it('stalled: Stalled with the reason, Reconciling False (kstatus reads the first True of the two)', () => {
      const s = summary({ state: 'stalled', step: 'Database', reason: 'NameConflict', message: 'taken' });
      expect(s.Stalled).to.include({
        status: 'True',
        reason: 'NameConflict',
        message: 'Database: taken',
        gen: 4,
      });
      expect(s.Reconciling).to.include({ status: 'False', reason: 'Stalled' });
      expect(s.Ready).to.include({ status: 'False', reason: 'NameConflict' });
    });
  });

  it('is Ready only when every step is True for the current generation', () => {
    let conditions: Condition[] = [];
    for (const type of conditionTypes)
      conditions = setCondition(conditions, type, { status: 'True', reason: 'r', message: 'm' }, 3, now);
    expect(allStepsTrue(conditions, 3)).to.be.true;
    expect(allStepsTrue(conditions, 4)).to.be.false;
    conditions = setCondition(conditions, 'Quota', { status: 'False', reason: 'r', message: 'm' }, 3, now);
    expect(allStepsTrue(conditions, 3)).to.be.false;
  });

  it('derives the phase', () => {
    expect(phaseFor(tenant(), true)).to.equal('Ready');
    expect(phaseFor(tenant({ suspended: true }), true)).to.equal('Suspended');
    expect(phaseFor(tenant(), false)).to.equal('Provisioning');
    const wasReady = { ...tenant(), status: { phase: 'Ready' as const } };
    expect(phaseFor(wasReady, false)).to.equal('Degraded');
    expect(phaseFor(tenant({}, { deletionTimestamp: now.toISOString() }), true)).to.equal('Deleting');
  });

  it('builds merge patches that null removed keys and skip unchanged ones', () => {
    const before = {
      phase: 'Ready',
      database: { username: 'a', retiringUsername: 'b' },
      conditions: [{ x: 1 }],
    };
    const after = { phase: 'Ready', database: { username: 'a' }, conditions: [{ x: 1 }] };
    expect(mergePatch(before, after)).to.deep.equal({ database: { retiringUsername: null } });
    expect(mergePatch(after, after)).to.equal(undefined);
    expect(mergePatch(after, { ...after, conditions: [{ x: 2 }] })).to.deep.equal({ conditions: [{ x: 2 }] });
  });
});

describe('password rotation decisions', () => {
  it('parses intervals in hours and days', () => {
    expect(rotationIntervalMs('36h')).to.equal(36 * 3_600_000);
    expect(rotationIntervalMs('30d')).to.equal(30 * 86_400_000);
    expect(rotationIntervalMs('0d')).to.equal(undefined);
    expect(rotationIntervalMs(undefined)).to.equal(undefined);
  });

  it('rotates when the trigger or the annotation changes, not on first sight', () => {
    const t = tenant({ database: { passwordRotation: { trigger: 'one' } } });
    expect(rotationDue(t, {}, now)).to.equal(undefined);
    expect(rotationDue(t, { database: { lastRotationTrigger: rotationToken(t) } }, now)).to.equal(undefined);
    expect(rotationDue(t, { database: { lastRotationTrigger: 'zero|' } }, now)).to.equal('trigger');
    const annotated = tenant({}, { annotations: { 'tenantry.io/rotate-password': '2026-11-28' } });
    expect(rotationDue(annotated, { database: { lastRotationTrigger: '|' } }, now)).to.equal('trigger');
  });

  it('rotates when the password is older than the interval', () => {
    const t = tenant({ database: { passwordRotation: { interval: '24h' } } });
    const token = rotationToken(t);
    const fresh = { database: { lastRotationTrigger: token, passwordRotatedAt: '2026-11-28T00:00:00Z' } };
    const old = { database: { lastRotationTrigger: token, passwordRotatedAt: '2026-11-27T11:59:59Z' } };
    expect(rotationDue(t, fresh, now)).to.equal(undefined);
    expect(rotationDue(t, old, now)).to.equal('interval');
  });
});
