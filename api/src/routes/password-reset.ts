// /api/auth/password/reset and /reset/confirm: forgotten passwords. The
// request never says whether the account exists and never returns the token;
// the token travels only by mail.
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { PasswordResets, RequestContext } from '../auth/password-resets.js';
import { tenantName } from '../auth/sessions.js';
import { acceptedSchema, reply } from '../http/responses.js';
import { parse } from '../http/problem.js';
import { email } from '../users/users.js';

export const resetRequestSchema = z.strictObject({ tenant: tenantName, email });

export const resetConfirmSchema = z.strictObject({
  tenant: tenantName,
  token: z.string().min(1).max(256),
  password: z.string().max(256),
});

const accepted = {
  status: 'accepted' as const,
  detail: 'if the account exists, a message with a one-time token is on its way',
};

function contextOf(req: Request, res: Response): RequestContext {
  return { ip: req.ip ?? null, requestId: String(res.locals.requestId ?? '') || null };
}

export function passwordResetRoutes(deps: { passwordResets: PasswordResets }): Router {
  const router = Router();

  router.post('/reset', async (req, res) => {
    const body = parse(resetRequestSchema, req.body);
    await deps.passwordResets.request(body.tenant, body.email, contextOf(req, res));
    res.set('Cache-Control', 'no-store');
    reply(res, 202, acceptedSchema, accepted);
  });

  router.post('/reset/confirm', async (req, res) => {
    const body = parse(resetConfirmSchema, req.body);
    await deps.passwordResets.confirm(body.tenant, body.token, body.password, contextOf(req, res));
    res.status(204).end();
  });

  return router;
}
