// Signing in: passwords, refresh tokens and the platform admin's client
// credentials, ending in our own access and refresh tokens. Refresh tokens are
// handed out as `<tenant>.<opaque token>` so a refresh can find the tenant's
// database; the opaque part is only ever looked up there, hashed.
import { timingSafeEqual, createHash } from 'node:crypto';
import { z } from 'zod';
import { problems } from '../http/problem.js';
import type { UserModel } from '../tenancy/models.js';
import type { TenantDatabases, TenantDb } from '../tenancy/tenant-databases.js';
import type { TenantDirectory, TenantEntry } from '../tenancy/tenant-directory.js';
import { named } from '../http/responses.js';
import { userSchema, userView, email as emailSchema } from '../users/users.js';
import { platformTenantId } from './context.js';
import { passwordHashing } from './password-hashing.js';
import {
  RefreshTokenError,
  RefreshTokenReuseError,
  RefreshTokenStore,
  type RefreshTokenContext,
} from './refresh-tokens.js';
import type { TokenService } from './tokens.js';

export const tenantName = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/, 'not a valid tenant name');

export const loginSchema = z.strictObject({
  tenant: tenantName,
  email: emailSchema,
  password: z.string().min(1).max(256),
});

/** Which Tenant tokens are issued for: its name routes, its uid binds. */
export type TenantIdentity = Pick<TenantEntry, 'name' | 'uid'>;

export const tokenResponseSchema = named(
  'TokenResponse',
  z.object({
    access_token: z.string().describe('An ES256 JWT; /.well-known/jwks.json has the keys that verify it.'),
    refresh_token: z
      .string()
      .optional()
      .describe('Opaque and single use: every refresh rotates it. Never for the client_credentials grant.'),
    token_type: z.literal('Bearer'),
    expires_in: z.int().min(1).describe('Seconds until the access token expires.'),
    user: userSchema.optional().describe('The signed-in user; absent for API clients.'),
  }),
  'Tokens (RFC 6749 §5.1).',
);

export type TokenResponse = z.output<typeof tokenResponseSchema>;

function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

export class Sessions {
  constructor(
    private readonly tokens: TokenService,
    private readonly directory: TenantDirectory,
    private readonly databases: TenantDatabases,
    private readonly options: {
      refreshTokenTtlMs: number;
      platformAdmin?: { clientId: string; clientSecret: string };
    },
  ) {}

  private tenantDb(tenant: string): { entry: TenantEntry; db: TenantDb } {
    const entry = this.directory.servable(tenant);
    return { entry, db: this.databases.for(tenant, entry.credentials) };
  }

  private store(db: TenantDb, tenantUid?: string): RefreshTokenStore {
    return new RefreshTokenStore(db.sequelize, {
      ttlMs: this.options.refreshTokenTtlMs,
      ...(tenantUid ? { tenantUid } : {}),
    });
  }

  /** Checks a password; the same work is done whether or not the user exists. */
  async checkPassword(
    tenant: string,
    email: string,
    password: string,
  ): Promise<{ entry: TenantEntry; db: TenantDb; user: UserModel }> {
    const { entry, db } = this.tenantDb(tenant);
    const user = await db.models.User.findOne({ where: { email: email.toLowerCase() } });
    const ok = user?.password_hash
      ? (await passwordHashing.verify(tenant, user.password_hash, password)).ok
      : await passwordHashing.verifyAgainstDummy(tenant, password);
    if (!user || !ok) throw problems.unauthorized('the email or password is wrong');
    if (!user.is_active) throw problems.forbidden('this account is deactivated');
    return { entry, db, user };
  }

  /** Issues an access token and a fresh refresh-token family for a signed-in user. */
  async issueFor(
    tenant: TenantIdentity,
    db: TenantDb,
    user: UserModel,
    context: RefreshTokenContext = {},
  ): Promise<TokenResponse> {
    const access = await this.tokens.issueAccessToken({
      sub: user.id,
      tid: tenant.name,
      tenantUid: tenant.uid,
      role: user.role,
    });
    const refresh = await this.store(db, tenant.uid).issue(user.id, context);
    return {
      access_token: access.token,
      refresh_token: `${tenant.name}.${refresh.token}`,
      token_type: 'Bearer',
      expires_in: access.expiresIn,
      user: userView(user),
    };
  }

  async refresh(presented: string, context: RefreshTokenContext = {}): Promise<TokenResponse> {
    const dot = presented.indexOf('.');
    const tenant = presented.slice(0, dot);
    if (dot < 1 || !tenantName.safeParse(tenant).success)
      throw problems.unauthorized('the refresh token is not valid');
    const { entry, db } = this.tenantDb(tenant);
    try {
      const rotated = await this.store(db, entry.uid).rotate(presented.slice(dot + 1), context);
      const user = await db.models.User.findByPk(rotated.userId);
      if (!user || !user.is_active) throw problems.unauthorized('the refresh token is not valid');
      const access = await this.tokens.issueAccessToken({
        sub: user.id,
        tid: tenant,
        tenantUid: entry.uid,
        role: user.role,
      });
      return {
        access_token: access.token,
        refresh_token: `${tenant}.${rotated.token}`,
        token_type: 'Bearer',
        expires_in: access.expiresIn,
      };
    } catch (error) {
      if (error instanceof RefreshTokenReuseError) {
        throw problems.unauthorized(
          'this refresh token was already used; every session of its family is revoked',
        );
      }
      if (error instanceof RefreshTokenError)
        throw problems.unauthorized(`the refresh token is not valid (${error.reason})`);
      throw error;
    }
  }

  async logout(presented: string): Promise<void> {
    const dot = presented.indexOf('.');
    const tenant = presented.slice(0, dot);
    if (dot < 1 || !tenantName.safeParse(tenant).success) return;
    const { db } = this.tenantDb(tenant);
    await this.store(db).revokeToken(presented.slice(dot + 1), 'logout');
  }

  async revokeAllForUser(db: TenantDb, userId: string): Promise<void> {
    await this.store(db).revokeAllForUser(userId, 'password_change');
  }

  /** Whether these are the platform admin's client credentials (compared in constant time). */
  isPlatformClient(clientId: string, clientSecret: string): boolean {
    const admin = this.options.platformAdmin;
    return admin !== undefined && clientId === admin.clientId && sameSecret(clientSecret, admin.clientSecret);
  }

  async platformClientCredentials(clientId: string, clientSecret: string): Promise<TokenResponse> {
    if (!this.isPlatformClient(clientId, clientSecret)) {
      throw problems.unauthorized('unknown client or wrong secret');
    }
    const access = await this.tokens.issueAccessToken({
      sub: clientId,
      tid: platformTenantId,
      role: 'owner',
      platformAdmin: true,
    });
    return { access_token: access.token, token_type: 'Bearer', expires_in: access.expiresIn };
  }

  async changePassword(db: TenantDb, user: UserModel, current: string, next: string): Promise<void> {
    const ok = user.password_hash
      ? (await passwordHashing.verify(db.tenant, user.password_hash, current)).ok
      : false;
    if (!ok)
      throw problems.badRequest('the current password is wrong', [
        { field: 'current_password', message: 'is wrong' },
      ]);
    await user.update({ password_hash: await passwordHashing.hash(db.tenant, next) });
    await this.revokeAllForUser(db, user.id);
  }
}
