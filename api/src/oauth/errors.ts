// OAuth 2.0 error answers (RFC 6749 §5.2, RFC 7009 §2.2.1): a JSON object with
// `error` and `error_description`, not problem+json, because OAuth clients
// read exactly those members. Status 400, except invalid_client: always 401
// with a Basic challenge, by whichever method the client authenticated. §5.2
// demands that when the client used HTTP Basic and allows it otherwise, and an
// HTTP 401 must carry a challenge. (openid-client reports such an answer as a
// WWWAuthenticateChallengeError, whose response still holds the `error`.)
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { z } from 'zod';
import { named, reply } from '../http/responses.js';

export const oauthErrorCodes = [
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'unsupported_token_type',
] as const;

export type OAuthErrorCode = (typeof oauthErrorCodes)[number];

export const oauthErrorSchema = named(
  'OAuthError',
  z.object({ error: z.enum(oauthErrorCodes), error_description: z.string() }),
  'An OAuth 2.0 error (RFC 6749 §5.2).',
);

export class OAuthError extends Error {
  constructor(
    readonly code: OAuthErrorCode,
    description: string,
  ) {
    super(description);
    this.name = 'OAuthError';
  }
}

export const basicChallenge = 'Basic realm="tenantry", charset="UTF-8"';

/**
 * Token responses must not be stored by anyone (RFC 6749 §5.1); errors,
 * introspection and rate-limit refusals neither. Set first, so every answer
 * of the endpoint carries it whatever produces it.
 */
export const noStore: RequestHandler = (_req, res, next) => {
  res.set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' });
  next();
};

/** Answers OAuthErrors in the RFC shape; anything else goes on to the app's problem+json handler. */
export const oauthErrorHandler: ErrorRequestHandler = (error: unknown, _req, res, next) => {
  if (!(error instanceof OAuthError) || res.headersSent) return next(error);
  const status = error.code === 'invalid_client' ? 401 : 400;
  if (status === 401) res.set('WWW-Authenticate', basicChallenge);
  reply(res, status, oauthErrorSchema, { error: error.code, error_description: error.message });
};

/** A body the parsers could not read is an invalid_request at the OAuth endpoints; other parser errors (413, 415) stay problems. */
export const oauthBodyErrors: ErrorRequestHandler = (error: unknown, req, res, next) => {
  if ((error as { type?: unknown } | undefined)?.type !== 'entity.parse.failed') return next(error);
  oauthErrorHandler(
    new OAuthError('invalid_request', 'the request body could not be parsed'),
    req,
    res,
    next,
  );
};
