// `castellan login`: an OIDC relying party for the remote CLI (openid-client v6). It asks the
// Castellan server which issuer and resource to use (RFC 9728 protected-resource metadata),
// then runs the authorization code flow with PKCE and a loopback redirect (RFC 8252), or the
// device authorization grant when asked and the issuer advertises it. Tokens are stored by
// credentials.ts and refreshed here when the remote CLI needs one.
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as client from 'openid-client';
import { CastellanError, errorMessage } from '../../config/errors.js';
import { loadLogin, saveLogin, serverKey, type StoredLogin } from './credentials.js';

/** The client the lab registers and Authelia deployments register for the CLI (see README). */
export const DEFAULT_CLI_CLIENT_ID = 'castellan-cli';
export const LOGIN_SCOPES = 'openid profile email groups offline_access';
/** Refresh this long before expiry, so a token never dies in the middle of a request. */
const REFRESH_MARGIN_S = 60;
const LOGIN_TIMEOUT_MS = 5 * 60_000;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export interface ResourceInfo {
  readonly resource: string;
  readonly issuer: string;
}

/** Which issuer and resource Castellan at `server` trusts (its RFC 9728 document). */
export async function protectedResource(server: string): Promise<ResourceInfo> {
  const base = serverKey(server);
  const url = `${new URL(base).origin}/.well-known/oauth-protected-resource`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(15_000), redirect: 'error' });
  } catch (error) {
    throw new CastellanError('unavailable', `cannot reach Castellan at ${base}: ${errorMessage(error)}`);
  }
  if (response.status === 404) throw new CastellanError('unavailable', `${base} publishes no OAuth metadata: is OIDC configured there (auth.oidc)?`);
  if (!response.ok) throw new CastellanError('unavailable', `${url} answered HTTP ${response.status}`);
  const doc = (await response.json()) as { resource?: unknown; authorization_servers?: unknown };
  const issuer: unknown = Array.isArray(doc.authorization_servers) ? (doc.authorization_servers as unknown[])[0] : undefined;
  if (typeof doc.resource !== 'string' || typeof issuer !== 'string') throw new CastellanError('unavailable', `${url} does not name a resource and an authorization server`);
  return { resource: doc.resource, issuer };
}

/** Plain http is allowed for a loopback issuer only (the lab); anything else must be https. */
async function issuerConfiguration(issuer: string, clientId: string): Promise<client.Configuration> {
  const url = new URL(issuer);
  const insecure = url.protocol === 'http:';
  if (insecure && !LOOPBACK.has(url.hostname)) throw new CastellanError('invalid_input', `the issuer ${issuer} is plain http on a non-loopback host: refusing to send credentials to it`);
  try {
    return await client.discovery(url, clientId, undefined, client.None(), insecure ? { execute: [client.allowInsecureRequests] } : {});
  } catch (error) {
    throw new CastellanError('unavailable', `OIDC discovery at ${issuer} failed: ${errorMessage(error)}`);
  }
}

function toStored(server: string, info: ResourceInfo, clientId: string, tokens: client.TokenEndpointResponse, previousRefresh?: string): StoredLogin {
  return {
    server: serverKey(server),
    issuer: info.issuer,
    clientId,
    resource: info.resource,
    accessToken: tokens.access_token,
    refreshToken: tokens.refresh_token ?? previousRefresh,
    expiresAt: tokens.expires_in !== undefined ? Math.floor(Date.now() / 1000) + tokens.expires_in : undefined,
    scope: tokens.scope,
  };
}

export interface LoginOptions {
  readonly server: string;
  readonly clientId?: string | undefined;
  /** Use the device authorization grant (no browser on this machine). */
  readonly device?: boolean | undefined;
  /** Fixed loopback port for the redirect (default: any free port). */
  readonly callbackPort?: number | undefined;
  /** Try to open a browser (default: when a display is available). */
  readonly openBrowser?: boolean | undefined;
  /** Where instructions for the user go (stderr). */
  readonly say: (line: string) => void;
}

export async function login(options: LoginOptions): Promise<{ login: StoredLogin; file: string }> {
  const info = await protectedResource(options.server);
  const clientId = options.clientId ?? DEFAULT_CLI_CLIENT_ID;
  const config = await issuerConfiguration(info.issuer, clientId);
  const tokens = options.device ? await deviceGrant(config, info, options) : await codeGrant(config, info, options);
  const stored = toStored(options.server, info, clientId, tokens);
  return { login: stored, file: await saveLogin(stored) };
}

