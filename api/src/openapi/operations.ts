// Every route of the API, for the OpenAPI document. Request bodies and query
// strings are the schemas the routes parse with; a test walks the Express
// router and fails when a route is missing here or an entry has no route.
import {
  apiClientPageSchema,
  createApiClientSchema,
  listApiClientsSchema,
  newApiClientSchema,
} from '../auth/api-clients.js';
import { loginSchema, tokenResponseSchema } from '../auth/sessions.js';
import { healthSchema, jwksSchema, livenessSchema, readinessSchema } from '../http/health.js';
import { acceptedSchema } from '../http/responses.js';
import {
  healthSchema as integrationHealthQuery,
  integrationEventPageSchema,
  integrationEventSchema,
  integrationHealthSchema,
  listEventsSchema,
} from '../integrations/integration-events.js';
import {
  providerConfigListSchema,
  providerConfigSchema,
  putProviderSchema,
} from '../integrations/provider-configs.js';
import { intakeBatchResultSchema, intakeResultSchema } from '../integrations/webhook-intake.js';
import { authorizationServerMetadataSchema } from '../oauth/metadata.js';
import { introspectionResponseSchema } from '../oauth/token-inspection.js';
import { auditPageSchema, auditQuerySchema, auditVerificationSchema } from '../routes/audit-logs.js';
import {
  logoutSchema,
  passwordChangeSchema,
  profileSchema,
  registerSchema,
  registerVerifySchema,
  tokenSchema,
} from '../routes/auth.js';
import { introspectionSchema, revocationSchema } from '../routes/oauth.js';
import { resetConfirmSchema, resetRequestSchema } from '../routes/password-reset.js';
import {
  discoverSchema,
  exchangeSchema,
  loginQuery,
  samlMetadataSchema,
  ssoDiscoverySchema,
} from '../routes/sso.js';
import { bulkResultSchema, bulkSchema } from '../routes/users.js';
import { signupAcceptedSchema, signupSchema, signupStatusSchema } from '../signup/signups.js';
import {
  createTenantSchema,
  currentTenantSchema,
  listTenantsSchema,
  tenantDeletionSchema,
  tenantPageSchema,
  tenantSchema,
  updateTenantSchema,
} from '../tenancy/tenant-admin.js';
import {
  createUserSchema,
  listUsersSchema,
  updateUserSchema,
  userPageSchema,
  userSchema,
} from '../users/users.js';
import {
  attemptPageSchema,
  createEndpointSchema,
  endpointPageSchema,
  endpointSchema,
  endpointWithSecretSchema,
  listAttemptsSchema,
  listEndpointsSchema,
  listMessagesSchema,
  messagePageSchema,
  messageSchema,
  replayResultSchema,
  replaySchema,
  rotateSecretSchema,
  testMessageSchema,
  updateEndpointSchema,
} from '../webhooks/schemas.js';
import { openApiDocumentSchema, type OperationDoc } from './document.js';

