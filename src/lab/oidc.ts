// A real OpenID provider (panva's oidc-provider) configured to behave like Authelia, for tests
// and `castellan up`: issuer without a path, Authelia's endpoint paths, no dynamic client
// registration, PKCE S256 for public clients, RFC 7662 introspection with client_secret_basic,
// RFC 8707 resource indicators giving Castellan's resource opaque (default) or JWT access tokens
// that carry a `groups` claim. Loopback only: the demo users' passwords are public knowledge.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import type Provider from 'oidc-provider';
import type * as OidcProviderModule from 'oidc-provider';
import type { Account, Interaction, ResourceServerInfo } from 'oidc-provider';
import { consentPage, deviceCodePage, deviceConfirmPage, deviceDonePage, loginPage, logoutPage, signedOutPage } from './oidc-pages.js';

export interface LabUser {
  readonly username: string;
  readonly password: string;
  readonly name: string;
  readonly email: string;
  readonly groups: readonly string[];
}

/** Client metadata as oidc-provider (and Authelia's `clients:` list) spell it. */
export type LabClient = Readonly<Record<string, unknown>> & { readonly client_id: string };

export interface LabOidcOptions {
  /** Default: a free port chosen by the kernel. */
  readonly port?: number;
  /** 127.0.0.1 (default) or ::1; anything else is refused. */
  readonly host?: string;
  /** Castellan's resource URL (the `aud` of its access tokens). */
  readonly resource: string;
  readonly accessTokenFormat: 'opaque' | 'jwt';
  /** Other resource URLs the provider will mint tokens for (wrong-audience tests). */
  readonly otherResources?: readonly string[];
  readonly users?: readonly LabUser[];
  /** Replaces the default client list when given. */
  readonly clients?: readonly LabClient[];
  /** Secret of the `castellan` introspection client (random when absent). */
  readonly castellanClientSecret?: string;
  /** Secret of the `castellan-dashboard` sign-in client (random when absent). */
  readonly dashboardClientSecret?: string;
  readonly accessTokenTtlSeconds?: number;
}

export interface MintOptions {
  readonly username: string;
  readonly clientId?: string;
  readonly resource?: string;
  readonly scope?: string;
  readonly expiresInSeconds?: number;
}

export interface LabOidc {
  readonly issuer: string;
  readonly resource: string;
  readonly accessTokenFormat: 'opaque' | 'jwt';
  readonly users: readonly LabUser[];
  /** Castellan's confidential client, for the resource server's introspection. */
  readonly castellanClient: { readonly clientId: string; readonly clientSecret: string };
  /** The web dashboard's confidential client (code + PKCE, redirect to `<resource>/ui/auth/callback`). */
  readonly dashboardClient: { readonly clientId: string; readonly clientSecret: string };
  /** `kid` of the provider's signing key (forged tokens reuse it to look genuine). */
  readonly signingKeyId: string;
  /** Issue an access token for a demo user without the browser flow (opaque or JWT per options). */
  mintAccessToken(options: MintOptions): Promise<string>;
  /** Revoke an opaque access token at the provider (JWT access tokens cannot be revoked). */
  revoke(token: string): Promise<void>;
  /** Test-only: sign arbitrary claims with the provider's real key (expired JWTs, wrong typ…). */
  signWithIssuerKey(payload: JWTPayload, typ: string): Promise<string>;
  stop(): Promise<void>;
}

export const LAB_SCOPES = ['openid', 'profile', 'email', 'groups', 'offline_access'] as const;

/** Demo users. Groups match the lab's example `roles:` mapping; mallory's map to nothing. */
export const LAB_USERS: readonly LabUser[] = [
  { username: 'alice', password: 'alice-lab-password', name: 'Alice Admin', email: 'alice@lab.invalid', groups: ['admins'] },
  { username: 'oscar', password: 'oscar-lab-password', name: 'Oscar Operator', email: 'oscar@lab.invalid', groups: ['ops'] },
  { username: 'april', password: 'april-lab-password', name: 'April Approver', email: 'april@lab.invalid', groups: ['leads'] },
  { username: 'victor', password: 'victor-lab-password', name: 'Victor Viewer', email: 'victor@lab.invalid', groups: ['everyone'] },
  { username: 'mallory', password: 'mallory-lab-password', name: 'Mallory', email: 'mallory@lab.invalid', groups: ['guests'] },
];

/** The `roles:` block that goes with LAB_USERS. */
export const LAB_ROLES = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] } as const;

