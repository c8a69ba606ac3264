// The OpenAPI document against the running app: it lists exactly the routes
// Express serves, and a property-based fuzz run over every documented
// operation never gets a 5xx, and every answer it gets (errors included:
// problem+json, or for the OAuth endpoints an RFC 6749 error) validates
// against the document.
import { expect } from 'chai';
import fc from 'fast-check';
import type { Express } from 'express';
import { startTestApi, type TestApi } from '../harness/api-server.js';
import { OpenApiContract, type OpenApiDocument } from '../harness/openapi-contract.js';
import { startTestPlatform, type TestPlatform } from '../harness/platform.js';
import { platformAdminToken, seedUser, signIn } from '../harness/seeded-tenants.js';

interface ListedRoute {
  path: string | RegExp;
  methods?: string[];
  router?: { listRoutes(): ListedRoute[] };
}

/** Every (method, path) the app routes, with Express `:name` parameters written `{name}`. */
function servedOperations(app: Express): Set<string> {
  const found = new Set<string>();
  const walk = (router: { listRoutes(): ListedRoute[] }, prefix: string) => {
    for (const route of router.listRoutes()) {
      if (typeof route.path !== 'string')
        throw new Error(`a route with a pattern path cannot be documented: ${route.path}`);
      const path = `${prefix}${route.path === '/' ? '' : route.path}`.replaceAll(/:(\w+)/g, '{$1}') || '/';
      if (route.router) walk(route.router, path);
      for (const method of route.methods ?? []) {
        if (method.toLowerCase() !== 'head') found.add(`${method.toLowerCase()} ${path}`);
      }
    }
  };
  walk((app as unknown as { router: { listRoutes(): ListedRoute[] } }).router, '');
  return found;
}

interface DocumentedOperation {
  method: string;
  path: string;
  parameters?: { name: string; in: string }[];
  requestBody?: { content: Record<string, { schema: { properties?: Record<string, unknown> } }> };
  responses: Record<string, { content?: Record<string, unknown> }>;
}

