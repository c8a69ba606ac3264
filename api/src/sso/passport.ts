// Runs one step of an SSO login (start or answer) through a passport strategy
// and hands back what the strategy decided, for SamlService and OidcService.
//
// Sign-in is stateless: `session: false`, and with a callback passport calls
// neither req.logIn nor a session store. The strategies see a request built
// from what the step needs (the tenant rides along in a WeakMap, never in a
// property a client could set), and a response that only records a redirect:
// the caller, not the strategy, decides the cookies and the answer.
import passport from 'passport';
import type { Request, Response } from 'express';
import type { AuthenticateOptions } from 'openid-client/passport';

/** What a strategy decided for one request. */
export type StrategyOutcome =
  | { kind: 'success'; user: unknown }
  | { kind: 'fail'; challenge: unknown }
  | { kind: 'redirect'; url: string };

/** The request fields the SAML and OIDC strategies read. */
export interface StrategyRequest {
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  query: Record<string, string>;
  body: Record<string, unknown>;
  /** openid-client's strategy keeps its pending state here; the caller moves it to the shared store. */
  session?: Record<string, unknown>;
}

/** A passport instance of our own, so no strategy or setting leaks to or from the process-wide one. */
export function newAuthenticator(): passport.Authenticator {
  return new passport.Passport();
}

/**
 * Runs `strategy` (a registered name, or an instance used for this request
 * only: passport sets the outcome callbacks on the instance itself) on `req`,
 * with the strategy's own `options`. Rejects with whatever the strategy
 * reported as an error.
 */
export function runStrategy(
  authenticator: passport.Authenticator,
  strategy: string | passport.Strategy,
  req: StrategyRequest,
  options: passport.AuthenticateOptions | AuthenticateOptions = {},
): Promise<StrategyOutcome> {
  return new Promise((resolve, reject) => {
    let location: string | undefined;
    const res = {
      statusCode: 200,
      setHeader(name: string, value: string) {
        if (name.toLowerCase() === 'location') location = value;
      },
      end() {
        if (location === undefined) reject(new Error('the strategy answered without a redirect'));
        else resolve({ kind: 'redirect', url: location });
      },
    };
    const middleware = authenticator.authenticate(
      strategy,
      { ...options, session: false },
      (error: unknown, user: unknown, challenge: unknown) => {
        if (error)
          reject(error instanceof Error ? error : new Error('the strategy failed', { cause: error }));
        else if (user) resolve({ kind: 'success', user });
        else resolve({ kind: 'fail', challenge });
      },
    ) as (req: Request, res: Response, next: (error?: unknown) => void) => void;
    // Neither strategy calls next unless it has nothing to do with the request.
    middleware(req as unknown as Request, res as unknown as Response, (error?: unknown) =>
      reject(error instanceof Error ? error : new Error('the strategy passed the request on')),
    );
  });
}
