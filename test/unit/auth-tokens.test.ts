// Token verification against a scripted identity provider reached through the verifier's
// `fetch` option (the IdP is the double here; Castellan's modules run for real). The lab
// provider covers the same paths end to end in test/integration/auth-*.test.ts.
import { beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { checkIntrospection } from '../../auth/introspection.js';
import { looksLikeJwt } from '../../auth/jwt.js';
import { TokenCache } from '../../auth/token-cache.js';
import { createTokenVerifier, InvalidTokenError, TokenVerifierUnavailableError } from '../../auth/tokens.js';
import { parseOidc, parseRoles } from '../../auth/settings.js';

const ISSUER = 'https://auth.example.com';
const RESOURCE = 'https://castellan.example/mcp';
const roles = parseRoles({ admin: ['admins'], operator: ['ops'], viewer: ['everyone'] });
const NOW = new Date('2026-09-01T12:00:00Z');
const nowSeconds = Math.floor(NOW.getTime() / 1000);

describe('checkIntrospection (RFC 7662 answers)', () => {
  const good = { active: true, sub: 'u1', aud: [RESOURCE], exp: nowSeconds + 60, iss: ISSUER, token_type: 'Bearer' };
  const opts = { issuer: ISSUER, audience: RESOURCE, now: () => NOW };

  it.each<[string, Record<string, unknown>, string]>([
    ['inactive', { active: false }, 'inactive'],
    ['active as a string', { active: 'true' }, 'inactive'],
    ['another issuer', { iss: 'https://evil.example' }, 'wrong_issuer'],
    ['no audience', { aud: undefined }, 'wrong_audience'],
    ['another audience', { aud: 'https://other.example/api' }, 'wrong_audience'],
    ['audience by prefix only', { aud: [`${RESOURCE}-admin`] }, 'wrong_audience'],
    ['no exp', { exp: undefined }, 'no_expiry'],
    ['exp now', { exp: nowSeconds }, 'expired'],
    ['nbf in the future', { nbf: nowSeconds + 30 }, 'not_yet_valid'],
    ['no sub', { sub: undefined }, 'no_subject'],
    ['a refresh token', { token_type: 'refresh_token' }, 'not_access_token'],
  ])('%s -> %s', (_label, change, reason) => {
    const claims = { ...good, ...change } as Parameters<typeof checkIntrospection>[0];
    expect(() => checkIntrospection(claims, opts)).toThrow(expect.objectContaining({ reason }));
  });

  it('accepts a good answer, with aud as a string or a list, and with iss absent', () => {
    expect(checkIntrospection(good, opts).sub).toBe('u1');
    expect(checkIntrospection({ ...good, aud: RESOURCE }, opts).exp).toBe(nowSeconds + 60);
    expect(checkIntrospection({ ...good, iss: undefined }, opts).sub).toBe('u1');
  });
});

describe('TokenCache', () => {
  it('keys entries by SHA-256 digest, never the token', () => {
    const cache = new TokenCache<string>({ ttlMs: 30_000, maxEntries: 10, now: () => 0 });
    cache.set('secret-token-value', 'v', 60_000);
    expect(cache.get('secret-token-value')).toBe('v');
    expect(cache.keys()).toEqual([TokenCache.keyFor('secret-token-value')]);
    expect(cache.keys().join('')).not.toContain('secret-token-value');
  });

  it('expires at the TTL or the token exp, whichever comes first', () => {
    let now = 0;
    const cache = new TokenCache<string>({ ttlMs: 30_000, maxEntries: 10, now: () => now });
    cache.set('a', 'long-lived', 3_600_000);
    cache.set('b', 'short-lived', 10_000);
    now = 10_000;
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe('long-lived');
    now = 30_000;
    expect(cache.get('a')).toBeUndefined();
  });

  it('holds at most maxEntries, dropping the oldest first', () => {
    const cache = new TokenCache<number>({ ttlMs: 30_000, maxEntries: 3, now: () => 0 });
    for (let i = 0; i < 5; i += 1) cache.set(`t${i}`, i, 60_000);
    expect(cache.size).toBe(3);
    expect(cache.get('t0')).toBeUndefined();
    expect(cache.get('t1')).toBeUndefined();
    expect(cache.get('t4')).toBe(4);
  });

  it('caches nothing with a zero TTL', () => {
    const cache = new TokenCache<number>({ ttlMs: 0, maxEntries: 3, now: () => 0 });
    cache.set('t', 1, 60_000);
    expect(cache.get('t')).toBeUndefined();
  });
});

describe('looksLikeJwt', () => {
  it.each([
    ['eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln', true],
    ['authelia_at_abcDEF123', false],
    ['a.b', false],
    ['a.b.c.d.e', false],
    ['a.b.c d', false],
  ])('%s -> %s', (token, expected) => {
    expect(looksLikeJwt(token)).toBe(expected);
  });
});

/** A scripted IdP: discovery, JWKS, introspection and userinfo, with call counts. */
class FakeIdp {
  calls: string[] = [];
  basicAuth: string[] = [];
  introspection: Record<string, Record<string, unknown>> = {};
  userinfo: Record<string, unknown> = {};
  discoveryFails = false;
  introspectionStatus = 200;
  constructor(
    private readonly jwk: JWK,
    readonly issuer = ISSUER,
  ) {}

  fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    this.calls.push(url.pathname);
    const json = (body: unknown, status = 200) =>
      new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
    switch (url.pathname) {
      case '/.well-known/openid-configuration':
        if (this.discoveryFails) return json({ error: 'down' }, 503);
        return json({
          issuer: this.issuer,
          authorization_endpoint: `${this.issuer}/api/oidc/authorization`,
          token_endpoint: `${this.issuer}/api/oidc/token`,
          introspection_endpoint: `${this.issuer}/api/oidc/introspection`,
          userinfo_endpoint: `${this.issuer}/api/oidc/userinfo`,
          jwks_uri: `${this.issuer}/jwks.json`,
        });
      case '/jwks.json':
        return json({ keys: [this.jwk] });
      case '/api/oidc/introspection': {
        const headers = new Headers(init?.headers);
        this.basicAuth.push(headers.get('authorization') ?? '');
        if (this.introspectionStatus !== 200) return json({ error: 'invalid_client' }, this.introspectionStatus);
        const body = init?.body;
        const form = body instanceof URLSearchParams ? body : new URLSearchParams(typeof body === 'string' ? body : '');
        const token = form.get('token') ?? '';
        return json(this.introspection[token] ?? { active: false });
      }
      case '/api/oidc/userinfo':
        return json(this.userinfo);
      default:
        return json({ error: 'not found' }, 404);
    }
  };
}

