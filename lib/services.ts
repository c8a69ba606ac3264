// Where the shared backing services live. Every process and test reads them
// from the environment, defaulting to the services on a developer machine.

export interface ServiceUrls {
  /** Admin connection to PostgreSQL: creates tenant databases and roles. */
  postgres: string;
  /** AMQP URL of RabbitMQ. */
  rabbitmq: string;
  /** RabbitMQ management HTTP API, used for vhosts, users and permissions. */
  rabbitmqManagement: string;
  redis: string;
}

export const defaultServiceUrls: ServiceUrls = {
  postgres: 'postgres://postgres@127.0.0.1:5432/postgres',
  rabbitmq: 'amqp://guest:guest@127.0.0.1:5672',
  rabbitmqManagement: 'http://guest:guest@127.0.0.1:15672',
  redis: 'redis://127.0.0.1:6379',
};

export function serviceUrlsFromEnv(env: NodeJS.ProcessEnv = process.env): ServiceUrls {
  return {
    postgres: env.POSTGRES_URL ?? defaultServiceUrls.postgres,
    rabbitmq: env.RABBITMQ_URL ?? defaultServiceUrls.rabbitmq,
    rabbitmqManagement: env.RABBITMQ_MANAGEMENT_URL ?? defaultServiceUrls.rabbitmqManagement,
    redis: env.REDIS_URL ?? defaultServiceUrls.redis,
  };
}

/** A URL with its password masked, safe for logs and error messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<unparseable url>';
  }
}

/** Raised when a backing service cannot be reached; names the service and where. */
export class ServiceUnreachableError extends Error {
  constructor(
    readonly service: string,
    url: string,
    cause: unknown,
  ) {
    const reason = cause instanceof Error ? cause.message || cause.name : String(cause);
    super(`${service} is unreachable at ${redactUrl(url)}: ${reason}`, { cause });
    this.name = 'ServiceUnreachableError';
  }
}
