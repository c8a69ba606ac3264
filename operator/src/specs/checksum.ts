import { createHash } from 'node:crypto';

/**
 * sha256 hex of the data with its keys sorted, so the same credentials always give the
 * same value. Pairs are JSON-encoded rather than joined as key=value lines, so a value
 * containing '=' or a newline cannot collide with a different set of keys.
 */
export function checksum(data: Record<string, string>): string {
  const pairs = Object.keys(data)
    .sort()
    .map((key) => [key, data[key]]);
  return createHash('sha256').update(JSON.stringify(pairs)).digest('hex');
}
