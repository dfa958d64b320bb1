// Debian's Chromium driven by playwright-core (which never downloads a browser), for the
// dashboard's browser tests: sign in through the lab OIDC provider's real pages, and save
// screenshots to test/output/screenshots/ (gitignored; CI keeps them as artefacts).
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { REPO } from './castellan.js';

export const SCREENSHOTS = path.join(REPO, 'test', 'output', 'screenshots');

/** Where Chromium is: CHROMIUM_PATH, else Debian's package. */
export function chromiumPath(): string {
  const candidates = [process.env['CHROMIUM_PATH'], '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((p): p is string => p !== undefined && p !== '');
  const found = candidates.find((p) => existsSync(p));
  if (found === undefined) throw new Error(`Chromium not found (tried ${candidates.join(', ')}); scripts/test installs Debian's chromium package`);
  return found;
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    // Root in CI containers: Chromium's sandbox needs user namespaces it may not have.
    // Loopback only: any other host name fails to resolve, so no page can reach the network.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost'],
  });
}

export interface SignedInPage {
  readonly context: BrowserContext;
  readonly page: Page;
}

/** A fresh browser profile signed in as `username` through the provider's sign-in and consent pages. */
export async function signInAs(browser: Browser, base: string, username: string, password = `${username}-lab-password`, options: { colorScheme?: 'light' | 'dark'; viewport?: { width: number; height: number } } = {}): Promise<SignedInPage> {
  const context = await browser.newContext({ colorScheme: options.colorScheme ?? 'light', viewport: options.viewport ?? { width: 1280, height: 860 } });
  const page = await context.newPage();
  await page.goto(`${base}/ui/jobs`);
  // The lab provider's sign-in page (an Authelia stand-in), then its consent page.
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  const accept = page.getByRole('button', { name: 'Accept' });
  await Promise.race([accept.waitFor({ timeout: 15_000 }).then(() => accept.click()), page.waitForURL(`${base}/ui/**`, { timeout: 15_000 })]);
  await page.waitForURL(`${base}/ui/jobs`, { timeout: 15_000 });
  return { context, page };
}

export async function screenshot(page: Page, name: string, fullPage = true): Promise<string> {
  await mkdir(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage });
  return file;
}
