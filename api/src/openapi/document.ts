// Builds the OpenAPI 3.1 document from a list of operations whose request
// bodies and query strings are the same zod schemas the routes validate with,
// so the document cannot drift from what the API accepts. JSON Schema 2020-12
// is OpenAPI 3.1's own schema dialect, which is what zod emits.
import { z } from 'zod';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** Who may call an operation: nobody needs a token, any tenant token, or the platform admin's token. */
export type Access = 'public' | 'tenant' | 'platform' | 'tenant-or-platform';

export interface ResponseDoc {
  description: string;
  /** A JSON body: a zod schema (its output shape) or a plain JSON Schema. */
  schema?: z.ZodType | Record<string, unknown>;
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

const problemSchema = {
  type: 'object',
  description: 'RFC 9457 problem details.',
  required: ['type', 'title', 'status'],
  properties: {
    type: { type: 'string', format: 'uri-reference' },
    title: { type: 'string' },
    status: { type: 'integer', minimum: 400, maximum: 599 },
    detail: { type: 'string' },
    instance: { type: 'string' },
    errors: {
      type: 'array',
      description: 'Validation errors, one per field.',
      items: {
        type: 'object',
        required: ['field', 'message'],
        properties: { field: { type: 'string' }, message: { type: 'string' } },
      },
    },
  },
};

const oauthErrorSchema = {
  type: 'object',
  description: 'An OAuth 2.0 error (RFC 6749 §5.2).',
  required: ['error'],
  properties: {
    error: {
      type: 'string',
      enum: [
        'invalid_request',
        'invalid_client',
        'invalid_grant',
        'unauthorized_client',
        'unsupported_grant_type',
        'invalid_scope',
        'unsupported_token_type',
      ],
    },
    error_description: { type: 'string' },
  },
};

const reasons: Record<number, string> = {
  400: 'The request is malformed or a field is invalid.',
  401: 'No valid credentials, or a token issued to an earlier Tenant of the same name.',
  403: 'The caller may not do this.',
  404: 'No such resource.',
  409: 'The request conflicts with the current state.',
  413: 'The body is too large.',
  415: 'The body has an unsupported media type.',
  429: 'Rate limited; see the RateLimit and Retry-After headers.',
  503: 'A dependency is unavailable; retry later.',
};

function jsonSchema(schema: z.ZodType | Record<string, unknown>, io: 'input' | 'output') {
  if (!(schema instanceof z.ZodType)) return schema;
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

function response(status: number, doc: string | ResponseDoc, oauth: boolean) {
  const d = typeof doc === 'string' ? { description: doc } : doc;
  if (oauth && status >= 400 && status < 500 && status !== 429) {
    return {
      description: d.description,
      content: { 'application/json': { schema: { $ref: '#/components/schemas/OAuthError' } } },
    };
  }
  if (status >= 400) {
    return {
      description: d.description,
      content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
    };
  }
  return {
    description: d.description,
    ...(d.headers
      ? {
          headers: Object.fromEntries(
            Object.entries(d.headers).map(([name, description]) => [
              name,
              { description, schema: { type: 'string' } },
            ]),
          ),
        }
      : {}),
    ...(d.schema
      ? { content: { [d.contentType ?? 'application/json']: { schema: jsonSchema(d.schema, 'output') } } }
      : {}),
  };
}

function security(op: OperationDoc) {
  if (op.oauth) return [{ clientSecretBasic: [] }, {}];
  return op.access === 'public' ? [] : [{ bearer: [] }];
}

export function openApiDocument(
  operations: readonly OperationDoc[],
  info: { title: string; version: string; description: string },
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const errorStatuses = new Set(Object.keys(op.responses).map(Number));
    // Every operation can be rate limited or malformed; authenticated ones can be refused.
    for (const status of [400, 429, ...(op.access === 'public' ? [] : [401, 403])]) errorStatuses.add(status);
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
      ...(op.description ? { description: op.description } : {}),
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
    tags: [...new Set(operations.map((o) => o.tag))].map((name) => ({ name })),
    paths,
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
      schemas: { Problem: problemSchema, OAuthError: oauthErrorSchema },
    },
  };
}
