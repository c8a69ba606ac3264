// A SAML identity provider a real browser signs in at: it takes an
// SP-initiated AuthnRequest (HTTP-Redirect binding) or an IdP-initiated start,
// shows an HTML login form, checks the password, and answers with a signed
// SAMLResponse in a form that posts itself to the service provider's ACS
// (HTTP-POST binding, saml-bindings §3.5). Responses come from TestSamlIdp.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inflateRawSync } from 'node:zlib';
import { ns, parseStrictXml } from '../../api/src/sso/xml.js';
import { generateSigningKey, TestSamlIdp, type SpEndpoints } from './saml-idp.js';

export interface SamlUser {
  password: string;
  /** The NameID (emailAddress format). */
  email: string;
  attributes?: Record<string, string[]>;
  /** Sign this user's responses with a key the IdP's metadata does not publish, as a forger would. */
  forgedSignature?: boolean;
}

export interface SamlLoginPages {
  /** Where the pages are served; the IdP's entity ID is `<origin>/metadata`. */
  origin: string;
  idp: TestSamlIdp;
  /** Lets `sp` (its entity ID and its one ACS) ask for and receive responses. */
  trust(sp: SpEndpoints): void;
  /** The page that starts an IdP-initiated sign-in to `sp`. */
  initiateUrl(sp: SpEndpoints, relayState?: string): string;
  close(): Promise<void>;
}

interface PendingLogin {
  sp: SpEndpoints;
  /** The AuthnRequest's ID; absent for an IdP-initiated sign-in. */
  requestId?: string;
  relayState?: string;
}

class PageError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const escapeHtml = (value: string): string =>
  value.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );

const page = (title: string, body: string, script = ''): string =>
  `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>` +
  `<body><h1>${escapeHtml(title)}</h1>${body}${script}</body></html>`;

function loginForm(loginId: string, error?: string): string {
  return page(
    'Test IdP sign-in',
    (error ? `<p id="error" role="alert">${escapeHtml(error)}</p>` : '') +
      `<form method="post" action="/login">` +
      `<input type="hidden" name="login" value="${escapeHtml(loginId)}">` +
      `<label>Username <input name="username" autocomplete="username" required></label>` +
      `<label>Password <input name="password" type="password" autocomplete="current-password" required></label>` +
      `<button type="submit">Sign in</button></form>`,
  );
}

/** The self-posting form that carries the response to the ACS. */
function postBack(acsUrl: string, samlResponse: string, relayState: string | undefined): string {
  return page(
    'Signing you in',
    `<form method="post" action="${escapeHtml(acsUrl)}">` +
      `<input type="hidden" name="SAMLResponse" value="${escapeHtml(samlResponse)}">` +
      (relayState === undefined
        ? ''
        : `<input type="hidden" name="RelayState" value="${escapeHtml(relayState)}">`) +
      `<noscript><button type="submit">Continue</button></noscript></form>`,
    '<script>document.forms[0].submit();</script>',
  );
}

