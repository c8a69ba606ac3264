import { expect } from 'chai';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../../lib/kube/kube-config.js';
import type { ControlPlane } from '../../harness/control-plane.js';
import { sharedControlPlane } from '../../harness/shared-cluster.js';

/** Established TCP connections from this process to `port` (read from /proc: undici unreferences idle sockets). */
function connectionsTo(port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    const target = (() => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return ''; // closed while listing
      }
    })();
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode) inodes.add(inode);
  }
  let count = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const remotePort = parseInt(fields[2]?.split(':')[1] ?? '', 16);
      if (remotePort === port && fields[3] === '01' && inodes.has(fields[9] ?? '')) count++;
    }
  }
  return count;
}

/** 40 reads, 4 at a time; answers how many connections to the API server they left open. */
async function connectionsOpenedBy(api: CoreV1Api, port: number): Promise<number> {
  const before = connectionsTo(port);
  for (let round = 0; round < 10; round++) {
    await Promise.all(Array.from({ length: 4 }, () => api.listNamespace()));
  }
  return connectionsTo(port) - before;
}

describe('shared Kubernetes connections', function () {
  this.timeout(60_000);
  let cp: ControlPlane;

  before(async () => {
    cp = await sharedControlPlane();
  });

  it('reuses a handful of connections where the stock client opens one per request', async () => {
    const stock = new KubeConfig();
    stock.loadFromFile(cp.kubeconfigPath);
    const port = Number(new URL(stock.getCurrentCluster()!.server).port);
    // Shared first: its few idle connections cannot hide the stock client's many.
    const shared = await connectionsOpenedBy(
      loadKubeConfig(cp.kubeconfigPath).makeApiClient(CoreV1Api),
      port,
    );
    const perRequest = await connectionsOpenedBy(stock.makeApiClient(CoreV1Api), port);
    expect(perRequest, 'the stock client (the reason for sharing)').to.be.at.least(30);
    expect(shared, 'connections for 4 requests in flight').to.be.at.most(8);
  });

  it('keeps answering through the shared pool, including errors', async () => {
    const api = loadKubeConfig(cp.kubeconfigPath).makeApiClient(CoreV1Api);
    const names = await Promise.all(Array.from({ length: 8 }, () => api.readNamespace({ name: 'default' })));
    expect(names.map((n) => n.metadata?.name)).to.deep.equal(Array(8).fill('default'));
    const missing = await api.readNamespace({ name: 'no-such-namespace' }).catch((error: unknown) => error);
    expect(missing).to.have.property('code', 404);
  });
});
