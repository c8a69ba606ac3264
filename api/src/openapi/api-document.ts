// The API's OpenAPI document: what /api/openapi.json serves and what
// `hack/openapi.ts` prints for the linters and the generated client.
import { platformVersion } from '../../../lib/logger.js';
import { encode } from '../http/responses.js';
import { domainEventTypes, eventSummaries, webhookBodySchemas } from '../webhooks/domain-events.js';
import { openApiDocument, openApiDocumentSchema } from './document.js';
import { operations } from './operations.js';

export function apiDocument(): Record<string, unknown> {
  return encode(
    openApiDocumentSchema,
    openApiDocument(
      operations,
      {
        title: 'Tenantry API',
        version: platformVersion,
        description:
          'The shared multi-tenant API. Errors are RFC 9457 problem+json, except the client errors of the OAuth ' +
          'endpoints (token, revoke, introspect), which are RFC 6749 §5.2 JSON.',
        license: { name: 'Apache 2.0', identifier: 'Apache-2.0' },
        // The project's issue tracker, as the chart's `sources` names it.
        contact: { name: 'Tenantry maintainers', url: 'https://github.com/tenantry/tenantry/issues' },
      },
      {
        operations: 'Health, keys, metadata and this document.',
        auth: 'Sign-in, tokens (OAuth 2.0), registration, profile and passwords.',
        sso: 'Single sign-on with SAML 2.0 and OpenID Connect.',
        tenants: 'Signup, and the Tenants themselves (platform admin).',
        users: "The tenant's user directory.",
        'api-clients': 'API clients for the client_credentials grant.',
        audit: 'The hash-chained audit log.',
        webhooks:
          'Outgoing webhooks: endpoints, messages and attempts; the events themselves are under `webhooks`.',
        integrations: 'Incoming provider webhooks, provider configurations, events and health.',
      },
      domainEventTypes.map((type) => ({
        type,
        summary: eventSummaries[type],
        body: webhookBodySchemas[type],
      })),
    ) as never,
  );
}
