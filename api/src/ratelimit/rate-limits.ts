// Request rate limits kept in Redis, so every API replica counts against the
// same fixed one-minute windows. Each limiter has its own RedisStore and key
// prefix (a shared store would count one request twice), answers 429 as
// problem+json, and sends the draft-8 `RateLimit` and `RateLimit-Policy`
// headers; several limiters on one route each add an entry to those lists.
//
// When Redis cannot be reached:
// - per tenant and per user fail open, with a warning: they share capacity
//   fairly, and refusing every request during a cache outage would turn it
//   into a full API outage. The database pool budget still bounds the load.
// - sign-in attempts, checks of a current password and failed webhook
//   lookups fail closed with 503 and Retry-After: they are the only brake on
//   guessing, and an outage an attacker might cause must not switch it off.
//   Signed-in clients keep working with their tokens.
// This is done here rather than with `passOnStoreError`, which would log every
// failure as an error and turn the closed case into a 500.
import { createHash } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import {
  ipKeyGenerator,
  rateLimit,
  type AugmentedRequest,
  type Options,
  type RateLimitRequestHandler,
} from 'express-rate-limit';
import type { Redis } from 'ioredis';
import { RedisStore, type RedisReply } from 'rate-limit-redis';
import { ProblemError, problems } from '../http/problem.js';
import { namedClientId } from '../oauth/client-auth.js';

export interface RateLimitLog {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface RateLimitsOptions {
  /** Shared by all limiters; commands go through `call`, so any ioredis client works. */
  redis: Redis;
  /** Prepended to every key; each limiter adds `<name>:`. Default `rl:`. */
  prefix?: string;
  log: RateLimitLog;
  /** A Redis command slower than this counts as Redis being down. Default 500 ms. */
  commandTimeoutMs?: number;
}

export interface LimiterOptions {
  /**
   * Names the limiter's keys and its entry in the `RateLimit` headers. Two
   * limiters with one name share counts, so a name may be used once per
   * RateLimits; pass another to limit a route group separately.
   */
  name?: string;
}

export interface AuthAttemptLimits extends LimiterOptions {
  perIpPerMinute: number;
  perAccountPerMinute: number;
  /**
   * The account a request names. Default: `accountFromBody`. Requests naming
   * none are only limited by IP.
   */
  account?: (req: Request) => string | undefined;
  /**
   * Successful requests this accepts are given back to their account's count (never the address's).
   * Default: none, so every attempt counts.
   */
  givesBackSuccess?: (req: Request) => boolean;
}

/** The caller's tenant (undefined for a platform admin) and user or client id, from `res.locals.auth`. */
export interface RateLimitCaller {
  tenant: string | undefined;
  subject: string | undefined;
}

/** Redis failed or was too slow; the limiter's fail mode decides what happens to the request. */
export class RateLimitStoreError extends Error {
  constructor(
    readonly limiter: string,
    cause: unknown,
  ) {
    super(`the rate limit store of "${limiter}" is unavailable`, { cause });
    this.name = 'RateLimitStoreError';
  }
}

const windowMs = 60_000;
const outageLogEveryMs = 10_000;

/**
 * Reads the verified caller that the authentication middleware left in
 * `res.locals.auth`; never headers or the body. Accepts both
 * `{ tenant, userId, platformAdmin }` and `{ kind: 'tenant' | 'platform', ... }`.
 */
export function rateLimitCaller(res: Response): RateLimitCaller | undefined {
  const auth: unknown = res.locals.auth;
  if (auth === null || typeof auth !== 'object') return undefined;
  const fields = auth as Record<string, unknown>;
  const platform = fields.kind === 'platform' || fields.platformAdmin === true;
  const tenant =
    !platform && typeof fields.tenant === 'string' && fields.tenant !== '' ? fields.tenant : undefined;
  const id = [fields.userId, fields.clientId].find((v): v is string => typeof v === 'string' && v !== '');
  return { tenant, subject: id };
}

/** The client address as Express resolved it under the app's `trust proxy`, IPv6 folded to its /56. */
export function clientAddressKey(req: Request): string {
  // req.ip is undefined only once the socket is gone; such requests share one bucket.
  return ipKeyGenerator(req.ip ?? 'unknown');
}

/**
 * The account a sign-in request names, from a parsed JSON or form body: `tenant` with `email` (login,
 * registration, reset) or `username` (the token endpoint's password grant), both lower-cased as the
 * user lookup is; or a `client_id` (client credentials), as given, since client ids are matched exactly,
 * in the body or in HTTP Basic credentials.
 * The three never share a key, so one account's budget is the same whichever endpoint is used.
 */
export function accountFromBody(req: Request): string | undefined {
  const body: unknown = req.body;
  if (body === null || typeof body !== 'object') return undefined;
  const { tenant, email, username, client_id: clientId } = body as Record<string, unknown>;
  const user = [email, username].find((v): v is string => typeof v === 'string' && v.trim() !== '');
  if (user !== undefined) {
    const tenantPart = typeof tenant === 'string' ? tenant.trim().toLowerCase() : '';
    return `user\n${tenantPart}\n${user.trim().toLowerCase()}`;
  }
  if (typeof clientId === 'string' && clientId !== '') return `client\n${clientId}`;
  // client_secret_basic: the same client's attempts count together whichever way it authenticates.
  const basic = namedClientId(req);
  if (basic !== undefined) return `client\n${basic}`;
  return undefined;
}

/**
 * A client-credentials grant: a machine client may fetch tokens often, and a right secret is no guess, so
 * its successful grants are given back to its account.
 */
export function clientCredentialsGrant(req: Request): boolean {
  const body: unknown = req.body;
  return (
    body !== null &&
    typeof body === 'object' &&
    (body as Record<string, unknown>).grant_type === 'client_credentials'
  );
}

const succeeded = (res: Response): boolean => res.statusCode < 400;

/** The `current_password` a request carries, if any: every endpoint that checks one takes it under that name. */
function carriesCurrentPassword(req: Request): boolean {
  const body: unknown = req.body;
  return body !== null && typeof body === 'object' && 'current_password' in body;
}

/**
 * rate-limit-redis with two fixes: every command has a deadline, so a hung
 * Redis cannot hold requests, and a SCRIPT LOAD that failed at start-up is
 * retried (upstream keeps the rejected promise, which would leave the limiter
 * broken after Redis comes back).
 */
class SharedCounterStore extends RedisStore {
  constructor(
    private readonly limiter: string,
    redis: Redis,
    prefix: string,
    timeoutMs: number,
  ) {
    super({
      prefix,
      sendCommand: (command: string, ...args: string[]) =>
        withDeadline(redis.call(command, ...args) as Promise<RedisReply>, timeoutMs),
    });
  }

