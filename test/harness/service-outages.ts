// Short, real outages of the machine's shared RabbitMQ and PostgreSQL for
// fault tests. Other suites use the same services, so callers keep outages
// brief, always bring the service back in a `finally`, and wait for health.
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import pg from 'pg';
import { rabbitManagement, serviceUrls } from './services.js';
import { eventually } from './wait.js';

const run = promisify(execFile);

async function rabbitmqctl(...args: string[]): Promise<void> {
  await run('rabbitmqctl', args, { timeout: 120_000 });
}

/** Stops the RabbitMQ application (the Erlang node stays up, so start_app brings it back quickly). */
export async function stopRabbitMq(): Promise<void> {
  await rabbitmqctl('stop_app');
}

/** Starts the RabbitMQ application and waits until AMQP and the management API answer. */
export async function startRabbitMq(): Promise<void> {
  await rabbitmqctl('start_app');
  await rabbitmqctl('await_startup');
  await eventually(
    'RabbitMQ to accept AMQP connections',
    async () => {
      const connection = await amqp.connect(serviceUrls.rabbitmq).catch(() => undefined);
      await connection?.close();
      return connection ? true : undefined;
    },
    { timeoutMs: 60_000 },
  );
  await eventually(
    'the RabbitMQ management API to answer',
    async () => ((await rabbitManagement('GET', '/overview').catch(() => undefined))?.ok ? true : undefined),
    { timeoutMs: 60_000 },
  );
}

function postgresCluster(): [string, string] {
  const versions = readdirSync('/etc/postgresql').sort();
  const version = versions[versions.length - 1];
  if (!version) throw new Error('no PostgreSQL cluster found under /etc/postgresql');
  return [version, 'main'];
}

async function pgCtlCluster(action: 'stop' | 'start', ...extra: string[]): Promise<void> {
  await run('pg_ctlcluster', ['--skip-systemctl-redirect', ...extra, ...postgresCluster(), action], {
    timeout: 120_000,
  });
}

/** Stops PostgreSQL in fast mode: sessions are cut, in-flight transactions roll back. */
export async function stopPostgres(): Promise<void> {
  await pgCtlCluster('stop', '-m', 'fast');
}

/** Starts PostgreSQL if it is down and waits until it accepts queries. */
export async function startPostgres(): Promise<void> {
  const up = await postgresAnswers();
  if (!up) await pgCtlCluster('start').catch(() => undefined);
  await eventually(
    'PostgreSQL to accept queries',
    async () => ((await postgresAnswers()) ? true : undefined),
    {
      timeoutMs: 60_000,
    },
  );
}

async function postgresAnswers(): Promise<boolean> {
  const client = new pg.Client({ connectionString: serviceUrls.postgres, connectionTimeoutMillis: 2_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}