export const operations: OperationDoc[] = [
  // ---- operations ----
  {
    method: 'get',
    path: '/healthz',
    tag: 'operations',
    access: 'public',
    summary: 'Liveness: the process serves requests',
    responses: {
      200: { description: 'alive', schema: livenessSchema },
    },
  },
  {
    method: 'get',
    path: '/readyz',
    tag: 'operations',
    access: 'public',
    summary: 'Readiness: Redis, the tenant directory and the signing keys are available',
    responses: {
      200: {
        description: 'ready',
        schema: readinessSchema,
      },
      503: { description: 'not ready; `checks` says which dependency', schema: readinessSchema },
    },
  },
  {
    method: 'get',
    path: '/health',
    tag: 'operations',
    access: 'public',
    summary: 'Component detail and tenant counts',
    responses: {
      200: {
        description: 'healthy',
        schema: healthSchema,
      },
      503: { description: 'degraded', schema: healthSchema },
    },
  },
  {
    method: 'get',
    path: '/.well-known/jwks.json',
    tag: 'operations',
    access: 'public',
    summary: 'Public keys that verify access tokens',
    responses: {
      200: { description: 'JWK set', schema: jwksSchema },
    },
  },
  {
    method: 'get',
    path: '/.well-known/oauth-authorization-server',
    tag: 'operations',
    access: 'public',
    summary: 'OAuth 2.0 authorization server metadata (RFC 8414); the issuer is the tokens’ iss',
    responses: {
      200: {
        description: 'metadata',
        schema: authorizationServerMetadataSchema,
      },
    },
  },
  {
    method: 'get',
    path: '/api/openapi.json',
    tag: 'operations',
    access: 'public',
    summary: 'This document',
    responses: { 200: { description: 'OpenAPI 3.1', schema: openApiDocumentSchema } },
  },

  // ---- authentication ----
  {
    method: 'post',
    path: '/api/auth/login',
    tag: 'auth',
    access: 'public',
    summary: 'Sign in with a password',
    body: loginSchema,
    responses: {
      200: { description: 'tokens', schema: tokenResponseSchema },
      401: 'wrong tenant, email or password',
      403: 'tenant suspended',
      404: 'no such tenant',
      503: 'tenant not ready',
    },
  },
  {
    method: 'post',
    path: '/api/auth/token',
    tag: 'auth',
    access: 'public',
    oauth: true,
    summary: 'OAuth 2 token endpoint (RFC 6749): password, refresh_token and client_credentials grants',
    description:
      'Form-urlencoded (RFC 6749) or JSON. API clients and the platform admin authenticate with HTTP Basic ' +
      '(client_secret_basic) or client_id and client_secret in the body (client_secret_post), never both; ' +
      'users sign in without client authentication. Unknown parameters are ignored. Answers carry ' +
      'Cache-Control: no-store.',
    body: tokenSchema,
    form: true,
    responses: {
      200: { description: 'tokens', schema: tokenResponseSchema },
      400: 'invalid_request, invalid_grant (wrong password, unusable refresh token, unknown tenant), unauthorized_client, unsupported_grant_type or invalid_scope',
      401: 'invalid_client, with a Basic challenge',
    },
  },
  {
    method: 'post',
    path: '/api/auth/revoke',
    tag: 'auth',
    access: 'public',
    oauth: true,
    summary: 'Revoke an access or refresh token (RFC 7009)',
    description:
      'For API clients and the platform admin, authenticated as at the token endpoint. A revoked access ' +
      'token is refused at once everywhere; revoking a refresh token ends its session. Tenant clients ' +
      'reach only their own tenant’s tokens (others are treated as unknown); member clients revoke only ' +
      'their own access tokens.',
    body: revocationSchema,
    form: true,
    responses: {
      200: 'revoked, or the token was unknown, invalid or already revoked',
      400: 'invalid_request, or unauthorized_client (a member client and another’s token)',
      401: 'invalid_client, with a Basic challenge',
    },
  },
  {
    method: 'post',
    path: '/api/auth/introspect',
    tag: 'auth',
    access: 'public',
    oauth: true,
    summary: 'Introspect an access or refresh token (RFC 7662)',
    description:
      'For API clients and the platform admin, authenticated as at the token endpoint. A token the caller ' +
      'may not see (another tenant’s) answers like an unknown one: {"active": false}.',
    body: introspectionSchema,
    form: true,
    responses: {
      200: { description: 'the token’s state', schema: introspectionResponseSchema },
      400: 'invalid_request',
      401: 'invalid_client, with a Basic challenge',
    },
  },
  {
    method: 'post',
    path: '/api/auth/logout',
    tag: 'auth',
    access: 'public',
    summary: 'Revoke a refresh token and its family',
    body: logoutSchema,
    responses: { 204: 'revoked (also when it was unknown)' },
  },
  {
    method: 'post',
    path: '/api/auth/register',
    tag: 'auth',
    access: 'public',
    summary:
      'Self-registration as a member, where the tenant allows it: mails the address a one-time token; the same answer whether or not the address has an account',
    body: registerSchema,
    responses: {
      202: {
        description: 'accepted; no account exists until the mailed token is verified',
        schema: acceptedSchema,
      },
      400: 'the password is too weak',
      403: 'self-registration is off',
    },
  },
  {
    method: 'post',
    path: '/api/auth/register/verify',
    tag: 'auth',
    access: 'public',
    summary: 'Create the member from the mailed token and the password chosen when registering',
    body: registerVerifySchema,
    responses: {
      201: { description: 'the new member, its address verified; sign in next', schema: userSchema },
      400: 'the token is wrong, used or expired, or the password is not the one chosen',
      409: 'the address got an account meanwhile; it is left as it is',
    },
  },
  {
    method: 'get',
    path: '/api/auth/profile',
    tag: 'auth',
    access: 'tenant',
    summary: 'The signed-in user',
    responses: { 200: { description: 'the user', schema: userSchema } },
  },
  {
    method: 'patch',
    path: '/api/auth/profile',
    tag: 'auth',
    access: 'tenant',
    summary: 'Change your own name or department',
    body: profileSchema,
    responses: { 200: { description: 'the user', schema: userSchema } },
  },
  {
    method: 'post',
    path: '/api/auth/password/change',
    tag: 'auth',
    access: 'tenant',
    summary: 'Change your password; signs out your other sessions',
    body: passwordChangeSchema,
    responses: { 204: 'changed' },
  },
  {
    method: 'post',
    path: '/api/auth/password/reset',
    tag: 'auth',
    access: 'public',
    summary: 'Mail a one-time reset token; the same answer whether or not the account exists',
    body: resetRequestSchema,
    responses: { 202: { description: 'accepted', schema: acceptedSchema } },
  },
  {
    method: 'post',
    path: '/api/auth/password/reset/confirm',
    tag: 'auth',
    access: 'public',
    summary: 'Set a new password with the mailed token',
    body: resetConfirmSchema,
    responses: { 204: 'password set; every session of the user is revoked' },
  },

  // ---- single sign-on ----
  {
    method: 'post',
    path: '/api/auth/sso/discover',
    tag: 'sso',
    access: 'public',
    summary: "Home-realm discovery: how to sign in, from the email's verified domain",
    body: discoverSchema,
    responses: { 200: { description: 'sign-in options', schema: ssoDiscoverySchema } },
  },
  {
    method: 'post',
    path: '/api/auth/sso/exchange',
    tag: 'sso',
    access: 'public',
    summary: 'Exchange the one-time code from an SSO redirect for tokens',
    body: exchangeSchema,
    responses: { 200: { description: 'tokens', schema: tokenResponseSchema } },
  },
  {
    method: 'get',
    path: '/api/auth/sso/saml/{tenant}/metadata',
    tag: 'sso',
    access: 'public',
    summary: "The tenant's SAML service provider metadata",
    responses: {
      200: {
        description: 'SAML metadata',
        contentType: 'application/samlmetadata+xml',
        schema: samlMetadataSchema,
      },
      404: 'no SAML for this tenant',
    },
  },
  {
    method: 'get',
    path: '/api/auth/sso/saml/{tenant}/login',
    tag: 'sso',
    access: 'public',
    summary: "Start SAML sign-in: redirect to the tenant's identity provider",
    query: loginQuery,
    responses: {
      302: { description: 'to the identity provider', headers: { Location: 'the IdP URL' } },
      404: 'no SAML for this tenant',
    },
  },
  {
    method: 'post',
    path: '/api/auth/sso/saml/{tenant}/acs',
    tag: 'sso',
    access: 'public',
    summary: 'SAML assertion consumer service (HTTP-POST binding)',
    description:
      'Form fields SAMLResponse and RelayState. Ends in a redirect carrying a one-time code, or JSON tokens for JSON clients.',
    responses: {
      200: { description: 'tokens', schema: tokenResponseSchema },
      303: { description: 'to the return URL with a one-time code', headers: { Location: 'return URL' } },
      401: 'the response was refused',
      404: 'no SAML for this tenant',
    },
  },
  {
    method: 'get',
    path: '/api/auth/sso/oidc/{tenant}/login',
    tag: 'sso',
    access: 'public',
    summary: "Start OpenID Connect sign-in (PKCE S256, state, nonce): redirect to the tenant's provider",
    query: loginQuery,
    responses: {
      302: { description: 'to the provider', headers: { Location: 'authorization URL' } },
      404: 'no OIDC for this tenant',
    },
  },
  {
    method: 'get',
    path: '/api/auth/sso/oidc/{tenant}/callback',
    tag: 'sso',
    access: 'public',
    summary: 'OpenID Connect redirect URI',
    description: 'Query parameters code and state (or error) from the provider.',
    responses: {
      200: { description: 'tokens', schema: tokenResponseSchema },
      303: { description: 'to the return URL with a one-time code', headers: { Location: 'return URL' } },
      401: 'the callback was refused',
      404: 'no OIDC for this tenant',
    },
  },

  // ---- signup and tenants ----
  {
    method: 'post',
    path: '/api/signup',
    tag: 'tenants',
    access: 'public',
    summary: 'Create a tenant and its owner (when signup is enabled)',
    body: signupSchema,
    responses: {
      202: {
        description: 'provisioning',
        schema: signupAcceptedSchema,
        headers: { Location: 'the status URL' },
      },
      404: 'signup is disabled',
      409: 'the tenant name is taken: by a Tenant, or by the database and credentials an earlier Tenant of the name left under deletionPolicy Retain (type .../tenant-name-retained)',
    },
  },
  {
    method: 'get',
    path: '/api/signup/{tenant}',
    tag: 'tenants',
    access: 'public',
    summary: 'Provisioning status of a signup',
    responses: {
      200: {
        description: 'status',
        schema: signupStatusSchema,
      },
      404: 'no signup for this tenant',
    },
  },
  {
    method: 'get',
    path: '/api/tenants/current',
    tag: 'tenants',
    access: 'tenant',
    summary: "The caller's tenant",
    responses: { 200: { description: 'the tenant', schema: currentTenantSchema } },
  },
  {
    method: 'get',
    path: '/api/tenants',
    tag: 'tenants',
    access: 'platform',
    summary: 'List Tenants (platform admin)',
    query: listTenantsSchema,
    responses: { 200: { description: 'a page of tenants', schema: tenantPageSchema } },
  },
  {
    method: 'post',
    path: '/api/tenants',
    tag: 'tenants',
    access: 'platform',
    summary: 'Create a Tenant resource (platform admin)',
    body: createTenantSchema,
    responses: {
      201: { description: 'created', schema: tenantSchema },
      409: 'the name is taken: by a Tenant, or by the database and credentials an earlier Tenant of the name left under deletionPolicy Retain (type .../tenant-name-retained)',
    },
  },
  {
    method: 'get',
    path: '/api/tenants/{name}',
    tag: 'tenants',
    access: 'platform',
    summary: 'One Tenant (platform admin)',
    responses: { 200: { description: 'the tenant', schema: tenantSchema }, 404: 'no such tenant' },
  },
  {
    method: 'patch',
    path: '/api/tenants/{name}',
    tag: 'tenants',
    access: 'platform',
    summary:
      'Change plan, display name, suspension, self-registration, rate limit or domains (platform admin)',
    body: updateTenantSchema,
    responses: { 200: { description: 'the tenant', schema: tenantSchema }, 404: 'no such tenant' },
  },
  {
    method: 'delete',
    path: '/api/tenants/{name}',
    tag: 'tenants',
    access: 'platform',
    summary: "Delete a Tenant; its deletionPolicy decides the data's fate (platform admin)",
    responses: { 202: { description: 'deleting', schema: tenantDeletionSchema }, 404: 'no such tenant' },
  },

  // ---- users ----
  {
    method: 'get',
    path: '/api/users',
    tag: 'users',
    access: 'tenant',
    summary: 'List users',
    query: listUsersSchema,
    responses: { 200: { description: 'a page of users', schema: userPageSchema } },
  },
  {
    method: 'post',
    path: '/api/users',
    tag: 'users',
    access: 'tenant',
    summary: 'Create a user (admins: not owners; owners: any role)',
    body: createUserSchema,
    responses: { 201: { description: 'the user', schema: userSchema }, 409: 'email taken' },
  },
  {
    method: 'post',
    path: '/api/users/bulk',
    tag: 'users',
    access: 'tenant',
    summary: 'Create up to 100 users, with a result per item',
    body: bulkSchema,
    responses: { 200: { description: 'per-item results', schema: bulkResultSchema } },
  },
  {
    method: 'get',
    path: '/api/users/{id}',
    tag: 'users',
    access: 'tenant',
    summary: 'One user',
    responses: { 200: { description: 'the user', schema: userSchema }, 404: 'no such user' },
  },
  {
    method: 'patch',
    path: '/api/users/{id}',
    tag: 'users',
    access: 'tenant',
    summary: 'Change a user',
    body: updateUserSchema,
    responses: { 200: { description: 'the user', schema: userSchema }, 404: 'no such user' },
  },
  {
    method: 'delete',
    path: '/api/users/{id}',
    tag: 'users',
    access: 'tenant',
    summary: 'Delete a user',
    responses: { 204: 'deleted', 404: 'no such user' },
  },
  {
    method: 'post',
    path: '/api/users/{id}/activate',
    tag: 'users',
    access: 'tenant',
    summary: 'Activate a user',
    responses: { 200: { description: 'the user', schema: userSchema }, 404: 'no such user' },
  },
  {
    method: 'post',
    path: '/api/users/{id}/deactivate',
    tag: 'users',
    access: 'tenant',
    summary: 'Deactivate a user; their sessions end',
    responses: { 200: { description: 'the user', schema: userSchema }, 404: 'no such user' },
  },

  // ---- API clients ----
  {
    method: 'get',
    path: '/api/clients',
    tag: 'api-clients',
    access: 'tenant',
    summary: "List the tenant's API clients (owners and admins)",
    query: listApiClientsSchema,
    responses: { 200: { description: 'a page of clients', schema: apiClientPageSchema } },
  },
  {
    method: 'post',
    path: '/api/clients',
    tag: 'api-clients',
    access: 'tenant',
    summary: 'Create an API client for the client_credentials grant; the secret is shown once',
    body: createApiClientSchema,
    responses: {
      201: {
        description: 'the client with its secret',
        schema: newApiClientSchema,
      },
    },
  },
  {
    method: 'delete',
    path: '/api/clients/{id}',
    tag: 'api-clients',
    access: 'tenant',
    summary: 'Revoke an API client',
    responses: { 204: 'revoked', 404: 'no such client' },
  },

  // ---- audit log ----
  {
    method: 'get',
    path: '/api/audit-logs',
    tag: 'audit',
    access: 'tenant',
    summary: 'Search the audit log (owners and admins)',
    query: auditQuerySchema,
    responses: { 200: { description: 'a page of entries', schema: auditPageSchema } },
  },
  {
    method: 'get',
    path: '/api/audit-logs/verify',
    tag: 'audit',
    access: 'tenant',
    summary: "Check the audit log's hash chain (owners and admins)",
    responses: {
      200: {
        description: 'the result',
        schema: auditVerificationSchema,
      },
    },
  },

  // ---- outgoing webhooks ----
  {
    method: 'get',
    path: '/api/webhooks/endpoints',
    tag: 'webhooks',
    access: 'tenant',
    summary: 'List webhook endpoints (owners and admins)',
    query: listEndpointsSchema,
    responses: { 200: { description: 'a page of endpoints', schema: endpointPageSchema } },
  },
  {
    method: 'post',
    path: '/api/webhooks/endpoints',
    tag: 'webhooks',
    access: 'tenant',
    summary: 'Register an endpoint; its signing secret (whsec_...) is shown only in this answer',
    description: 'URLs that resolve to loopback, private or metadata addresses are refused.',
    body: createEndpointSchema,
    responses: { 201: { description: 'the endpoint with its secret', schema: endpointWithSecretSchema } },
  },
  {
    method: 'get',
    path: '/api/webhooks/endpoints/{id}',
    tag: 'webhooks',
    access: 'tenant',
    summary: 'One endpoint',
    responses: { 200: { description: 'the endpoint', schema: endpointSchema }, 404: 'no such endpoint' },
  },
  {
    method: 'patch',
    path: '/api/webhooks/endpoints/{id}',
    tag: 'webhooks',
    access: 'tenant',
    summary: 'Change URL, event types, description or enabled',
    body: updateEndpointSchema,
    responses: { 200: { description: 'the endpoint', schema: endpointSchema }, 404: 'no such endpoint' },
  },
  {
    method: 'delete',
    path: '/api/webhooks/endpoints/{id}',
    tag: 'webhooks',
    access: 'tenant',
    summary: 'Delete an endpoint',
    responses: { 204: 'deleted', 404: 'no such endpoint' },
  },
  {
    method: 'post',
    path: '/api/webhooks/endpoints/{id}/rotate-secret',
    tag: 'webhooks',
    access: 'tenant',
    summary: 'New signing secret; the previous one also signs during the overlap',
    body: rotateSecretSchema,
    responses: {
      200: { description: 'the endpoint with its new secret', schema: endpointWithSecretSchema },
      404: 'no such endpoint',
    },
  },
  {
    method: 'post',
    path: '/api/webhooks/endpoints/{id}/test',
    tag: 'webhooks',
    access: 'tenant',
    summary: 'Send a webhook.test message to this endpoint',
    responses: {
      202: { description: 'queued', schema: testMessageSchema },
      404: 'no such endpoint',
      409: 'the endpoint is disabled',
    },
  },
  {
    method: 'post',
    path: '/api/webhooks/endpoints/{id}/replay',
    tag: 'webhooks',
    access: 'tenant',
    summary: "Deliver this endpoint's messages since a time again",
    query: replaySchema,
    responses: {
      202: { description: 'how many were queued', schema: replayResultSchema },
      404: 'no such endpoint',
      409: 'the endpoint is disabled',
    },
  },
  {
    method: 'get',
    path: '/api/webhooks/messages',
    tag: 'webhooks',
    access: 'tenant',
    summary: 'Outgoing messages with their delivery status',
    query: listMessagesSchema,
    responses: { 200: { description: 'a page of messages', schema: messagePageSchema } },
  },
  {
    method: 'get',
    path: '/api/webhooks/messages/{id}',
    tag: 'webhooks',
    access: 'tenant',
    summary: 'One message and its deliveries',
    responses: { 200: { description: 'the message', schema: messageSchema }, 404: 'no such message' },
  },
  {
    method: 'get',
    path: '/api/webhooks/messages/{id}/attempts',
    tag: 'webhooks',
    access: 'tenant',
    summary: 'Every delivery attempt of a message',
    query: listAttemptsSchema,
    responses: {
      200: { description: 'a page of attempts', schema: attemptPageSchema },
      404: 'no such message',
    },
  },

  // ---- incoming integrations ----
  ...(
    ['/api/integrations/webhooks/{provider}', '/api/integrations/webhooks/{provider}/{tenant}'] as const
  ).map((path): OperationDoc => ({
    method: 'post',
    path,
    tag: 'integrations',
    access: 'public',
    summary: 'A signed provider webhook: one event, or {"events": [...]}',
    description:
      'Standard Webhooks signature over the raw body: headers webhook-id, webhook-timestamp (5 minutes tolerance) and ' +
      'webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>" keyed by the provider secret (whsec_...). ' +
      "Without {tenant}, the tenant is found from the payload's organization_id. Providers: user-service, " +
      'payment-service, communication-service. Deduplicated on (tenant, provider, event_id or webhook-id).',
    responses: {
      200: { description: 'a duplicate: already accepted, no second effect', schema: intakeResultSchema },
      202: { description: 'accepted (per-event results for a batch)', schema: intakeResultSchema },
      400: {
        description:
          'the body is not an event (problem), or every event of a batch was rejected (per-event results)',
        schema: intakeBatchResultSchema,
      },
      401: 'missing, wrong or stale signature, or unknown organization',
      404: 'unknown provider or tenant',
      413: 'the body is too large',
      503: 'the events could not be stored and none of them was; retry after Retry-After',
    },
  })),
  {
    method: 'get',
    path: '/api/integrations/providers',
    tag: 'integrations',
    access: 'tenant',
    summary: "The tenant's provider configurations (never their secrets)",
    responses: { 200: { description: 'configurations', schema: providerConfigListSchema } },
  },
  {
    method: 'get',
    path: '/api/integrations/providers/{provider}',
    tag: 'integrations',
    access: 'tenant',
    summary: 'One provider configuration (never its secret)',
    responses: {
      200: { description: 'the configuration', schema: providerConfigSchema },
      404: 'not configured',
    },
  },
  {
    method: 'put',
    path: '/api/integrations/providers/{provider}',
    tag: 'integrations',
    access: 'tenant',
    summary: 'Configure a provider (owners and admins); the secret is write-only and rotates with overlap',
    body: putProviderSchema,
    responses: {
      404: 'unknown provider',
      200: { description: 'updated', schema: providerConfigSchema },
      201: { description: 'created', schema: providerConfigSchema },
      409: 'another tenant claims this organization_id',
    },
  },
  {
    method: 'get',
    path: '/api/integrations/events',
    tag: 'integrations',
    access: 'tenant',
    summary: 'Incoming events with status, attempts and last error',
    query: listEventsSchema,
    responses: { 200: { description: 'a page of events', schema: integrationEventPageSchema } },
  },
  {
    method: 'get',
    path: '/api/integrations/events/{id}',
    tag: 'integrations',
    access: 'tenant',
    summary: 'One incoming event',
    responses: { 200: { description: 'the event', schema: integrationEventSchema }, 404: 'no such event' },
  },
  {
    method: 'post',
    path: '/api/integrations/events/{id}/retry',
    tag: 'integrations',
    access: 'tenant',
    summary: 'Process a failed event again',
    responses: {
      202: { description: 'queued', schema: integrationEventSchema },
      404: 'no such event',
      409: 'not failed',
    },
  },
  {
    method: 'get',
    path: '/api/integrations/health',
    tag: 'integrations',
    access: 'tenant',
    summary: 'Per provider: circuit state, success rate, last error, lag and queue depth',
    query: integrationHealthQuery,
    responses: { 200: { description: 'health per provider', schema: integrationHealthSchema } },
  },
];
