// Builds the OpenAPI 3.1 document from a list of operations whose request
// bodies and query strings are the same zod schemas the routes validate with,
// so the document cannot drift from what the API accepts. JSON Schema 2020-12
// is OpenAPI 3.1's own schema dialect, which is what zod emits.
import { z } from 'zod';
import { components, named } from '../http/responses.js';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** Who may call an operation: nobody needs a token, any tenant token, or the platform admin's token. */
export type Access = 'public' | 'tenant' | 'platform' | 'tenant-or-platform';

export interface ResponseDoc {
  description: string;
  /** A JSON body: a schema registered as a named component (`named()`), the one the route builds the body through. */
  schema?: z.ZodType;
  /** Defaults to application/json. */
  contentType?: string;
  headers?: Record<string, string>;
}

export interface OperationDoc {
  method: Method;
  /** The OpenAPI path, with `{name}` parameters. */
  path: string;
  summary: string;
  tag: string;
  access: Access;
  /** What roles may do, in words, when it is more than "any authenticated caller". */
  description?: string;
  body?: z.ZodType;
  /** The body may also be sent as application/x-www-form-urlencoded. */
  form?: boolean;
  query?: z.ZodObject;
  /**
   * Client errors (4xx but 429) are RFC 6749 §5.2 OAuth errors in application/json, not problem+json;
   * security is client authentication (HTTP Basic or client_secret in the body), not a bearer token.
   */
  oauth?: boolean;
  responses: Record<number, string | ResponseDoc>;
}

/** This document; the schema of its own operation. */
export const openApiDocumentSchema = named(
  'OpenApiDocument',
  z.looseObject({ openapi: z.literal('3.1.0'), info: z.looseObject({}), paths: z.looseObject({}) }),
  'An OpenAPI 3.1 document.',
);

const reasons: Record<number, string> = {
  400: 'The request is malformed or a field is invalid.',
  401: 'No valid credentials, or a token issued to an earlier Tenant of the same name.',
  403: 'The caller may not do this.',
  404: "No such resource, or the token's tenant no longer exists.",
  409: 'The request conflicts with the current state.',
  413: 'The body is too large.',
  415: 'The body has an unsupported media type.',
  429: 'Rate limited; see the RateLimit and Retry-After headers.',
  503: 'A dependency is unavailable; retry later.',
};

const componentUri = (id: string) => `#/components/schemas/${id}`;

/** A response schema as a reference to its component. */
function ref(schema: z.ZodType) {
  const id = components.get(schema)?.id;
  if (!id) throw new Error('a response schema must be a named component (named() in http/responses.ts)');
  return { $ref: componentUri(id) };
}

/** Every named schema, as JSON Schema 2020-12 referring to the others by $ref. */
export function componentSchemas(): Record<string, Record<string, unknown>> {
  const { schemas } = z.toJSONSchema(components, {
    io: 'output',
    uri: componentUri,
    unrepresentable: 'any',
  }) as { schemas: Record<string, Record<string, unknown>> };
  for (const schema of Object.values(schemas)) {
    // The document's jsonSchemaDialect says the dialect; a fragment is no $id.
    delete schema.$schema;
    delete schema.$id;
    delete (schema as { id?: unknown }).id;
  }
  return Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b)));
}

function jsonSchema(schema: z.ZodType, io: 'input' | 'output') {
  const converted = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  delete converted.$schema;
  return converted;
}

function parameters(op: OperationDoc) {
  const inPath = [...op.path.matchAll(/\{([^}]+)\}/g)].map((m) => ({
    name: m[1]!,
    in: 'path',
    required: true,
    schema: { type: 'string' },
  }));
  const shape = op.query?.shape ?? {};
  const inQuery = Object.entries(shape).map(([name, schema]) => {
    const converted = jsonSchema(schema as z.ZodType, 'input');
    return {
      name,
      in: 'query',
      required: !(schema as z.ZodType).safeParse(undefined).success,
      schema: converted,
    };
  });
  return [...inPath, ...inQuery];
}

const problemContent = {
  'application/problem+json': { schema: { $ref: componentUri('Problem') } },
};

function headers(d: ResponseDoc) {
  if (!d.headers) return {};
  return {
    headers: Object.fromEntries(
      Object.entries(d.headers).map(([name, description]) => [
        name,
        { description, schema: { type: 'string' } },
      ]),
    ),
  };
}

function response(status: number, doc: string | ResponseDoc, oauth: boolean) {
  const d = typeof doc === 'string' ? { description: doc } : doc;
  // Rate limits and unreadable bodies are refused before the OAuth handler: problems there too.
  if (oauth && status >= 400 && status < 500 && ![413, 415, 429].includes(status)) {
    return {
      description: d.description,
      content: { 'application/json': { schema: { $ref: componentUri('OAuthError') } } },
    };
  }
  if (status >= 400) {
    // An error answer is a problem; some operations also answer an error with their own body.
    return {
      description: d.description,
      ...headers(d),
      content: {
        ...(d.schema ? { [d.contentType ?? 'application/json']: { schema: ref(d.schema) } } : {}),
        ...problemContent,
      },
    };
  }
  return {
    description: d.description,
    ...headers(d),
    ...(d.schema ? { content: { [d.contentType ?? 'application/json']: { schema: ref(d.schema) } } } : {}),
  };
}

