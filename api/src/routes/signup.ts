// /api/signup: public self-service signup, when enabled (SIGNUP_ENABLED).
import { Router } from 'express';
import { tenantName } from '../auth/sessions.js';
import { parse, problems } from '../http/problem.js';
import { reply } from '../http/responses.js';
import { signupAcceptedSchema, signupSchema, signupStatusSchema, type Signups } from '../signup/signups.js';

export function signupRoutes(deps: { signups?: Signups | undefined }): Router {
  const router = Router();
  const { signups } = deps;
  if (!signups) {
    router.use(() => {
      throw problems.notFound('self-service signup is not enabled on this platform');
    });
    return router;
  }

  router.post('/', async (req, res) => {
    const body = parse(signupSchema, req.body);
    await signups.start(body);
    const path = `/api/signup/${body.tenant}`;
    const statusUrl = `${req.protocol}://${req.get('host') ?? 'localhost'}${path}`;
    res.location(path);
    reply(res, 202, signupAcceptedSchema, { tenant: body.tenant, status_url: statusUrl });
  });

  router.get('/:tenant', async (req, res) => {
    const name = tenantName.safeParse(req.params.tenant);
    if (!name.success) throw problems.notFound(`no signup for tenant ${req.params.tenant}`);
    res.set('Cache-Control', 'no-store');
    reply(res, 200, signupStatusSchema, await signups.status(name.data));
  });

  return router;
}
