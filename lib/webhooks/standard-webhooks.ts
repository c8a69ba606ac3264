// Standard Webhooks (standardwebhooks.com) signing, shared by the worker that
// sends outgoing webhooks and the API that creates and rotates their secrets.
import { createHmac, randomBytes } from 'node:crypto';

export const secretPrefix = 'whsec_';

/** A new signing secret: `whsec_` and 32 random bytes in base64, shown to the tenant once. */
export function generateWebhookSecret(): string {
  return `${secretPrefix}${randomBytes(32).toString('base64')}`;
}

/** True for a well-formed `whsec_<base64>` secret with at least 16 key bytes. */
export function isWebhookSecret(value: string): boolean {
  if (!value.startsWith(secretPrefix)) return false;
  const key = value.slice(secretPrefix.length);
  return /^[A-Za-z0-9+/]+={0,2}$/.test(key) && Buffer.from(key, 'base64').length >= 16;
}

/** A new webhook-id: `msg_` and 26 base62-ish characters, unique per message across retries. */
export function newMessageId(): string {
  return `msg_${randomBytes(20).toString('base64url').replace(/[-_]/g, '').slice(0, 26).padEnd(26, '0')}`;
}

/** `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed by the base64 part of the secret. */
export function signatureV1(secret: string, id: string, timestampSeconds: number, body: string): string {
  if (!secret.startsWith(secretPrefix)) throw new TypeError('a webhook secret starts with whsec_');
  const key = Buffer.from(secret.slice(secretPrefix.length), 'base64');
  const mac = createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64');
  return `v1,${mac}`;
}

export interface SignedHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/**
 * The three Standard Webhooks headers. With several secrets (a rotation in its
 * overlap window) the signature header carries one signature per secret,
 * separated by spaces, so receivers holding either secret accept the request.
 */
export function signWebhook(
  secrets: readonly string[],
  id: string,
  timestampSeconds: number,
  body: string,
): SignedHeaders {
  if (secrets.length === 0) throw new TypeError('at least one secret is needed to sign');
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': secrets.map((s) => signatureV1(s, id, timestampSeconds, body)).join(' '),
  };
}

/**
 * Whether an endpoint subscribed to `patterns` gets `eventType`. An empty list
 * means every event; `user.*` matches every type under `user.`; `*` matches all.
 */
export function eventTypeMatches(patterns: readonly string[], eventType: string): boolean {
  if (patterns.length === 0) return true;
  return patterns.some((pattern) =>
    pattern === '*' || pattern === eventType
      ? true
      : pattern.endsWith('.*') && eventType.startsWith(pattern.slice(0, -1)),
  );
}
