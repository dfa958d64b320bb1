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

export function createJwtAccessTokenVerifier(options: JwtAccessTokenOptions): JwtAccessTokenVerifier {
  const keys = createRemoteJWKSet(new URL(options.jwksUri), {
    ...(options.fetch ? { [customFetch]: options.fetch } : {}),
  });
  return async (token) => {
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
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid || error instanceof TypeError) {
    return new TokenVerifierUnavailableError('could not fetch the issuer signing keys (JWKS)', { cause: error });
  }
  return new TokenVerifierUnavailableError('JWT access token verification failed unexpectedly', { cause: error });
}