const AUTHELIA_ROUTES = {
  authorization: '/api/oidc/authorization',
  token: '/api/oidc/token',
  introspection: '/api/oidc/introspection',
  userinfo: '/api/oidc/userinfo',
  revocation: '/api/oidc/revocation',
  end_session: '/api/oidc/logout',
  jwks: '/jwks.json',
  // RFC 8628, as Authelia serves it: the CLI asks here, the person types the code at /device.
  device_authorization: '/api/oidc/device-authorization',
  code_verification: '/device',
};

export const DASHBOARD_CLIENT_ID = 'castellan-dashboard';
const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/** Where the MCP Inspector's web UI lives, and the redirect URIs it uses (registered for `mcp-inspector`). */
export const MCP_INSPECTOR_ORIGIN = 'http://localhost:6274';
export const MCP_INSPECTOR_REDIRECTS = [`${MCP_INSPECTOR_ORIGIN}/oauth/callback`, `${MCP_INSPECTOR_ORIGIN}/oauth/callback/debug`] as const;

function defaultClients(castellanSecret: string, dashboardSecret: string, resource: string): LabClient[] {
  const base = resource.replace(/\/$/, '');
  const publicClient = { token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] };
  return [
    // The resource server itself: introspects (Authelia's default auth method), and signs
    // Slack users in on the link page (code + PKCE; a refresh token re-reads their groups).
    {
      client_id: 'castellan',
      client_secret: castellanSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [`${base}/slack/link/callback`],
    },
    // RFC 8252 native clients: any loopback port is accepted for these redirect URIs.
    // `castellan login --device` (RFC 8628) for terminals with no browser at hand.
    { ...publicClient, client_id: 'castellan-cli', application_type: 'native', redirect_uris: ['http://127.0.0.1/callback'], grant_types: [...publicClient.grant_types, DEVICE_CODE_GRANT] },
    { ...publicClient, client_id: 'claude-code', application_type: 'native', redirect_uris: ['http://localhost/callback'] },
    // The MCP Inspector's web UI (≥ 0.16) redirects to /oauth/callback, its guided flow to /oauth/callback/debug.
    { ...publicClient, client_id: 'mcp-inspector', application_type: 'web', redirect_uris: [...MCP_INSPECTOR_REDIRECTS] },
    // The web dashboard signs people in as a confidential web client of its own, like an
    // Authelia client with `client_secret_basic`, `require_pkce` and a logout redirect.
    {
      client_id: DASHBOARD_CLIENT_ID,
      client_secret: dashboardSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      application_type: 'web',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [`${base}/ui/auth/callback`],
      post_logout_redirect_uris: [`${base}/ui/signed-out`],
    },
  ];
}

let oidcProvider: Promise<typeof OidcProviderModule> | undefined;

/**
 * oidc-provider 9 prints "Unsupported runtime" when it is loaded on Node 20, which Castellan
 * supports (20.19+; CI runs the suite on 20 and a subset on 24): the lab provider works there, and a
 * newcomer's first `castellan up` should not open with a warning about their runtime. Only
 * that one line is held back, only while the module loads.
 */
function loadOidcProvider(): Promise<typeof OidcProviderModule> {
  oidcProvider ??= (async () => {
    const warn = console.warn;
    console.warn = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].includes('oidc-provider WARNING: Unsupported runtime')) return;
      warn(...args);
    };
    try {
      return await import('oidc-provider');
    } finally {
      console.warn = warn;
    }
  })();
  return oidcProvider;
}

