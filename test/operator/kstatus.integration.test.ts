// The Tenant's status as GitOps tools see it: the kstatus library itself
// (sigs.k8s.io/cli-utils, through tools/kstatus) reads real Tenants written by
// the real operator on the control plane, with real PostgreSQL and RabbitMQ.
// Current once Ready; InProgress while provisioning and while RabbitMQ's
// management API is down; Failed for a spec that cannot work and that the CRD
// cannot reject at admission (a name another owner holds).
import { expect } from 'chai';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { ownershipMarker, tenantNames } from '../../lib/tenant/index.js';
import { kstatus, type KstatusVerdict } from '../harness/kstatus.js';
import { startTestPlatform, type TestPlatform } from '../harness/platform.js';
import { serviceUrls, withPostgresAdmin } from '../harness/services.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { eventually } from '../harness/wait.js';

interface TenantJson {
  metadata: { name: string; uid: string; generation: number };
  status?: {
    observedGeneration?: number;
    conditions?: {
      type: string;
      status: string;
      reason: string;
      message: string;
      observedGeneration?: number;
    }[];
  };
}

describe('Tenant status by kstatus (real operator, control plane, PostgreSQL, RabbitMQ)', function () {
  this.timeout(420_000);
  let platform: TestPlatform;
  let management: TcpProxy;

  const getTenant = async (name: string): Promise<TenantJson> =>
    JSON.parse(await platform.cp.kubectl(['get', 'tenant', name, '-o', 'json'])) as TenantJson;
  const condition = (t: TenantJson, type: string) => t.status?.conditions?.find((c) => c.type === type);
  /** Every condition and the status itself speak of the Tenant's current generation. */
  const expectObservedEverywhere = (t: TenantJson) => {
    expect(t.status?.observedGeneration).to.equal(t.metadata.generation);
    for (const c of t.status?.conditions ?? [])
      expect(c.observedGeneration, c.type).to.equal(t.metadata.generation);
  };

  before(async () => {
    // The operator reaches RabbitMQ's management API through a proxy the test can take down.
    const target = new URL(serviceUrls.rabbitmqManagement);
    management = await startTcpProxy(Number(target.port || 15672), target.hostname);
    const proxied = new URL(serviceUrls.rabbitmqManagement);
    proxied.port = String(management.port);
    platform = await startTestPlatform('kstatus', { RABBITMQ_MANAGEMENT_URL: proxied.toString() });
  });

  after(async () => {
    await management?.resume().catch(() => undefined);
    await platform?.cleanup();
    await management?.close();
  });

  it('is InProgress while provisioning and Current once Ready', async () => {
    const name = platform.tenantName('ready');
    // Every version of the Tenant the API server holds, from creation to Ready.
    const seen: TenantJson[] = [];
    let watchError: Error | undefined;
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(platform.cp.kubeconfigPath);
    const open = () =>
      new Watch(kubeConfig).watch(
        '/apis/tenantry.io/v1alpha1/tenants',
        { fieldSelector: `metadata.name=${name}` },
        (_type: string, object: TenantJson) => seen.push(structuredClone(object)),
        (error: unknown) => {
          if (error) watchError = error instanceof Error ? error : new Error(JSON.stringify(error));
        },
      );
    // A control plane that has just started may answer 429 for a while (priority and fairness):
    // the watch must be running before the Tenant exists, so that it sees every version.
    const watch = await eventually(
      'the watch to start',
      async () => {
        watchError = undefined;
        const controller = await open();
        await new Promise((ok) => setTimeout(ok, 500));
        // Set by the done callback meanwhile, which the compiler cannot see.
        const failed = watchError as Error | undefined;
        if (!failed) return controller;
        controller.abort();
        throw failed;
      },
      { timeoutMs: 60_000, intervalMs: 1000 },
    );
    try {
      await platform.applyTenant(name);
      await platform.waitReady(name, 150_000);
      await eventually('the watch to deliver the Ready version', () => {
        if (watchError) throw new Error(`the watch ended: ${watchError.message}`);
        if (seen.length === 0) throw new Error('the watch delivered nothing');
        return Promise.resolve(seen.some((t) => condition(t, 'Ready')?.status === 'True') ? true : undefined);
      });
    } finally {
      watch.abort();
    }
    const verdicts: KstatusVerdict[] = [];
    for (const t of seen) verdicts.push(await kstatus(t));
    const written = seen
      .map((t, i) => ({ t, verdict: verdicts[i]! }))
      .filter(({ t }) => t.status?.conditions);
    // The operator's first status cannot be Ready (the worker Deployment was only just created).
    const first = written[0]!;
    expect(first.verdict.status).to.equal('InProgress');
    expect(condition(first.t, 'Reconciling')).to.include({ status: 'True' });
    expect(first.verdict.message).to.equal(condition(first.t, 'Reconciling')?.message);
    // Never Failed on the way, and Current at the end.
    expect(verdicts.map((v) => v.status)).not.to.include('Failed');
    const last = written.at(-1)!;
    expect(last.verdict.status).to.equal('Current');

    const ready = await getTenant(name);
    expect((await kstatus(ready)).status).to.equal('Current');
    expect(condition(ready, 'Reconciling')).to.include({ status: 'False' });
    expect(condition(ready, 'Stalled')).to.include({ status: 'False' });
    expectObservedEverywhere(ready);
    // YAML from kubectl reads the same.
    const yaml = await platform.cp.kubectl(['get', 'tenant', name, '-o', 'yaml']);
    expect((await kstatus(yaml)).status).to.equal('Current');
  });

  it('is InProgress, with the reason, while RabbitMQ is down, and Current when it is back', async () => {
    const name = platform.tenantName('mqdown');
    await management.pause();
    try {
      await platform.applyTenant(name);
      const down = await eventually(
        `tenant ${name} to report MessagingUnreachable`,
        async () => {
          const t = await getTenant(name);
          return condition(t, 'Messaging')?.reason === 'MessagingUnreachable' ? t : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 500 },
      );
      const verdict = await kstatus(down);
      expect(verdict.status).to.equal('InProgress');
      expect(verdict.message).to.contain('Messaging:');
      expect(condition(down, 'Reconciling')).to.include({ status: 'True', reason: 'MessagingUnreachable' });
      expect(condition(down, 'Stalled')).to.include({ status: 'False' });
      expect(condition(down, 'Ready')).to.include({ status: 'False', reason: 'MessagingUnreachable' });
      expectObservedEverywhere(down);
    } finally {
      await management.resume();
    }
    const ready = await platform.waitReady(name, 150_000);
    expect((await kstatus(ready)).status).to.equal('Current');
  });

  it('is Failed, with a Stalled event, for a name another owner holds', async () => {
    const name = platform.tenantName('taken');
    const role = tenantNames(name).loginRoles[0];
    await withPostgresAdmin(async (c) => {
      await c.query(`CREATE ROLE "${role}" LOGIN`);
      await c.query(`COMMENT ON ROLE "${role}" IS '${ownershipMarker('uid-of-someone-else')}'`);
    });
    await platform.applyTenant(name);
    const stalled = await eventually(
      `tenant ${name} to be Stalled`,
      async () => {
        const t = await getTenant(name);
        return condition(t, 'Stalled')?.status === 'True' ? t : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    const verdict = await kstatus(stalled);
    expect(verdict.status).to.equal('Failed');
    expect(verdict.message).to.contain(`role "${role}"`);
    expect(verdict.conditions).to.deep.include({
      type: 'Stalled',
      status: 'True',
      reason: 'NameConflict',
      message: condition(stalled, 'Stalled')?.message,
    });
    expect(condition(stalled, 'Reconciling')).to.include({ status: 'False', reason: 'Stalled' });
    expectObservedEverywhere(stalled);
    const events = await eventually('a Stalled event', async () => {
      const out = await platform.cp.kubectl([
        'get',
        'events',
        '-n',
        'default',
        '--field-selector',
        `involvedObject.name=${name},reason=Stalled`,
        '-o',
        'json',
      ]);
      const items = (JSON.parse(out) as { items: { type: string; message: string }[] }).items;
      return items.length > 0 ? items : undefined;
    });
    expect(events[0]).to.include({ type: 'Warning' });
    expect(events[0]?.message).to.contain('cannot progress until the Tenant is changed');
  });
});
