// /api/auth: thin handlers over Sessions and the user directory.
import { Router, type Request, type Response } from 'express';
import { AuditLog } from '../audit/audit-log.js';
import { z } from 'zod';
import { clientCredentialsToken } from '../auth/api-clients.js';
import { authenticate, requireUser, tenantScope } from '../auth/context.js';
import { passwordProblems } from '../auth/passwords.js';
import type { Registrations } from '../auth/registrations.js';
import { loginSchema, tenantName, tokenResponseSchema, type Sessions } from '../auth/sessions.js';
import type { TokenService } from '../auth/tokens.js';
import { parse, ProblemError, problems } from '../http/problem.js';
import { acceptedSchema, reply } from '../http/responses.js';
import { presentedClient } from '../oauth/client-auth.js';
import { authenticateClient } from '../oauth/clients.js';
import { OAuthError, oauthErrorHandler } from '../oauth/errors.js';
import { tokenRequest } from '../oauth/token-request.js';
import type { TenantDatabases } from '../tenancy/tenant-databases.js';
import type { TenantDirectory } from '../tenancy/tenant-directory.js';
import { email, getUser, userSchema, userView } from '../users/users.js';

/**
 * The token endpoint's parameters, for the OpenAPI document. The endpoint reads them one by one
 * (oauth/token-request.ts), so each problem gets its RFC 6749 error code, and ignores any others.
 */
export const tokenSchema = z.discriminatedUnion('grant_type', [
  z.object({
    grant_type: z.literal('password'),
    tenant: tenantName,
    username: email,
    password: z.string().min(1).max(256),
  }),
  z.object({ grant_type: z.literal('refresh_token'), refresh_token: z.string().min(1).max(512) }),
  z.object({
    grant_type: z.literal('client_credentials'),
    client_id: z.string().min(1).max(200).optional().describe('client_secret_post; or send HTTP Basic'),
    client_secret: z.string().min(1).max(512).optional().describe('client_secret_post; or send HTTP Basic'),
  }),
]);

export const registerSchema = z.strictObject({
  tenant: tenantName,
  email,
  password: z.string().max(256),
  first_name: z.string().trim().max(150).optional(),
  last_name: z.string().trim().max(150).optional(),
});

export const registerVerifySchema = z.strictObject({
  tenant: tenantName,
  token: z.string().min(1).max(256),
  password: z.string().min(1).max(256),
});

/** The one answer to every accepted registration, whether or not the address has an account. */
const registrationAccepted = {
  status: 'accepted' as const,
  detail: 'a message is on its way to the address; follow it to finish registering',
};

export const profileSchema = z
  .strictObject({
    first_name: z.string().trim().max(150).nullable().optional(),
    last_name: z.string().trim().max(150).nullable().optional(),
    department: z.string().trim().max(150).nullable().optional(),
  })
  .refine((v) => Object.keys(v).length > 0, { message: 'send at least one field to change' });

export const passwordChangeSchema = z.strictObject({
  current_password: z.string().min(1).max(256),
  new_password: z.string().max(256),
});

export const logoutSchema = z.strictObject({ refresh_token: z.string().min(1).max(512) });

