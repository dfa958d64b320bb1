// The lab OIDC provider behaves like Authelia where Castellan depends on it: endpoint paths,
// discovery, no DCR, PKCE for public clients, loopback redirects, authenticated introspection,
// groups in access tokens and at userinfo, loopback-only binding.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { startLabOidc, type LabOidc } from '../../src/lab/oidc.js';
import { loginAndGetToken, revokeAtEndpoint } from '../support/oidc.js';
import { createTokenVerifier } from '../../auth/tokens.js';
import { parseOidc, parseRoles } from '../../auth/settings.js';
import { LAB_ROLES } from '../../src/lab/oidc.js';

const RESOURCE = 'https://castellan.test/mcp';

describe('lab OIDC provider (opaque access tokens)', () => {
  let lab: LabOidc;
  beforeAll(async () => {
    lab = await startLabOidc({ resource: RESOURCE, accessTokenFormat: 'opaque' });
  });
  afterAll(async () => {
    await lab?.stop();
  });

  const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
  const introspect = (token: string, headers: Record<string, string>, extra: Record<string, string> = {}) =>
    fetch(`${lab.issuer}/api/oidc/introspection`, { method: 'POST', headers, body: new URLSearchParams({ token, ...extra }) });

  it('publishes Authelia-shaped discovery at both well-known URLs, without registration', async () => {
    const oidc = (await (await fetch(`${lab.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(new URL(lab.issuer).pathname).toBe('/');
    expect(oidc).toMatchObject({
      issuer: lab.issuer,
      authorization_endpoint: `${lab.issuer}/api/oidc/authorization`,
      token_endpoint: `${lab.issuer}/api/oidc/token`,
      introspection_endpoint: `${lab.issuer}/api/oidc/introspection`,
      userinfo_endpoint: `${lab.issuer}/api/oidc/userinfo`,
      revocation_endpoint: `${lab.issuer}/api/oidc/revocation`,
      jwks_uri: `${lab.issuer}/jwks.json`,
      code_challenge_methods_supported: ['S256'],
    });
    expect(oidc['registration_endpoint']).toBeUndefined();
    expect(oidc['scopes_supported']).toEqual(expect.arrayContaining(['openid', 'profile', 'email', 'groups', 'offline_access']));
    const oauth = await (await fetch(`${lab.issuer}/.well-known/oauth-authorization-server`)).json();
    expect(oauth).toEqual(oidc);
  });

  it('refuses to bind anything but loopback', async () => {
    await expect(startLabOidc({ resource: RESOURCE, accessTokenFormat: 'opaque', host: '0.0.0.0' })).rejects.toThrow(/loopback only/);
  });

  it('refuses a wrong password at the sign-in form', async () => {
    await expect(loginAndGetToken(lab, 'alice', { password: 'guess' })).rejects.toThrow(/wrong password/);
  });

  it('accepts native clients on any loopback port (RFC 8252) and the inspector on its fixed callback', async () => {
    const cli = await loginAndGetToken(lab, 'oscar', { clientId: 'castellan-cli', redirectUri: 'http://127.0.0.1:40123/callback' });
    const claude = await loginAndGetToken(lab, 'oscar', { clientId: 'claude-code', redirectUri: 'http://localhost:51999/callback' });
    const inspector = await loginAndGetToken(lab, 'oscar', { clientId: 'mcp-inspector', redirectUri: 'http://localhost:6274/oauth/callback' });
    for (const result of [cli, claude, inspector]) expect(result.accessToken.length).toBeGreaterThan(20);
    await expect(
      loginAndGetToken(lab, 'oscar', { clientId: 'mcp-inspector', redirectUri: 'http://localhost:6275/oauth/callback' }),
    ).rejects.toThrow(/redirect_uri/);
  });

  it('requires PKCE from public clients', async () => {
    const url = new URL(`${lab.issuer}/api/oidc/authorization`);
    url.search = new URLSearchParams({
      client_id: 'castellan-cli',
      response_type: 'code',
      redirect_uri: 'http://127.0.0.1:40123/callback',
      scope: 'openid',
      resource: RESOURCE,
    }).toString();
    const response = await fetch(url, { redirect: 'manual' });
    const location = new URL(response.headers.get('location') ?? 'http://x/');
    expect(location.searchParams.get('error')).toBe('invalid_request');
    expect(location.searchParams.get('error_description')).toMatch(/PKCE/);
  });

  it('introspects only for authenticated clients, with client_secret_basic, and returns groups and aud', async () => {
    const token = await lab.mintAccessToken({ username: 'april' });
    const anonymous = await introspect(token, {});
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).not.toHaveProperty('active');
    expect((await introspect(token, { authorization: basic('castellan', 'wrong-secret') })).status).toBe(401);
    // The castellan client is registered for client_secret_basic only, as Authelia's default.
    const posted = await introspect(token, {}, { client_id: 'castellan', client_secret: lab.castellanClient.clientSecret });
    expect(posted.status).toBe(401);
    const ok = await introspect(token, { authorization: basic('castellan', lab.castellanClient.clientSecret) });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ active: true, sub: 'april', aud: RESOURCE, groups: ['leads'], client_id: 'castellan-cli' });
  });

  it('serves groups at userinfo for a userinfo-audience token', async () => {
    const { accessToken } = await loginAndGetToken(lab, 'victor', { resource: null });
    const response = await fetch(`${lab.issuer}/api/oidc/userinfo`, { headers: { authorization: `Bearer ${accessToken}` } });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ sub: 'victor', groups: ['everyone'], name: 'Victor Viewer' });
  });

  it('sees a revocation through the verifier once the bounded cache entry lapses (30 s)', async () => {
    let now = new Date();
    const verifier = createTokenVerifier(
      parseOidc({ issuer: lab.issuer, resource: RESOURCE, client_id: 'castellan', client_secret: lab.castellanClient.clientSecret }),
      { roles: parseRoles(LAB_ROLES), now: () => now },
    );
    const { accessToken } = await loginAndGetToken(lab, 'oscar');
    await expect(verifier.verify(accessToken)).resolves.toMatchObject({ identity: { subject: 'oscar' } });
    expect(await revokeAtEndpoint(lab, accessToken)).toBe(200);
    // Within the cache window the earlier answer stands; this is the documented trade-off.
    await expect(verifier.verify(accessToken)).resolves.toMatchObject({ identity: { subject: 'oscar' } });
    now = new Date(now.getTime() + 31_000);
    await expect(verifier.verify(accessToken)).rejects.toMatchObject({ reason: 'inactive' });
  });

  it('has no dynamic client registration endpoint', async () => {
    const response = await fetch(`${lab.issuer}/reg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(response.status).toBe(404);
  });

  it('refuses to mint for an unknown user or resource', async () => {
    await expect(lab.mintAccessToken({ username: 'nobody' })).rejects.toThrow(/no lab user/);
    await expect(lab.mintAccessToken({ username: 'alice', resource: 'https://elsewhere.example' })).rejects.toThrow(/does not know resource/);
  });
});

describe('lab OIDC provider (JWT access tokens)', () => {
  let lab: LabOidc;
  beforeAll(async () => {
    lab = await startLabOidc({ resource: RESOURCE, accessTokenFormat: 'jwt', host: '::1' });
  });
  afterAll(async () => {
    await lab?.stop();
  });

  it('binds ::1 and issues RFC 9068 access tokens carrying groups for the resource', async () => {
    expect(lab.issuer).toMatch(/^http:\/\/\[::1\]:\d+$/);
    const { accessToken, idToken } = await loginAndGetToken(lab, 'alice');
    expect(decodeProtectedHeader(accessToken)).toMatchObject({ typ: 'at+jwt', alg: 'RS256', kid: lab.signingKeyId });
    expect(decodeJwt(accessToken)).toMatchObject({ iss: lab.issuer, aud: RESOURCE, sub: 'alice', client_id: 'castellan-cli', groups: ['admins'] });
    // The ID token is for the client, not the resource, and is not typed as an access token.
    expect(decodeProtectedHeader(idToken!).typ).not.toBe('at+jwt');
    expect(decodeJwt(idToken!).aud).toBe('castellan-cli');
  });
});