const accessText: Record<Access, string> = {
  public: 'Public: no token.',
  tenant: "A tenant user's or API client's access token.",
  platform: "The platform admin's access token (client_credentials).",
  'tenant-or-platform': "A tenant token or the platform admin's.",
};

function description(op: OperationDoc): string {
  const access = op.oauth ? 'Client authentication, not a bearer token.' : accessText[op.access];
  return op.description ? `${op.description}\n\n${access}` : access;
}

function security(op: OperationDoc) {
  if (op.oauth) return [{ clientSecretBasic: [] }, {}];
  return op.access === 'public' ? [] : [{ bearer: [] }];
}

/** An outgoing webhook: what the worker posts to subscribed endpoints for one event type. */
export interface WebhookDoc {
  type: string;
  summary: string;
  /** The whole body, `{type, timestamp, data}`: a named component. */
  body: z.ZodType;
}

/** The Standard Webhooks headers every delivery carries. */
const webhookHeaders = [
  {
    name: 'webhook-id',
    description:
      'The message id (`msg_...`); the same on every retry and replay, so receivers can deduplicate.',
    schema: { type: 'string', pattern: '^msg_[A-Za-z0-9]+$' },
  },
  {
    name: 'webhook-timestamp',
    description: 'Unix seconds when this attempt was signed; refuse ones far from your clock.',
    schema: { type: 'string', pattern: '^[0-9]+$' },
  },
  {
    name: 'webhook-signature',
    description:
      'Space-separated `v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">`, keyed by the ' +
      "endpoint's secret (the base64 after `whsec_`); two signatures while a rotated secret overlaps.",
    schema: { type: 'string', pattern: '^v1,[A-Za-z0-9+/=]+( v1,[A-Za-z0-9+/=]+)*$' },
  },
];

function webhook(doc: WebhookDoc) {
  return {
    post: {
      operationId: `webhook${doc.type.replaceAll(/(^|\.)(.)/g, (_m, _dot: string, c: string) => c.toUpperCase())}`,
      summary: doc.type,
      description: doc.summary,
      tags: ['webhooks'],
      // Nothing to authenticate with: the receiver checks webhook-signature.
      security: [],
      parameters: webhookHeaders.map((header) => ({ ...header, in: 'header', required: true })),
      requestBody: { required: true, content: { 'application/json': { schema: ref(doc.body) } } },
      responses: {
        '2XX': {
          description: 'Received. Any other answer, or none within the timeout, is retried with backoff.',
        },
      },
    },
  };
}

export interface DocumentInfo {
  title: string;
  version: string;
  description: string;
  license: { name: string; identifier: string };
  contact: { name: string; url: string };
}

export function openApiDocument(
  operations: readonly OperationDoc[],
  info: DocumentInfo,
  tags: Record<string, string>,
  webhooks: readonly WebhookDoc[] = [],
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const errorStatuses = new Set(Object.keys(op.responses).map(Number));
    // Every operation can be rate limited or malformed; authenticated ones can be refused, or meet a
    // tenant that is not ready or a database that is down; a body can be too large or badly encoded.
    for (const status of [
      400,
      429,
      ...(op.access === 'public' ? [] : [401, 403, 503]),
      // A tenant token outlives its Tenant for a moment after the Tenant is deleted.
      ...(op.access === 'tenant' ? [404] : []),
      ...(op.body ? [413, 415] : []),
    ])
      errorStatuses.add(status);
    const responses = Object.fromEntries(
      [...errorStatuses]
        .sort((a, b) => a - b)
        .map((status) => [
          String(status),
          response(status, op.responses[status] ?? reasons[status] ?? 'Error.', op.oauth === true),
        ]),
    );
    const body = op.body
      ? {
          requestBody: {
            required: true,
            content: {
              'application/json': { schema: jsonSchema(op.body, 'input') },
              ...(op.form
                ? { 'application/x-www-form-urlencoded': { schema: jsonSchema(op.body, 'input') } }
                : {}),
            },
          },
        }
      : {};
    const params = parameters(op);
    (paths[op.path] ??= {})[op.method] = {
      operationId: `${op.method}${op.path.replaceAll(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      summary: op.summary,
      description: description(op),
      tags: [op.tag],
      security: security(op),
      ...(params.length > 0 ? { parameters: params } : {}),
      ...body,
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info,
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    servers: [{ url: '/' }],
    tags: [...new Set([...operations.map((o) => o.tag), ...(webhooks.length > 0 ? ['webhooks'] : [])])].map(
      (name) => {
        const text = tags[name];
        if (!text) throw new Error(`tag ${name} has no description`);
        return { name, description: text };
      },
    ),
    paths,
    ...(webhooks.length > 0
      ? { webhooks: Object.fromEntries(webhooks.map((doc) => [doc.type, webhook(doc)])) }
      : {}),
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'An access token from POST /api/auth/login or POST /api/auth/token (ES256, see /.well-known/jwks.json).',
        },
        clientSecretBasic: {
          type: 'http',
          scheme: 'basic',
          description:
            'OAuth client authentication (RFC 6749 §2.3.1): the form-urlencoded client_id and client_secret. ' +
            'They may instead be sent as client_id and client_secret body parameters, but not both ways at once.',
        },
      },
      schemas: componentSchemas(),
    },
  };
}