describe('OpenAPI document', function () {
  this.timeout(600_000);
  let platform: TestPlatform;
  let api: TestApi;
  let tenant: string;
  let document: {
    openapi: string;
    paths: Record<string, Record<string, Omit<DocumentedOperation, 'method' | 'path'>>>;
  };
  let contract: OpenApiContract;
  const tokens: Record<string, string> = {};

  before(async () => {
    platform = await startTestPlatform('openapi');
    tenant = platform.tenantName('a');
    await platform.applyTenant(tenant);
    await platform.waitReady(tenant);
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace, { signupEnabled: true });
    for (const role of ['owner', 'member'] as const) {
      await seedUser(api, tenant, role, `${role}@${tenant}.example`, { last_name: 'fuzz' });
      tokens[role] = (await signIn(api, tenant, `${role}@${tenant}.example`)).access;
    }
    tokens.platform = await platformAdminToken(api);
    const served = await api.call('GET', '/api/openapi.json');
    expect(served.status).to.equal(200);
    document = served.body;
    contract = new OpenApiContract(served.body as OpenApiDocument);
  });

  after(async () => {
    await api?.close();
    await platform?.cleanup();
  });

  it('is OpenAPI 3.1 with named response schemas and a bearer scheme', () => {
    expect(document.openapi).to.equal('3.1.0');
    expect(document).to.have.nested.property('components.schemas.Problem.required').that.includes('status');
    // Every JSON answer of every operation is a named component, not an inline schema.
    for (const [path, methods] of Object.entries(document.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        for (const [status, answer] of Object.entries(op.responses)) {
          for (const [media, content] of Object.entries(answer.content ?? {})) {
            expect(content, `${method} ${path} ${status} ${media}`)
              .to.have.property('schema')
              .that.has.keys('$ref');
          }
        }
      }
    }
    expect(document).to.have.nested.property('components.securitySchemes.bearer.scheme', 'bearer');
  });

  it('documents every route the app serves, and only those', () => {
    const documented = new Set(
      Object.entries(document.paths).flatMap(([path, methods]) =>
        Object.keys(methods).map((m) => `${m} ${path}`),
      ),
    );
    const served = servedOperations(api.app);
    expect(
      [...served].filter((op) => !documented.has(op)),
      'served but not documented',
    ).to.deep.equal([]);
    expect(
      [...documented].filter((op) => !served.has(op)),
      'documented but not served',
    ).to.deep.equal([]);
  });

  it('answers fuzzed requests to every operation without a 5xx, and every error as documented', async () => {
    const operations: DocumentedOperation[] = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({ method, path, ...op })),
    );
    const json = fc.jsonValue({ maxDepth: 3 });
    const text = fc.string({ unit: 'binary', maxLength: 80 });
    for (const op of operations) {
      const bodySchema = op.requestBody?.content['application/json']?.schema;
      const fields = Object.keys(bodySchema?.properties ?? {});
      const queryNames = (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
      const pathNames = (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
      // Bodies: arbitrary JSON, or an object with the documented fields (some missing) holding arbitrary values.
      const body = fc.oneof(
        json,
        fc.dictionary(fc.constantFrom(...(fields.length > 0 ? fields : ['x']), 'unknown_field'), json, {
          maxKeys: 8,
        }),
      );
      const request = fc.record({
        token: fc.constantFrom('owner', 'member', 'platform', 'none', 'garbage'),
        params: fc.array(fc.oneof(fc.uuid(), text, fc.constant(tenant)), {
          minLength: pathNames.length,
          maxLength: pathNames.length,
        }),
        query: fc.dictionary(fc.constantFrom(...queryNames, 'page', 'zzz'), text, { maxKeys: 4 }),
        body,
        encoding: fc.constantFrom('json', 'json', 'json', 'broken-json', 'form', 'text'),
      });
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          let path = op.path;
          pathNames.forEach(
            (name, i) => (path = path.replace(`{${name}}`, encodeURIComponent(r.params[i]!))),
          );
          const url = new URL(`${api.url}${path}`);
          for (const [k, v] of Object.entries(r.query)) url.searchParams.set(k, v);
          const headers: Record<string, string> = {};
          if (r.token === 'garbage') headers.authorization = 'Bearer not.a.token';
          else if (r.token !== 'none') headers.authorization = `Bearer ${tokens[r.token]}`;
          let payload: string | undefined;
          if (op.method !== 'get' && op.method !== 'delete') {
            const encoded = {
              json: () => ['application/json', JSON.stringify(r.body)],
              'broken-json': () => ['application/json', `${JSON.stringify(r.body)}{`],
              form: () => [
                'application/x-www-form-urlencoded',
                new URLSearchParams(
                  Object.entries(typeof r.body === 'object' && r.body !== null ? r.body : { v: r.body }).map(
                    ([k, v]) => [k, JSON.stringify(v)],
                  ),
                ).toString(),
              ],
              text: () => ['text/plain', JSON.stringify(r.body)],
            }[r.encoding]();
            headers['content-type'] = encoded[0]!;
            payload = encoded[1];
          }
          const response = await fetch(url, {
            method: op.method.toUpperCase(),
            headers,
            body: payload,
            redirect: 'manual',
          });
          const raw = await response.text();
          const where = `${op.method.toUpperCase()} ${url.pathname}${url.search} → ${response.status} ${raw.slice(0, 300)}`;
          expect(response.status, where).to.be.below(500);
          // Every answer, errors included, is one the document describes.
          const contentType = response.headers.get('content-type');
          const body: unknown =
            raw === '' ? undefined : /json/.test(contentType ?? '') ? JSON.parse(raw) : raw;
          if (contract.documents(op.method, url.pathname)) {
            expect(
              () => contract.check(op.method, url.pathname, response.status, contentType, body),
              where,
            ).not.to.throw();
          } else {
            // An empty or slash-holding path parameter makes a path no operation has: a client-error
            // problem (404, or what a body parser or a router's caller check said before routing).
            expect(response.status, where).to.be.within(400, 499);
            expect(contract.validatorAt('/components/schemas/Problem')(body), where).to.equal(true);
          }
          if (response.status >= 400 && /^application\/problem\+json/.test(contentType ?? '')) {
            expect((body as { status?: unknown }).status, where).to.equal(response.status);
          }
        }),
        { numRuns: 12, seed: 20261128 },
      );
    }
  });
});
