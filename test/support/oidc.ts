// Test helpers over the lab OIDC provider: a real authorization-code + PKCE login driven over
// plain HTTP (sign-in form, consent form, redirects, cookies), and the bad tokens negative
// tests need (expired, wrong audience, revoked, forged, ID token).
import { createHash, randomBytes } from 'node:crypto';
import { generateKeyPair, SignJWT } from 'jose';
import type { LabOidc } from '../../src/lab/oidc.js';

export interface LoginOptions {
  readonly clientId?: string;
  /** RFC 8707 resource; `null` to ask for none (a userinfo-only token). */
  readonly resource?: string | null;
  readonly scope?: string;
  /** Default: a loopback redirect on an arbitrary port (RFC 8252), fine for native clients. */
  readonly redirectUri?: string;
  /** Default: the lab's password for the user. */
  readonly password?: string;
}

export interface LoginResult {
  readonly accessToken: string;
  readonly idToken: string | undefined;
  readonly refreshToken: string | undefined;
  readonly scope: string | undefined;
  readonly expiresIn: number | undefined;
}

/** A minimal cookie jar honouring Path, which oidc-provider uses to scope interaction cookies. */
export class CookieJar {
  private readonly cookies = new Map<string, { value: string; path: string }>();

  store(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';').map((part) => part.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const path = attributes.find((a) => a.toLowerCase().startsWith('path='))?.slice(5) ?? '/';
      const expired = attributes.some((a) => /^expires=thu, 01 jan 1970/i.test(a)) || value === '';
      const key = `${name}\u0000${path}`;
      if (expired) this.cookies.delete(key);
      else this.cookies.set(key, { value, path });
    }
  }

  headerFor(url: URL): string {
    return [...this.cookies.entries()]
      .filter(([, cookie]) => url.pathname.startsWith(cookie.path))
      .map(([key, cookie]) => `${key.split('\u0000')[0]}=${cookie.value}`)
      .join('; ');
  }
}

export async function step(jar: CookieJar, url: URL, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const cookie = jar.headerFor(url);
  if (cookie !== '') headers.set('cookie', cookie);
  const response = await fetch(url, { ...init, headers, redirect: 'manual' });
  jar.store(response);
  return response;
}

/**
 * Sign `username` in through the lab's real authorization endpoint with PKCE S256, accept
 * consent, and exchange the code at the token endpoint. Throws with the provider's answer
 * when any step fails (wrong password, unknown client, bad redirect).
 */
export async function loginAndGetToken(lab: LabOidc, username: string, options: LoginOptions = {}): Promise<LoginResult> {
  const clientId = options.clientId ?? 'castellan-cli';
  const redirectUri = options.redirectUri ?? 'http://127.0.0.1:53682/callback';
  const resource = options.resource === undefined ? lab.resource : options.resource;
  const scope = options.scope ?? 'openid profile email groups offline_access';
  const password = options.password ?? lab.users.find((user) => user.username === username)?.password ?? '';
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(8).toString('hex');
  const jar = new CookieJar();

  const authorize = new URL('/api/oidc/authorization', lab.issuer);
  const params: Record<string, string> = {
    client_id: clientId,
    response_type: 'code',
    redirect_uri: redirectUri,
    scope,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    prompt: 'consent',
  };
  if (resource !== null) params['resource'] = resource;
  authorize.search = new URLSearchParams(params).toString();

  const callback = await signInAt(authorize, username, password, redirectUri, jar);
  return exchangeCode(lab, callback, { clientId, redirectUri, verifier, state, resource });
}

/**
 * Play the user's browser from an authorization URL built by someone else (e.g. `castellan
 * login`): follow redirects, sign in with the form, accept consent, and return the URL the
 * provider finally redirects to (the client's redirect URI with `code` and `state`), without
 * loading it. Throws with the provider's answer when a step fails.
 */
export async function signInAt(authorize: URL, username: string, password: string, redirectUri: string, jar = new CookieJar()): Promise<URL> {
  const target = new URL(redirectUri);
  const samePlace = (url: URL): boolean => url.protocol === target.protocol && url.hostname === target.hostname && url.pathname === target.pathname && (target.port === '' || url.port === target.port);
  let response = await step(jar, authorize);
  for (let hops = 0; hops < 12; hops += 1) {
    const location = response.headers.get('location');
    if (response.status < 300 || response.status >= 400 || location === null) {
      throw new Error(`login for ${username} stopped at HTTP ${response.status}: ${(await response.text()).slice(0, 300)}`);
    }
    const next = new URL(location, authorize);
    if (samePlace(next)) return next;
    if (next.pathname.startsWith('/interaction/')) {
      const page = await step(jar, next);
      const html = await page.text();
      const form = /action="([^"]+)"/.exec(html)?.[1];
      if (form === undefined) throw new Error(`interaction page without a form: ${html.slice(0, 200)}`);
      const body = form.endsWith('/login') ? new URLSearchParams({ username, password }) : new URLSearchParams();
      response = await step(jar, new URL(form, authorize), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
      });
      if (response.status === 401) throw new Error(`lab sign-in refused ${username}: wrong password`);
      continue;
    }
    response = await step(jar, next);
  }
  throw new Error('login did not reach the redirect URI within 12 redirects');
}