describe('createTokenVerifier', () => {
  let privateKey: CryptoKey;
  let idp: FakeIdp;
  const oidc = (extra: Record<string, unknown> = {}) =>
    parseOidc({ issuer: ISSUER, resource: RESOURCE, client_id: 'castellan', client_secret: 'castellan-secret', ...extra });
  const activeFor = (sub: string, groups: string[]) => ({
    active: true,
    sub,
    aud: [RESOURCE],
    exp: nowSeconds + 3600,
    iss: ISSUER,
    client_id: 'castellan-cli',
    scope: 'openid groups',
    groups,
    name: `${sub} name`,
  });

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    privateKey = pair.privateKey;
    idp = new FakeIdp({ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' });
  });

  const jwt = (claims: Record<string, unknown>, typ = 'at+jwt') =>
    new SignJWT({ client_id: 'castellan-cli', scope: 'openid groups', ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ })
      .setIssuer(ISSUER)
      .setAudience(RESOURCE)
      .setSubject('oscar')
      .setIssuedAt(nowSeconds - 10)
      .setExpirationTime(nowSeconds + 600)
      .sign(privateKey);

  it('introspects an opaque token with client_secret_basic and maps groups to roles', async () => {
    idp.introspection['authelia_at_oscar'] = activeFor('oscar', ['ops']);
    idp.basicAuth = [];
    const verifier = createTokenVerifier(oidc(), { roles, fetch: idp.fetch, now: () => NOW });
    const verified = await verifier.verify('authelia_at_oscar');
    expect(verified).toMatchObject({
      identity: { subject: 'oscar', displayName: 'oscar name', groups: ['ops'], roles: ['viewer', 'operator'] },
      scopes: ['openid', 'groups'],
      clientId: 'castellan-cli',
      audience: [RESOURCE],
      resource: RESOURCE,
      expiresAt: nowSeconds + 3600,
    });
    // client_secret_basic, with RFC 6749 §2.3.1 form-encoding inside the Basic credentials.
    expect(idp.basicAuth).toHaveLength(1);
    const [scheme, encoded = ''] = idp.basicAuth[0]!.split(' ');
    expect(scheme).toBe('Basic');
    const [id = '', secret = ''] = Buffer.from(encoded, 'base64').toString('utf8').split(':');
    expect([decodeURIComponent(id), decodeURIComponent(secret)]).toEqual(['castellan', 'castellan-secret']);
  });

  it('answers repeated requests from the cache without asking the IdP again', async () => {
    idp.introspection['authelia_at_cached'] = activeFor('victor', ['everyone']);
    const verifier = createTokenVerifier(oidc(), { roles, fetch: idp.fetch, now: () => NOW });
    await verifier.verify('authelia_at_cached');
    const before = idp.calls.filter((path) => path === '/api/oidc/introspection').length;
    await verifier.verify('authelia_at_cached');
    await verifier.verify('authelia_at_cached');
    expect(idp.calls.filter((path) => path === '/api/oidc/introspection').length).toBe(before);
  });

  it('verifies a JWT access token locally and refuses an ID token, a wrong audience and an unknown key', async () => {
    const verifier = createTokenVerifier(oidc(), { roles, fetch: idp.fetch, now: () => NOW });
    const ok = await verifier.verify(await jwt({ groups: ['admins'] }));
    expect(ok.identity.roles).toEqual(['viewer', 'operator', 'approver', 'admin']);
    await expect(verifier.verify(await jwt({}, 'JWT'))).rejects.toMatchObject({ reason: 'not_access_token' });
    const otherAudience = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'at+jwt' })
      .setIssuer(ISSUER)
      .setAudience('https://other.example')
      .setSubject('x')
      .setIssuedAt(nowSeconds)
      .setExpirationTime(nowSeconds + 60)
      .sign(privateKey);
    await expect(verifier.verify(otherAudience)).rejects.toMatchObject({ reason: 'wrong_audience' });
    const stranger = await generateKeyPair('ES256');
    const unknownKey = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'k2', typ: 'at+jwt' })
      .setIssuer(ISSUER)
      .setAudience(RESOURCE)
      .setSubject('x')
      .setIssuedAt(nowSeconds)
      .setExpirationTime(nowSeconds + 60)
      .sign(stranger.privateKey);
    await expect(verifier.verify(unknownKey)).rejects.toMatchObject({ reason: 'unknown_key' });
  });

  it.each([
    ['eyJhbGciOiJub25lIn0.e30.', /unsigned \(alg none\)/],
    [`${Buffer.from('{"alg":"none","typ":"at+jwt"}').toString('base64url')}.${Buffer.from('{"sub":"alice","groups":["admins"]}').toString('base64url')}.`, /unsigned/],
    [`${Buffer.from('{"alg":"NONE"}').toString('base64url')}.e30.c2ln`, /unsigned/],
    [`${Buffer.from('{"alg":"HS256","typ":"at+jwt"}').toString('base64url')}.e30.c2ln`, /signed with HS256, which is not allowed; only RS256, ES256/],
    [`${Buffer.from('{"typ":"at+jwt"}').toString('base64url')}.e30.c2ln`, /names no signing algorithm/],
  ])('refuses %s before asking the IdP anything, as an invalid token with the reason', async (token, reason) => {
    const quiet = new FakeIdp({ kty: 'EC' }, ISSUER);
    const verifier = createTokenVerifier(oidc(), { roles, fetch: quiet.fetch, now: () => NOW });
    const error = await verifier.verify(token).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidTokenError);
    expect((error as InvalidTokenError).message).toMatch(reason);
    expect(quiet.calls).toEqual([]);
  });

  it('refuses a JWT issued in the future or living longer than max_token_lifetime; accepts within the skew', async () => {
    const verifier = createTokenVerifier(oidc({ max_token_lifetime_seconds: 3600, clock_skew_seconds: 60 }), { roles, fetch: idp.fetch, now: () => NOW });
    const signed = (iat: number, exp: number) =>
      new SignJWT({ client_id: 'castellan-cli' })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'at+jwt' })
        .setIssuer(ISSUER)
        .setAudience(RESOURCE)
        .setSubject('oscar')
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .sign(privateKey);
    await expect(verifier.verify(await signed(nowSeconds + 3600, nowSeconds + 3700))).rejects.toMatchObject({ reason: 'issued_in_future' });
    await expect(verifier.verify(await signed(nowSeconds, nowSeconds + 365 * 86400))).rejects.toMatchObject({ reason: 'lifetime_too_long', message: expect.stringMatching(/max_token_lifetime/) });
    expect((await verifier.verify(await signed(nowSeconds + 30, nowSeconds + 3600))).identity.subject).toBe('oscar');
  });

  it('applies the same lifetime bounds to introspection answers', async () => {
    idp.introspection['authelia_at_forever'] = { ...activeFor('oscar', ['ops']), exp: nowSeconds + 30 * 86400 };
    idp.introspection['authelia_at_future'] = { ...activeFor('oscar', ['ops']), iat: nowSeconds + 7200 };
    const verifier = createTokenVerifier(oidc(), { roles, fetch: idp.fetch, now: () => NOW });
    await expect(verifier.verify('authelia_at_forever')).rejects.toMatchObject({ reason: 'lifetime_too_long' });
    await expect(verifier.verify('authelia_at_future')).rejects.toMatchObject({ reason: 'issued_in_future' });
  });

  it('refuses an expired JWT using the injected clock', async () => {
    const token = await jwt({});
    const later = new Date(NOW.getTime() + 3_600_000);
    const verifier = createTokenVerifier(oidc(), { roles, fetch: idp.fetch, now: () => later });
    await expect(verifier.verify(token)).rejects.toMatchObject({ reason: 'expired' });
  });

  it('takes groups from userinfo when configured', async () => {
    idp.introspection['authelia_at_april'] = { ...activeFor('april', []), groups: undefined };
    idp.userinfo = { sub: 'april', groups: ['admins'] };
    const verifier = createTokenVerifier(oidc({ groups_from: 'userinfo' }), { roles, fetch: idp.fetch, now: () => NOW });
    const verified = await verifier.verify('authelia_at_april');
    expect(verified.identity.groups).toEqual(['admins']);
    expect(idp.calls).toContain('/api/oidc/userinfo');
  });

  it('refuses userinfo that answers for another subject', async () => {
    idp.introspection['authelia_at_swap'] = activeFor('april', []);
    idp.userinfo = { sub: 'someone-else', groups: ['admins'] };
    const verifier = createTokenVerifier(oidc({ groups_from: 'userinfo' }), { roles, fetch: idp.fetch, now: () => NOW });
    await expect(verifier.verify('authelia_at_swap')).rejects.toBeInstanceOf(TokenVerifierUnavailableError);
  });

  it('reports an IdP outage as unavailable (not an invalid token), then recovers', async () => {
    const down = new FakeIdp({ kty: 'EC' }, ISSUER);
    down.discoveryFails = true;
    down.introspection['authelia_at_x'] = activeFor('oscar', ['ops']);
    const verifier = createTokenVerifier(oidc(), { roles, fetch: down.fetch, now: () => NOW });
    await expect(verifier.verify('authelia_at_x')).rejects.toBeInstanceOf(TokenVerifierUnavailableError);
    down.discoveryFails = false;
    await expect(verifier.verify('authelia_at_x')).resolves.toMatchObject({ identity: { subject: 'oscar' } });
  });

  it('treats a refusal of Castellan’s own client credentials as an outage', async () => {
    const idp2 = new FakeIdp({ kty: 'EC' });
    idp2.introspectionStatus = 401;
    const verifier = createTokenVerifier(oidc(), { roles, fetch: idp2.fetch, now: () => NOW });
    await expect(verifier.verify('authelia_at_y')).rejects.toBeInstanceOf(TokenVerifierUnavailableError);
  });

  it('never puts the token in an error message', async () => {
    const token = 'authelia_at_do-not-leak-me';
    const verifier = createTokenVerifier(oidc(), { roles, fetch: idp.fetch, now: () => NOW });
    const error = await verifier.verify(token).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidTokenError);
    expect(String((error as Error).message)).not.toContain('do-not-leak-me');
    expect(JSON.stringify(error)).not.toContain('do-not-leak-me');
  });

  it('refuses malformed bearer values before any network call', async () => {
    const fresh = new FakeIdp({ kty: 'EC' });
    const verifier = createTokenVerifier(oidc(), { roles, fetch: fresh.fetch });
    await expect(verifier.verify('two words')).rejects.toMatchObject({ reason: 'malformed' });
    await expect(verifier.verify('x'.repeat(9000))).rejects.toMatchObject({ reason: 'malformed' });
    expect(fresh.calls).toEqual([]);
  });

  it('refuses a plain-http issuer that is not loopback', async () => {
    const remote = new FakeIdp({ kty: 'EC' }, 'http://auth.example.com');
    const verifier = createTokenVerifier(oidc({ issuer: 'http://auth.example.com' }), { roles, fetch: remote.fetch });
    await expect(verifier.verify('authelia_at_z')).rejects.toThrow(/plain-http issuer/);
    expect(remote.calls).toEqual([]);
  });
});
