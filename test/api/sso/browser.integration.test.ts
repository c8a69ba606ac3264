// SSO sign-in in a real browser: headless Chromium (test/harness/browser.ts)
// follows the redirects, fills in the identity providers' HTML login forms,
// runs their self-posting forms and keeps the cookies, as a user's browser
// would. The API runs in-process behind TLS on a public-looking origin
// (https://app.tenantry.test:<port>, resolved to loopback by the browser), so
// the Secure and SameSite rules apply for real: the SAML IdP and the OpenID
// Provider are other sites. The client page the API hands the one-time code to
// is served beside the API and exchanges the code like a front end.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import type { Browser, BrowserContext, Cookie, Page, Response } from 'playwright-core';
import { AuditLog } from '../../../api/src/audit/audit-log.js';
import { startTestApi, type TestApi } from '../../harness/api-server.js';
import { isolatedContext, launchChromium } from '../../harness/browser.js';
import { startTestIdp, type TestIdp } from '../../harness/oidc-idp.js';
import { startTestPlatform, type TestPlatform } from '../../harness/platform.js';
import { generateSigningKey } from '../../harness/saml-idp.js';
import { startSamlLoginPages, type SamlLoginPages } from '../../harness/saml-login-pages.js';

const appHost = 'app.tenantry.test';
const problemType = (code: string) => `https://tenantry.io/problems/sso-${code}`;
// Every browser step waits at most this long; a test at most testTimeoutMs; the suite at most suiteBudgetMs.
const testTimeoutMs = 45_000;
const suiteBudgetMs = 8 * 60_000;

/** What the client page at /sso/complete does with `?code=`: exchange it, then read the profile. */
const clientPage = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Tenantry</title></head>
<body><p id="state">signing in</p><p id="email"></p><p id="role"></p><p id="return-to"></p>
<script type="module">
  const params = new URLSearchParams(location.search);
  // The code is single-use and short-lived, but still leaves the address bar at once.
  history.replaceState(null, '', location.pathname);
  document.getElementById('return-to').textContent = params.get('return_to') ?? '';
  const exchange = await fetch('/api/auth/sso/exchange', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ code: params.get('code') }),
  });
  const tokens = await exchange.json();
  if (!exchange.ok) {
    document.getElementById('state').textContent = 'refused ' + tokens.type;
  } else {
    const profile = await fetch('/api/auth/profile', {
      headers: { authorization: 'Bearer ' + tokens.access_token },
    });
    const me = await profile.json();
    document.getElementById('email').textContent = me.email;
    document.getElementById('role').textContent = me.role;
    document.getElementById('state').textContent = 'signed in';
  }
