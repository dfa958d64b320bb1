// Dashboard sign-in as an OIDC relying party (openid-client v6): authorization code + PKCE
// (S256) with state and nonce, as the dashboard's own confidential client; groups from the
// userinfo endpoint (Authelia's default place for them) or the ID token; RP-initiated logout.
// The IdP is discovered lazily and rediscovered after a failure, so Castellan can start while
// the IdP is still booting.
import * as client from 'openid-client';
import { CastellanError, errorMessage } from '../../config/errors.js';

export interface SignInSettings {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly scopes: readonly string[];
  /** Absolute URL of /ui/auth/callback. */
  readonly redirectUri: string;
  /** Absolute URL shown after the IdP has ended its session. */
  readonly postLogoutRedirectUri: string;
  readonly groupsClaim: string;
}

export interface SignedIn {
  readonly subject: string;
  readonly displayName: string;
  readonly groups: readonly string[];
  readonly idToken: string | undefined;
}

export interface StartedSignIn {
  readonly url: URL;
  readonly codeVerifier: string;
  readonly state: string;
  readonly nonce: string;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export class SignIn {
  private configuration: Promise<client.Configuration> | undefined;

  constructor(private readonly settings: SignInSettings) {}

  private discover(): Promise<client.Configuration> {
    this.configuration ??= (async () => {
      const issuer = new URL(this.settings.issuer);
      const insecure = issuer.protocol === 'http:';
      if (insecure && !LOOPBACK.has(issuer.hostname)) {
        throw new CastellanError('unavailable', `refusing plain-http issuer ${this.settings.issuer} for dashboard sign-in: use https`);
      }
      return client.discovery(
        issuer,
        this.settings.clientId,
        this.settings.clientSecret,
        // Authelia's default for confidential clients; openid-client would send client_secret_post.
        client.ClientSecretBasic(this.settings.clientSecret),
        insecure ? { execute: [client.allowInsecureRequests] } : undefined,
      );
    })().catch((error: unknown) => {
      this.configuration = undefined;
      throw new CastellanError('unavailable', `the sign-in provider ${this.settings.issuer} is not answering (${errorMessage(error)}); try again shortly`);
    });
    return this.configuration;
  }

  /** Where to send the browser, and the one-time values the callback must match. */
  async start(): Promise<StartedSignIn> {
    const configuration = await this.discover();
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(configuration, {
      redirect_uri: this.settings.redirectUri,
      scope: this.settings.scopes.join(' '),
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    return { url, codeVerifier, state, nonce };
  }

  /** Exchange the code on the callback URL; checks state, nonce, PKCE and the ID token. */
  async finish(callbackUrl: URL, expected: { codeVerifier: string; state: string; nonce: string }): Promise<SignedIn> {
    const configuration = await this.discover();
    const tokens = await client.authorizationCodeGrant(configuration, callbackUrl, {
      pkceCodeVerifier: expected.codeVerifier,
      expectedState: expected.state,
      expectedNonce: expected.nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    if (claims === undefined) throw new CastellanError('unauthenticated', 'the provider returned no ID token');
    // Authelia delivers `groups` at userinfo by default; prefer the ID token when it has them.
    let profile: Record<string, unknown> = { ...claims };
    if (!Array.isArray(claims[this.settings.groupsClaim])) {
      profile = { ...profile, ...(await client.fetchUserInfo(configuration, tokens.access_token, claims.sub)) };
    }
    const groups = profile[this.settings.groupsClaim];
    return {
      subject: claims.sub,
      displayName: firstString(profile, ['name', 'preferred_username']) ?? claims.sub,
      groups: Array.isArray(groups) ? groups.filter((g): g is string => typeof g === 'string') : [],
      idToken: tokens.id_token,
    };
  }

  /** The IdP's end-session URL (RP-initiated logout), or undefined when it has none. */
  async endSessionUrl(idToken: string | undefined): Promise<URL | undefined> {
    const configuration = await this.discover().catch(() => undefined);
    if (configuration?.serverMetadata().end_session_endpoint === undefined) return undefined;
    return client.buildEndSessionUrl(configuration, {
      post_logout_redirect_uri: this.settings.postLogoutRedirectUri,
      ...(idToken !== undefined ? { id_token_hint: idToken } : {}),
    });
  }

  /** The issuer's origin (the CSP lets forms redirect there for sign-out). */
  get issuerOrigin(): string {
    return new URL(this.settings.issuer).origin;
  }
}

function firstString(source: Record<string, unknown>, keys: readonly string[]): string | undefined {
  for (const key of keys) {
    const value = source[key];
    if (typeof value === 'string' && value !== '') return value;
  }
  return undefined;
}
