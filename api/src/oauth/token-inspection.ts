// Introspection (RFC 7662) and revocation (RFC 7009) of our access tokens
// (ES256 JWTs) and refresh tokens (`<tenant>.rt_...`, stored hashed in the
// tenant's database).
//
// What a caller may see: the platform admin, every token; a tenant's API
// client, only the tokens of its own tenant (same name and Tenant uid).
// Anything else reads as an unknown token: introspection answers
// `{active: false}` and revocation does nothing, so a client learns nothing
// about another tenant's tokens, not even whether they exist.
//
// What a caller may revoke among what it sees: the platform admin and admin
// API clients, any token; member API clients, only their own access tokens
// (refresh tokens are users', never a client's).
import { RefreshTokenStore, type RefreshTokenState } from '../auth/refresh-tokens.js';
import { InvalidTokenError, type AccessTokenClaims, type TokenService } from '../auth/tokens.js';
import { z } from 'zod';
import { ProblemError } from '../http/problem.js';
import { named } from '../http/responses.js';
import type { TenantDatabases, TenantDb } from '../tenancy/tenant-databases.js';
import type { TenantDirectory, TenantEntry } from '../tenancy/tenant-directory.js';
import type { OAuthClient } from './clients.js';
import { OAuthError } from './errors.js';
import type { RevokedAccessTokens } from './revoked-tokens.js';

/** An RFC 7662 answer: `{active: false}` and nothing else, or the token's claims. */
export const introspectionResponseSchema = named(
  'Introspection',
  z.union([
    z.object({ active: z.literal(false) }),
    z.object({
      active: z.literal(true),
      token_type: z.enum(['Bearer', 'refresh_token']),
      sub: z.string(),
      iss: z.string(),
      exp: z.int(),
      iat: z.int(),
      tid: z.string().describe('The tenant; `*` for the platform admin.'),
      tenant_uid: z.string().optional(),
      aud: z.string().optional(),
      jti: z.string().optional(),
      scope: z.string().optional(),
      client_id: z.string().optional(),
      role: z.string().optional(),
      platform_admin: z.literal(true).optional(),
    }),
  ]),
  "A token's state (RFC 7662 §2.2); a token the caller may not see is inactive.",
);

export type IntrospectionResponse = z.output<typeof introspectionResponseSchema>;

const refreshTokenPattern = /^([a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?)\.(rt_[A-Za-z0-9_-]{43})$/;
const inactive = { active: false } as const;

interface FoundRefreshToken {
  tenant: string;
  entry: TenantEntry;
  db: TenantDb;
  opaque: string;
  state: RefreshTokenState;
}

export class TokenInspection {
  constructor(
    private readonly deps: {
      tokens: TokenService;
      directory: TenantDirectory;
      databases: TenantDatabases;
      revoked: RevokedAccessTokens;
      /** The `iss` of our tokens, also for refresh tokens, which carry none. */
      issuer: string;
      now?: () => Date;
    },
  ) {}

  async introspect(caller: OAuthClient, token: string): Promise<IntrospectionResponse> {
    const access = await this.#accessToken(caller, token);
    if (access) {
      return {
        active: true,
        token_type: 'Bearer',
        sub: access.sub,
        iss: access.iss,
        aud: access.aud,
        exp: access.exp,
        iat: access.iat,
        jti: access.jti,
        tid: access.tid,
        ...(access.tenantUid ? { tenant_uid: access.tenantUid } : {}),
        ...(access.scope.length > 0 ? { scope: access.scope.join(' ') } : {}),
        ...(access.clientId ? { client_id: access.clientId } : {}),
        ...(access.platformAdmin ? { client_id: access.sub, platform_admin: true } : {}),
        role: access.role,
      };
    }
    const refresh = await this.#refreshToken(caller, token);
    if (!refresh) return inactive;
    const { state } = refresh;
    const now = this.#now().getTime();
    if (state.usedAt || state.revokedAt || !state.userActive || state.expiresAt.getTime() <= now)
      return inactive;
    return {
      active: true,
      token_type: 'refresh_token',
      sub: state.userId,
      iss: this.deps.issuer,
      exp: Math.floor(state.expiresAt.getTime() / 1000),
      iat: Math.floor(state.createdAt.getTime() / 1000),
      tid: refresh.tenant,
      tenant_uid: refresh.entry.uid,
    };
  }

  /** Revokes the token if the caller may; an unknown, invalid or already revoked token changes nothing (RFC 7009 §2.2). */
  async revoke(caller: OAuthClient, token: string): Promise<void> {
    const access = await this.#accessToken(caller, token);
    if (access) {
      const own = caller.kind === 'tenant' && access.clientId === caller.clientId;
      if (!own) mayRevokeOthers(caller);
      await this.deps.revoked.revoke(access.jti, access.exp);
      return;
    }
    const refresh = await this.#refreshToken(caller, token);
    if (!refresh) return;
    mayRevokeOthers(caller);
    // The whole family: the session the token belongs to ends (RFC 7009 §2.1 asks for the grant's tokens).
    await new RefreshTokenStore(refresh.db.sequelize).revokeToken(refresh.opaque, 'revocation');
  }

  /** The claims of a valid, unrevoked access token the caller may see; undefined for anything else. */
  async #accessToken(caller: OAuthClient, token: string): Promise<AccessTokenClaims | undefined> {
    let claims: AccessTokenClaims;
    try {
      claims = await this.deps.tokens.verifyAccessToken(token);
    } catch (error) {
      if (error instanceof InvalidTokenError) return undefined;
      throw error;
    }
    if (claims.platformAdmin) return caller.kind === 'platform' ? claims : undefined;
    if (caller.kind === 'tenant' && (claims.tid !== caller.tenant || claims.tenantUid !== caller.tenantUid))
      return undefined;
    // The API refuses a token of a Tenant that is gone, suspended or another one of the name now.
    const entry = this.#servable(claims.tid);
    return entry && entry.uid === claims.tenantUid ? claims : undefined;
  }

  /** A refresh token of a servable tenant the caller may see, in whatever state; undefined when there is none. */
  async #refreshToken(caller: OAuthClient, token: string): Promise<FoundRefreshToken | undefined> {
    const match = refreshTokenPattern.exec(token);
    if (!match) return undefined;
    const tenant = match[1]!;
    if (caller.kind === 'tenant' && caller.tenant !== tenant) return undefined;
    const entry = this.#servable(tenant);
    if (!entry || (caller.kind === 'tenant' && entry.uid !== caller.tenantUid)) return undefined;
    const db = this.deps.databases.for(tenant, entry.credentials);
    const opaque = match[3]!;
    const state = await new RefreshTokenStore(db.sequelize).describe(opaque);
    // A token of an earlier Tenant of the name is nobody's here.
    if (!state || state.tenantUid !== entry.uid) return undefined;
    return { tenant, entry, db, opaque, state };
  }

  #servable(tenant: string): ReturnType<TenantDirectory['servable']> | undefined {
    try {
      return this.deps.directory.servable(tenant);
    } catch (error) {
      if (error instanceof ProblemError) return undefined;
      throw error;
    }
  }

  #now(): Date {
    return this.deps.now?.() ?? new Date();
  }
}

function mayRevokeOthers(caller: OAuthClient): void {
  if (caller.kind === 'tenant' && caller.role !== 'admin')
    throw new OAuthError(
      'unauthorized_client',
      'only admin API clients revoke tokens other than their own access tokens',
    );
}
