// End to end: the lab OIDC provider (opaque and JWT access tokens) issues real tokens through
// the real authorization-code + PKCE flow; a tiny Express app guarded by Castellan's
// resource-server pieces and token verifier accepts or refuses them.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLabOidc, LAB_ROLES, type LabOidc } from '../../src/lab/oidc.js';
import {
  hostAndOriginGuard,
  protectedResourceMetadataRouter,
  protectedResourceMetadataUrl,
  requireBearer,
} from '../../src/http/resource-server.js';
import { createTokenVerifier } from '../../auth/tokens.js';
import { identityOf } from '../../auth/request-identity.js';
import { parseOidc, parseRoles } from '../../auth/settings.js';
import {
  expiredAccessToken,
  forgedAccessToken,
  loginAndGetToken,
  revokeAtEndpoint,
  wrongAudienceToken,
} from '../support/oidc.js';

const OTHER_RESOURCE = 'https://other-service.example/api';

describe.each(['opaque', 'jwt'] as const)('resource server with %s access tokens', (format) => {
  let lab: LabOidc;
  let server: http.Server;
  let base: string;
  let resource: string;
  let metadataUrl: string;

  beforeAll(async () => {
    // Bind first: Castellan's resource URL (the token audience) contains the app's port.
    server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    base = `http://127.0.0.1:${port}`;
    resource = `${base}/mcp`;
    metadataUrl = protectedResourceMetadataUrl(resource);
    lab = await startLabOidc({ resource, accessTokenFormat: format, otherResources: [OTHER_RESOURCE] });

    const verifier = createTokenVerifier(
      parseOidc({ issuer: lab.issuer, resource, client_id: 'castellan', client_secret: lab.castellanClient.clientSecret }),
      { roles: parseRoles(LAB_ROLES) },
    );
    const app = express();
    app.use(hostAndOriginGuard({ allowedHosts: [`127.0.0.1:${port}`, 'localhost'], allowedOrigins: ['http://localhost:6274'] }));
    app.use(protectedResourceMetadataRouter({ resourceUrl: resource, issuer: lab.issuer, scopes: ['openid', 'profile', 'groups'] }));
    app.all('/mcp', requireBearer(verifier, { resourceMetadataUrl: metadataUrl }), (req, res) => {
      res.json({ identity: identityOf(req), clientId: req.auth?.clientId, scopes: req.auth?.scopes, resource: req.auth?.resource?.href, expiresAt: req.auth?.expiresAt });
    });
    app.get('/api/admin', requireBearer(verifier, { resourceMetadataUrl: metadataUrl, requiredScopes: ['castellan:admin'] }), (_req, res) => {
      res.json({ ok: true });
    });
    server.on('request', app);
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await lab?.stop();
  });

  const call = (token?: string, headers: Record<string, string> = {}, path = '/mcp') =>
    fetch(`${base}${path}`, { headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...headers } });

  async function expectRefused(response: Response, reason: RegExp): Promise<void> {
    expect(response.status).toBe(401);
    const challenge = response.headers.get('www-authenticate') ?? '';
    expect(challenge).toContain(`resource_metadata="${metadataUrl}"`);
    expect(challenge).toContain('error="invalid_token"');
    const body = (await response.json()) as { error: string; error_description: string };
    expect(body.error).toBe('invalid_token');
    expect(body.error_description).toMatch(reason);
  }

  it('accepts a token from the real login flow and exposes the identity and roles', async () => {
    const { accessToken } = await loginAndGetToken(lab, 'alice');
    if (format === 'jwt') expect(accessToken.split('.')).toHaveLength(3);
    else expect(accessToken).not.toContain('.');
    const response = await call(accessToken);
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      identity: { subject: 'alice', displayName: 'Alice Admin', groups: ['admins'], roles: ['viewer', 'operator', 'approver', 'admin'] },
      clientId: 'castellan-cli',
      resource,
    });
    expect(body['scopes']).toEqual(expect.arrayContaining(['openid', 'groups']));
    expect(body['expiresAt']).toBeGreaterThan(Date.now() / 1000);
  });

  it('maps each demo user to their roles (mallory authenticates but holds none)', async () => {
    const expected: Record<string, string[]> = { oscar: ['viewer', 'operator'], april: ['viewer', 'approver'], victor: ['viewer'], mallory: [] };
    for (const [user, roles] of Object.entries(expected)) {
      const response = await call(await lab.mintAccessToken({ username: user }));
      expect(response.status).toBe(200);
      expect(((await response.json()) as { identity: { roles: string[] } }).identity.roles).toEqual(roles);
    }
  });

  it('answers a request without a token with 401 and the metadata pointer, no error code', async () => {
    const response = await call();
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(`Bearer resource_metadata="${metadataUrl}"`);
  });

  it('refuses a non-Bearer Authorization header', async () => {
    await expectRefused(await call(undefined, { authorization: 'Basic YWxpY2U6cHc=' }), /Bearer <token>/);
  });

  it('refuses an expired token', async () => {
    const token = await expiredAccessToken(lab, 'alice');
    await expectRefused(await call(token), format === 'jwt' ? /expired/ : /not active/);
  });

  it('refuses a token issued for another resource', async () => {
    await expectRefused(await call(await wrongAudienceToken(lab, 'alice', OTHER_RESOURCE)), /not issued for this resource/);
  });

  it('refuses a token requested without any resource (userinfo-only)', async () => {
    const { accessToken } = await loginAndGetToken(lab, 'oscar', { resource: null });
    await expectRefused(await call(accessToken), /not issued for this resource/);
  });

  it('refuses a JWT with perfect claims signed by another key', async () => {
    await expectRefused(await call(await forgedAccessToken(lab, 'alice')), /signature does not verify/);
  });

  it('refuses a random string', async () => {
    await expectRefused(await call('authelia_at_0123456789abcdefghijklmnop'), /not active/);
  });

  it('refuses an ID token presented as an access token', async () => {
    const { idToken } = await loginAndGetToken(lab, 'alice');
    expect(idToken).toBeDefined();
    await expectRefused(await call(idToken), /not an access token/);
  });

  it('refuses a token missing a required scope with 403 insufficient_scope', async () => {
    const response = await call(await lab.mintAccessToken({ username: 'alice' }), {}, '/api/admin');
    expect(response.status).toBe(403);
    const challenge = response.headers.get('www-authenticate') ?? '';
    expect(challenge).toContain('error="insufficient_scope"');
    expect(challenge).toContain('scope="castellan:admin"');
  });

  // JWT access tokens are self-contained and cannot be revoked before exp; only opaque ones can.
  if (format === 'opaque') {
    it('refuses a token revoked at the provider', async () => {
      const { accessToken } = await loginAndGetToken(lab, 'oscar');
      expect(await revokeAtEndpoint(lab, accessToken)).toBe(200);
      await expectRefused(await call(accessToken), /not active/);
    });
  }

  it('refuses a foreign Origin and a foreign Host with 403, and lets origin-less and allowed-origin requests through', async () => {
    const token = await lab.mintAccessToken({ username: 'victor' });
    expect((await call(token, { origin: 'https://evil.example' })).status).toBe(403);
    expect((await call(token, { origin: 'null' })).status).toBe(403);
    expect((await call(token, { origin: 'http://localhost:6274' })).status).toBe(200);
    expect((await call(token)).status).toBe(200);
    const rebound = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${base}/mcp`, { headers: { host: 'attacker.example:80', authorization: `Bearer ${token}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(rebound).toBe(403);
  });

  it('serves RFC 9728 metadata at the path-inserted and root well-known URLs without a token', async () => {
    for (const url of [metadataUrl, `${base}/.well-known/oauth-protected-resource`]) {
      const response = await fetch(url);
      expect(response.status).toBe(200);
      expect(response.headers.get('access-control-allow-origin')).toBe('*');
      expect(await response.json()).toEqual({
        resource,
        authorization_servers: [lab.issuer],
        scopes_supported: ['openid', 'profile', 'groups'],
        bearer_methods_supported: ['header'],
        resource_name: 'Castellan',
      });
    }
    expect(metadataUrl).toBe(`${base}/.well-known/oauth-protected-resource/mcp`);
  });
});
