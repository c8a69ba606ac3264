// The token endpoint's parameters (RFC 6749 §4.3, §4.4, §6): read from a
// form-urlencoded or JSON body, checked one by one so each problem gets its
// RFC error code. Parameters the grant does not use are ignored (§3.2).
import type { Request } from 'express';
import { z } from 'zod';
import { tenantName } from '../auth/sessions.js';
import { email } from '../users/users.js';
import { OAuthError } from './errors.js';
import { oauthParameters } from './client-auth.js';

export const grantTypes = ['password', 'refresh_token', 'client_credentials'] as const;
export type GrantType = (typeof grantTypes)[number];

export type TokenRequest =
  | { grantType: 'password'; tenant: string; username: string; password: string }
  | { grantType: 'refresh_token'; refreshToken: string }
  | { grantType: 'client_credentials' };

// RFC 6749 §3.3: scope tokens are printable ASCII without space, `"` or `\`, separated by single spaces.
const scopeSyntax = /^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/;

function required(value: string | undefined, name: string): string {
  if (value === undefined) throw new OAuthError('invalid_request', `the parameter ${name} is missing`);
  return value;
}

function checked<T>(schema: z.ZodType<T>, value: string, name: string): T {
  const result = schema.safeParse(value);
  if (!result.success)
    throw new OAuthError('invalid_request', `${name}: ${result.error.issues[0]?.message ?? 'is not valid'}`);
  return result.data;
}

/** The grant a request asks for, with its parameters; an OAuthError naming the first problem otherwise. */
export function tokenRequest(req: Request): TokenRequest {
  const params = oauthParameters(req, [
    'grant_type',
    'scope',
    'tenant',
    'username',
    'password',
    'refresh_token',
  ] as const);
  const grantType = required(params.grant_type, 'grant_type');
  if (!(grantTypes as readonly string[]).includes(grantType))
    throw new OAuthError(
      'unsupported_grant_type',
      `the grant type ${grantType} is not supported; use ${grantTypes.join(', ')}`,
    );
  if (params.scope !== undefined) {
    if (params.scope.length > 200 || !scopeSyntax.test(params.scope))
      throw new OAuthError('invalid_scope', 'the scope is malformed');
    // A token's authority is its role; no scopes are defined, so none can be granted.
    throw new OAuthError('invalid_scope', 'this server defines no scopes; omit scope');
  }
  switch (grantType as GrantType) {
    case 'password':
      return {
        grantType: 'password',
        tenant: checked(tenantName, required(params.tenant, 'tenant'), 'tenant'),
        username: checked(email, required(params.username, 'username'), 'username'),
        password: checked(z.string().max(256), required(params.password, 'password'), 'password'),
      };
    case 'refresh_token':
      return {
        grantType: 'refresh_token',
        refreshToken: checked(
          z.string().max(512),
          required(params.refresh_token, 'refresh_token'),
          'refresh_token',
        ),
      };
    case 'client_credentials':
      return { grantType: 'client_credentials' };
  }
}

/** The token introspection and revocation parameters (RFC 7662 §2.1, RFC 7009 §2.1); the hint is advice only. */
export function tokenParameter(req: Request): string {
  const { token } = oauthParameters(req, ['token', 'token_type_hint'] as const);
  return required(token, 'token');
}
