// Verifying a Standard Webhooks request: the receiving side of
// standard-webhooks.ts, used for incoming provider events. The signature is
// checked on the raw body exactly as it arrived, against every secret that is
// currently valid (during a rotation, the new and the previous one), with a
// constant-time comparison and a timestamp tolerance against replays.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { secretPrefix } from './standard-webhooks.js';

export const defaultToleranceSeconds = 5 * 60;

export type VerificationFailure =
  'missing_headers' | 'bad_timestamp' | 'stale_timestamp' | 'bad_signature' | 'no_secret';

export class WebhookVerificationError extends Error {
  constructor(
    readonly reason: VerificationFailure,
    message: string,
  ) {
    super(message);
    this.name = 'WebhookVerificationError';
  }
}

export interface WebhookHeaders {
  id: string | undefined;
  timestamp: string | undefined;
  signature: string | undefined;
}

/**
 * Throws WebhookVerificationError unless one of the `v1,` signatures in the
 * header is the HMAC-SHA256 of `id.timestamp.body` under one of `secrets`
 * and the timestamp is within `toleranceSeconds` of now (either side).
 */
export function verifyWebhook(
  secrets: readonly string[],
  headers: WebhookHeaders,
  body: Buffer,
  options: { toleranceSeconds?: number; nowSeconds?: number } = {},
): void {
  const { id, timestamp, signature } = headers;
  if (!id || !timestamp || !signature) {
    throw new WebhookVerificationError(
      'missing_headers',
      'send webhook-id, webhook-timestamp and webhook-signature',
    );
  }
  if (!/^\d{1,12}$/.test(timestamp)) {
    throw new WebhookVerificationError('bad_timestamp', 'webhook-timestamp must be Unix seconds');
  }
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  const tolerance = options.toleranceSeconds ?? defaultToleranceSeconds;
  if (Math.abs(now - Number(timestamp)) > tolerance) {
    throw new WebhookVerificationError(
      'stale_timestamp',
      `webhook-timestamp is more than ${tolerance} seconds away from now`,
    );
  }
  const keys = secrets.filter((s) => s.startsWith(secretPrefix));
  if (keys.length === 0) throw new WebhookVerificationError('no_secret', 'no signing secret is configured');
  const offered = signature
    .split(' ')
    .filter((part) => part.startsWith('v1,'))
    .map((part) => Buffer.from(part.slice(3), 'base64'));
  const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`), body]);
  for (const secret of keys) {
    const key = Buffer.from(secret.slice(secretPrefix.length), 'base64');
    const expected = createHmac('sha256', key).update(signed).digest();
    // Every offered signature is compared, so timing says nothing about which matched.
    let match = false;
    for (const candidate of offered) {
      if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) match = true;
    }
    if (match) return;
  }
  throw new WebhookVerificationError('bad_signature', 'no signature matches');
}
