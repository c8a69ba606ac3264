// A real OpenID Provider (oidc-provider) on a free loopback port, with a
// login step that the test decides programmatically, and a cookie-keeping
// "browser" that follows its redirects with plain fetch. With `interactive`,
// the provider serves its own login and consent pages instead, for a real
// browser to fill in.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { type Account } from 'oidc-provider';

export interface TestAccount {
  email?: string;
  email_verified?: boolean;
  given_name?: string;
  family_name?: string;
  groups?: string[];
}

export interface TestClient {
  client_id: string;
  client_secret: string;
  redirect_uris: string[];
}

export interface TestIdp {
  issuer: string;
  /** The account the next login interaction signs in as. */
  loginAs: string;
  /** Paths of every request the provider received, in order. */
  requests: string[];
  close(): Promise<void>;
}

export async function startTestIdp(options: {
  clients: TestClient[];
  accounts: Record<string, TestAccount>;
  /**
   * Serve oidc-provider's own HTML login form (any password; the login names
   * the account) and consent page, instead of finishing interactions for `loginAs`.
   */
  interactive?: boolean;
}): Promise<TestIdp> {
  let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = createServer((req, res) => handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;

  const signingKey = {
    ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
    kid: randomBytes(8).toString('hex'),
    alg: 'RS256',
    use: 'sig',
  };
  const provider = new Provider(issuer, {
    clients: options.clients.map((client) => ({
      ...client,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    findAccount: (_ctx: unknown, id: string): Account | undefined => {
      const account = options.accounts[id];
      return account && { accountId: id, claims: () => ({ sub: id, ...account }) };
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['given_name', 'family_name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    // Put scope claims into the ID token, where the relying party reads them.
    conformIdTokenClaims: false,
    // PKCE on every request, so a relying party that stops sending it fails.
    pkce: { required: () => true },
    features: { devInteractions: { enabled: options.interactive ?? false } },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    jwks: { keys: [signingKey] },
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 3600, IdToken: 3600 },
  });
  // The provider logs expected client errors (bad codes, bad grants) itself.
  provider.on('server_error', (_ctx, error) => console.error('test IdP server_error', error));

  const idp: TestIdp = {
    issuer,
    loginAs: '',
    requests: [],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  const oidc = provider.callback();
  handle = (req, res) => {
    idp.requests.push(req.url ?? '');
    if (!options.interactive && req.method === 'GET' && req.url?.startsWith('/interaction/')) {
      finishInteraction(provider, idp, req, res).catch((error: unknown) => {
        res.statusCode = 500;
        res.end(String(error));
      });
      return;
    }
    oidc(req, res);
  };
  return idp;
}

/** Completes the login or consent prompt without any page: the test chose the account. */
async function finishInteraction(
  provider: Provider,
  idp: TestIdp,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'login') {
    await provider.interactionFinished(req, res, { login: { accountId: idp.loginAs } });
    return;
  }
  const accountId = details.session?.accountId ?? idp.loginAs;
  const grant =
    (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ??
    new provider.Grant({ accountId, clientId: details.params.client_id });
  const { missingOIDCScope, missingOIDCClaims } = details.prompt.details;
  if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
  if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

/**
 * Follows redirects from `start` like a browser with a fresh cookie jar and
 * returns the first redirect target that begins with `stopAt` (the relying
 * party's callback), without requesting it.
 */
export async function browse(start: URL, stopAt: string): Promise<URL> {
  const jar = new Map<string, string>();
  let url = start;
  for (let hop = 0; hop < 20; hop++) {
    const response = await fetch(url, {
      redirect: 'manual',
      headers: { cookie: [...jar].map(([name, value]) => `${name}=${value}`).join('; ') },
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair = ''] = cookie.split(';');
      const at = pair.indexOf('=');
      const name = pair.slice(0, at).trim();
      const value = pair.slice(at + 1).trim();
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(cookie)) jar.delete(name);
      else jar.set(name, value);
    }
    const location = response.headers.get('location');
    if (response.status < 300 || response.status >= 400 || !location) {
      throw new Error(
        `expected a redirect from ${url.href}, got ${response.status}: ${await response.text()}`,
      );
    }
    await response.body?.cancel();
    url = new URL(location, url);
    if (url.href.startsWith(stopAt)) return url;
  }
  throw new Error(`too many redirects from ${start.href}`);
}