export async function startLabOidc(options: LabOidcOptions): Promise<LabOidc> {
  const { default: Provider, errors } = await loadOidcProvider();
  const host = options.host ?? '127.0.0.1';
  if (host !== '127.0.0.1' && host !== '::1') {
    throw new Error(`the lab OIDC provider binds loopback only (127.0.0.1 or ::1), not ${host}: its demo passwords are public`);
  }
  const users = options.users ?? LAB_USERS;
  const castellanSecret = options.castellanClientSecret ?? randomBytes(24).toString('base64url');
  const dashboardSecret = options.dashboardClientSecret ?? randomBytes(24).toString('base64url');
  const resources = new Set([options.resource, ...(options.otherResources ?? [])]);
  const ttl = options.accessTokenTtlSeconds ?? 3600;

  // Bind first: the issuer URL contains the port, and the provider needs its issuer up front.
  const server = http.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `http://${host === '::1' ? '[::1]' : host}:${port}`;

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingKeyId = `lab-${randomBytes(6).toString('hex')}`;
  const signingJwk = { ...(await exportJWK(privateKey)), kid: signingKeyId, alg: 'RS256', use: 'sig' };

  const findUser = (name: string | undefined) => users.find((user) => user.username === name);

  const resourceServerInfo = (resource: string): ResourceServerInfo => ({
    scope: LAB_SCOPES.join(' '),
    audience: resource,
    accessTokenTTL: ttl,
    accessTokenFormat: options.accessTokenFormat,
    ...(options.accessTokenFormat === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
  });

  const provider = new Provider(issuer, {
    clients: options.clients ?? defaultClients(castellanSecret, dashboardSecret, options.resource),
    jwks: { keys: [signingJwk] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    routes: AUTHELIA_ROUTES,
    scopes: [...LAB_SCOPES],
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    findAccount: (_ctx: unknown, id: string): Account | undefined => {
      const user = findUser(id);
      if (user === undefined) return undefined;
      return {
        accountId: user.username,
        claims: () => ({
          sub: user.username,
          name: user.name,
          preferred_username: user.username,
          email: user.email,
          email_verified: true,
          groups: [...user.groups],
        }),
      };
    },
    // Authelia copies `groups` into access tokens via a claims policy; do the same so the
    // claim is in JWT access tokens and in introspection answers.
    extraTokenClaims: (_ctx: unknown, token: { kind: string; accountId?: string }) => {
      const user = token.kind === 'AccessToken' ? findUser(token.accountId) : undefined;
      return user === undefined ? undefined : { groups: [...user.groups], preferred_username: user.username, name: user.name };
    },
    interactions: { url: (_ctx: unknown, interaction: Interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      introspection: {
        enabled: true,
        // Like Authelia: any authenticated confidential client (Castellan's resource server)
        // may introspect; a public client only its own tokens.
        allowedPolicy: (_ctx: unknown, client: { clientAuthMethod: string; clientId: string }, token: { clientId?: string }) =>
          client.clientAuthMethod !== 'none' || token.clientId === client.clientId,
      },
      revocation: { enabled: true },
      // RP-initiated logout (the dashboard's sign-out), with pages that load nothing remote.
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: (ctx: { host: string; body: string }, form: string) => {
          ctx.body = logoutPage(ctx.host, form);
        },
        postLogoutSuccessSource: (ctx: { body: string }) => {
          ctx.body = signedOutPage();
        },
      },
      userinfo: { enabled: true },
      // Device authorization grant with local pages (the defaults load web fonts).
      deviceFlow: {
        enabled: true,
        userCodeInputSource: (ctx: { body: string }, form: string, _out: unknown, err?: { name?: string; userCode?: string }) => {
          ctx.body = deviceCodePage(form, err === undefined ? undefined : err.userCode !== undefined || err.name === 'NoCodeError' ? 'That code is not right (or has expired). Try again.' : 'The sign-in could not continue. Start again from the terminal.');
        },
        userCodeConfirmSource: (ctx: { body: string }, form: string, client: { clientId: string }, _info: unknown, userCode: string) => {
          ctx.body = deviceConfirmPage(form, client.clientId, userCode);
        },
        successSource: (ctx: { body: string }) => {
          ctx.body = deviceDonePage();
        },
      },
      registration: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // Authelia grants the audience asked for at authorization; reuse it at the token endpoint.
        useGrantedResource: () => true,
        defaultResource: (_ctx: unknown, _client: unknown, oneOf?: string[]) => oneOf,
        getResourceServerInfo: (_ctx: unknown, resource: string) => {
          if (!resources.has(resource)) throw new errors.InvalidTarget(`unknown resource ${resource}`);
          return resourceServerInfo(resource);
        },
      },
    },
    pkce: { required: (_ctx: unknown, client: { clientAuthMethod: string }) => client.clientAuthMethod === 'none' },
    ttl: {
      AccessToken: ttl,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 86_400,
      Grant: 86_400,
      RefreshToken: 86_400,
      ClientCredentials: 600,
    },
    // Browser-based clients (the Inspector's UI) call the token endpoint from their own origin:
    // allow exactly the origins of a client's registered redirect URIs, nothing else.
    clientBasedCORS: (_ctx: unknown, origin: string, client: { redirectUris?: string[] }) =>
      (client.redirectUris ?? []).some((uri) => new URL(uri).origin === origin),
    renderError: (ctx: { type: string; body: string }, out: Record<string, unknown>) => {
      ctx.type = 'text/plain';
      ctx.body = Object.entries(out)
        .map(([key, value]) => `${key}: ${String(value)}`)
        .join('\n');
    },
  });

  const callback = provider.callback();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path.startsWith('/interaction/')) {
      handleInteraction(provider, users, req, res).catch((error: unknown) => {
        if (!res.headersSent) {
          res.writeHead(400, { 'content-type': 'text/plain' });
          res.end(`interaction failed: ${error instanceof Error ? error.message : String(error)}`);
        }
      });
      return;
    }
    // Authelia's introspection_endpoint_auth_method defaults to client_secret_basic and is
    // enforced; oidc-provider would also take client_secret_post (openid-client's default),
    // which would hide exactly the misconfiguration this lab exists to catch.
    if (path === AUTHELIA_ROUTES.introspection && !/^basic /i.test(req.headers.authorization ?? '')) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="introspection"' });
      res.end(JSON.stringify({ error: 'invalid_client', error_description: 'introspection requires client_secret_basic' }));
      return;
    }
    // Authelia also publishes RFC 8414 metadata; the document is the same.
    if (path === '/.well-known/oauth-authorization-server') req.url = '/.well-known/openid-configuration';
    callback(req, res);
  });

  return {
    issuer,
    resource: options.resource,
    accessTokenFormat: options.accessTokenFormat,
    users,
    castellanClient: { clientId: 'castellan', clientSecret: castellanSecret },
    dashboardClient: { clientId: DASHBOARD_CLIENT_ID, clientSecret: dashboardSecret },
    signingKeyId,
    async mintAccessToken(mint) {
      const user = findUser(mint.username);
      if (user === undefined) throw new Error(`no lab user ${mint.username}`);
      const client = await provider.Client.find(mint.clientId ?? 'castellan-cli');
      if (client === undefined) throw new Error(`no lab client ${mint.clientId ?? 'castellan-cli'}`);
      const resource = mint.resource ?? options.resource;
      if (!resources.has(resource)) throw new Error(`the lab provider does not know resource ${resource}`);
      const token = new provider.AccessToken({
        accountId: user.username,
        client,
        scope: mint.scope ?? LAB_SCOPES.join(' '),
        gty: 'lab',
        resourceServer: new provider.ResourceServer(resource, resourceServerInfo(resource)),
        ...(mint.expiresInSeconds !== undefined ? { expiresIn: mint.expiresInSeconds } : {}),
      });
      return token.save();
    },
    async revoke(token) {
      const found = await provider.AccessToken.find(token);
      if (found === undefined) throw new Error('no such opaque access token at the lab provider');
      await found.destroy();
    },
    async signWithIssuerKey(payload, typ) {
      return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: signingKeyId, typ }).sign(privateKey);
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function handleInteraction(
  provider: Provider,
  users: readonly LabUser[],
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  const rawClientId = details.params['client_id'];
  const clientId = typeof rawClientId === 'string' ? rawClientId : '';
  const action = (req.url ?? '').split('?')[0]?.split('/')[3];
  if (req.method === 'GET' && action === undefined) {
    if (details.prompt.name === 'login') return send(res, 200, loginPage(details.uid, clientId));
    const scopes = details.prompt.details.missingOIDCScope ?? [];
    const resources = Object.keys(details.prompt.details.missingResourceScopes ?? {});
    return send(res, 200, consentPage(details.uid, clientId, scopes, resources));
  }
  if (req.method !== 'POST') return send(res, 405, 'method not allowed');
  const form = await readForm(req);
  switch (action) {
    case 'login': {
      const user = users.find((candidate) => candidate.username === form.get('username'));
      if (user === undefined || user.password !== form.get('password')) {
        return send(res, 401, loginPage(details.uid, clientId, 'Incorrect username or password.'));
      }
      return provider.interactionFinished(req, res, { login: { accountId: user.username } }, { mergeWithLastSubmission: false });
    }
    case 'confirm': {
      const accountId = details.session?.accountId;
      if (accountId === undefined) return send(res, 400, 'sign in first');
      const grant =
        (details.grantId !== undefined ? await provider.Grant.find(details.grantId) : undefined) ??
        new provider.Grant({ accountId, clientId });
      const missing = details.prompt.details;
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(resource, scopes.join(' '));
      }
      const grantId = await grant.save();
      return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    }
    case 'abort':
      return provider.interactionFinished(
        req,
        res,
        { error: 'access_denied', error_description: 'the user denied the request' },
        { mergeWithLastSubmission: false },
      );
    default:
      return send(res, 404, 'no such interaction step');
  }
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': status === 200 || status === 401 ? 'text/html; charset=utf-8' : 'text/plain' });
  res.end(body);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 16_384) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}
