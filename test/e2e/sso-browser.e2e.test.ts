// SSO sign-in in headless Chromium against a running `make dev` stack (`make
// e2e` starts one): a platform engineer configures a Tenant's SAML IdP and
// OpenID Provider with kubectl, and a user signs in through each provider's
// HTML login form, lands on the API's return URL with a one-time code, and the
// page exchanges it for a session. The stack is plain http on loopback, so the
// login cookies are neither Secure nor SameSite=None there (the integration
// test in test/api/sso/browser.integration.test.ts covers https).
//
// E2E_API_URL (default http://127.0.0.1:8080, the stack's PUBLIC_BASE_URL) and
// E2E_KUBECONFIG (.dev/kubeconfig) point at the stack.
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import type { Browser, BrowserContext, Cookie, Page } from 'playwright-core';
import { isolatedContext, launchChromium } from '../harness/browser.js';
import { toolPath } from '../harness/control-plane.js';
import { startTestIdp, type TestIdp } from '../harness/oidc-idp.js';
import { startSamlLoginPages, type SamlLoginPages } from '../harness/saml-login-pages.js';
import { uniqueSuffix } from '../harness/services.js';
import { eventually } from '../harness/wait.js';

const root = resolve(import.meta.dirname, '../..');
const apiUrl = (process.env.E2E_API_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
const kubeconfig = process.env.E2E_KUBECONFIG ?? join(root, '.dev/kubeconfig');
/** Where `make dev` keeps the Secrets the API reads (PLATFORM_SECRETS_NAMESPACE). */
const secretsNamespace = 'tenantry-secrets';
const testTimeoutMs = 60_000;

function kubectl(args: readonly string[], input?: string): Promise<string> {
  return new Promise((ok, fail) => {
    const child = execFile(
      toolPath('kubectl'),
      [`--kubeconfig=${kubeconfig}`, ...args],
      { timeout: 30_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) =>
        error ? fail(new Error(`kubectl ${args.join(' ')}: ${stderr || error.message}`)) : ok(stdout),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

describe('SSO sign-in in headless Chromium (running make dev stack)', function () {
  this.timeout(300_000);

  const tenant = `e2e-sso-${uniqueSuffix()}`;
  const domain = `${tenant}.example`;
  const password = 'e2e idp password 42';
  const sp = {
    entityId: `${apiUrl}/api/auth/sso/saml/${tenant}/metadata`,
    acsUrl: `${apiUrl}/api/auth/sso/saml/${tenant}/acs`,
  };
  let samlPages: SamlLoginPages;
  let oidcIdp: TestIdp;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  const cookieNamed = async (url: string, name: string): Promise<Cookie | undefined> =>
    (await context.cookies(url)).find((c) => c.name === name);

  /** On the API's return URL: the one-time code exchanged from the page, then the profile it opens. */
  async function exchangeInPage(): Promise<{ status: number; email?: string; role?: string }> {
    await page.waitForURL(`${apiUrl}/sso/complete?**`);
    expect(new URL(page.url()).searchParams.get('code')).to.match(/^[A-Za-z0-9_-]{43}$/);
    return page.evaluate(async () => {
      const code = new URLSearchParams(location.search).get('code');
      const exchange = await fetch('/api/auth/sso/exchange', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ code }),
      });
      if (!exchange.ok) return { status: exchange.status };
      const tokens = (await exchange.json()) as { access_token: string };
      const profile = await fetch('/api/auth/profile', {
        headers: { authorization: `Bearer ${tokens.access_token}` },
      });
      const me = (await profile.json()) as { email: string; role: string };
      return { status: exchange.status, email: me.email, role: me.role };
    });
  }

  before(async function () {
    const ready = await fetch(`${apiUrl}/readyz`, { signal: AbortSignal.timeout(5000) }).catch(
      (error: unknown) => {
        throw new Error(`the API at ${apiUrl} does not answer (start it with make dev): ${String(error)}`);
      },
    );
    expect(ready.status, `${apiUrl}/readyz`).to.equal(200);
    samlPages = await startSamlLoginPages({
      carol: { password, email: `carol@${domain}`, attributes: { groups: ['admins'] } },
    });
    samlPages.trust(sp);
    oidcIdp = await startTestIdp({
      interactive: true,
      clients: [
        {
          client_id: 'e2e-client',
          client_secret: 'e2e-client-secret-0123456789',
          redirect_uris: [`${apiUrl}/api/auth/sso/oidc/${tenant}/callback`],
        },
      ],
      accounts: { alice: { email: `alice@${domain}`, email_verified: true, groups: ['admins'] } },
    });
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: `${tenant}-oidc`,
          namespace: secretsNamespace,
          labels: { 'tenantry.io/tenant': tenant, 'tenantry.io/secret-kind': 'oidc-client' },
        },
        stringData: { 'client-secret': 'e2e-client-secret-0123456789' },
      }),
    );
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'tenantry.io/v1alpha1',
        kind: 'Tenant',
        metadata: { name: tenant },
        spec: {
          plan: 'starter',
          owner: { email: `owner@${domain}` },
          database: { deletionPolicy: 'Delete' },
          domains: [domain],
          sso: {
            saml: { idpMetadataXml: samlPages.idp.metadataXml(), roleMapping: { admins: 'admin' } },
            oidc: {
              issuer: oidcIdp.issuer,
              clientId: 'e2e-client',
              clientSecretRef: { name: `${tenant}-oidc`, key: 'client-secret' },
              scopes: ['openid', 'email', 'profile', 'groups'],
              roleMapping: { admins: 'admin' },
            },
          },
        },
      }),
    );
    await eventually(
      `Tenant ${tenant} to be Ready and served`,
      async () => {
        const res = await fetch(`${apiUrl}/api/auth/sso/saml/${tenant}/metadata`);
        return res.ok ? true : undefined;
      },
      { timeoutMs: 150_000, intervalMs: 500 },
    );
    browser = await launchChromium();
  });

  beforeEach(async () => {
    context = await isolatedContext(browser, [apiUrl, samlPages.origin, oidcIdp.issuer]);
    page = await context.newPage();
  });

  afterEach(async () => {
    await context?.close();
  });

  after(async function () {
    this.timeout(180_000);
    const steps: (() => Promise<unknown> | undefined)[] = [
      () => browser?.close(),
      () => kubectl(['delete', 'tenant', tenant, '--ignore-not-found', '--timeout=150s']),
      () => kubectl(['delete', 'secret', '-n', secretsNamespace, `${tenant}-oidc`, '--ignore-not-found']),
      () => samlPages?.close(),
      () => oidcIdp?.close(),
    ];
    for (const step of steps) {
      await Promise.resolve()
        .then(() => step())
        .catch((error: unknown) => console.error('cleanup:', error));
    }
  });

  it('signs in with SAML through the IdP login form and its self-posting response', async function () {
    this.timeout(testTimeoutMs);
    await page.goto(`${apiUrl}/api/auth/sso/saml/${tenant}/login`);
    // Over http the login cookie cannot be Secure, so it is SameSite=Lax.
    expect(await cookieNamed(sp.acsUrl, 'tenantry_saml_request')).to.include({
      secure: false,
      httpOnly: true,
      sameSite: 'Lax',
    });
    await page.waitForURL(`${samlPages.origin}/**`);
    await page.fill('input[name=username]', 'carol');
    await page.fill('input[name=password]', password);
    await page.click('button[type=submit]');
    expect(await exchangeInPage()).to.deep.equal({ status: 200, email: `carol@${domain}`, role: 'admin' });
  });

  it("signs in with OIDC through the provider's login and consent pages", async function () {
    this.timeout(testTimeoutMs);
    const callback = `${apiUrl}/api/auth/sso/oidc/${tenant}/callback`;
    await page.goto(`${apiUrl}/api/auth/sso/oidc/${tenant}/login`);
    expect(await cookieNamed(callback, 'tenantry_oidc_state')).to.include({
      secure: false,
      httpOnly: true,
      sameSite: 'Lax',
    });
    await page.waitForURL(`${oidcIdp.issuer}/interaction/**`);
    await page.fill('input[name=login]', 'alice');
    await page.fill('input[name=password]', 'any password the dev pages accept');
    await page.click('button[type=submit]');
    await page.waitForSelector('input[name=prompt][value=consent]', { state: 'attached' });
    await page.click('button[type=submit]');
    expect(await exchangeInPage()).to.deep.equal({ status: 200, email: `alice@${domain}`, role: 'admin' });
  });
});