async function deviceGrant(config: client.Configuration, info: ResourceInfo, options: LoginOptions): Promise<client.TokenEndpointResponse> {
  if (config.serverMetadata().device_authorization_endpoint === undefined) {
    throw new CastellanError('invalid_input', `${info.issuer} does not offer the device authorization grant: log in without --device (a browser on any machine that reaches this one's loopback)`);
  }
  const started = await client.initiateDeviceAuthorization(config, { scope: LOGIN_SCOPES, resource: info.resource });
  options.say(`To log in, open ${started.verification_uri_complete ?? started.verification_uri} and enter the code ${started.user_code}`);
  return client.pollDeviceAuthorizationGrant(config, started, { resource: info.resource }, { signal: AbortSignal.timeout(started.expires_in * 1000) });
}

function openInBrowser(url: string): void {
  if (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) return;
  const child = spawn('xdg-open', [url], { stdio: 'ignore', detached: true });
  child.on('error', () => undefined);
  child.unref();
}

const DONE_PAGE = '<!doctype html><meta charset="utf-8"><title>Castellan</title><p>Logged in to Castellan. You can close this tab and return to the terminal.</p>';

async function codeGrant(config: client.Configuration, info: ResourceInfo, options: LoginOptions): Promise<client.TokenEndpointResponse> {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const server = http.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new CastellanError('unavailable', `cannot listen on 127.0.0.1:${options.callbackPort ?? 0} for the login redirect (${error.code ?? error.message})`)),
    );
    server.listen(options.callbackPort ?? 0, '127.0.0.1', () => resolve());
  });
  const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`;
  try {
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: LOGIN_SCOPES,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      resource: info.resource,
      // Refresh tokens (offline_access) are only granted with explicit consent.
      prompt: 'consent',
    });
    options.say(`Log in to Castellan at ${info.issuer} in your browser:\n  ${url.href}\nWaiting for the redirect to ${redirectUri} …`);
    if (options.openBrowser !== false) openInBrowser(url.href);
    const callback = await new Promise<URL>((resolve, reject) => {
      const timer = setTimeout(() => reject(new CastellanError('unavailable', 'no login within 5 minutes: run castellan login again')), LOGIN_TIMEOUT_MS);
      server.on('request', (req, res) => {
        const current = new URL(req.url ?? '/', redirectUri);
        if (current.pathname !== '/callback') {
          res.writeHead(404).end();
          return;
        }
        const refused = current.searchParams.get('error');
        res.writeHead(refused ? 400 : 200, { 'content-type': 'text/html; charset=utf-8', connection: 'close' });
        res.end(refused ? '<!doctype html><p>Login refused; see the terminal.</p>' : DONE_PAGE);
        clearTimeout(timer);
        resolve(current);
      });
    });
    const refused = callback.searchParams.get('error');
    if (refused) throw new CastellanError('forbidden', `the issuer refused the login: ${refused}${callback.searchParams.get('error_description') ? ` (${callback.searchParams.get('error_description')})` : ''}`);
    try {
      return await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state }, { resource: info.resource });
    } catch (error) {
      throw new CastellanError('unauthenticated', `the token exchange failed: ${errorMessage(error)}`);
    }
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

/**
 * A usable access token for `server` from the stored login, refreshed (and stored again)
 * when it expires within a minute. Undefined when there is no stored login for it.
 */
export async function storedAccessToken(server: string): Promise<string | undefined> {
  const stored = await loadLogin(server);
  if (stored === undefined) return undefined;
  const now = Math.floor(Date.now() / 1000);
  if (stored.expiresAt === undefined || stored.expiresAt - REFRESH_MARGIN_S > now) return stored.accessToken;
  if (stored.refreshToken === undefined) {
    throw new CastellanError('unauthenticated', `your login to ${stored.server} expired: castellan login --server ${stored.server}`);
  }
  const config = await issuerConfiguration(stored.issuer, stored.clientId);
  let tokens: client.TokenEndpointResponse;
  try {
    tokens = await client.refreshTokenGrant(config, stored.refreshToken, { resource: stored.resource });
  } catch (error) {
    throw new CastellanError('unauthenticated', `your login to ${stored.server} expired and could not be refreshed (${errorMessage(error)}): castellan login --server ${stored.server}`);
  }
  const refreshed = toStored(stored.server, stored, stored.clientId, tokens, stored.refreshToken);
  await saveLogin(refreshed);
  return refreshed.accessToken;
}

/** Revoke the stored refresh token at the issuer (best effort: the local copy goes anyway). */
export async function revokeStored(stored: StoredLogin): Promise<boolean> {
  if (stored.refreshToken === undefined) return false;
  try {
    const config = await issuerConfiguration(stored.issuer, stored.clientId);
    if (config.serverMetadata().revocation_endpoint === undefined) return false;
    await client.tokenRevocation(config, stored.refreshToken, { token_type_hint: 'refresh_token' });
    return true;
  } catch {
    return false;
  }
}
