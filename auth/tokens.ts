// Castellan as an OAuth 2.0 resource server: turn a bearer token into a verified Identity.
// JWT access tokens are checked locally (auth/jwt.ts); opaque ones are introspected at the
// issuer (auth/introspection.ts). The token is only ever sent back to the issuer that minted
// it (introspection, userinfo); it is never forwarded anywhere else, logged or cached as is.
import * as client from 'openid-client';
import type { Identity, Origin } from './types.js';
import { DEFAULT_CLIENT_ORIGINS, type ClientOrigins, type OidcConfig, type RoleMap } from './settings.js';
import { originForClient } from './policy.js';
import { identityFor } from './roles.js';
import { checkJwsAlgorithm, checkTokenLifetime, createJwtAccessTokenVerifier, jwsHeaderOf, looksLikeJwt, type JwtAccessTokenVerifier } from './jwt.js';
import { createIntrospector, type Introspector } from './introspection.js';
import { InvalidTokenError, TokenVerifierUnavailableError } from './token-errors.js';
import { TokenCache } from './token-cache.js';

export { InvalidTokenError, TokenVerifierUnavailableError } from './token-errors.js';
export type { InvalidTokenReason } from './token-errors.js';

export interface VerifiedToken {
  readonly identity: Identity;
  readonly scopes: readonly string[];
  /** Seconds since the epoch (the token's `exp`). */
  readonly expiresAt: number;
  readonly clientId: string;
  /** From the client the token was issued to (auth.clients); unknown clients are `mcp`. */
  readonly origin: Origin;
  readonly audience: readonly string[];
  /** Castellan's resource URL the audience was checked against (AuthInfo.resource). */
  readonly resource: string;
}

export interface TokenVerifier {
  /** Resolve to the verified token, or reject with InvalidTokenError / TokenVerifierUnavailableError. */
  verify(token: string): Promise<VerifiedToken>;
}

export interface TokenVerifierOptions {
  /** Group -> role mapping (config `roles`). */
  readonly roles: RoleMap;
  /** Client id -> origin (config `auth.clients`); default: only castellan-cli is person-driven. */
  readonly clients?: ClientOrigins | undefined;
  /** For tests: a fetch used for discovery, JWKS, introspection and userinfo. */
  readonly fetch?: typeof fetch | undefined;
  readonly now?: (() => Date) | undefined;
  /** Cache bound (default 1000 tokens). */
  readonly maxCachedTokens?: number | undefined;
}

/** What both token paths yield before groups become roles. */
type Claims = Readonly<Record<string, unknown>> & { readonly sub: string; readonly exp: number };