async function formBody(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 16 * 1024) throw new PageError(413, 'Form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** ID, Issuer and ACS URL of a deflated, base64 AuthnRequest (HTTP-Redirect binding). */
function readAuthnRequest(encoded: string): { id: string; issuer: string; acsUrl: string | null } {
  let xml: string;
  try {
    xml = inflateRawSync(Buffer.from(encoded, 'base64')).toString('utf8');
  } catch {
    throw new PageError(400, 'The SAMLRequest is not a deflated message');
  }
  const root = parseStrictXml(xml).documentElement;
  if (root?.namespaceURI !== ns.protocol || root.localName !== 'AuthnRequest') {
    throw new PageError(400, 'Not an AuthnRequest');
  }
  const issuer = root.getElementsByTagNameNS(ns.assertion, 'Issuer')[0]?.textContent?.trim();
  const id = root.getAttribute('ID');
  if (!issuer || !id) throw new PageError(400, 'The AuthnRequest lacks an ID or Issuer');
  return { id, issuer, acsUrl: root.getAttribute('AssertionConsumerServiceURL') };
}

export async function startSamlLoginPages(users: Record<string, SamlUser>): Promise<SamlLoginPages> {
  let handle: (req: IncomingMessage, res: ServerResponse) => Promise<void> = () => Promise.resolve();
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      res.statusCode = error instanceof PageError ? error.status : 500;
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(page('Test IdP error', `<p id="error">${escapeHtml(String((error as Error).message))}</p>`));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const idp = new TestSamlIdp(`${origin}/metadata`, await generateSigningKey('browser-saml-idp'));
  // Same entity ID, another key: what a forger without the IdP's private key can produce.
  const forger = new TestSamlIdp(`${origin}/metadata`, await generateSigningKey('browser-saml-forger'));
  const trusted = new Map<string, SpEndpoints>();
  const pending = new Map<string, PendingLogin>();

  const showLogin = (res: ServerResponse, login: PendingLogin) => {
    const id = randomBytes(16).toString('hex');
    pending.set(id, login);
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.setHeader('cache-control', 'no-store');
    res.end(loginForm(id));
  };

  handle = async (req, res) => {
    const url = new URL(req.url ?? '/', origin);
    if (req.method === 'GET' && url.pathname === '/metadata') {
      res.setHeader('content-type', 'application/samlmetadata+xml');
      res.end(idp.metadataXml());
      return;
    }
    if (req.method === 'GET' && url.pathname === '/sso') {
      const request = readAuthnRequest(url.searchParams.get('SAMLRequest') ?? '');
      const sp = trusted.get(request.issuer);
      if (!sp) throw new PageError(400, 'Unknown service provider');
      // saml-core §3.4.1: the ACS a request names must be one the SP registered.
      if (request.acsUrl !== null && request.acsUrl !== sp.acsUrl) {
        throw new PageError(400, 'The AssertionConsumerServiceURL is not registered');
      }
      const relayState = url.searchParams.get('RelayState') ?? undefined;
      showLogin(res, { sp, requestId: request.id, ...(relayState === undefined ? {} : { relayState }) });
      return;
    }
    if (req.method === 'GET' && url.pathname === '/initiate') {
      const sp = trusted.get(url.searchParams.get('sp') ?? '');
      if (!sp) throw new PageError(400, 'Unknown service provider');
      const relayState = url.searchParams.get('RelayState') ?? undefined;
      showLogin(res, { sp, ...(relayState === undefined ? {} : { relayState }) });
      return;
    }
    if (req.method === 'POST' && url.pathname === '/login') {
      const form = await formBody(req);
      const loginId = form.get('login') ?? '';
      const login = pending.get(loginId);
      if (!login) throw new PageError(400, 'This sign-in has expired; start again');
      const user = users[form.get('username') ?? ''];
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.setHeader('cache-control', 'no-store');
      if (!user || user.password !== form.get('password')) {
        res.statusCode = 401;
        res.end(loginForm(loginId, 'Wrong username or password'));
        return;
      }
      pending.delete(loginId);
      const samlResponse = await (user.forgedSignature ? forger : idp).respond(login.sp, {
        ...(login.requestId === undefined ? {} : { inResponseTo: login.requestId }),
        nameId: user.email,
        ...(user.attributes ? { attributes: user.attributes } : {}),
      });
      res.end(postBack(login.sp.acsUrl, samlResponse, login.relayState));
      return;
    }
    throw new PageError(404, 'Not found');
  };

  return {
    origin,
    idp,
    trust: (sp) => trusted.set(sp.entityId, sp),
    initiateUrl: (sp, relayState) => {
      const url = new URL('/initiate', origin);
      url.searchParams.set('sp', sp.entityId);
      if (relayState !== undefined) url.searchParams.set('RelayState', relayState);
      return url.href;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
