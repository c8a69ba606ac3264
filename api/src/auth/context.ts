// Who is calling, taken only from a verified access token. The tenant in the
// token's `tid` claim decides which database a request reaches; no header,
// path, query or body can change it.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { roleRank, type Role } from '../../../lib/tenant/index.js';
import { problems } from '../http/problem.js';
import type { TenantDb, TenantDatabases } from '../tenancy/tenant-databases.js';
import type { TenantDirectory, TenantEntry } from '../tenancy/tenant-directory.js';
import { InvalidTokenError, type TokenService } from './tokens.js';

export interface TenantAuth {
  kind: 'tenant';
  tenant: string;
  /** The uid of the Tenant the token was issued to; requests are served only while it is the live one. */
  tenantUid: string;
  /** The user id, or for an API client its row id (app.api_clients.id). */
  userId: string;
  role: Role;
  jti: string;
  /** Set when the caller is a tenant API client (its public client id), not a user. */
  apiClientId?: string;
}

export interface PlatformAuth {
  kind: 'platform';
  clientId: string;
  jti: string;
}

export type Auth = TenantAuth | PlatformAuth;

/** The `tid` of platform-admin tokens; not a valid tenant name, so it can never collide with one. */
export const platformTenantId = '*';

export interface TenantScope {
  auth: TenantAuth;
  entry: TenantEntry;
  db: TenantDb;
}

const reasons: Record<string, string> = {
  expired: 'the access token has expired',
  revoked: 'the access token has been revoked',
  wrong_type: 'this is not an access token',
  missing_claim: 'the access token lacks a required claim; refresh it or sign in again',
};

export function authenticate(tokens: TokenService): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer ([A-Za-z0-9_.~+/=-]+)$/.exec(header);
    if (!match) return next(problems.unauthorized('send an access token as "Authorization: Bearer <token>"'));
    try {
      const claims = await tokens.verifyAccessToken(match[1]!);
      res.locals.auth = claims.platformAdmin
        ? ({ kind: 'platform', clientId: claims.sub, jti: claims.jti } satisfies PlatformAuth)
        : ({
            kind: 'tenant',
            tenant: claims.tid,
            // Present on every tenant token: claimsOf refuses one without it.
            tenantUid: claims.tenantUid ?? '',
            userId: claims.sub,
            role: claims.role,
            jti: claims.jti,
            ...(claims.clientId ? { apiClientId: claims.clientId } : {}),
          } satisfies TenantAuth);
      next();
    } catch (error) {
      if (error instanceof InvalidTokenError)
        return next(problems.unauthorized(reasons[error.reason] ?? 'the access token is not valid'));
      next(error);
    }
  };
}

export function authOf(res: Response): Auth {
  const auth = res.locals.auth as Auth | undefined;
  if (!auth) throw problems.unauthorized();
  return auth;
}

/** The caller's tenant, servable now, with its database; optionally at least `minimum` role. */
export function tenantScope(
  res: Response,
  directory: TenantDirectory,
  databases: TenantDatabases,
  minimum: Role = 'member',
): TenantScope {
  const auth = authOf(res);
  if (auth.kind !== 'tenant') throw problems.forbidden('this endpoint is for tenant users');
  if (roleRank(auth.role) < roleRank(minimum)) throw problems.forbidden(`this needs the ${minimum} role`);
  const entry = directory.servable(auth.tenant);
  assertSameTenant(entry, auth.tenantUid);
  return { auth, entry, db: databases.for(auth.tenant, entry.credentials) };
}

/**
 * Refuses (401) what was issued to an earlier Tenant of the same name: the
 * name was deleted and taken again, so the token's holder is nobody here.
 */
export function assertSameTenant(entry: TenantEntry, issuedToUid: string): void {
  if (!issuedToUid || entry.uid !== issuedToUid) {
    throw problems.unauthorized(
      `the access token was issued to an earlier tenant named ${entry.name}; sign in again`,
    );
  }
}

/** For what only a signed-in user may do: an API client's token gets 403. */
export function requireUser(scope: TenantScope, what: string): TenantScope {
  if (scope.auth.apiClientId !== undefined)
    throw problems.forbidden(`API clients cannot ${what}; sign in as a user`);
  return scope;
}

export function requirePlatformAdmin(res: Response): PlatformAuth {
  const auth = authOf(res);
  if (auth.kind !== 'platform') throw problems.forbidden('this endpoint is for platform administrators');
  return auth;
}