interface Issuer {
  readonly configuration: client.Configuration;
  readonly verifyJwt: JwtAccessTokenVerifier;
  readonly introspect: Introspector;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export function createTokenVerifier(oidc: OidcConfig, options: TokenVerifierOptions): TokenVerifier {
  const now = options.now ?? (() => new Date());
  const cache = new TokenCache<VerifiedToken>({
    ttlMs: oidc.cacheTtlSeconds * 1000,
    maxEntries: options.maxCachedTokens ?? 1000,
    now: () => now().getTime(),
  });
  // Discovery is lazy so Castellan can start while the IdP is still booting; a failed attempt
  // is forgotten so the next request tries again instead of failing forever.
  let issuer: Promise<Issuer> | undefined;
  const ready = (): Promise<Issuer> => {
    issuer ??= discover(oidc, options.fetch, now).catch((error: unknown) => {
      issuer = undefined;
      throw error;
    });
    return issuer;
  };

  return {
    async verify(token) {
      if (token.length === 0 || token.length > 8192 || /\s/.test(token)) {
        throw new InvalidTokenError('malformed', 'bearer token is empty, too long or contains whitespace');
      }
      const cached = cache.get(token);
      if (cached !== undefined) return cached;
      // A token that carries a JOSE header is checked as a JWT whatever its shape: an unsigned
      // `alg: none` token (empty signature) must be refused as such, not sent to introspection.
      const header = jwsHeaderOf(token);
      if (header !== undefined) checkJwsAlgorithm(header, oidc.algorithms);
      const { configuration, verifyJwt, introspect } = await ready();
      const useJwt = oidc.tokenFormat === 'jwt' || (oidc.tokenFormat === 'auto' && (header !== undefined || looksLikeJwt(token)));
      const claims: Claims = useJwt ? toClaims(await verifyJwt(token)) : await introspect(token);
      checkTokenLifetime(claims, Math.floor(now().getTime() / 1000), oidc.maxTokenLifetimeSeconds, oidc.clockSkewSeconds);
      const groups =
        oidc.groupsFrom === 'userinfo'
          ? await groupsFromUserinfo(configuration, token, claims.sub, oidc.groupsClaim)
          : stringList(claims[oidc.groupsClaim]);
      const verified: VerifiedToken = {
        identity: identityFor(claims.sub, displayNameOf(claims), groups, options.roles),
        scopes: typeof claims['scope'] === 'string' ? claims['scope'].split(' ').filter((s) => s !== '') : [],
        expiresAt: claims.exp,
        clientId: clientIdOf(claims) ?? 'unknown',
        origin: originForClient(clientIdOf(claims), options.clients ?? DEFAULT_CLIENT_ORIGINS),
        audience: stringList(claims['aud']),
        resource: oidc.resource,
      };
      cache.set(token, verified, claims.exp * 1000);
      return verified;
    },
  };
}

async function discover(oidc: OidcConfig, fetchImpl: typeof fetch | undefined, now: () => Date): Promise<Issuer> {
  const issuerUrl = new URL(oidc.issuer);
  const insecure = issuerUrl.protocol === 'http:';
  if (insecure && !LOOPBACK_HOSTS.has(issuerUrl.hostname) && !oidc.allowInsecureIssuer) {
    throw new TokenVerifierUnavailableError(
      `refusing plain-http issuer ${oidc.issuer}: use https, or set oidc.allow_insecure_issuer for a lab`,
    );
  }
  let configuration: client.Configuration;
  try {
    configuration = await client.discovery(
      issuerUrl,
      oidc.clientId,
      oidc.clientSecret,
      // Authelia authenticates introspection with client_secret_basic by default;
      // openid-client would otherwise send client_secret_post.
      client.ClientSecretBasic(oidc.clientSecret),
      {
        ...(insecure ? { execute: [client.allowInsecureRequests] } : {}),
        ...(fetchImpl ? { [client.customFetch]: fetchImpl } : {}),
      },
    );
  } catch (error) {
    throw new TokenVerifierUnavailableError(`OIDC discovery for ${oidc.issuer} failed`, { cause: error });
  }
  const metadata = configuration.serverMetadata();
  if (metadata.jwks_uri === undefined && oidc.tokenFormat !== 'opaque') {
    throw new TokenVerifierUnavailableError(`issuer ${oidc.issuer} publishes no jwks_uri, so JWT access tokens cannot be checked`);
  }
  return {
    configuration,
    verifyJwt: createJwtAccessTokenVerifier({
      issuer: metadata.issuer,
      jwksUri: metadata.jwks_uri ?? new URL('/jwks.json', issuerUrl).href,
      audience: oidc.resource,
      algorithms: oidc.algorithms,
      fetch: fetchImpl,
      now,
    }),
    introspect: createIntrospector({ configuration, issuer: metadata.issuer, audience: oidc.resource, now }),
  };
}

/** Userinfo with the same token: validation against our own issuer, not passthrough. */
async function groupsFromUserinfo(
  configuration: client.Configuration,
  token: string,
  subject: string,
  claim: string,
): Promise<string[]> {
  try {
    const info = await client.fetchUserInfo(configuration, token, subject);
    return stringList(info[claim]);
  } catch (error) {
    throw new TokenVerifierUnavailableError('fetching groups from the userinfo endpoint failed', { cause: error });
  }
}

function toClaims(payload: Readonly<Record<string, unknown>>): Claims {
  const { sub, exp } = payload;
  // jwtVerify's requiredClaims already guarantees these; re-checked for the type system.
  if (typeof sub !== 'string' || sub === '') throw new InvalidTokenError('no_subject', 'access token names no subject (sub)');
  if (typeof exp !== 'number') throw new InvalidTokenError('no_expiry', 'access token has no expiry (exp)');
  return { ...payload, sub, exp };
}

function stringList(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (!Array.isArray(value)) return [];
  return value.filter((item): item is string => typeof item === 'string');
}

function displayNameOf(claims: Claims): string {
  for (const key of ['name', 'preferred_username', 'username']) {
    const value = claims[key];
    if (typeof value === 'string' && value !== '') return value;
  }
  return claims.sub;
}

/**
 * The client a token was issued to: RFC 9068 `client_id`, else OIDC `azp`; RFC 7662
 * introspection answers carry `client_id` too. Undefined when the token names none.
 */
function clientIdOf(claims: Claims): string | undefined {
  for (const key of ['client_id', 'azp']) {
    const value = claims[key];
    if (typeof value === 'string' && value !== '') return value;
  }
  return undefined;
}
