import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { startControlPlane, kubernetesVersion, type ControlPlane } from './control-plane.js';
import { sharedControlPlane } from './shared-cluster.js';
import { eventually } from './wait.js';

const widgetCrd = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.harness.tenantry.io
spec:
  group: harness.tenantry.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1}
`;

function isGone(cp: ControlPlane, args: string[]): Promise<true | undefined> {
  return cp
    .kubectl(['get', ...args, '--ignore-not-found', '-o', 'name'])
    .then((out) => (out.trim() === '' ? true : undefined));
}

/** Processes whose command line mentions `text`, read from /proc. */
function processesMentioning(text: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe('control-plane harness', function () {
  this.timeout(120_000);
  let cp: ControlPlane;

  before(async () => {
    cp = await sharedControlPlane();
  });

  it('serves the pinned, stamped Kubernetes version', async () => {
    const version = JSON.parse(await cp.kubectl(['version', '-o', 'json'])) as {
      clientVersion: { gitVersion: string };
      serverVersion: { gitVersion: string };
    };
    expect(version.serverVersion.gitVersion).to.equal(kubernetesVersion);
    expect(version.clientVersion.gitVersion).to.equal(kubernetesVersion);
  });

  it('serves a CRD applied with kubectl', async () => {
    await cp.kubectl(['apply', '-f', '-'], widgetCrd);
    await cp.kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=30s',
      'crd/widgets.harness.tenantry.io',
    ]);
    await cp.kubectl(['create', 'namespace', 'harness-crd']);
    await cp.kubectl(
      ['apply', '-n', 'harness-crd', '-f', '-'],
      'apiVersion: harness.tenantry.io/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n',
    );
    const widget = JSON.parse(
      await cp.kubectl(['get', '-n', 'harness-crd', 'widget', 'w1', '-o', 'json']),
    ) as {
      spec: { size: number };
    };
    expect(widget.spec.size).to.equal(3);
    // The schema is enforced by the real apiserver.
    const rejected = await cp
      .kubectl(
        ['apply', '-n', 'harness-crd', '-f', '-'],
        'apiVersion: harness.tenantry.io/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 0}\n',
      )
      .then(
        () => '',
        (error: Error) => error.message,
      );
    expect(rejected).to.match(/spec.size/);
  });

  it('finishes deleting a namespace that holds a ConfigMap', async () => {
    await cp.kubectl(['create', 'namespace', 'harness-ns']);
    await cp.kubectl(['create', 'configmap', 'data', '-n', 'harness-ns', '--from-literal=k=v']);
    await cp.kubectl(['delete', 'namespace', 'harness-ns', '--wait=false']);
    await eventually('namespace harness-ns to be gone', () => isGone(cp, ['namespace', 'harness-ns']), {
      timeoutMs: 60_000,
    });
  });

  it('garbage-collects dependents when their owner is deleted', async () => {
    await cp.kubectl(['create', 'namespace', 'harness-gc']);
    await cp.kubectl(['create', 'configmap', 'owner', '-n', 'harness-gc']);
    const uid = (
      await cp.kubectl(['get', 'configmap', 'owner', '-n', 'harness-gc', '-o', 'jsonpath={.metadata.uid}'])
    ).trim();
    await cp.kubectl(
      ['apply', '-n', 'harness-gc', '-f', '-'],
      `apiVersion: v1
kind: ConfigMap
metadata:
  name: dependent
  ownerReferences:
  - {apiVersion: v1, kind: ConfigMap, name: owner, uid: ${uid}}
`,
    );
    await cp.kubectl(['delete', 'configmap', 'owner', '-n', 'harness-gc']);
    await eventually('the dependent ConfigMap to be collected', () =>
      isGone(cp, ['configmap', 'dependent', '-n', 'harness-gc']),
    );
  });

  it('creates a ReplicaSet for a Deployment, and Running pods on the fake node', async () => {
    await cp.kubectl(['create', 'namespace', 'harness-deploy']);
    await cp.kubectl([
      'create',
      'deployment',
      'web',
      '-n',
      'harness-deploy',
      '--image=registry.invalid/web:1',
      '--replicas=2',
    ]);
    await eventually('a ReplicaSet owned by the Deployment', async () => {
      const out = await cp.kubectl([
        'get',
        'rs',
        '-n',
        'harness-deploy',
        '-l',
        'app=web',
        '-o',
        'jsonpath={.items[*].metadata.ownerReferences[0].name}',
      ]);
      return out.trim() === 'web' ? true : undefined;
    });
    if (!cp.hasKwok) return;
    await eventually(
      'two Running pods',
      async () => {
        const phases = await cp.kubectl([
          'get',
          'pods',
          '-n',
          'harness-deploy',
          '-o',
          'jsonpath={.items[*].status.phase}',
        ]);
        return phases.trim() === 'Running Running' ? true : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const available = await cp.kubectl([
      'get',
      'deploy',
      'web',
      '-n',
      'harness-deploy',
      '-o',
      'jsonpath={.status.availableReplicas}',
    ]);
    expect(available.trim()).to.equal('2');
  });

  it('restarts the apiserver in place and keeps its data', async () => {
    await cp.kubectl(['create', 'namespace', 'harness-restart']);
    await cp.restartApiServer();
    const out = await cp.kubectl(['get', 'namespace', 'harness-restart', '-o', 'name']);
    expect(out.trim()).to.equal('namespace/harness-restart');
  });
});

describe('control-plane lifecycle', function () {
  this.timeout(240_000);

  it('starts and stops three times in a row, two at once the first time, leaving nothing behind', async () => {
    for (let round = 0; round < 3; round++) {
      const instances = await Promise.all(
        Array.from({ length: round === 0 ? 2 : 1 }, () => startControlPlane({ kwok: round === 0 })),
      );
      for (const instance of instances) {
        expect(await instance.kubectl(['get', 'namespace', 'default', '-o', 'name'])).to.contain(
          'namespace/default',
        );
      }
      if (instances.length === 2) expect(instances[0]!.server).not.to.equal(instances[1]!.server);
      const leftovers = instances.map((i) => ({ dir: i.dir, pids: [...i.pids] }));
      expect(leftovers.every((l) => l.pids.length >= 4)).to.be.true;
      await Promise.all(instances.map((i) => i.stop()));
      for (const { dir, pids } of leftovers) {
        expect(existsSync(dir), `${dir} removed`).to.be.false;
        expect(processesMentioning(dir), `processes still using ${dir}`).to.deep.equal([]);
        for (const pid of pids) expect(existsSync(`/proc/${pid}`), `pid ${pid} gone`).to.be.false;
      }
    }
  });
});
