// Answers built through their schemas: what a schema does not name is not
// sent, a body that does not fit is our bug (not a client's 400), and the
// document refers to every answer by the name of its component.
import { expect } from 'chai';
import { z } from 'zod';
import { components, encode, named } from '../../../api/src/http/responses.js';
import { apiDocument } from '../../../api/src/openapi/api-document.js';
import { openApiDocument } from '../../../api/src/openapi/document.js';
import { userView } from '../../../api/src/users/user-schema.js';
import { newApiClientSchema, apiClientView } from '../../../api/src/auth/api-clients.js';
import { eventData } from '../../../api/src/webhooks/domain-events.js';

const at = new Date('2026-12-01T10:00:00Z');
const row = {
  id: '6f1c1a52-3c39-4d8e-9a55-0c6f1c1a5233',
  email: 'ada@example.com',
  first_name: 'Ada',
  last_name: null,
  role: 'member' as const,
  is_active: true,
  department: null,
  external_id: null,
  created_at: at,
  updated_at: at,
};

describe('response schemas', () => {
  it('strips what the user view does not name, such as a password hash', () => {
    const view = userView({ ...row, password_hash: '$argon2id$v=19$secret' } as typeof row);
    expect(view).to.not.have.property('password_hash');
    expect(view).to.include({ email: 'ada@example.com', created_at: '2026-12-01T10:00:00.000Z' });
  });

  it('refuses a body that does not fit with a plain error, never a ZodError a client would see as 400', () => {
    const schema = z.object({ n: z.int() });
    expect(() => encode(schema, { n: 1.5 })).to.throw(Error, /does not match its schema/);
    try {
      encode(schema, { n: 'x' as unknown as number });
    } catch (error) {
      expect(error).to.not.be.instanceOf(z.ZodError);
    }
  });

  it('shows an API client secret only in the creation answer', () => {
    const client = apiClientView({
      id: row.id,
      client_id: 'acme.cl_0123456789abcdef',
      name: 'robot',
      role: 'member',
      created_by: row.id,
      created_at: at,
      last_used_at: null,
      revoked_at: null,
      secret_hash: Buffer.from('hash'),
    } as unknown as Parameters<typeof apiClientView>[0]);
    expect(client).to.not.have.property('secret_hash');
    expect(client).to.not.have.property('client_secret');
    expect(encode(newApiClientSchema, { ...client, client_secret: 's3cret' })).to.have.property(
      'client_secret',
    );
  });

  it('builds webhook payloads through their schemas', () => {
    const data = eventData('user.created', { user: { ...userView(row), password_hash: 'x' } as never });
    expect(data.user).to.not.have.property('password_hash');
    expect(() => eventData('webhook.test', { endpoint_id: 'not-a-uuid', requested_by: 'u' })).to.throw(
      /webhook.test payload does not match/,
    );
  });

  it('refers to every JSON answer and webhook body by a named component', () => {
    const document = apiDocument() as {
      paths: Record<
        string,
        Record<string, { responses: Record<string, { content?: Record<string, object> }> }>
      >;
      webhooks: Record<string, { post: { requestBody: { content: Record<string, { schema: object }> } } }>;
      components: { schemas: Record<string, object> };
    };
    const refs: string[] = [];
    for (const methods of Object.values(document.paths)) {
      for (const op of Object.values(methods)) {
        for (const answer of Object.values(op.responses)) {
          for (const content of Object.values(answer.content ?? {})) {
            expect(content).to.have.property('schema').that.has.keys('$ref');
            refs.push((content as { schema: { $ref: string } }).schema.$ref);
          }
        }
      }
    }
    expect(Object.keys(document.webhooks)).to.have.members([
      'user.created',
      'user.updated',
      'user.deleted',
      'user.activated',
      'user.deactivated',
      'webhook.endpoint.disabled',
      'webhook.test',
    ]);
    for (const entry of Object.values(document.webhooks)) {
      refs.push((entry.post.requestBody.content['application/json']!.schema as { $ref: string }).$ref);
    }
    for (const ref of refs) {
      expect(document.components.schemas, ref).to.have.property(ref.replace('#/components/schemas/', ''));
    }
    expect(JSON.stringify(document.components.schemas)).to.not.match(/password_hash|secret_hash/);
  });

  it('will not document an answer whose schema has no name', () => {
    const info = {
      title: 't',
      version: '1',
      description: 'd',
      license: { name: 'x', identifier: 'MIT' },
      contact: { name: 'c', url: 'https://example.com' },
    };
    const op = {
      method: 'get' as const,
      path: '/x',
      tag: 'operations',
      access: 'public' as const,
      summary: 's',
      responses: { 200: { description: 'ok', schema: z.object({ anonymous: z.string() }) } },
    };
    expect(() => openApiDocument([op], info, { operations: 'o' })).to.throw(/named component/);
    const schema = named('TestNamed', z.string());
    const namedOp = { ...op, responses: { 200: { description: 'ok', schema } } };
    try {
      expect(() => openApiDocument([namedOp], info, { operations: 'o' })).to.not.throw();
    } finally {
      components.remove(schema);
    }
  });
});
