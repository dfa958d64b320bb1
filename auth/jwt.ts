// JWT access tokens (RFC 9068) checked locally against the issuer's published keys.
// `typ: at+jwt` is required (RFC 9068 §4) so an ID token, which is signed by the same keys,
// cannot be replayed as an access token; `aud` must name Castellan's resource (RFC 8707).
import { createRemoteJWKSet, customFetch, errors, jwtVerify, type JWTPayload } from 'jose';
import { InvalidTokenError, TokenVerifierUnavailableError } from './token-errors.js';

export interface JwtAccessTokenOptions {
  readonly issuer: string;
  readonly jwksUri: string;
  /** Castellan's resource URL. */
  readonly audience: string;
  readonly algorithms: readonly string[];
  readonly fetch?: typeof fetch | undefined;
  readonly now?: (() => Date) | undefined;
}

export type JwtAccessTokenVerifier = (token: string) => Promise<JWTPayload>;

/** A compact JWS has three base64url parts; anything else goes to introspection under `auto`. */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token);
}

/**
 * The JOSE header of anything shaped like a compact JWS, including an unsigned one with an empty
 * third part (`eyJhbGciOiJub25lIn0.e30.`); undefined when the first part is not a JSON object.
 */
export function jwsHeaderOf(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] === '' || !/^[A-Za-z0-9_-]+$/.test(parts[0] ?? '')) return undefined;
  try {
    const header: unknown = JSON.parse(Buffer.from(parts[0] ?? '', 'base64url').toString('utf8'));
    return typeof header === 'object' && header !== null && !Array.isArray(header) ? (header as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Refuse, before any key lookup or introspection, a token whose header names an algorithm
 * outside `algorithms`: `none` (unsigned), HS* (a shared secret an attacker could guess from the
 * public key) or anything unexpected. The reason names the algorithm and what is accepted.
 */
export function checkJwsAlgorithm(header: Record<string, unknown>, algorithms: readonly string[]): void {
  const alg = header['alg'];
  if (typeof alg !== 'string' || alg === '') {
    throw new InvalidTokenError('malformed', 'access token header names no signing algorithm (alg)');
  }
  if (alg.toLowerCase() === 'none') {
    throw new InvalidTokenError('algorithm_not_allowed', `access token is unsigned (alg none); only ${algorithms.join(', ')} signatures are accepted`);
  }
  if (!algorithms.includes(alg)) {
    throw new InvalidTokenError('algorithm_not_allowed', `access token is signed with ${alg.replace(/[^\x20-\x7e]/g, '?').slice(0, 20)}, which is not allowed; only ${algorithms.join(', ')} are accepted`);
  }
}

/**
 * The token's life as it claims it: not issued in the future (beyond `skewSeconds`), and not
 * expiring further ahead than `maxLifetimeSeconds` from now. Applies to JWT claims and to
 * introspection answers alike.
 */
export function checkTokenLifetime(claims: { readonly iat?: unknown; readonly exp?: unknown }, nowSeconds: number, maxLifetimeSeconds: number, skewSeconds: number): void {
  if (typeof claims.iat === 'number' && claims.iat > nowSeconds + skewSeconds) {
    throw new InvalidTokenError('issued_in_future', `access token claims to be issued in the future (iat ${claims.iat - nowSeconds} s ahead, more than the ${skewSeconds} s clock skew allowed)`);
  }
  if (typeof claims.exp === 'number' && claims.exp - nowSeconds > maxLifetimeSeconds + skewSeconds) {
    throw new InvalidTokenError('lifetime_too_long', `access token expires ${claims.exp - nowSeconds} s from now, more than the ${maxLifetimeSeconds} s allowed (auth.oidc.max_token_lifetime)`);
  }
}

export function createJwtAccessTokenVerifier(options: JwtAccessTokenOptions): JwtAccessTokenVerifier {
  const keys = createRemoteJWKSet(new URL(options.jwksUri), {
    ...(options.fetch ? { [customFetch]: options.fetch } : {}),
  });
  return async (token) => {
    const header = jwsHeaderOf(token);
    if (header === undefined) throw new InvalidTokenError('malformed', 'access token is not a well-formed signed JWT');
    checkJwsAlgorithm(header, options.algorithms);
    try {
      const { payload } = await jwtVerify(token, keys, {
        issuer: options.issuer,
        audience: options.audience,
        typ: 'at+jwt',
        algorithms: [...options.algorithms],
        requiredClaims: ['exp', 'sub', 'iat'],
        ...(options.now ? { currentDate: options.now() } : {}),
      });
      return payload;
    } catch (error) {
      throw explain(error);
    }
  };
}

/** Translate jose's errors into reasons an operator (and a client) can act on. */
function explain(error: unknown): Error {
  if (error instanceof errors.JWTExpired) return new InvalidTokenError('expired', 'access token has expired');
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'aud':
        return new InvalidTokenError('wrong_audience', 'access token was not issued for this resource (aud)');
      case 'iss':
        return new InvalidTokenError('wrong_issuer', 'access token was issued by an unexpected issuer (iss)');
      case 'typ':
        return new InvalidTokenError('not_access_token', 'token is not an access token (typ is not at+jwt); ID tokens are refused');
      case 'nbf':
        return new InvalidTokenError('not_yet_valid', 'access token is not valid yet (nbf)');
      case 'exp':
        return new InvalidTokenError('no_expiry', 'access token has no expiry (exp)');
      case 'sub':
        return new InvalidTokenError('no_subject', 'access token names no subject (sub)');
      default:
        return new InvalidTokenError('malformed', `access token claim ${error.claim} failed validation`);
    }
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return new InvalidTokenError('bad_signature', 'access token signature does not verify');
  }
  if (error instanceof errors.JWKSNoMatchingKey) {
    return new InvalidTokenError('unknown_key', 'access token is signed by a key the issuer does not publish');
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return new InvalidTokenError('algorithm_not_allowed', 'access token uses a signing algorithm that is not allowed');
  }
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid || error instanceof errors.JOSENotSupported) {
    return new InvalidTokenError('malformed', 'access token is not a well-formed signed JWT');
  }
  if (error instanceof InvalidTokenError) return error;
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid || error instanceof TypeError) {
    return new TokenVerifierUnavailableError('could not fetch the issuer signing keys (JWKS)', { cause: error });
  }
  return new TokenVerifierUnavailableError('JWT access token verification failed unexpectedly', { cause: error });
}
