import { expect } from 'chai';
import amqp from 'amqplib';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ServiceUnreachableError } from '../../../lib/services.js';
import { tenantNames, type TenantNames } from '../../../lib/tenant/index.js';
import {
  amqpConnectionInfo,
  MessagingError,
  MessagingUnavailableError,
  RabbitMqAdmin,
  tenantPermissionPattern,
} from '../../../operator/src/messaging/rabbitmq-admin.js';
import {
  createTestVhost,
  rabbitManagement,
  serviceUrls,
  uniqueSuffix,
  type TestVhost,
} from '../../harness/services.js';

const amqpBase = new URL(serviceUrls.rabbitmq);

/** Characters that must be URL-encoded in the AMQP uri, so the real login exercises amqpConnectionInfo. */
function newPassword(): string {
  return `pw:${randomBytes(8).toString('hex')}@/#`;
}

function caught(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe('operator messaging: per-tenant RabbitMQ users', function () {
  this.timeout(60_000);

  let platform: TestVhost;
  let elsewhere: TestVhost;
  let admin: RabbitMqAdmin;
  let brokerAdmin: amqp.ChannelModel;
  const other = tenantNames(`other-${uniqueSuffix()}`);
  const users: string[] = [];
  const connections: amqp.ChannelModel[] = [];

  function freshTenant(label: string): TenantNames & { name: string } {
    const name = `${label}-${uniqueSuffix()}`;
    const names = tenantNames(name);
    users.push(names.amqpUser);
    return { name, ...names };
  }

  async function connectAs(names: TenantNames, password: string, vhost = platform.name) {
    const info = amqpConnectionInfo({
      host: amqpBase.hostname,
      port: Number(amqpBase.port || 5672),
      vhost,
      username: names.amqpUser,
      password,
      queuePrefix: names.queuePrefix,
    });
    const connection = await amqp.connect(info.uri);
    connection.on('error', () => undefined);
    connections.push(connection);
    return connection;
  }

  /** Runs one operation on a fresh channel and expects the broker to close it with 403. */
  async function expectRefused(
    connection: amqp.ChannelModel,
    operation: (channel: amqp.ConfirmChannel) => Promise<unknown>,
    what: string,
  ) {
    const channel = await connection.createConfirmChannel();
    // The server's reason arrives on the channel; a failed publish itself only says "channel closed".
    let closedWith: unknown;
    channel.on('error', (error: unknown) => (closedWith = error));
    // events.once would reject on the 'error' event, so listen for 'close' directly.
    const closed = new Promise((resolve) => channel.once('close', resolve));
    const error = await caught(operation(channel));
    expect(error, `${what} should be refused`).to.be.instanceOf(Error);
    await closed;
    expect((closedWith as Error | undefined)?.message, what).to.contain('ACCESS_REFUSED');
    expect((closedWith as { code?: number } | undefined)?.code, what).to.equal(403);
  }

  /** amqplib reports a refused vhost only as an unexpected ConnectionClose during the handshake. */
  async function expectVhostRefused(names: TenantNames, password: string, vhost: string) {
    const error = await caught(connectAs(names, password, vhost));
    expect(error, `opening ${vhost}`).to.be.instanceOf(Error);
    expect((error as Error).message).to.contain('Expected ConnectionOpenOk; got <ConnectionClose');
  }

  async function publishConfirmed(channel: amqp.ConfirmChannel, exchange: string, key: string, body: string) {
    channel.publish(exchange, key, Buffer.from(body));
    await channel.waitForConfirms();
  }

  async function storedUser(user: string) {
    const response = await rabbitManagement('GET', `/users/${encodeURIComponent(user)}`);
    if (response.status === 404) return undefined;
    return (await response.json()) as { password_hash: string; hashing_algorithm: string; tags: string[] };
  }

  async function storedPermissions(user: string) {
    const response = await rabbitManagement('GET', `/users/${encodeURIComponent(user)}/permissions`);
    return (await response.json()) as { vhost: string; configure: string; write: string; read: string }[];
  }

  const exists = async (kind: 'queues' | 'exchanges', name: string) =>
    (
      await rabbitManagement(
        'GET',
        `/${kind}/${encodeURIComponent(platform.name)}/${encodeURIComponent(name)}`,
      )
    ).status === 200;

  before(async () => {
    platform = await createTestVhost('messaging');
    elsewhere = await createTestVhost('messaging-elsewhere');
    admin = new RabbitMqAdmin(serviceUrls.rabbitmqManagement, platform.name);
    // Another tenant's resources and an unprefixed queue, declared by the platform so they exist.
    brokerAdmin = await amqp.connect(platform.url);
    const channel = await brokerAdmin.createChannel();
    await channel.assertExchange(`${other.queuePrefix}events`, 'direct', { durable: false });
    await channel.assertQueue(`${other.queuePrefix}work`, { durable: false });
    await channel.assertQueue('shared.work', { durable: false });
    await channel.close();
  });

  afterEach(async () => {
    await Promise.all(connections.splice(0).map((c) => c.close().catch(() => undefined)));
  });

  after(async () => {
    await brokerAdmin?.close().catch(() => undefined);
    for (const user of users) await rabbitManagement('DELETE', `/users/${encodeURIComponent(user)}`);
    await platform?.drop();
    await elsewhere?.drop();
  });

  it('creates a user that can declare, publish and consume under its own prefix', async () => {
    const acme = freshTenant('acme');
    const password = newPassword();

    expect(await admin.userState(acme)).to.deep.equal({ exists: false, permissionsOk: false, tagsOk: false });
    expect(await admin.ensureTenantUser(acme, password)).to.deep.equal({
      created: true,
      passwordReset: false,
      permissionsRepaired: false,
      tagsRepaired: false,
    });
    expect(await admin.userState(acme)).to.deep.equal({ exists: true, permissionsOk: true, tagsOk: true });
    const pattern = tenantPermissionPattern(acme.queuePrefix);
    expect(await storedPermissions(acme.amqpUser)).to.deep.equal([
      { user: acme.amqpUser, vhost: platform.name, configure: pattern, write: pattern, read: pattern },
    ]);

    const connection = await connectAs(acme, password);
    const channel = await connection.createConfirmChannel();
    const exchange = `${acme.queuePrefix}events`;
    const queue = `${acme.queuePrefix}work`;
    await channel.assertExchange(exchange, 'direct', { durable: false });
    await channel.assertQueue(queue, { durable: false });
    await channel.bindQueue(queue, exchange, 'job');
    let deliver: (body: string) => void = () => undefined;
    const received = new Promise<string>((resolve) => (deliver = resolve));
    await channel.consume(queue, (message) => {
      if (!message) return;
      channel.ack(message);
      deliver(message.content.toString());
    });
    await publishConfirmed(channel, exchange, 'job', 'hello');
    expect(await received).to.equal('hello');
  });

  it("refuses another tenant's names, unprefixed names and the default exchange", async () => {
    const acme = freshTenant('acme');
    const password = newPassword();
    await admin.ensureTenantUser(acme, password);
    const connection = await connectAs(acme, password);
    const own = `${acme.queuePrefix}work`;
    const setup = await connection.createChannel();
    await setup.assertQueue(own, { durable: false });
    await setup.close();

    const otherQueue = `${other.queuePrefix}work`;
    // Names that only a missing trailing dot or an unescaped "." in the prefix would let through.
    const lookalikes = [`tenant.${acme.name}x.work`, `tenant_${acme.name}_work`];
    for (const queue of [otherQueue, 'shared.work', ...lookalikes]) {
      await expectRefused(connection, (c) => c.assertQueue(queue, { durable: false }), `declaring ${queue}`);
    }
    for (const queue of [otherQueue, 'shared.work']) {
      await expectRefused(connection, (c) => c.consume(queue, () => undefined), `consuming ${queue}`);
      await expectRefused(connection, (c) => c.purgeQueue(queue), `purging ${queue}`);
    }
    await expectRefused(
      connection,
      (c) => publishConfirmed(c, `${other.queuePrefix}events`, 'job', 'x'),
      "publishing to the other tenant's exchange",
    );
    // The default exchange routes to any queue by name, so it stays closed even for the tenant's own queue.
    await expectRefused(
      connection,
      (c) => publishConfirmed(c, '', otherQueue, 'x'),
      "publishing to the other tenant's queue through the default exchange",
    );
    await expectRefused(
      connection,
      (c) => publishConfirmed(c, '', own, 'x'),
      'publishing through the default exchange',
    );
    const inspect = await brokerAdmin.createChannel();
    expect((await inspect.checkQueue(otherQueue)).messageCount).to.equal(0);
    await inspect.close();
  });

  it('gives the tenant no other vhost and no management API access', async () => {
    const acme = freshTenant('acme');
    const password = newPassword();
    await admin.ensureTenantUser(acme, password);

    await connectAs(acme, password);
    await expectVhostRefused(acme, password, elsewhere.name);

    const management = new URL('api/whoami', serviceUrls.rabbitmqManagement.replace(/\/?$/, '/'));
    management.username = '';
    management.password = '';
    const whoami = await fetch(management, {
      headers: { authorization: `Basic ${Buffer.from(`${acme.amqpUser}:${password}`).toString('base64')}` },
    });
    expect(whoami.status).to.equal(401);
  });

  it('makes only GET requests and changes nothing when ensured again', async () => {
    const acme = freshTenant('acme');
    const password = newPassword();
    await admin.ensureTenantUser(acme, password);
    const before = await storedUser(acme.amqpUser);

    const methods: string[] = [];
    const observed = new RabbitMqAdmin(serviceUrls.rabbitmqManagement, platform.name, {
      fetch: (input, init) => {
        methods.push(init?.method ?? 'GET');
        return fetch(input, init);
      },
    });
    const unchanged = {
      created: false,
      passwordReset: false,
      permissionsRepaired: false,
      tagsRepaired: false,
    };
    expect(await observed.ensureTenantUser(acme, password)).to.deep.equal(unchanged);
    // A different password without resetPassword must not overwrite the one in use.
    expect(await observed.ensureTenantUser(acme, newPassword())).to.deep.equal(unchanged);
    expect(methods).to.not.be.empty;
    expect(methods.filter((m) => m !== 'GET')).to.deep.equal([]);

    // Writing the password again would re-salt the hash.
    expect((await storedUser(acme.amqpUser))?.password_hash).to.equal(before?.password_hash);
    await connectAs(acme, password);
  });

  it('rewrites the password only when asked to', async () => {
    const acme = freshTenant('acme');
    const oldPassword = newPassword();
    const newOne = newPassword();
    await admin.ensureTenantUser(acme, oldPassword);

    expect(await admin.ensureTenantUser(acme, newOne, { resetPassword: true })).to.deep.equal({
      created: false,
      passwordReset: true,
      permissionsRepaired: false,
      tagsRepaired: false,
    });
    await connectAs(acme, newOne);
    const refused = await caught(connectAs(acme, oldPassword));
    expect(refused).to.be.instanceOf(Error);
    expect((refused as Error).message).to.contain('ACCESS_REFUSED');
  });

  it('repairs permissions widened to everything and grants on other vhosts', async () => {
    const acme = freshTenant('acme');
    const password = newPassword();
    await admin.ensureTenantUser(acme, password);
    const everything = { configure: '.*', write: '.*', read: '.*' };
    const user = encodeURIComponent(acme.amqpUser);
    await rabbitManagement('PUT', `/permissions/${encodeURIComponent(platform.name)}/${user}`, everything);
    await rabbitManagement('PUT', `/permissions/${encodeURIComponent(elsewhere.name)}/${user}`, everything);

    expect(await admin.userState(acme)).to.deep.equal({ exists: true, permissionsOk: false, tagsOk: true });
    // The drift is real: the tenant can now reach the other tenant's queue.
    const drifted = await connectAs(acme, password);
    await (await drifted.createChannel()).checkQueue(`${other.queuePrefix}work`);
    await (await drifted.createChannel()).assertQueue(`${other.queuePrefix}work`, { durable: false });
    await connectAs(acme, password, elsewhere.name);

    expect(await admin.ensureTenantUser(acme, password)).to.deep.equal({
      created: false,
      passwordReset: false,
      permissionsRepaired: true,
      tagsRepaired: false,
    });
    expect(await admin.userState(acme)).to.deep.equal({ exists: true, permissionsOk: true, tagsOk: true });
    expect((await storedPermissions(acme.amqpUser)).map((p) => p.vhost)).to.deep.equal([platform.name]);

    const repaired = await connectAs(acme, password);
    await expectRefused(
      repaired,
      (c) => c.assertQueue(`${other.queuePrefix}work`, { durable: false }),
      "declaring the other tenant's queue after repair",
    );
    await expectVhostRefused(acme, password, elsewhere.name);
  });

  it('repairs a grant on another vhost even when the platform vhost is untouched', async () => {
    const acme = freshTenant('acme');
    const password = newPassword();
    await admin.ensureTenantUser(acme, password);
    await rabbitManagement(
      'PUT',
      `/permissions/${encodeURIComponent(elsewhere.name)}/${encodeURIComponent(acme.amqpUser)}`,
      { configure: '.*', write: '.*', read: '.*' },
    );
    await connectAs(acme, password, elsewhere.name);

    expect(await admin.userState(acme)).to.deep.equal({ exists: true, permissionsOk: false, tagsOk: true });
    expect((await admin.ensureTenantUser(acme, password)).permissionsRepaired).to.be.true;
    expect((await storedPermissions(acme.amqpUser)).map((p) => p.vhost)).to.deep.equal([platform.name]);
    await expectVhostRefused(acme, password, elsewhere.name);
  });

  it('removes management tags and keeps the password', async () => {
    const acme = freshTenant('acme');
    const password = newPassword();
    await admin.ensureTenantUser(acme, password);
    const before = await storedUser(acme.amqpUser);
    await rabbitManagement('PUT', `/users/${encodeURIComponent(acme.amqpUser)}`, {
      password_hash: before?.password_hash,
      hashing_algorithm: before?.hashing_algorithm,
      tags: 'administrator',
    });

    expect(await admin.userState(acme)).to.deep.equal({ exists: true, permissionsOk: true, tagsOk: false });
    expect(await admin.ensureTenantUser(acme, password)).to.deep.equal({
      created: false,
      passwordReset: false,
      permissionsRepaired: false,
      tagsRepaired: true,
    });
    const after = await storedUser(acme.amqpUser);
    expect(after?.tags).to.deep.equal([]);
    expect(after?.password_hash).to.equal(before?.password_hash);
    await connectAs(acme, password);
  });

  it('recreates a user deleted behind its back', async () => {
    const acme = freshTenant('acme');
    const password = newPassword();
    await admin.ensureTenantUser(acme, password);
    await rabbitManagement('DELETE', `/users/${encodeURIComponent(acme.amqpUser)}`);

    expect(await admin.userState(acme)).to.deep.equal({ exists: false, permissionsOk: false, tagsOk: false });
    expect((await admin.ensureTenantUser(acme, password)).created).to.be.true;
    expect(await admin.userState(acme)).to.deep.equal({ exists: true, permissionsOk: true, tagsOk: true });
    const connection = await connectAs(acme, password);
    await (await connection.createChannel()).assertQueue(`${acme.queuePrefix}work`, { durable: false });
  });

  it("deletes the user and the tenant's queues and exchanges, nothing else, and again when already gone", async () => {
    const acme = freshTenant('acme');
    const password = newPassword();
    await admin.ensureTenantUser(acme, password);
    const connection = await connectAs(acme, password);
    const channel = await connection.createChannel();
    const queues = [`${acme.queuePrefix}retry`, `${acme.queuePrefix}work`];
    const exchange = `${acme.queuePrefix}events`;
    for (const queue of queues) await channel.assertQueue(queue, { durable: true });
    await channel.assertExchange(exchange, 'topic', { durable: true });
    await channel.close();

    const result = await admin.deleteTenantUser(acme);
    expect(result.userDeleted).to.be.true;
    expect([...result.queuesDeleted].sort()).to.deep.equal(queues);
    expect(result.exchangesDeleted).to.deep.equal([exchange]);

    expect(await storedUser(acme.amqpUser)).to.be.undefined;
    for (const queue of queues) expect(await exists('queues', queue), queue).to.be.false;
    expect(await exists('exchanges', exchange)).to.be.false;
    expect(await exists('queues', `${other.queuePrefix}work`)).to.be.true;
    expect(await exists('queues', 'shared.work')).to.be.true;
    expect(await exists('exchanges', `${other.queuePrefix}events`)).to.be.true;

    expect(await admin.deleteTenantUser(acme)).to.deep.equal({
      userDeleted: false,
      queuesDeleted: [],
      exchangesDeleted: [],
    });
  });

  it('creates the platform vhost when it is missing, once', async () => {
    const name = `test-messaging-vhost-${uniqueSuffix()}`;
    const path = `/vhosts/${encodeURIComponent(name)}`;
    const fresh = new RabbitMqAdmin(serviceUrls.rabbitmqManagement, name);
    try {
      expect(await fresh.ensureVhost()).to.be.true;
      expect((await rabbitManagement('GET', path)).status).to.equal(200);
      expect(await fresh.ensureVhost()).to.be.false;
    } finally {
      await rabbitManagement('DELETE', path);
    }
  });

  describe('errors', () => {
    const acme = tenantNames('acme');

    it('an unreachable management API is a MessagingUnavailableError naming it, without the password', async () => {
      const unreachable = new RabbitMqAdmin('http://guest:hunter2@127.0.0.1:1', platform.name);
      const error = await caught(unreachable.ensureTenantUser(acme, 'tenant-secret'));
      expect(error).to.be.instanceOf(MessagingUnavailableError);
      expect(error).to.be.instanceOf(ServiceUnreachableError);
      const message = (error as Error).message;
      expect(message).to.match(
        /^RabbitMQ management API is unreachable at http:\/\/guest:\*\*\*@127\.0\.0\.1:1\//,
      );
      expect(message).not.to.contain('hunter2');
      expect(message).not.to.contain('tenant-secret');

      // fetch rejects port 1 outright ("bad port"), so also try a port where the connection is refused.
      const probe = createServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      const { port } = probe.address() as AddressInfo;
      await new Promise((resolve) => probe.close(resolve));
      const refused = await caught(
        new RabbitMqAdmin(`http://guest:hunter2@127.0.0.1:${port}`, platform.name).userState(acme),
      );
      expect(refused).to.be.instanceOf(MessagingUnavailableError);
      expect((refused as Error).message)
        .to.contain('ECONNREFUSED')
        .and.not.contain('hunter2');
    });

    it('an unexpected status is a MessagingError with the status and body, without credentials', async () => {
      const url = new URL(serviceUrls.rabbitmqManagement);
      url.password = 'wrong-password';
      const error = await caught(new RabbitMqAdmin(url.toString(), platform.name).userState(acme));
      expect(error).to.be.instanceOf(MessagingError);
      expect(error).not.to.be.instanceOf(MessagingUnavailableError);
      expect((error as MessagingError).status).to.equal(401);
      expect((error as Error).message).to.contain('401');
      expect((error as Error).message).not.to.contain('wrong-password');
    });

    it('never repeats the passwords or the authorization header that an error body echoes', async () => {
      // A stand-in API that answers each write by echoing the request back.
      const server = createServer((request, response) => {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => {
          if (request.method === 'GET') {
            response.writeHead(404).end('{}');
            return;
          }
          response.writeHead(500, { 'content-type': 'application/json' });
          response.end(
            JSON.stringify({ auth: request.headers.authorization, got: Buffer.concat(chunks).toString() }),
          );
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      const tenantPassword = `s3cret"pw\\${randomBytes(4).toString('hex')}`;
      try {
        const echoing = new RabbitMqAdmin(`http://admin:admin-pw-1@127.0.0.1:${port}`, '/');
        const error = await caught(echoing.ensureTenantUser(acme, tenantPassword));
        expect(error).to.be.instanceOf(MessagingError);
        const { status, method, body, message } = error as MessagingError;
        expect([status, method]).to.deep.equal([500, 'PUT']);
        expect(body).to.contain('"tags');
        for (const secret of [
          tenantPassword,
          JSON.stringify(tenantPassword).slice(1, -1),
          'admin-pw-1',
          Buffer.from('admin:admin-pw-1').toString('base64'),
        ]) {
          expect(message).not.to.contain(secret);
          expect(body).not.to.contain(secret);
        }
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });
  });
});