async function exchangeCode(
  lab: LabOidc,
  callback: URL,
  flow: { clientId: string; redirectUri: string; verifier: string; state: string; resource: string | null },
): Promise<LoginResult> {
  const error = callback.searchParams.get('error');
  if (error !== null) throw new Error(`authorization failed: ${error}: ${callback.searchParams.get('error_description') ?? ''}`);
  if (callback.searchParams.get('state') !== flow.state) throw new Error('state mismatch on the redirect');
  const code = callback.searchParams.get('code');
  if (code === null) throw new Error('redirect carried no code');
  const form = new URLSearchParams({
    grant_type: 'authorization_code',
    code,
    redirect_uri: flow.redirectUri,
    client_id: flow.clientId,
    code_verifier: flow.verifier,
  });
  if (flow.resource !== null) form.set('resource', flow.resource);
  const response = await fetch(new URL('/api/oidc/token', lab.issuer), { method: 'POST', body: form });
  const body = (await response.json()) as Record<string, unknown>;
  if (!response.ok || typeof body['access_token'] !== 'string') {
    throw new Error(`token endpoint answered ${response.status}: ${JSON.stringify(body)}`);
  }
  const text = (key: string) => (typeof body[key] === 'string' ? body[key] : undefined);
  return {
    accessToken: body['access_token'],
    idToken: text('id_token'),
    refreshToken: text('refresh_token'),
    scope: text('scope'),
    expiresIn: typeof body['expires_in'] === 'number' ? body['expires_in'] : undefined,
  };
}

/** Revoke through the real RFC 7009 endpoint, as the public client that owns the token. */
export async function revokeAtEndpoint(lab: LabOidc, token: string, clientId = 'castellan-cli'): Promise<number> {
  const response = await fetch(new URL('/api/oidc/revocation', lab.issuer), {
    method: 'POST',
    body: new URLSearchParams({ token, token_type_hint: 'access_token', client_id: clientId }),
  });
  return response.status;
}

/** An access token that is already expired: a 1 s token, waited out (opaque), or signed with exp in the past (JWT). */
export async function expiredAccessToken(lab: LabOidc, username: string): Promise<string> {
  if (lab.accessTokenFormat === 'jwt') {
    const now = Math.floor(Date.now() / 1000);
    return lab.signWithIssuerKey(
      { iss: lab.issuer, aud: lab.resource, sub: username, client_id: 'castellan-cli', scope: 'openid groups', groups: ['admins'], iat: now - 600, exp: now - 60, jti: randomBytes(8).toString('hex') },
      'at+jwt',
    );
  }
  const token = await lab.mintAccessToken({ username, expiresInSeconds: 1 });
  await new Promise((resolve) => setTimeout(resolve, 2100));
  return token;
}

/** A token minted for another resource server (the lab must know `otherResource`). */
export async function wrongAudienceToken(lab: LabOidc, username: string, otherResource: string): Promise<string> {
  return lab.mintAccessToken({ username, resource: otherResource });
}

/** A JWT with perfect claims and the lab's `kid`, signed by an attacker's key. */
export async function forgedAccessToken(lab: LabOidc, username: string): Promise<string> {
  const { privateKey } = await generateKeyPair('RS256');
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ client_id: 'castellan-cli', scope: 'openid groups', groups: ['admins'] })
    .setProtectedHeader({ alg: 'RS256', kid: lab.signingKeyId, typ: 'at+jwt' })
    .setIssuer(lab.issuer)
    .setAudience(lab.resource)
    .setSubject(username)
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(privateKey);
}

/** The hidden and named fields of the first `<form id="…">` in a page (the provider's device forms). */
function formFields(html: string, id: string): { action: string; fields: URLSearchParams } {
  const form = new RegExp(`<form id="${id.replaceAll('.', '\\.')}"[^>]*action="([^"]+)"[^>]*>([\\s\\S]*?)</form>`).exec(html);
  if (!form) throw new Error(`no form ${id} in: ${html.slice(0, 300)}`);
  const fields = new URLSearchParams();
  for (const input of form[2]!.matchAll(/<input\b[^>]*>/g)) {
    const name = /name="([^"]+)"/.exec(input[0])?.[1];
    if (name !== undefined) fields.set(name, /value="([^"]*)"/.exec(input[0])?.[1] ?? '');
  }
  return { action: form[1]!, fields };
}

/**
 * Play the person on another device in the device authorization grant (RFC 8628): open the
 * verification URI, type the user code, confirm it, sign in and consent. Resolves with the
 * final page's text; throws with the provider's answer when a step fails.
 */
export async function approveDeviceCode(verificationUri: string, userCode: string, username: string, password: string, jar = new CookieJar()): Promise<string> {
  const start = new URL(verificationUri);
  const post = (url: URL, body: URLSearchParams): Promise<Response> => step(jar, url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
  const input = formFields(await (await step(jar, start)).text(), 'op.deviceInputForm');
  input.fields.set('user_code', userCode);
  const confirmPage = await post(new URL(input.action, start), input.fields);
  const confirm = formFields(await confirmPage.text(), 'op.deviceConfirmForm');
  let response = await post(new URL(confirm.action, start), confirm.fields);
  for (let hops = 0; hops < 12; hops += 1) {
    if (response.status === 200) return response.text();
    const location = response.headers.get('location');
    if (response.status < 300 || response.status >= 400 || location === null) throw new Error(`device sign-in stopped at HTTP ${response.status}: ${(await response.text()).slice(0, 300)}`);
    const next = new URL(location, start);
    if (!next.pathname.startsWith('/interaction/')) {
      response = await step(jar, next);
      continue;
    }
    const html = await (await step(jar, next)).text();
    const action = /action="([^"]+)"/.exec(html)?.[1];
    if (action === undefined) throw new Error(`interaction page without a form: ${html.slice(0, 200)}`);
    response = await post(new URL(action, start), action.endsWith('/login') ? new URLSearchParams({ username, password }) : new URLSearchParams());
    if (response.status === 401) throw new Error(`lab sign-in refused ${username}: wrong password`);
  }
  throw new Error('device sign-in did not finish within 12 redirects');
}
