import { expect } from 'chai';
import amqp from 'amqplib';
import pg from 'pg';
import { ServiceUnreachableError } from '../../lib/services.js';
import {
  createTestDatabase,
  createTestRedis,
  createTestVhost,
  rabbitManagement,
  serviceUrls,
  withPostgresAdmin,
} from '../harness/services.js';

describe('real-service test helpers', function () {
  this.timeout(30_000);

  it('creates a fresh Postgres database and drops it afterwards', async () => {
    const db = await createTestDatabase('helpers');
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    const { rows } = await client.query<{ db: string }>('SELECT current_database() AS db');
    await client.end();
    expect(rows[0]?.db).to.equal(db.name);
    await db.drop();
    const left = await withPostgresAdmin((c) =>
      c.query('SELECT 1 FROM pg_database WHERE datname = $1', [db.name]),
    );
    expect(left.rowCount).to.equal(0);
  });

  it('gives a private RabbitMQ vhost and deletes it afterwards', async () => {
    const vhost = await createTestVhost('helpers');
    const connection = await amqp.connect(vhost.url);
    const channel = await connection.createChannel();
    await channel.assertQueue('probe', { durable: false });
    channel.sendToQueue('probe', Buffer.from('hello'));
    const message = await channel.get('probe', { noAck: true });
    expect(message && message.content.toString()).to.equal('hello');
    await connection.close();
    await vhost.drop();
    const response = await rabbitManagement('GET', `/vhosts/${encodeURIComponent(vhost.name)}`);
    expect(response.status).to.equal(404);
  });

  it('scopes Redis keys to a prefix and removes them afterwards', async () => {
    const redis = await createTestRedis('helpers');
    await redis.client.set(`${redis.prefix}a`, '1');
    await redis.client.set(`${redis.prefix}b`, '2');
    const probe = await createTestRedis('probe');
    expect(await probe.client.exists(`${redis.prefix}a`, `${redis.prefix}b`)).to.equal(2);
    await redis.drop();
    expect(await probe.client.exists(`${redis.prefix}a`, `${redis.prefix}b`)).to.equal(0);
    await probe.drop();
  });

  it('names the service and the URL when a service is unreachable', async () => {
    const url = 'postgres://postgres:hunter2@127.0.0.1:1/postgres';
    const error = await withPostgresAdmin(() => Promise.resolve(), url).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(ServiceUnreachableError);
    expect((error as Error).message).to.match(
      /^PostgreSQL is unreachable at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/postgres/,
    );
    expect((error as Error).message).not.to.contain('hunter2');
  });

  it('reads service URLs from the environment with local defaults', () => {
    expect(serviceUrls.postgres).to.match(/^postgres(ql)?:\/\//);
    expect(serviceUrls.rabbitmq).to.match(/^amqps?:\/\//);
    expect(serviceUrls.redis).to.match(/^rediss?:\/\//);
  });
});