</script></body></html>`;

interface SignedIn {
  email: string;
  role: string;
  returnTo: string;
  /** The one-time code the API handed to the client page. */
  code: string;
  /** The API's answer that ended the sign-in (303 to the client page). */
  finish: Response;
}

describe('SSO sign-in in headless Chromium (real operator, Redis, SAML IdP and OpenID Provider)', function () {
  this.timeout(180_000);

  // Set when the suite starts: mocha loads every file of a run before it runs any.
  let suiteStart = 0;
  let tls: Server;
  let publicBaseUrl: string;
  let platform: TestPlatform;
  let api: TestApi;
  let samlPages: SamlLoginPages;
  let oidcIdp: TestIdp;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let tenantA: string;
  let tenantB: string;
  let domainA: string;
  let domainB: string;

  const sp = (tenant: string) => ({
    entityId: `${publicBaseUrl}/api/auth/sso/saml/${tenant}/metadata`,
    acsUrl: `${publicBaseUrl}/api/auth/sso/saml/${tenant}/acs`,
  });
  const samlPath = (tenant: string) => `/api/auth/sso/saml/${tenant}`;
  const oidcPath = (tenant: string) => `/api/auth/sso/oidc/${tenant}`;
  const dbOf = (tenant: string) => api.databases.for(tenant, api.directory.servable(tenant).credentials);
  const usersNamed = (tenant: string, email: string) => dbOf(tenant).models.User.count({ where: { email } });
  const failedLogins = async (tenant: string) => {
    const { results } = await AuditLog.list(
      dbOf(tenant).sequelize,
      { action: 'login_failed' },
      { page: 1, pageSize: 100 },
    );
    return results.map((r) => r.diff?.after);
  };
  const cookieNamed = async (url: string, name: string): Promise<Cookie | undefined> =>
    (await context.cookies(url)).find((c) => c.name === name);
  /** The next answer of the API to a request whose path starts with `path`. */
  const answerAt = (path: string, method = 'GET') =>
    page.waitForResponse(
      (r) => r.url().startsWith(`${publicBaseUrl}${path}`) && r.request().method() === method,
    );

  /** Fills in the SAML IdP's login form and submits it. */
  async function samlIdpLogin(username: string, password: string): Promise<void> {
    await page.waitForURL(`${samlPages.origin}/**`);
    expect(await page.title()).to.equal('Test IdP sign-in');
    await page.fill('input[name=username]', username);
    await page.fill('input[name=password]', password);
    await page.click('button[type=submit]');
  }

  /** Fills in oidc-provider's login form, then confirms its consent page. */
  async function oidcIdpLogin(login: string): Promise<void> {
    await page.waitForURL(`${oidcIdp.issuer}/interaction/**`);
    expect(await page.textContent('h1')).to.equal('Sign-in');
    await page.fill('input[name=login]', login);
    await page.fill('input[name=password]', 'any password the dev pages accept');
    await page.click('button[type=submit]');
    await page.waitForSelector('input[name=prompt][value=consent]', { state: 'attached' });
    expect(await page.textContent('h1')).to.equal('Authorize');
    await page.click('button[type=submit]');
  }

  /** Waits for the client page to finish the code exchange, and reads what it shows. */
  async function landed(finish: Promise<Response>): Promise<SignedIn> {
    const answer = await finish;
    expect(answer.status(), await answer.text().catch(() => '')).to.equal(303);
    const location = new URL(answer.headers().location ?? '');
    expect(location.origin + location.pathname).to.equal(`${publicBaseUrl}/sso/complete`);
    await page.waitForURL(`${publicBaseUrl}/sso/complete**`);
    await page.waitForFunction(() => document.getElementById('state')?.textContent !== 'signing in');
    return {
      email: (await page.textContent('#email')) ?? '',
      role: (await page.textContent('#role')) ?? '',
      returnTo: (await page.textContent('#return-to')) ?? '',
      code: location.searchParams.get('code') ?? '',
      finish: answer,
    };
  }

  /** The problem the API answered with, as the browser received it. */
  async function problemFrom(answer: Promise<Response>): Promise<{ status: number; body: any }> {
    const response = await answer;
    expect(response.headers()['content-type']).to.contain('application/problem+json');
    return { status: response.status(), body: await response.json() };
  }

  before(async () => {
    suiteStart = Date.now();
    // TLS on loopback first: the public origin names its port.
    const tlsKey = await generateSigningKey(appHost);
    tls = createServer({ key: tlsKey.privateKey, cert: tlsKey.cert });
    await new Promise<void>((resolve, reject) => {
      tls.once('error', reject);
      tls.listen(0, '127.0.0.1', () => resolve());
    });
    publicBaseUrl = `https://${appHost}:${(tls.address() as AddressInfo).port}`;

    platform = await startTestPlatform('ssobrows');
    tenantA = platform.tenantName('a');
    tenantB = platform.tenantName('b');
    domainA = `${tenantA}.example`;
    domainB = `${tenantB}.example`;
    const password = 'idp password 42';
    samlPages = await startSamlLoginPages({
      carol: {
        password,
        email: `carol@${domainA}`,
        attributes: { groups: ['a-admins'], givenName: ['Carol'] },
      },
      dora: { password, email: `dora@${domainA}` },
      hana: { password, email: `hana@${domainA}` },
      rita: { password, email: `rita@${domainA}`, forgedSignature: true },
      gina: { password, email: `gina@${domainB}` },
    });
    oidcIdp = await startTestIdp({
      interactive: true,
      clients: [
        {
          client_id: 'client-a',
          client_secret: 'client-a-secret-0123456789',
          redirect_uris: [`${publicBaseUrl}${oidcPath(tenantA)}/callback`],
        },
      ],
      accounts: {
        alice: { email: `alice@${domainA}`, email_verified: true, given_name: 'Alice', groups: ['a-admins'] },
        bert: { email: `bert@${domainA}`, email_verified: true },
      },
    });
    const saml = { idpMetadataXml: samlPages.idp.metadataXml() };
    const specA = {
      saml: { ...saml, roleMapping: { 'a-admins': 'admin' } },
      oidc: {
        issuer: oidcIdp.issuer,
        clientId: 'client-a',
        clientSecretRef: { name: `${tenantA}-oidc`, key: 'client-secret' },
        scopes: ['openid', 'email', 'profile', 'groups'],
        roleMapping: { 'a-admins': 'admin' },
      },
    };
    // Only B takes IdP-initiated responses.
    const specB = { saml: { ...saml, allowIdpInitiated: true } };
    await Promise.all([
      platform.applyTenant(tenantA, `  domains: [${domainA}]\n  sso: ${JSON.stringify(specA)}\n`),
      platform.applyTenant(tenantB, `  domains: [${domainB}]\n  sso: ${JSON.stringify(specB)}\n`),
    ]);
    await Promise.all([platform.waitReady(tenantA), platform.waitReady(tenantB)]).catch(
      async (error: unknown) => {
        console.error(
          await platform.cp.kubectl(['get', 'tenant', tenantA, tenantB, '-o', 'yaml']).catch(String),
        );
        throw error;
      },
    );
    await platform.cp.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: `${tenantA}-oidc`,
          namespace: platform.platformNamespace,
          labels: { 'tenantry.io/tenant': tenantA, 'tenantry.io/secret-kind': 'oidc-client' },
        },
        stringData: { 'client-secret': 'client-a-secret-0123456789' },
      }),
    );
    api = await startTestApi(platform.cp.kubeconfigPath, platform.platformNamespace, { publicBaseUrl });
    // The front end's page at the return URL, on the API's origin like a real deployment's.
    tls.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.method === 'GET' && new URL(req.url ?? '/', publicBaseUrl).pathname === '/sso/complete') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(clientPage);
        return;
      }
      api.app(req, res);
    });
    samlPages.trust(sp(tenantA));
    samlPages.trust(sp(tenantB));
    browser = await launchChromium({ loopbackHosts: [appHost] });
  });

  beforeEach(async function () {
    this.timeout(testTimeoutMs);
    if (Date.now() - suiteStart > suiteBudgetMs) {
      throw new Error(`the browser suite ran past its ${suiteBudgetMs / 1000} s budget`);
    }
    // A fresh cookie jar per test; only the three origins of the test are reachable.
    context = await isolatedContext(browser, [publicBaseUrl, samlPages.origin, oidcIdp.issuer]);
    page = await context.newPage();
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && page && !page.isClosed()) {
      const text = await page
        .locator('body')
        .innerText({ timeout: 2000 })
        .catch(() => '');
      console.error(`  browser was at ${page.url()}: ${text.slice(0, 500)}`);
    }
    await context?.close();
  });

  after(async function () {
    this.timeout(60_000);
    // Each step on its own, so a failed one does not leave the browser or a server running.
    const steps = [
      () => browser?.close(),
      () =>
        new Promise<void>((resolve) => {
          if (!tls?.listening) return resolve();
          tls.closeAllConnections();
          tls.close(() => resolve());
        }),
      () => api?.close(),
      () => samlPages?.close(),
      () => oidcIdp?.close(),
      () => platform?.cleanup(),
    ];
    for (const step of steps) await step()?.catch((error: unknown) => console.error('cleanup:', error));
  });

  describe('SAML', () => {
    it('signs in SP-initiated: login form at the IdP, self-posting response, one-time code, session', async function () {
      this.timeout(testTimeoutMs);
      await page.goto(
        `${publicBaseUrl}${samlPath(tenantA)}/login?return_to=${encodeURIComponent('/projects')}`,
      );
      // The login cookie as the browser keeps it: the IdP posts back cross-site, so SameSite=None, Secure.
      const acsUrl = sp(tenantA).acsUrl;
      const loginCookie = await cookieNamed(acsUrl, 'tenantry_saml_request');
      expect(loginCookie).to.include({
        secure: true,
        httpOnly: true,
        sameSite: 'None',
        path: samlPath(tenantA),
      });
      // Max-Age=600, less the moments since it was set (generous on a loaded machine).
      expect(loginCookie!.expires * 1000 - Date.now()).to.be.within(540_000, 600_000);
      expect(await cookieNamed(`${publicBaseUrl}${samlPath(tenantB)}/acs`, 'tenantry_saml_request')).to.equal(
        undefined,
      );

      const finish = answerAt(`${samlPath(tenantA)}/acs`, 'POST');
      await samlIdpLogin('carol', 'idp password 42');
      const signedIn = await landed(finish);
      expect(signedIn).to.include({ email: `carol@${domainA}`, role: 'admin', returnTo: '/projects' });
      expect(signedIn.finish.headers()['referrer-policy']).to.equal('no-referrer');
      expect(signedIn.finish.headers()['cache-control']).to.equal('no-store');
      expect(signedIn.code).to.match(/^[A-Za-z0-9_-]{43}$/);
      // The code left the address bar, the login cookie is gone, and no token is in any URL.
      expect(page.url()).to.equal(`${publicBaseUrl}/sso/complete`);
      expect(await cookieNamed(acsUrl, 'tenantry_saml_request')).to.equal(undefined);

      // The code was spent by the page: a second exchange is refused.
      const again = await page.evaluate(async (code) => {
        const res = await fetch('/api/auth/sso/exchange', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ code }),
        });
        return { status: res.status, body: (await res.json()) as { type: string } };
      }, signedIn.code);
      expect(again.status).to.equal(401);
      expect(again.body.type).to.equal(problemType('invalid_code'));
    });

    it('shows the login form again for a wrong password, and signs in after', async function () {
      this.timeout(testTimeoutMs);
      await page.goto(`${publicBaseUrl}${samlPath(tenantA)}/login`);
      await samlIdpLogin('dora', 'wrong password');
      expect(await page.textContent('#error')).to.equal('Wrong username or password');
      const finish = answerAt(`${samlPath(tenantA)}/acs`, 'POST');
      await page.fill('input[name=username]', 'dora');
      await page.fill('input[name=password]', 'idp password 42');
      await page.click('button[type=submit]');
      // No mapped group: the default role.
      expect(await landed(finish)).to.include({ email: `dora@${domainA}`, role: 'member', returnTo: '' });
    });

    it('refuses a response altered in the browser on its way to the ACS (signature), and creates nobody', async function () {
      this.timeout(testTimeoutMs);
      const acsUrl = sp(tenantA).acsUrl;
      let altered = false;
      await page.route(acsUrl, async (route) => {
        const form = new URLSearchParams(route.request().postData() ?? '');
        const xml = Buffer.from(form.get('SAMLResponse') ?? '', 'base64').toString('utf8');
        const forged = xml.replaceAll(`hana@${domainA}`, `mallory@${domainA}`);
        altered = forged !== xml;
        form.set('SAMLResponse', Buffer.from(forged).toString('base64'));
        await route.continue({ postData: form.toString() });
      });
      await page.goto(`${publicBaseUrl}${samlPath(tenantA)}/login`);
      const answer = answerAt(`${samlPath(tenantA)}/acs`, 'POST');
      await samlIdpLogin('hana', 'idp password 42');
      const problem = await problemFrom(answer);
      expect(altered, 'the route rewrote the NameID').to.equal(true);
      expect(problem.status).to.equal(401);
      expect(problem.body).to.include({ type: problemType('signature_invalid'), status: 401 });
      expect(JSON.stringify(problem.body)).not.to.contain('mallory');
      // The browser shows the problem and stays there: no hand-off page, no code.
      expect(page.url()).to.equal(acsUrl);
      expect(await page.locator('body').innerText()).to.contain(problemType('signature_invalid'));
      expect(await usersNamed(tenantA, `mallory@${domainA}`)).to.equal(0);
      expect(await usersNamed(tenantA, `hana@${domainA}`)).to.equal(0);
      expect(await failedLogins(tenantA)).to.deep.include({ method: 'sso:saml', error: 'signature_invalid' });
    });

    it('refuses a response signed with a key the tenant does not trust', async function () {
      this.timeout(testTimeoutMs);
      await page.goto(`${publicBaseUrl}${samlPath(tenantA)}/login`);
      const answer = answerAt(`${samlPath(tenantA)}/acs`, 'POST');
      await samlIdpLogin('rita', 'idp password 42');
      const problem = await problemFrom(answer);
      expect(problem.status).to.equal(401);
      expect(problem.body.type).to.equal(problemType('signature_invalid'));
      expect(await usersNamed(tenantA, `rita@${domainA}`)).to.equal(0);
    });

    it('refuses the response when the browser withholds the login cookie (SameSite=Lax on a cross-site POST)', async function () {
      this.timeout(testTimeoutMs);
      await page.goto(`${publicBaseUrl}${samlPath(tenantA)}/login`);
      const acsUrl = sp(tenantA).acsUrl;
      const cookie = await cookieNamed(acsUrl, 'tenantry_saml_request');
      expect(cookie).to.not.equal(undefined);
      // Were the cookie Lax, Chromium would keep it back from the IdP's cross-site form post.
      await context.addCookies([{ ...cookie!, sameSite: 'Lax' }]);
      const answer = answerAt(`${samlPath(tenantA)}/acs`, 'POST');
      await samlIdpLogin('hana', 'idp password 42');
      const problem = await problemFrom(answer);
      expect(problem.status).to.equal(401);
      expect(problem.body.type).to.equal(problemType('unsolicited'));
      expect(await usersNamed(tenantA, `hana@${domainA}`)).to.equal(0);
    });

    it('signs in IdP-initiated where the tenant allows it', async function () {
      this.timeout(testTimeoutMs);
      await page.goto(samlPages.initiateUrl(sp(tenantB), '/welcome'));
      const finish = answerAt(`${samlPath(tenantB)}/acs`, 'POST');
      await samlIdpLogin('gina', 'idp password 42');
      expect(await landed(finish)).to.include({
        email: `gina@${domainB}`,
        role: 'member',
        returnTo: '/welcome',
      });
    });

    it('refuses IdP-initiated sign-in where the tenant does not allow it', async function () {
      this.timeout(testTimeoutMs);
      await page.goto(samlPages.initiateUrl(sp(tenantA)));
      const answer = answerAt(`${samlPath(tenantA)}/acs`, 'POST');
      await samlIdpLogin('hana', 'idp password 42');
      const problem = await problemFrom(answer);
      expect(problem.status).to.equal(401);
      expect(problem.body.type).to.equal(problemType('unsolicited'));
      expect(await usersNamed(tenantA, `hana@${domainA}`)).to.equal(0);
      expect(await failedLogins(tenantA)).to.deep.include({ method: 'sso:saml', error: 'unsolicited' });
    });
  });

  describe('OIDC', () => {
    it("signs in through the provider's login and consent pages, with a Lax state cookie and a one-time code", async function () {
      this.timeout(testTimeoutMs);
      const callback = `${publicBaseUrl}${oidcPath(tenantA)}/callback`;
      await page.goto(`${publicBaseUrl}${oidcPath(tenantA)}/login?return_to=${encodeURIComponent('/home')}`);
      // The provider redirects back with a top-level GET, which SameSite=Lax lets through.
      const stateCookie = await cookieNamed(callback, 'tenantry_oidc_state');
      expect(stateCookie).to.include({
        secure: true,
        httpOnly: true,
        sameSite: 'Lax',
        path: oidcPath(tenantA),
      });
      const authorize = new URL(page.url());
      expect(authorize.origin).to.equal(oidcIdp.issuer);

      const finish = answerAt(`${oidcPath(tenantA)}/callback`);
      await oidcIdpLogin('alice');
      const signedIn = await landed(finish);
      expect(signedIn).to.include({ email: `alice@${domainA}`, role: 'admin', returnTo: '/home' });
      expect(signedIn.finish.headers()['referrer-policy']).to.equal('no-referrer');
      expect(await cookieNamed(callback, 'tenantry_oidc_state')).to.equal(undefined);
    });

    it('refuses a sign-in whose state was altered in the browser on its way to the provider', async function () {
      this.timeout(testTimeoutMs);
      const login = `${publicBaseUrl}${oidcPath(tenantA)}/login`;
      const forged = 'x'.repeat(43);
      // Playwright does not intercept the hops of a redirect, so the state is rewritten in the
      // API's own redirect to the provider, which comes back unchanged in the callback.
      await page.route(login, async (route) => {
        // route.fetch runs outside the browser, which alone resolves the public host: ask the API directly.
        const answer = await route.fetch({ url: `${api.url}${oidcPath(tenantA)}/login`, maxRedirects: 0 });
        const location = new URL(answer.headers().location ?? '');
        location.searchParams.set('state', forged);
        await route.fulfill({ response: answer, headers: { ...answer.headers(), location: location.href } });
      });
      const authorize = page.waitForRequest((r) => r.url().startsWith(`${oidcIdp.issuer}/auth?`));
      await page.goto(login);
      expect(new URL((await authorize).url()).searchParams.get('state')).to.equal(forged);
      // The browser holds the real state, so the refusal below is the mismatch, not a missing cookie.
      const stateCookie = await cookieNamed(
        `${publicBaseUrl}${oidcPath(tenantA)}/callback`,
        'tenantry_oidc_state',
      );
      expect(stateCookie?.value).to.match(/^[A-Za-z0-9_-]{43}$/);
      expect(stateCookie?.value).not.to.equal(forged);
      const answer = answerAt(`${oidcPath(tenantA)}/callback`);
      await oidcIdpLogin('bert');
      const problem = await problemFrom(answer);
      expect(problem.status).to.equal(401);
      expect(problem.body.type).to.equal(problemType('invalid_state'));
      expect(page.url()).to.match(new RegExp(`^${publicBaseUrl}${oidcPath(tenantA)}/callback\\?`));
      expect(await usersNamed(tenantA, `bert@${domainA}`)).to.equal(0);
      expect(await failedLogins(tenantA)).to.deep.include({ method: 'sso:oidc', error: 'invalid_state' });
    });
  });
});
