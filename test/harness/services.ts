// Per-suite isolation on the real backing services: a fresh Postgres database,
// a private RabbitMQ vhost and a Redis key prefix, each removed afterwards.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { ServiceUnreachableError, serviceUrlsFromEnv } from '../../lib/services.js';

export const serviceUrls = serviceUrlsFromEnv();

/** A short unique suffix for names that must not collide between runs. */
export function uniqueSuffix(): string {
  return `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}

/** Runs `fn` with an admin client, turning a connection failure into one that names Postgres. */
export async function withPostgresAdmin<T>(
  fn: (client: pg.Client) => Promise<T>,
  url = serviceUrls.postgres,
): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
  } catch (error) {
    throw new ServiceUnreachableError('PostgreSQL', url, error);
  }
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const name = `test_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${uniqueSuffix()}`;
  await withPostgresAdmin((c) => c.query(`CREATE DATABASE "${name}"`));
  const url = new URL(serviceUrls.postgres);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: () =>
      withPostgresAdmin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(
        () => undefined,
      ),
  };
}

/** Calls the RabbitMQ management API; errors name the service and the URL. */
export async function rabbitManagement(method: string, path: string, body?: unknown): Promise<Response> {
  const base = new URL(serviceUrls.rabbitmqManagement);
  const auth = Buffer.from(
    `${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`,
  ).toString('base64');
  base.username = '';
  base.password = '';
  let response: Response;
  try {
    response = await fetch(new URL(`api${path}`, base), {
      method,
      headers: { authorization: `Basic ${auth}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (error) {
    throw new ServiceUnreachableError('RabbitMQ management API', serviceUrls.rabbitmqManagement, error);
  }
  if (!response.ok && response.status !== 404) {
    throw new Error(
      `RabbitMQ management ${method} ${path} answered ${response.status}: ${await response.text()}`,
    );
  }
  return response;
}

export interface TestVhost {
  name: string;
  /** AMQP URL pointing at the vhost. */
  url: string;
  drop(): Promise<void>;
}

export async function createTestVhost(label: string): Promise<TestVhost> {
  const name = `test-${label}-${uniqueSuffix()}`;
  const user = decodeURIComponent(new URL(serviceUrls.rabbitmq).username || 'guest');
  await rabbitManagement('PUT', `/vhosts/${encodeURIComponent(name)}`);
  await rabbitManagement('PUT', `/permissions/${encodeURIComponent(name)}/${encodeURIComponent(user)}`, {
    configure: '.*',
    write: '.*',
    read: '.*',
  });
  const url = new URL(serviceUrls.rabbitmq);
  url.pathname = `/${encodeURIComponent(name)}`;
  return {
    name,
    url: url.toString(),
    drop: () => rabbitManagement('DELETE', `/vhosts/${encodeURIComponent(name)}`).then(() => undefined),
  };
}

export interface TestRedis {
  prefix: string;
  client: Redis;
  drop(): Promise<void>;
}

export async function createTestRedis(label: string): Promise<TestRedis> {
  const prefix = `test:${label}:${uniqueSuffix()}:`;
  const client = new Redis(serviceUrls.redis, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
  });
  try {
    await client.connect();
  } catch (error) {
    client.disconnect();
    throw new ServiceUnreachableError('Redis', serviceUrls.redis, error);
  }
  return {
    prefix,
    client,
    drop: async () => {
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
        if (keys.length > 0) await client.del(...keys);
        cursor = next;
      } while (cursor !== '0');
      client.disconnect();
    },
  };
}
