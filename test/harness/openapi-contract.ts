// Checks answers against the published OpenAPI document: the status must be
// documented for the operation, the media type must be one it lists for that
// status, and the body must validate against its schema (JSON Schema 2020-12,
// with formats). `contract.fetch` wraps fetch so a test checks every answer it
// gets without saying so; `contract.covered` tells which (operation, status)
// pairs a scenario reached.
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS with its function on `default`.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

type Json = Record<string, unknown>;

interface DocumentedOperation {
  responses: Record<string, { content?: Record<string, { schema: Json }> }>;
}

export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, DocumentedOperation>>;
  components: { schemas: Record<string, Json> };
  webhooks?: Record<string, { post: { requestBody: { content: Record<string, { schema: Json }> } } }>;
}

export interface CheckedAnswer {
  /** `GET /api/users/{id}` */
  operation: string;
  status: number;
  body: unknown;
  response: Response;
}

const documentId = 'https://tenantry.test/openapi.json';

export class OpenApiContract {
  readonly #ajv: Ajv2020;
  readonly #validators = new Map<string, ValidateFunction>();
  readonly #templates: { method: string; template: string; pattern: RegExp }[] = [];
  /** `<operation> <status>` of every answer checked. */
  readonly covered = new Set<string>();

  constructor(readonly document: OpenApiDocument) {
    this.#ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: true });
    addFormats(this.#ajv);
    this.#ajv.addSchema({ ...document, $id: documentId }, documentId);
    for (const [template, methods] of Object.entries(document.paths)) {
      const pattern = new RegExp(
        `^${template.replaceAll(/[.*+?^$()|[\]\\]/g, '\\$&').replaceAll(/\\?\{[^}]+\\?\}/g, '[^/]+')}$`,
      );
      for (const method of Object.keys(methods)) this.#templates.push({ method, template, pattern });
    }
    // Literal paths before templated ones: /api/users/bulk is not /api/users/{id}.
    this.#templates.sort((a, b) => a.template.split('{').length - b.template.split('{').length);
  }

  /** The contract of the document an API serves at /api/openapi.json. */
  static async load(baseUrl: string): Promise<OpenApiContract> {
    const response = await fetch(`${baseUrl}/api/openapi.json`);
    if (response.status !== 200) throw new Error(`GET /api/openapi.json: ${response.status}`);
    return new OpenApiContract((await response.json()) as OpenApiDocument);
  }

  /** Whether a request goes to a documented operation at all. */
  documents(method: string, pathname: string): boolean {
    return this.#find(method, pathname) !== undefined;
  }

  #find(method: string, pathname: string) {
    const lower = method.toLowerCase();
    // Express routes without strict routing: a trailing slash is the same path.
    const path = pathname.length > 1 ? pathname.replace(/\/$/, '') : pathname;
    return this.#templates.find((t) => t.method === lower && t.pattern.test(path));
  }

  /** The documented operation a request goes to, as `METHOD /template`. */
  operationOf(method: string, pathname: string): string {
    const found = this.#find(method, pathname);
    if (!found) throw new Error(`${method.toUpperCase()} ${pathname} is not a documented operation`);
    return `${method.toUpperCase()} ${found.template}`;
  }

  /** The validator of a schema in the document, by JSON pointer. */
  validatorAt(pointer: string): ValidateFunction {
    let validate = this.#validators.get(pointer);
    if (!validate) {
      validate = this.#ajv.compile({ $ref: `${documentId}#${encodeURI(pointer)}` });
      this.#validators.set(pointer, validate);
    }
    return validate;
  }

  /** Throws unless the answer is one the document describes for this operation. */
  check(method: string, pathname: string, status: number, contentType: string | null, body: unknown): string {
    const operation = this.operationOf(method, pathname);
    const [verb, template] = operation.split(' ') as [string, string];
    const responses = this.document.paths[template]![verb.toLowerCase()]!.responses;
    const where = `${operation} → ${status}`;
    const documented = responses[String(status)];
    if (!documented) {
      throw new Error(`${where}: status not documented (${JSON.stringify(body).slice(0, 300)})`);
    }
    const media = (contentType ?? '').split(';')[0]!.trim();
    const contents = documented.content ?? {};
    if (Object.keys(contents).length === 0) {
      if (body !== undefined) throw new Error(`${where}: documented without a body, got ${media}`);
    } else {
      if (!(media in contents)) {
        throw new Error(`${where}: ${media || 'no body'} is not one of ${Object.keys(contents).join(', ')}`);
      }
      const pointer = `/paths/${escape(template)}/${verb.toLowerCase()}/responses/${status}/content/${escape(media)}/schema`;
      const validate = this.validatorAt(pointer);
      if (!validate(body)) {
        throw new Error(
          `${where} (${media}) does not match the document: ${this.#ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 600)}`,
        );
      }
    }
    this.covered.add(`${operation} ${status}`);
    return operation;
  }

  /** Checks a webhook's delivered body against the document's `webhooks` entry for its type. */
  checkWebhook(body: { type?: unknown }): void {
    const type = String(body.type);
    const entry = this.document.webhooks?.[type];
    if (!entry) throw new Error(`webhook event ${type} is not documented`);
    const validate = this.validatorAt(
      `/webhooks/${escape(type)}/post/requestBody/content/application~1json/schema`,
    );
    if (!validate(body)) {
      throw new Error(
        `webhook ${type} does not match the document: ${this.#ajv.errorsText(validate.errors)}`,
      );
    }
  }

  /** fetch, then check the answer; resolves with the parsed body. */
  readonly fetch = async (input: string | URL, init: RequestInit = {}): Promise<CheckedAnswer> => {
    const url = new URL(input);
    const response = await fetch(url, { redirect: 'manual', ...init });
    const text = await response.text();
    const contentType = response.headers.get('content-type');
    const json = /^application\/([a-z.+-]*\+)?json/.test(contentType ?? '');
    const body: unknown = text === '' ? undefined : json ? JSON.parse(text) : text;
    const operation = this.check(init.method ?? 'GET', url.pathname, response.status, contentType, body);
    return { operation, status: response.status, body, response };
  };
}

/** A JSON pointer segment (RFC 6901). */
function escape(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1');
}
