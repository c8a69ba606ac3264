// One-time codes that carry a finished SSO login from the browser redirect to
// the client, which exchanges the code for our tokens with a POST. Tokens never
// travel in a URL: only this code does, it works once, for a minute, and the
// store keeps its SHA-256 rather than the code itself, so reading the store
// (or a dump of it) gives no usable code.
import { createHash, randomBytes } from 'node:crypto';
import type { ExpiringStore } from './store.js';

/** Who signed in; enough to issue tokens at exchange time, nothing secret. */
export interface HandoffGrant {
  tenant: string;
  /** The Tenant's uid at sign-in; the exchange refuses the code under another Tenant of the name. */
  tenantUid: string;
  userId: string;
  provider: 'saml' | 'oidc';
}

export const handoffTtlMs = 60_000;
/** 32 random bytes in base64url. */
export const handoffCodeLength = 43;

const key = (code: string): string => `sso:handoff:${createHash('sha256').update(code).digest('hex')}`;

export class SsoHandoff {
  constructor(
    private readonly store: ExpiringStore,
    private readonly ttlMs: number = handoffTtlMs,
  ) {}

  /** A fresh code for `grant`, valid once within the TTL. */
  async issue(grant: HandoffGrant): Promise<string> {
    const code = randomBytes(32).toString('base64url');
    if (!(await this.store.putIfAbsent(key(code), JSON.stringify(grant), this.ttlMs))) {
      // 256 random bits never collide; if they do, something is wrong with the store.
      throw new Error('SSO hand-off code already exists');
    }
    return code;
  }

  /** The grant behind `code`, deleted in the same step; undefined when unknown, expired or used. */
  async redeem(code: string): Promise<HandoffGrant | undefined> {
    const raw = await this.store.take(key(code));
    if (raw === null) return undefined;
    try {
      const grant = JSON.parse(raw) as Partial<HandoffGrant>;
      if (
        typeof grant.tenant !== 'string' ||
        typeof grant.tenantUid !== 'string' ||
        typeof grant.userId !== 'string' ||
        (grant.provider !== 'saml' && grant.provider !== 'oidc')
      ) {
        return undefined;
      }
      return grant as HandoffGrant;
    } catch {
      return undefined;
    }
  }
}
