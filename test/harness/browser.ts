// Headless Chromium for browser tests: Debian's `chromium` package (installed by
// hack/install-chromium.sh), driven by playwright-core. playwright-core never
// downloads a browser; it runs the one at CHROMIUM_PATH.
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export interface BrowserOptions {
  /** Host names the browser resolves to 127.0.0.1, so a public origin can be served on loopback. */
  loopbackHosts?: string[];
}

/**
 * Launches Chromium headless. Playwright gives every launch a fresh temporary
 * profile (--user-data-dir) and removes it on close. Without the background
 * networking flags Chromium keeps reaching for Google services, which a closed
 * network refuses; QUIC and proxies are off so every request goes straight to
 * the loopback servers.
 */
export async function launchChromium(options: BrowserOptions = {}): Promise<Browser> {
  if (!existsSync(chromiumPath)) {
    throw new Error(`no Chromium at ${chromiumPath}: run hack/install-chromium.sh (or set CHROMIUM_PATH)`);
  }
  const rules = (options.loopbackHosts ?? []).map((host) => `MAP ${host} 127.0.0.1`).join(', ');
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    chromiumSandbox: false,
    timeout: 30_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-proxy-server',
      ...(rules ? [`--host-resolver-rules=${rules}`] : []),
    ],
  });
}

/**
 * A fresh context (its own cookie jar) that accepts the test's self-signed
 * certificates and lets requests reach only `origins`: anything else (a web
 * font a page imports, say) is aborted rather than left to time out.
 */
export async function isolatedContext(browser: Browser, origins: string[]): Promise<BrowserContext> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(15_000);
  const allowed = new Set(origins.map((origin) => new URL(origin).origin));
  await context.route(
    (url) => !allowed.has(url.origin),
    (route) => route.abort('blockedbyclient'),
  );
  return context;
}
