// Why a bearer token was refused. Messages name the failed check (RFC 6750 §3.1
// `invalid_token` descriptions) and never contain the token or any of its claims' secrets.

export const INVALID_TOKEN_REASONS = [
  'malformed',
  'expired',
  'not_yet_valid',
  'wrong_audience',
  'wrong_issuer',
  'inactive',
  'bad_signature',
  'unknown_key',
  'algorithm_not_allowed',
  'not_access_token',
  'no_expiry',
  'no_subject',
  'issued_in_future',
  'lifetime_too_long',
] as const;
export type InvalidTokenReason = (typeof INVALID_TOKEN_REASONS)[number];

/** The token is not acceptable: answer 401 invalid_token. */
export class InvalidTokenError extends Error {
  constructor(
    readonly reason: InvalidTokenReason,
    message: string,
  ) {
    super(message);
    this.name = 'InvalidTokenError';
  }
}

/**
 * The identity provider could not be asked (down, misconfigured, refused Castellan's client
 * credentials). Not the caller's fault: answer 503, not 401, so clients do not re-login in a loop.
 */
export class TokenVerifierUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TokenVerifierUnavailableError';
  }
}