export function authRoutes(deps: {
  sessions: Sessions;
  tokens: TokenService;
  directory: TenantDirectory;
  databases: TenantDatabases;
  registrations: Registrations;
}): Router {
  const { sessions, tokens, directory, databases, registrations } = deps;
  const router = Router();
  const requireAuth = authenticate(tokens);
  const context = (req: { ip?: string | undefined; get(name: string): string | undefined }) => ({
    ...(req.ip ? { ip: req.ip } : {}),
    client: (req.get('user-agent') ?? '').slice(0, 200),
  });

  const requestContext = (req: Request, res: Response) => ({
    ip: req.ip ?? null,
    requestId: String(res.locals.requestId ?? '') || null,
  });

  /** Checks a password and records the outcome, success or failure, in the tenant's audit log. */
  const signIn = async (req: Request, res: Response, tenant: string, email: string, password: string) => {
    try {
      const { entry, db, user } = await sessions.checkPassword(tenant, email, password);
      await AuditLog.append(db.sequelize, {
        actor: user.id,
        action: 'login',
        resourceType: 'session',
        resourceId: user.id,
        ip: req.ip ?? null,
        requestId: String(res.locals.requestId ?? ''),
      });
      return { entry, db, user };
    } catch (error) {
      if (error instanceof ProblemError && (error.status === 401 || error.status === 403)) {
        const entry = directory.servable(tenant);
        await AuditLog.append(databases.for(tenant, entry.credentials).sequelize, {
          actor: null,
          action: 'login_failed',
          resourceType: 'session',
          resourceId: email,
          ip: req.ip ?? null,
          requestId: String(res.locals.requestId ?? ''),
        });
      }
      throw error;
    }
  };

  router.post('/login', async (req, res) => {
    const body = parse(loginSchema, req.body);
    const { entry, db, user } = await signIn(req, res, body.tenant, body.email, body.password);
    reply(res, 200, tokenResponseSchema, await sessions.issueFor(entry, db, user, context(req)));
  });

  // RFC 6749: form-urlencoded (or JSON) parameters, client authentication by HTTP Basic or in the body,
  // errors as `{error, error_description}` (oauth/errors.ts). `Cache-Control: no-store` is set in app.ts.
  router.post('/token', async (req, res) => {
    const grant = tokenRequest(req);
    const presented = presentedClient(req);
    const client = presented
      ? await authenticateClient(deps, presented, requestContext(req, res))
      : undefined;
    if (grant.grantType === 'client_credentials') {
      if (!presented || !client)
        throw new OAuthError(
          'invalid_client',
          'authenticate the client: HTTP Basic or client_secret in the body',
        );
      reply(
        res,
        200,
        tokenResponseSchema,
        client.kind === 'tenant'
          ? await clientCredentialsToken(deps, client)
          : await sessions.platformClientCredentials(client.clientId, presented.clientSecret),
      );
      return;
    }
    // Users sign in without a client (public clients, RFC 6749 §2.1); API clients only have the client_credentials grant.
    if (client) throw new OAuthError('unauthorized_client', 'API clients use the client_credentials grant');
    try {
      if (grant.grantType === 'password') {
        const { entry, db, user } = await signIn(req, res, grant.tenant, grant.username, grant.password);
        reply(res, 200, tokenResponseSchema, await sessions.issueFor(entry, db, user, context(req)));
      } else {
        reply(res, 200, tokenResponseSchema, await sessions.refresh(grant.refreshToken, context(req)));
      }
    } catch (error) {
      // Wrong password, deactivated user, unknown or suspended tenant, unusable refresh token.
      if (error instanceof ProblemError && [401, 403, 404].includes(error.status))
        throw new OAuthError('invalid_grant', error.message);
      throw error;
    }
  });

  router.post('/logout', async (req, res) => {
    const body = parse(logoutSchema, req.body);
    await sessions.logout(body.refresh_token);
    res.status(204).end();
  });

  // Registering only mails the address; the account exists once the mailed token is verified
  // (auth/registrations.ts). The answer never says whether the address has an account.
  router.post('/register', async (req, res) => {
    const { tenant, ...registration } = parse(registerSchema, req.body);
    await registrations.register(tenant, registration, requestContext(req, res));
    res.set('Cache-Control', 'no-store');
    reply(res, 202, acceptedSchema, registrationAccepted);
  });

  router.post('/register/verify', async (req, res) => {
    const body = parse(registerVerifySchema, req.body);
    const user = await registrations.verify(body.tenant, body.token, body.password, requestContext(req, res));
    res.set('Cache-Control', 'no-store');
    reply(res, 201, userSchema, user);
  });

  // Profile and password are a user's own: API clients get 403 (auth/api-clients.ts).
  router.get('/profile', requireAuth, async (_req, res) => {
    const scope = requireUser(tenantScope(res, directory, databases), 'have a profile');
    res.json(userView(await getUser(scope, scope.auth.userId)));
  });

  router.patch('/profile', requireAuth, async (req, res) => {
    const scope = requireUser(tenantScope(res, directory, databases), 'have a profile');
    const body = parse(profileSchema, req.body);
    const user = await getUser(scope, scope.auth.userId);
    await user.update(body);
    res.json(userView(user));
  });

  router.post('/password/change', requireAuth, async (req, res) => {
    const scope = requireUser(tenantScope(res, directory, databases), 'change a password');
    const body = parse(passwordChangeSchema, req.body);
    const user = await getUser(scope, scope.auth.userId);
    const weak = passwordProblems(body.new_password, {
      email: user.email,
      name: user.first_name ?? undefined,
    });
    if (weak.length > 0)
      throw problems.validation(weak.map((p) => ({ field: 'new_password', message: p.message })));
    await sessions.changePassword(scope.db, user, body.current_password, body.new_password);
    res.status(204).end();
  });

  router.use(oauthErrorHandler);
  return router;
}
