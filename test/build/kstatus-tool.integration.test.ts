// tools/kstatus, as built by `make tools`: the verdicts of the kstatus library
// on hand-written Tenants, and its answers to input that is not one object.
import { execFile } from 'node:child_process';
import { expect } from 'chai';
import { toolPath } from '../harness/control-plane.js';
import { kstatus } from '../harness/kstatus.js';

function run(args: string[], input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(toolPath('kstatus'), args, { timeout: 10_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? -1) : 0, stdout, stderr }),
    );
    child.stdin?.end(input);
  });
}

const tenant = (generation: number, observed: number, conditions: [string, string, string?][]) => ({
  apiVersion: 'tenantry.io/v1alpha1',
  kind: 'Tenant',
  metadata: { name: 'acme', generation },
  status: {
    observedGeneration: observed,
    conditions: conditions.map(([type, status, reason = 'R']) => ({
      type,
      status,
      reason,
      message: `${type} m`,
    })),
  },
});

describe('tools/kstatus (sigs.k8s.io/cli-utils status.Compute)', function () {
  this.timeout(30_000);

  it('reads the Tenant conditions the way the library does', async () => {
    const ready = [
      ['Ready', 'True'],
      ['Reconciling', 'False'],
      ['Stalled', 'False'],
    ] as [string, string][];
    expect((await kstatus(tenant(2, 2, ready))).status).to.equal('Current');
    // An unobserved generation is InProgress whatever the conditions say.
    const unobserved = await kstatus(tenant(3, 2, ready));
    expect(unobserved.status).to.equal('InProgress');
    expect(unobserved.message).to.contain('generation is 3');
    const stalled = await kstatus(
      tenant(2, 2, [
        ['Ready', 'False'],
        ['Stalled', 'True', 'NameConflict'],
      ]),
    );
    expect(stalled).to.include({ status: 'Failed', message: 'Stalled m' });
    expect(stalled.conditions[0]).to.include({ type: 'Stalled', reason: 'NameConflict' });
    const working = await kstatus(
      tenant(2, 2, [
        ['Ready', 'False'],
        ['Reconciling', 'True', 'RollingOut'],
      ]),
    );
    expect(working).to.include({ status: 'InProgress', message: 'Reconciling m' });
    expect((await kstatus(tenant(2, 2, [['Ready', 'False']]))).status).to.equal('InProgress');
  });

  it('reads YAML as well as JSON', async () => {
    const yaml =
      'apiVersion: tenantry.io/v1alpha1\nkind: Tenant\nmetadata: {name: a, generation: 1}\nstatus:\n  observedGeneration: 1\n  conditions: [{type: Ready, status: "True", reason: R, message: m}]\n';
    expect((await kstatus(yaml)).status).to.equal('Current');
  });

  it('refuses input that is not one Kubernetes object, with exit code 1 and a reason', async () => {
    for (const [input, reason] of [
      ['', 'input is empty'],
      ['x: [', 'input is not JSON or YAML'],
      ['[1, 2]', 'input is not a Kubernetes object'],
      ['{"metadata": {"name": "a"}}', 'input is not a Kubernetes object'],
      ['{"apiVersion": "v1", "kind": "List", "items": []}', 'input is a list'],
      [
        '{"apiVersion": "tenantry.io/v1alpha1", "kind": "Tenant", "metadata": {"name": "a", "generation": "two"}}',
        'metadata.generation',
      ],
    ]) {
      const out = await run([], input!);
      expect(out.code, input).to.equal(1);
      expect(out.stdout, input).to.equal('');
      expect(out.stderr, input).to.contain(reason);
    }
  });

  it('takes no arguments (exit code 2)', async () => {
    const out = await run(['extra'], '{}');
    expect(out.code).to.equal(2);
    expect(out.stderr).to.contain('usage: kstatus');
  });
});
