// Authorization server metadata (RFC 8414), so OAuth clients configure
// themselves from the issuer alone. The issuer is the `iss` of our access
// tokens (PUBLIC_BASE_URL), and every endpoint is named under it.
//
// response_types_supported is REQUIRED by RFC 8414 §2 but only describes the
// authorization endpoint, which this server does not have (no grant here
// redirects a browser: password, refresh_token and client_credentials all use
// the token endpoint alone). The truthful list is empty, and §2 asks for no
// member; authorization_endpoint is left out as §2 allows when no grant uses it.
import { z } from 'zod';
import { named } from '../http/responses.js';
import { clientAuthMethods } from './client-auth.js';
import { grantTypes } from './token-request.js';

const methods = z.array(z.enum(clientAuthMethods));

export const authorizationServerMetadataSchema = named(
  'AuthorizationServerMetadata',
  z.object({
    issuer: z.url(),
    token_endpoint: z.url(),
    jwks_uri: z.url(),
    grant_types_supported: z.array(z.enum(grantTypes)),
    response_types_supported: z.array(z.string()).max(0),
    token_endpoint_auth_methods_supported: methods,
    revocation_endpoint: z.url(),
    revocation_endpoint_auth_methods_supported: methods,
    introspection_endpoint: z.url(),
    introspection_endpoint_auth_methods_supported: methods,
  }),
  'OAuth 2.0 authorization server metadata (RFC 8414).',
);

export const metadataPath = '/.well-known/oauth-authorization-server';

export function authorizationServerMetadata(
  issuer: string,
): z.input<typeof authorizationServerMetadataSchema> {
  return {
    issuer,
    token_endpoint: `${issuer}/api/auth/token`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    grant_types_supported: [...grantTypes],
    response_types_supported: [],
    token_endpoint_auth_methods_supported: [...clientAuthMethods],
    revocation_endpoint: `${issuer}/api/auth/revoke`,
    revocation_endpoint_auth_methods_supported: [...clientAuthMethods],
    introspection_endpoint: `${issuer}/api/auth/introspect`,
    introspection_endpoint_auth_methods_supported: [...clientAuthMethods],
  };
}

/**
 * Where the metadata is served: RFC 8414 §3.1 puts the well-known segment between the host and the
 * issuer's path, so an issuer with a path has its own location; the bare one is served too.
 */
export function metadataPaths(issuer: string): string[] {
  const path = new URL(issuer).pathname.replace(/\/$/, '');
  return path === '' ? [metadataPath] : [metadataPath, `${metadataPath}${path}`];
}
