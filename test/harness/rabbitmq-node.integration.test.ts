// The private RabbitMQ node of test/harness/rabbitmq-node.ts: it serves AMQP
// and the management API on its own loopback ports, runs with the file limit
// asked for, survives an application restart, and leaves nothing behind.
import { existsSync, readFileSync } from 'node:fs';
import amqp from 'amqplib';
import { expect } from 'chai';
import { RabbitMqNode } from './rabbitmq-node.js';
import { serviceUrls } from './services.js';
import { eventually } from './wait.js';

interface Listener {
  protocol: string;
  ip_address: string;
  port: number;
  socket_opts?: { ip?: string };
}

/** Listening TCP sockets on 127.0.0.1 from /proc/net/tcp (state 0A), by port. */
function loopbackListeners(): Set<number> {
  const ports = new Set<number>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const [, local, , state] = line.trim().split(/\s+/);
    const [ip, port] = (local ?? '').split(':');
    if (state === '0A' && ip === '0100007F' && port) ports.add(parseInt(port, 16));
  }
  return ports;
}

/** Every listening TCP port on any address, IPv4 and IPv6. */
function allListeners(): Map<number, string[]> {
  const ports = new Map<number, string[]>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      const at = (local ?? '').lastIndexOf(':');
      if (state !== '0A' || at < 0) continue;
      const port = parseInt((local ?? '').slice(at + 1), 16);
      ports.set(port, [...(ports.get(port) ?? []), (local ?? '').slice(0, at)]);
    }
  }
  return ports;
}

describe('harness: a private RabbitMQ node', function () {
  this.timeout(240_000);
  let node: RabbitMqNode | undefined;

  before(async () => {
    node = await RabbitMqNode.start({ label: 'tenantry-harness-test', fileLimit: 4096 });
  });

  after(async () => {
    await node?.stop();
  });

  it('listens on its own ports, on loopback only', async () => {
    const ports = [node!.amqpPort, node!.managementPort, node!.distPort];
    expect(new Set(ports).size).to.equal(3);
    const shared = new URL(serviceUrls.rabbitmq).port || '5672';
    expect(ports.map(String)).not.to.include(shared);
    const overview = await node!.management<{ listeners: Listener[]; node: string }>('/overview');
    expect(overview.node).to.equal(node!.nodeName);
    const byProtocol = new Map(overview.listeners.map((l) => [l.protocol, l]));
    expect(byProtocol.get('amqp')).to.include({ ip_address: '127.0.0.1', port: node!.amqpPort });
    expect(byProtocol.get('clustering')).to.include({ ip_address: '127.0.0.1', port: node!.distPort });
    // The management listener reports "::" as its address but binds where `management.tcp.ip` says.
    expect(byProtocol.get('http')?.socket_opts?.ip).to.equal('127.0.0.1');
    const loopback = loopbackListeners();
    const everywhere = allListeners();
    for (const port of ports) {
      expect(loopback.has(port), `port ${port} listens on 127.0.0.1`).to.equal(true);
      expect(everywhere.get(port), `port ${port} listens nowhere else`).to.deep.equal(['0100007F']);
    }
  });

  it('runs with the file limit it was given', async () => {
    expect(node!.fileLimit).to.equal(4096);
    const limits = readFileSync(`/proc/${node!.beamPid}/limits`, 'utf8');
    expect(limits).to.match(/^Max open files\s+4096\s+4096/m);
    // The management agent fills in the node's figures a few seconds after start.
    const fdTotal = await eventually('the node figures', async () => {
      const stats = await node!.management<{ fd_total?: number }>(
        `/nodes/${encodeURIComponent(node!.nodeName)}`,
      );
      return stats.fd_total;
    });
    // RabbitMQ keeps a few descriptors in reserve below the limit.
    expect(fdTotal).to.be.within(3900, 4096);
  });

  it('keeps a durable queue across an application restart', async () => {
    const connection = await amqp.connect(node!.amqpUrl());
    const channel = await connection.createChannel();
    await channel.assertQueue('harness.kept', { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await connection.close();
    await node!.stopApp();
    const down = await amqp.connect(node!.amqpUrl()).then(
      (c) => c.close().then(() => false),
      () => true,
    );
    expect(down, 'AMQP refused while the application is stopped').to.equal(true);
    await node!.startApp();
    const again = await amqp.connect(node!.amqpUrl());
    const check = await again.createChannel();
    const kept = await check.checkQueue('harness.kept');
    expect(kept.queue).to.equal('harness.kept');
    await again.close();
  });

  it('stops the node and deletes its data', async () => {
    const { beamPid, dir } = node!;
    expect(existsSync(dir)).to.equal(true);
    await node!.stop();
    expect(existsSync(dir)).to.equal(false);
    expect(existsSync(`/proc/${beamPid}`)).to.equal(false);
    node = undefined;
  });
});
