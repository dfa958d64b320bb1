// Opaque access tokens (Authelia's default `authelia_at_…`) asked about at the issuer's RFC 7662
// introspection endpoint, authenticated as Castellan's own confidential client. RFC 7662 §2.2
// answers an unknown, revoked or expired token with `200 {"active": false}`, so a 200 proves
// nothing by itself: `active`, `aud`, `exp` and `iss` are all checked here.
import * as client from 'openid-client';
import { InvalidTokenError, TokenVerifierUnavailableError } from './token-errors.js';

export type IntrospectionClaims = client.IntrospectionResponse;

export interface IntrospectionOptions {
  readonly configuration: client.Configuration;
  readonly issuer: string;
  /** Castellan's resource URL; the token's `aud` must include it. */
  readonly audience: string;
  readonly now?: (() => Date) | undefined;
}

export type Introspector = (token: string) => Promise<IntrospectionClaims & { exp: number; sub: string }>;

export function createIntrospector(options: IntrospectionOptions): Introspector {
  return async (token) => {
    let claims: IntrospectionClaims;
    try {
      claims = await client.tokenIntrospection(options.configuration, token, { token_type_hint: 'access_token' });
    } catch (error) {
      // A refusal of Castellan's own client credentials or an unreachable IdP is an outage,
      // not a bad token; the caller's token is not to blame.
      throw new TokenVerifierUnavailableError('token introspection at the identity provider failed', { cause: error });
    }
    return checkIntrospection(claims, options);
  };
}

/** The RFC 7662 checks, separate from the HTTP call so they can be tested cell by cell. */
export function checkIntrospection(
  claims: IntrospectionClaims,
  options: Pick<IntrospectionOptions, 'issuer' | 'audience' | 'now'>,
): IntrospectionClaims & { exp: number; sub: string } {
  if (claims.active !== true) {
    throw new InvalidTokenError('inactive', 'access token is not active (unknown, revoked or expired at the issuer)');
  }
  if (claims.token_type !== undefined && claims.token_type.toLowerCase() !== 'bearer') {
    throw new InvalidTokenError('not_access_token', `token is not a bearer access token (token_type ${claims.token_type})`);
  }
  if (claims.iss !== undefined && claims.iss !== options.issuer) {
    throw new InvalidTokenError('wrong_issuer', 'access token was issued by an unexpected issuer (iss)');
  }
  const audiences = claims.aud === undefined ? [] : Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes(options.audience)) {
    throw new InvalidTokenError('wrong_audience', 'access token was not issued for this resource (aud)');
  }
  const now = Math.floor((options.now?.() ?? new Date()).getTime() / 1000);
  if (typeof claims.exp !== 'number') throw new InvalidTokenError('no_expiry', 'access token has no expiry (exp)');
  if (claims.exp <= now) throw new InvalidTokenError('expired', 'access token has expired');
  if (typeof claims.nbf === 'number' && claims.nbf > now) {
    throw new InvalidTokenError('not_yet_valid', 'access token is not valid yet (nbf)');
  }
  if (typeof claims.sub !== 'string' || claims.sub === '') {
    throw new InvalidTokenError('no_subject', 'access token names no subject (sub)');
  }
  return { ...claims, exp: claims.exp, sub: claims.sub };
}
