// Token revocation (RFC 7009) and introspection (RFC 7662), for API clients
// and the platform admin, who authenticate as at the token endpoint.
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { presentedClient } from '../oauth/client-auth.js';
import { authenticateClient, type ClientDeps, type OAuthClient } from '../oauth/clients.js';
import { OAuthError, oauthErrorHandler } from '../oauth/errors.js';
import { introspectionResponseSchema, type TokenInspection } from '../oauth/token-inspection.js';
import { reply } from '../http/responses.js';
import { tokenParameter } from '../oauth/token-request.js';

const clientParameters = {
  client_id: z.string().max(512).optional().describe('client_secret_post; or send HTTP Basic'),
  client_secret: z.string().max(512).optional().describe('client_secret_post; or send HTTP Basic'),
};

/** The revocation parameters, for the OpenAPI document (the route reads them with oauth/token-request.ts). */
export const revocationSchema = z.object({
  token: z.string().min(1),
  token_type_hint: z.enum(['access_token', 'refresh_token']).optional(),
  ...clientParameters,
});

/** The introspection parameters, for the OpenAPI document. */
export const introspectionSchema = revocationSchema;

export function oauthRoutes(deps: ClientDeps & { tokenInspection: TokenInspection }): Router {
  const router = Router();

  const caller = async (req: Request, res: Response, auditSuccess: boolean): Promise<OAuthClient> => {
    const presented = presentedClient(req);
    if (!presented)
      throw new OAuthError(
        'invalid_client',
        'authenticate the client: HTTP Basic or client_secret in the body',
      );
    return authenticateClient(
      deps,
      presented,
      {
        ip: req.ip ?? null,
        requestId: String(res.locals.requestId ?? '') || null,
      },
      { auditSuccess },
    );
  };

  router.post('/revoke', async (req, res) => {
    const client = await caller(req, res, true);
    await deps.tokenInspection.revoke(client, tokenParameter(req));
    // RFC 7009 §2.2: 200 whether or not the token was valid; the content is ignored.
    res.status(200).end();
  });

  router.post('/introspect', async (req, res) => {
    const client = await caller(req, res, false);
    reply(
      res,
      200,
      introspectionResponseSchema,
      await deps.tokenInspection.introspect(client, tokenParameter(req)),
    );
  });

  router.use(oauthErrorHandler);
  return router;
}
