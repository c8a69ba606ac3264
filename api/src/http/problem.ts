// RFC 9457 problem details. Services throw typed errors; one mapper turns them
// into application/problem+json. Unknown errors become a 500 whose detail is
// logged, never sent.
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import type { z } from 'zod';
import { encode, problemSchema } from './responses.js';

export interface FieldError {
  field: string;
  message: string;
}

export class ProblemError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    detail: string,
    readonly extra: { errors?: FieldError[]; type?: string; headers?: Record<string, string> } = {},
  ) {
    super(detail);
    this.name = 'ProblemError';
  }
}

export const problems = {
  badRequest: (detail: string, errors?: FieldError[]) =>
    new ProblemError(400, 'Bad Request', detail, errors ? { errors } : {}),
  validation: (errors: FieldError[]) =>
    new ProblemError(400, 'Validation Failed', errors.map((e) => `${e.field}: ${e.message}`).join('; '), {
      errors,
    }),
  unauthorized: (detail = 'authentication is required') =>
    new ProblemError(401, 'Unauthorized', detail, { headers: { 'WWW-Authenticate': 'Bearer' } }),
  forbidden: (detail = 'you may not do this') => new ProblemError(403, 'Forbidden', detail),
  notFound: (detail = 'no such resource') => new ProblemError(404, 'Not Found', detail),
  conflict: (detail: string) => new ProblemError(409, 'Conflict', detail),
  unavailable: (detail: string, retryAfterSeconds = 5) =>
    new ProblemError(503, 'Service Unavailable', detail, {
      headers: { 'Retry-After': String(retryAfterSeconds) },
    }),
};

const typeBase = 'https://tenantry.io/problems/';

function slug(title: string): string {
  return title.toLowerCase().replaceAll(/[^a-z0-9]+/g, '-');
}

export function sendProblem(res: Response, error: ProblemError): void {
  const requestId = res.getHeader('x-request-id');
  for (const [name, value] of Object.entries(error.extra.headers ?? {})) res.setHeader(name, value);
  res
    .status(error.status)
    .type('application/problem+json')
    .json(
      encode(problemSchema, {
        type: error.extra.type ?? `${typeBase}${slug(error.title)}`,
        title: error.title,
        status: error.status,
        detail: error.message,
        instance: res.req.originalUrl.split('?')[0] ?? '/',
        ...(typeof requestId === 'string' ? { request_id: requestId } : {}),
        ...(error.extra.errors ? { errors: error.extra.errors } : {}),
      }),
    );
}

/** Zod issues as field errors: the path joined with dots, `body` when the body itself is wrong. */
export function fieldErrors(error: z.ZodError): FieldError[] {
  return error.issues.map((issue) => ({
    field: issue.path.map(String).join('.') || 'body',
    message:
      issue.code === 'unrecognized_keys' ? `unknown field(s): ${issue.keys.join(', ')}` : issue.message,
  }));
}

/** Parses with a schema or throws a 400 naming each field. */
export function parse<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw problems.validation(fieldErrors(result.error));
  return result.data;
}

interface BodyParserError extends Error {
  type?: string;
  status?: number;
}

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(problems.notFound(`no route for ${req.method} ${req.path}`));
};

export function errorHandler(
  log: { error(obj: object, msg: string): void; warn?(obj: object, msg: string): void },
  classify: (error: unknown) => ProblemError | undefined = () => undefined,
): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    if (error instanceof ProblemError) {
      // A cause holds what the client must not see but an operator may need.
      if (error.cause !== undefined) {
        log.warn?.({ err: error.cause, reqId: String(res.locals.requestId), path: req.path }, error.message);
      }
      return sendProblem(res, error);
    }
    const classified = classify(error);
    if (classified) return sendProblem(res, classified);
    const parserError = error as BodyParserError;
    if (parserError?.type === 'entity.too.large') {
      return sendProblem(res, new ProblemError(413, 'Payload Too Large', 'the request body is too large'));
    }
    if (parserError?.type === 'entity.parse.failed') {
      return sendProblem(res, problems.badRequest('the request body is not valid JSON'));
    }
    if (parserError?.type === 'encoding.unsupported' || parserError?.type === 'charset.unsupported') {
      return sendProblem(res, new ProblemError(415, 'Unsupported Media Type', 'unsupported body encoding'));
    }
    if (typeof parserError?.status === 'number' && parserError.status >= 400 && parserError.status < 500) {
      return sendProblem(
        res,
        new ProblemError(parserError.status, 'Bad Request', 'the request could not be read'),
      );
    }
    log.error(
      { err: error, reqId: String(res.locals.requestId), path: req.path, method: req.method },
      'unhandled error',
    );
    sendProblem(
      res,
      new ProblemError(500, 'Internal Server Error', 'something went wrong; the request id identifies it'),
    );
  };
}
