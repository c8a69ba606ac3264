// Client authentication at the token, revocation and introspection endpoints
// (RFC 6749 §2.3.1): `client_secret_basic`, the id and secret form-urlencoded
// and then sent as HTTP Basic credentials, or `client_secret_post`, both as
// body parameters. A request using both is refused (§2.3: one method only).
import type { Request } from 'express';
import { OAuthError } from './errors.js';

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post';

export const clientAuthMethods: readonly ClientAuthMethod[] = ['client_secret_basic', 'client_secret_post'];

export interface PresentedClient {
  clientId: string;
  clientSecret: string;
  method: ClientAuthMethod;
}

// Far above any id or secret we issue; stops oversized input before any lookup.
const maxLength = 512;

/**
 * The request's parameters as single strings. Empty values count as absent
 * (RFC 6749 §3.2); a repeated or non-string parameter is an invalid_request
 * (§3.2: "MUST NOT be included more than once"). Other parameters are ignored.
 */
export function oauthParameters<const Names extends readonly string[]>(
  req: Request,
  names: Names,
): Partial<Record<Names[number], string>> {
  const body: unknown = req.body;
  const source = body !== null && typeof body === 'object' ? (body as Record<string, unknown>) : {};
  const out: Partial<Record<string, string>> = {};
  for (const name of names) {
    const value = Object.hasOwn(source, name) ? source[name] : undefined;
    if (value === undefined || value === null || value === '') continue;
    if (Array.isArray(value)) throw new OAuthError('invalid_request', `the parameter ${name} is repeated`);
    if (typeof value !== 'string')
      throw new OAuthError('invalid_request', `the parameter ${name} must be a string`);
    if (value.length > 4096) throw new OAuthError('invalid_request', `the parameter ${name} is too long`);
    out[name] = value;
  }
  return out;
}

/** RFC 6749 Appendix B: `+` is a space, then percent-decoding. */
function formDecode(value: string): string {
  try {
    return decodeURIComponent(value.replaceAll('+', ' '));
  } catch {
    throw new OAuthError('invalid_client', 'the Basic credentials are not form-urlencoded');
  }
}

/** The client id and secret of an `Authorization: Basic` header; undefined when there is no such header. */
export function basicCredentials(
  header: string | undefined,
): { clientId: string; clientSecret: string } | undefined {
  if (header === undefined || header === '') return undefined;
  const match = /^Basic[ ]+([A-Za-z0-9+/]+={0,2})[ ]*$/i.exec(header);
  if (!match) {
    if (/^Basic\b/i.test(header))
      throw new OAuthError('invalid_client', 'the Basic credentials are malformed');
    throw new OAuthError(
      'invalid_client',
      'authenticate the client with HTTP Basic or client_secret in the body',
    );
  }
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new OAuthError('invalid_client', 'the Basic credentials are malformed');
  const clientId = formDecode(decoded.slice(0, colon));
  const clientSecret = formDecode(decoded.slice(colon + 1));
  if (
    clientId === '' ||
    clientSecret === '' ||
    clientId.length > maxLength ||
    clientSecret.length > maxLength
  )
    throw new OAuthError('invalid_client', 'the Basic credentials are malformed');
  return { clientId, clientSecret };
}

/**
 * The client credentials a request presents, by either method, or undefined
 * when it presents none (a public client, or a caller that must then be refused).
 */
export function presentedClient(req: Request): PresentedClient | undefined {
  const basic = basicCredentials(req.get('authorization'));
  const { client_id: clientId, client_secret: clientSecret } = oauthParameters(req, [
    'client_id',
    'client_secret',
  ] as const);
  if (basic) {
    if (clientSecret !== undefined)
      throw new OAuthError(
        'invalid_request',
        'use one client authentication method: HTTP Basic or client_secret in the body, not both',
      );
    // §3.2.1 lets a client name itself in the body too; it must be the same client.
    if (clientId !== undefined && clientId !== basic.clientId)
      throw new OAuthError('invalid_request', 'client_id differs from the client of the Basic credentials');
    return { ...basic, method: 'client_secret_basic' };
  }
  if (clientSecret !== undefined) {
    if (clientId === undefined) throw new OAuthError('invalid_request', 'client_secret needs a client_id');
    if (clientId.length > maxLength || clientSecret.length > maxLength)
      throw new OAuthError('invalid_client', 'unknown client or wrong secret');
    return { clientId, clientSecret, method: 'client_secret_post' };
  }
  // A client_id alone: the client did not authenticate (§5.2 invalid_client: "no client authentication included").
  if (clientId !== undefined)
    throw new OAuthError(
      'invalid_client',
      'authenticate the client: HTTP Basic or client_secret in the body',
    );
  return undefined;
}

/** The client id a request names, by either method, without checking anything; for rate limits. */
export function namedClientId(req: Request): string | undefined {
  try {
    return basicCredentials(req.get('authorization'))?.clientId;
  } catch {
    return undefined;
  }
}
