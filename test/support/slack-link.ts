// A browser for Castellan's Slack link page: opens the "Link your account" URL, signs in at the
// lab OIDC provider (login and consent forms, cookies, redirects) and follows the redirect
// back to Castellan's callback. `public_url` in tests names no listening server, so requests
// to it are sent to the real server address instead (as a reverse proxy would).
import type { LabOidc } from '../../src/lab/oidc.js';
import { CookieJar, step } from './oidc.js';

export interface LinkPageResult {
  readonly status: number;
  readonly html: string;
}

export async function linkInBrowser(o: { linkUrl: string; lab: LabOidc; username: string; serverUrl: string; publicUrl: string; jar?: CookieJar }): Promise<LinkPageResult> {
  const jar = o.jar ?? new CookieJar();
  const toServer = (url: URL): URL => (url.origin === new URL(o.publicUrl).origin ? new URL(url.pathname + url.search, o.serverUrl) : url);
  const password = o.lab.users.find((u) => u.username === o.username)?.password ?? '';
  let response = await step(jar, toServer(new URL(o.linkUrl)));
  let current = new URL(o.linkUrl);
  for (let hops = 0; hops < 15; hops += 1) {
    const location = response.headers.get('location');
    if (response.status < 300 || response.status >= 400 || location === null) {
      return { status: response.status, html: await response.text() };
    }
    const next = new URL(location, current);
    if (next.pathname.startsWith('/interaction/')) {
      const page = await step(jar, next);
      const html = await page.text();
      const form = /action="([^"]+)"/.exec(html)?.[1];
      if (form === undefined) throw new Error(`interaction page without a form: ${html.slice(0, 200)}`);
      const body = form.endsWith('/login') ? new URLSearchParams({ username: o.username, password }) : new URLSearchParams();
      current = new URL(form, o.lab.issuer);
      response = await step(jar, current, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
      continue;
    }
    current = next;
    response = await step(jar, toServer(next));
  }
  throw new Error('the link flow did not finish within 15 redirects');
}