  override async increment(key: string): Promise<{ totalHits: number; resetTime: Date | undefined }> {
    this.incrementScriptSha = this.incrementScriptSha.catch(() => this.loadIncrementScript());
    try {
      return await super.increment(key);
    } catch (error) {
      throw new RateLimitStoreError(this.limiter, error);
    }
  }
}

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

interface LimiterSpec {
  name: string;
  failOpen: boolean;
  /** What was exceeded, for the 429 detail. */
  exceeded: string;
  limit: Options['limit'];
  keyGenerator: (req: Request, res: Response) => string;
  skip?: (req: Request, res: Response) => boolean | Promise<boolean>;
  /** Requests are counted when they arrive; one that ends with this true is given back. */
  givesBack?: (req: Request, res: Response) => boolean;
  /** The 503 detail while Redis is down, for limiters that fail closed. */
  unavailable?: string;
}

export class RateLimits {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #log: RateLimitLog;
  readonly #timeoutMs: number;
  readonly #names = new Set<string>();

  constructor(options: RateLimitsOptions) {
    this.#redis = options.redis;
    this.#prefix = options.prefix ?? 'rl:';
    this.#log = options.log;
    this.#timeoutMs = options.commandTimeoutMs ?? 500;
  }

  /**
   * Requests per minute for each tenant, across all its users and replicas.
   * `resolveLimit` gives the tenant's limit (its plan, or the Tenant spec's
   * override); undefined means unlimited. 0 refuses everything. Requests
   * without a tenant caller (anonymous, platform admin) are not counted.
   */
  perTenant(
    resolveLimit: (req: Request, tenant: string) => number | undefined | Promise<number | undefined>,
    options: LimiterOptions = {},
  ): RequestHandler {
    const limits = new WeakMap<Request, number>();
    return this.#limiter({
      name: options.name ?? 'tenant',
      failOpen: true,
      exceeded: 'this tenant has made too many requests',
      skip: async (req, res) => {
        const tenant = rateLimitCaller(res)?.tenant;
        if (tenant === undefined) return true;
        const limit = await resolveLimit(req, tenant);
        if (limit === undefined) return true;
        limits.set(req, checkedLimit(limit, `the limit of tenant "${tenant}"`));
        return false;
      },
      limit: (req) => limits.get(req) ?? 0,
      keyGenerator: (_req, res) => encodeURIComponent(rateLimitCaller(res)?.tenant ?? ''),
    });
  }

  /** Requests per minute for each user or API client, keyed by tenant and id. Anonymous requests are not counted. */
  perUser(limitPerMinute: number, options: LimiterOptions = {}): RequestHandler {
    const limit = checkedLimit(limitPerMinute, 'limitPerMinute');
    return this.#limiter({
      name: options.name ?? 'user',
      failOpen: true,
      exceeded: 'you have made too many requests',
      skip: (_req, res) => rateLimitCaller(res)?.subject === undefined,
      limit,
      keyGenerator: (_req, res) => {
        const caller = rateLimitCaller(res);
        // '*' is no valid tenant name, so platform callers never share a key with a tenant's user.
        return `${caller?.tenant === undefined ? '*' : encodeURIComponent(caller.tenant)}:${encodeURIComponent(caller?.subject ?? '')}`;
      },
    });
  }

  /**
   * For sign-in, token and password-reset endpoints, after the body parser:
   * one limit per client address (rotating accounts does not help), one per
   * address and account (one account cannot eat the whole address's budget
   * for a shared NAT). The address is `req.ip`, so only the app's
   * `trust proxy` setting decides which X-Forwarded-For entry counts.
   */
  authAttempts(limits: AuthAttemptLimits): RequestHandler[] {
    const name = limits.name ?? 'auth';
    const account = limits.account ?? accountFromBody;
    const accounts = new WeakMap<Request, string>();
    const byAddress = this.#limiter({
      name: `${name}-ip`,
      failOpen: false,
      exceeded: 'too many sign-in attempts from this address',
      limit: checkedLimit(limits.perIpPerMinute, 'perIpPerMinute'),
      keyGenerator: (req) => clientAddressKey(req),
    });
    const byAccount = this.#limiter({
      name: `${name}-account`,
      failOpen: false,
      exceeded: 'too many sign-in attempts for this account from this address',
      limit: checkedLimit(limits.perAccountPerMinute, 'perAccountPerMinute'),
      ...(limits.givesBackSuccess
        ? { givesBack: (req: Request, res: Response) => succeeded(res) && limits.givesBackSuccess!(req) }
        : {}),
      skip: (req) => {
        const named = account(req);
        if (named === undefined) return true;
        accounts.set(req, named);
        return false;
      },
      // Hashed, so Redis keys and logs never hold e-mail addresses.
      keyGenerator: (req) =>
        `${clientAddressKey(req)}:${createHash('sha256')
          .update(accounts.get(req) ?? '')
          .digest('base64url')}`,
    });
    return [byAddress, byAccount];
  }

  /**
   * Checks of a current password (password change, and any other endpoint taking `current_password`),
   * per user across replicas, after authentication: a stolen access token must not buy unlimited guesses
   * at the password behind it. Only requests carrying `current_password` count. Fails closed.
   */
  currentPasswordChecks(limits: { perUserPerMinute: number; name?: string }): RequestHandler {
    return this.#limiter({
      name: limits.name ?? 'current-password',
      failOpen: false,
      exceeded: 'too many checks of your current password',
      unavailable: 'password checks are briefly unavailable; try again shortly',
      limit: checkedLimit(limits.perUserPerMinute, 'perUserPerMinute'),
      skip: (req, res) => rateLimitCaller(res)?.subject === undefined || !carriesCurrentPassword(req),
      keyGenerator: (_req, res) => {
        const caller = rateLimitCaller(res);
        return `${caller?.tenant === undefined ? '*' : encodeURIComponent(caller.tenant)}:${encodeURIComponent(caller?.subject ?? '')}`;
      },
    });
  }

  /**
   * Failed requests per client address, for unauthenticated endpoints whose failures cost the server
   * (an incoming webhook naming an organization nobody maps makes the API look for it). Successful
   * requests are given back, so a busy, well-behaved sender is never held up. Fails closed.
   */
  failuresPerAddress(limits: { name: string; perIpPerMinute: number; exceeded: string }): RequestHandler {
    return this.#limiter({
      name: limits.name,
      failOpen: false,
      exceeded: limits.exceeded,
      unavailable: 'this endpoint is briefly unavailable; try again shortly',
      limit: checkedLimit(limits.perIpPerMinute, 'perIpPerMinute'),
      givesBack: (_req, res) => succeeded(res),
      keyGenerator: (req) => clientAddressKey(req),
    });
  }

  /**
   * Runs limiters side by side instead of one after another: their Redis commands leave in the same
   * write (the client auto-pipelines), so a request waits for one round trip, not one per limiter.
   * Each limiter counts the request and adds its `RateLimit` header entry; if any refuses, the first
   * refusal in the given order is the answer.
   */
  together(...limiters: RequestHandler[]): RequestHandler {
    return (req, res, next) => {
      const outcomes: unknown[] = [];
      let pending = limiters.length;
      limiters.forEach((limiter, index) => {
        void limiter(req, res, (error?: unknown) => {
          outcomes[index] = error;
          if (--pending === 0) next(outcomes.find((outcome) => outcome !== undefined));
        });
      });
    };
  }

  #limiter(spec: LimiterSpec): RequestHandler {
    if (this.#names.has(spec.name)) throw new Error(`a rate limiter named "${spec.name}" already exists`);
    this.#names.add(spec.name);
    const log = this.#log;
    const property = `rateLimit:${spec.name}`;
    const limiter: RateLimitRequestHandler = rateLimit({
      windowMs,
      limit: spec.limit,
      keyGenerator: spec.keyGenerator,
      ...(spec.skip ? { skip: spec.skip } : {}),
      ...(spec.givesBack ? { skipSuccessfulRequests: true, requestWasSuccessful: spec.givesBack } : {}),
      standardHeaders: 'draft-8',
      legacyHeaders: false,
      identifier: spec.name,
      requestPropertyName: property,
      store: new SharedCounterStore(spec.name, this.#redis, `${this.#prefix}${spec.name}:`, this.#timeoutMs),
      passOnStoreError: false,
      // A limit of 0 is deliberate (refuse everything); the check only warns about old versions.
      validate: { limit: false },
      logger: {
        error: (err, msg) => log.error({ err, limiter: spec.name }, msg ?? 'rate limiter error'),
        warn: (err, msg) => log.warn({ err, limiter: spec.name }, msg ?? 'rate limiter warning'),
      },
      // Refusals go to the app's error handler as problems, so limiters run side by side (together)
      // cannot both answer.
      handler: (req, _res, next) => {
        const info = (req as AugmentedRequest)[property];
        const retryAfter = secondsUntil(info?.resetTime);
        next(
          new ProblemError(
            429,
            'Too Many Requests',
            `${spec.exceeded}: the limit is ${info?.limit ?? '?'} per minute; retry in ${retryAfter} s`,
            { headers: { 'Retry-After': String(retryAfter) } },
          ),
        );
      },
    });

    let outageSince: number | undefined;
    let lastLogged = 0;
    let suppressed = 0;
    const onStoreError = (error: RateLimitStoreError): void => {
      const now = Date.now();
      outageSince ??= now;
      // One line per limiter every few seconds, not one per request, while Redis is down.
      if (now - lastLogged < outageLogEveryMs) {
        suppressed += 1;
        return;
      }
      const fields = { err: error.cause, limiter: spec.name, suppressed, outageSince: new Date(outageSince) };
      if (spec.failOpen) log.warn(fields, 'rate limit store unavailable; letting requests through unlimited');
      else log.error(fields, 'rate limit store unavailable; refusing requests with 503');
      lastLogged = now;
      suppressed = 0;
    };

    return (req: Request, res: Response, next: NextFunction) => {
      void limiter(req, res, (error?: unknown) => {
        if (!(error instanceof RateLimitStoreError)) {
          // The limiter counted this request, so Redis answered.
          if ((req as AugmentedRequest)[property] !== undefined) outageSince = undefined;
          next(error);
          return;
        }
        onStoreError(error);
        if (spec.failOpen) next();
        else
          next(
            problems.unavailable(spec.unavailable ?? 'sign-in is briefly unavailable; try again shortly', 5),
          );
      });
    };
  }
}

function checkedLimit(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${what} must be a whole number of requests per minute, not ${value}`);
  }
  return value;
}

function secondsUntil(resetTime: Date | undefined): number {
  if (!resetTime) return Math.ceil(windowMs / 1000);
  return Math.max(1, Math.ceil((resetTime.getTime() - Date.now()) / 1000));
}
