// Response schemas. Every answer body is built through a zod schema that is
// registered here under a name; the OpenAPI document emits the registry as
// components.schemas, so the document and the answers cannot drift apart, and
// a field the schema lacks is stripped before it can leak.
import type { Request, Response } from 'express';
import { z } from 'zod';

export interface ComponentMeta {
  /** The name under components.schemas. */
  id: string;
  description?: string;
  [key: string]: unknown;
}

/** Every named response and webhook payload schema. */
export const components = z.registry<ComponentMeta>();

/** Registers a schema as a named component and returns it. */
export function named<S extends z.ZodType>(id: string, schema: S, description?: string): S {
  components.add(schema, { id, ...(description ? { description } : {}) });
  return schema;
}

/** A time as the API writes it: ISO 8601 in UTC. */
export const timestamp = z.iso.datetime({ offset: true });

/**
 * Builds a body through its schema: unknown fields are stripped, and a value
 * that does not fit is a bug of ours (a 500 whose detail is logged), never a
 * 400, so the error is not a ZodError the error mapper would show the client.
 */
export function encode<S extends z.ZodType>(schema: S, value: z.input<S>): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new Error(`response does not match its schema: ${z.prettifyError(result.error)}`);
  }
  return result.data;
}

/** Sends a JSON body built through its schema. */
export function reply<S extends z.ZodType>(
  res: Response,
  status: number,
  schema: S,
  value: z.input<S>,
): void {
  res.status(status).json(encode(schema, value));
}

/** The list shape: `{count, next, previous, results}`, next and previous as full URLs. */
export function pageSchema<S extends z.ZodType>(id: string, item: S) {
  return named(
    id,
    z.object({
      count: z.int().min(0),
      next: z.url().nullable(),
      previous: z.url().nullable(),
      results: z.array(item),
    }),
  );
}

export function pageOf<T>(req: Request, page: number, pageSize: number, count: number, results: T[]) {
  const link = (p: number) => {
    const url = new URL(req.originalUrl, `${req.protocol}://${req.get('host') ?? 'localhost'}`);
    url.searchParams.set('page', String(p));
    url.searchParams.set('page_size', String(pageSize));
    return url.toString();
  };
  return {
    count,
    next: page * pageSize < count ? link(page + 1) : null,
    previous: page > 1 ? link(page - 1) : null,
    results,
  };
}

export const fieldErrorSchema = named(
  'FieldError',
  z.object({ field: z.string(), message: z.string() }),
  'One invalid field: its path joined with dots, `body` for the body itself.',
);

export const problemSchema = named(
  'Problem',
  z.object({
    type: z.string().describe('A URI naming the kind of problem.'),
    title: z.string(),
    status: z.int().min(400).max(599),
    detail: z.string(),
    instance: z.string().describe('The request path.'),
    request_id: z.string().optional(),
    errors: z.array(fieldErrorSchema).optional().describe('Validation errors, one per field.'),
  }),
  'RFC 9457 problem details.',
);

export const acceptedSchema = named(
  'Accepted',
  z.object({ status: z.literal('accepted'), detail: z.string() }),
  'Taken in; the same answer whatever the outcome, so it tells nothing about which accounts exist.',
);
