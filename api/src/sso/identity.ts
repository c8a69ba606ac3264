// What a completed SSO login yields, shared by the SAML and OIDC flows, and the
// one error type both raise. Routes turn an SsoIdentity into a session (JIT
// provisioning) and an SsoError into a problem+json response.
import { isRole, roleRank, type Role } from '../../../lib/tenant/index.js';

export interface SsoIdentity {
  provider: 'saml' | 'oidc';
  /** Stable identifier of the user at the tenant's IdP (SAML NameID, OIDC `sub`). */
  subject: string;
  /** Lower-cased, and its domain is one of the tenant's verified domains. */
  email: string;
  firstName?: string;
  lastName?: string;
  groups: string[];
  role: Role;
}

export type SsoErrorCode =
  /** No valid signature from the tenant's IdP covers what was consumed. */
  | 'signature_invalid'
  /** The assertion or the request it answers was already used. */
  | 'replayed'
  | 'audience_mismatch'
  /** Recipient or Destination is not this tenant's ACS URL. */
  | 'destination_mismatch'
  /** The assertion's Issuer is not the IdP in the tenant's metadata. */
  | 'issuer_mismatch'
  /** No login was started here for this response, and IdP-initiated login is off. */
  | 'unsolicited'
  /** The response answers a login started for another tenant. */
  | 'wrong_tenant'
  /** Outside its validity window, clock skew included. */
  | 'expired'
  | 'domain_not_verified'
  | 'email_missing'
  /** The IdP answered with a non-success status (user cancelled, no access...). */
  | 'idp_error'
  | 'malformed'
  | 'too_large'
  /** The tenant has no usable SSO configuration of this kind. */
  | 'not_configured'
  /** The tenant's IdP metadata cannot be fetched or parsed. */
  | 'metadata_invalid'
  /** OIDC: the callback's state is unknown, expired, already used or not this browser's. */
  | 'invalid_state'
  /** OIDC: the issuer or an endpoint it advertises is not https or reaches a non-public address. */
  | 'issuer_not_allowed'
  /** OIDC: the IdP says the email address is not verified. */
  | 'email_not_verified'
  /** The post-login destination is not a path on this site. */
  | 'invalid_return_to'
  /** The matching Tenantry account is deactivated. */
  | 'account_disabled'
  /** The email belongs to an account linked to another identity at the same kind of IdP. */
  | 'account_conflict'
  /** The hand-off code is unknown, expired or already exchanged. */
  | 'invalid_code';

// Client-safe wording: no library messages, no XML, no internal detail.
const safeMessages: Record<SsoErrorCode, string> = {
  signature_invalid: 'The SSO response is not validly signed by the identity provider.',
  replayed: 'The SSO response was already used.',
  audience_mismatch: 'The SSO response is addressed to another service.',
  destination_mismatch: 'The SSO response was sent to the wrong endpoint.',
  issuer_mismatch: 'The SSO response comes from an unexpected identity provider.',
  unsolicited: 'The SSO response does not answer a login started here.',
  wrong_tenant: 'The SSO response belongs to a login for another tenant.',
  expired: 'The SSO response is outside its validity period.',
  domain_not_verified: 'The email domain is not verified for this tenant.',
  email_missing: 'The identity provider did not send an email address.',
  idp_error: 'The identity provider did not authenticate the user.',
  malformed: 'The SSO response is malformed.',
  too_large: 'The SSO response is too large.',
  not_configured: 'Single sign-on is not configured for this tenant.',
  metadata_invalid: "The tenant's identity provider metadata is unusable.",
  invalid_state: 'The SSO login is unknown, expired or already completed.',
  issuer_not_allowed: "The tenant's identity provider address is not allowed.",
  email_not_verified: 'The identity provider has not verified the email address.',
  invalid_return_to: 'The return address must be a path on this site.',
  account_disabled: 'This account is deactivated.',
  account_conflict: 'This email address is linked to another single sign-on identity.',
  invalid_code: 'The sign-in code is unknown, expired or already used.',
};

// The HTTP status a route should answer with; everything the client sent
// wrong is a 4xx, a broken tenant configuration is on our side.
const statuses: Record<SsoErrorCode, number> = {
  signature_invalid: 401,
  replayed: 401,
  audience_mismatch: 401,
  destination_mismatch: 401,
  issuer_mismatch: 401,
  unsolicited: 401,
  wrong_tenant: 401,
  expired: 401,
  domain_not_verified: 403,
  email_missing: 401,
  idp_error: 401,
  malformed: 400,
  too_large: 413,
  not_configured: 404,
  metadata_invalid: 502,
  invalid_state: 401,
  issuer_not_allowed: 502,
  email_not_verified: 403,
  invalid_return_to: 400,
  account_disabled: 403,
  account_conflict: 409,
  invalid_code: 401,
};

/**
 * A rejected SSO step. `message` is safe to show to the client; the
 * underlying reason (library error, offending value) is kept in `cause` and
 * `detail` for logs only.
 */
export class SsoError extends Error {
  readonly status: number;

  constructor(
    readonly code: SsoErrorCode,
    /** Diagnostic text for logs; never sent to the client. */
    readonly detail?: string,
    options?: { cause?: unknown },
  ) {
    super(safeMessages[code], options);
    this.name = 'SsoError';
    this.status = statuses[code];
  }
}

/**
 * The tenant role for a user in `groups`: the highest role any group maps to,
 * or `defaultRole` when none does.
 */
export function mapRole(
  groups: readonly string[],
  roleMapping: Readonly<Record<string, Role>> = {},
  defaultRole: Role = 'member',
): Role {
  let role: Role = defaultRole;
  for (const group of groups) {
    // Own properties only: a group called "constructor" must not reach Object.prototype.
    if (!Object.hasOwn(roleMapping, group)) continue;
    const mapped: unknown = roleMapping[group];
    if (isRole(mapped) && roleRank(mapped) > roleRank(role)) role = mapped;
  }
  return role;
}
