// Pure functions that turn a tenant's connection details into the forms its
// Secret carries (URI, JDBC URL, .pgpass line) and into the SCRAM verifier
// the operator stores instead of the plain password.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

export interface ConnectionInfo {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
}

/** A `postgresql://` URI as libpq and node-postgres read it. */
export function postgresUri(info: ConnectionInfo, params: Record<string, string> = {}): string {
  const auth = `${encodeURIComponent(info.user)}:${encodeURIComponent(info.password)}`;
  return `postgresql://${auth}@${hostPort(info)}/${encodeURIComponent(info.database)}${queryString(params)}`;
}

/** A PgJDBC URL; JDBC has no user-info part, so the credentials go in the query. */
export function jdbcUri(info: ConnectionInfo, params: Record<string, string> = {}): string {
  const query = queryString({ user: info.user, password: info.password, ...params });
  return `jdbc:postgresql://${hostPort(info)}/${encodeURIComponent(info.database)}${query}`;
}

/** One `.pgpass` line: `host:port:database:user:password`, with `\` and `:` escaped. */
export function pgpassLine(info: ConnectionInfo): string {
  const escape = (field: string): string => field.replaceAll('\\', '\\\\').replaceAll(':', '\\:');
  return [info.host, String(info.port), info.database, info.user, info.password].map(escape).join(':');
}

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for `password`
 * (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, RFC 5802/7677).
 * Sending this instead of the password keeps the plain text out of the
 * server's statement logs. PostgreSQL normalises passwords with SASLprep,
 * which leaves printable ASCII unchanged; other characters are refused here
 * rather than hashed differently from the server.
 */
export function scramSha256Verifier(
  password: string,
  options: { salt?: Buffer; iterations?: number } = {},
): string {
  if (password.length === 0 || !/^[\x20-\x7e]+$/.test(password)) {
    throw new Error('the password must be non-empty printable ASCII');
  }
  const salt = options.salt ?? randomBytes(16);
  const iterations = options.iterations ?? 4096;
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

function hostPort(info: ConnectionInfo): string {
  const host = info.host.includes(':') ? `[${info.host}]` : info.host;
  return `${host}:${info.port}`;
}

function queryString(params: Record<string, string>): string {
  const pairs = Object.entries(params).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  return pairs.length === 0 ? '' : `?${pairs.join('&')}`;
}
