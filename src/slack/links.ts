// Slack user → OIDC identity. A Slack user ID says who clicked in Slack, not who they are at
// the IdP, so nobody acts from Slack before linking: Castellan's link page runs the OIDC
// authorization code flow with PKCE (openid-client) and stores (team, user) → subject, name,
// groups in Redis. Groups are re-read from the IdP (refresh token → userinfo) at most every
// `slack.link_ttl`; a refresh the IdP refuses (revoked, user removed) deletes the link and the
// person is asked to link again. Bound by the immutable Slack user ID, never by name or email.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import * as client from 'openid-client';
import { identityFor } from '../../auth/roles.js';
import type { RoleMap } from '../../auth/settings.js';
import type { Requester } from '../../auth/types.js';
import { errorMessage } from '../../config/errors.js';
import type { Logger } from '../log.js';
import type { SlackKeys } from './keys.js';

/** What a link remembers. The refresh token stays in Redis only; it is never logged or shown. */
export interface StoredLink {
  readonly subject: string;
  readonly displayName: string;
  readonly groups: readonly string[];
  readonly linkedAt: number;
  /** When groups were last read from the IdP. */
  readonly checkedAt: number;
  readonly refreshToken?: string | undefined;
}

/** A link flow waiting for its callback: single use, bound to the Slack user who asked. */
export interface PendingLink {
  readonly team: string;
  readonly user: string;
  readonly channel: string | undefined;
  /** Set when the browser opens the link page: the PKCE verifier and the browser binding. */
  readonly codeVerifier?: string;
  readonly browserNonce?: string;
}

export type LinkLookup =
  | { readonly kind: 'linked'; readonly requester: Requester; readonly link: StoredLink }
  | { readonly kind: 'unlinked' }
  | { readonly kind: 'expired'; readonly reason: string };

/** How long a link lives in Redis without use: refreshes extend it; idle links fade. */
const LINK_RETENTION_S = 90 * 24 * 3600;
export const LINK_STATE_TTL_S = 10 * 60;

export class SlackLinks {
  private oidc: Promise<client.Configuration> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: SlackKeys,
    private readonly options: {
      readonly roles: RoleMap;
      readonly ttlMs: number;
      readonly issuer: string | undefined;
      readonly clientId: string | undefined;
      readonly clientSecret: string | undefined;
      readonly scopes: readonly string[];
      readonly groupsClaim?: string;
      readonly logger: Logger;
    },
  ) {}

  get configured(): boolean {
    return this.options.issuer !== undefined && this.options.clientId !== undefined;
  }

  async get(team: string, user: string): Promise<StoredLink | undefined> {
    const raw = await this.redis.get(this.keys.link(team, user));
    return raw === null ? undefined : (JSON.parse(raw) as StoredLink);
  }

  async store(team: string, user: string, link: StoredLink): Promise<void> {
    await this.redis.set(this.keys.link(team, user), JSON.stringify(link), 'EX', LINK_RETENTION_S);
  }

  async remove(team: string, user: string): Promise<boolean> {
    return (await this.redis.del(this.keys.link(team, user))) > 0;
  }

  /**
   * The Slack user's identity as a Requester with origin `slack`, refreshing groups from the
   * IdP when the link is older than link_ttl.
   */
  async lookup(team: string, user: string, now = Date.now()): Promise<LinkLookup> {
    let link = await this.get(team, user);
    if (!link) return { kind: 'unlinked' };
    if (now - link.checkedAt >= this.options.ttlMs) {
      const refreshed = await this.refresh(team, user, link, now);
      if (!refreshed.ok) return { kind: 'expired', reason: refreshed.reason };
      link = refreshed.link;
    }
    const identity = identityFor(link.subject, link.displayName, link.groups, this.options.roles);
    return { kind: 'linked', link, requester: { ...identity, origin: 'slack' } };
  }

  private async refresh(team: string, user: string, link: StoredLink, now: number): Promise<{ ok: true; link: StoredLink } | { ok: false; reason: string }> {
    if (link.refreshToken === undefined || !this.configured) {
      await this.remove(team, user);
      return { ok: false, reason: 'your link to Castellan is older than slack.link_ttl and cannot be refreshed' };
    }
    try {
      const config = await this.configuration();
      const tokens = await client.refreshTokenGrant(config, link.refreshToken);
      const info = await client.fetchUserInfo(config, tokens.access_token, link.subject);
      const next: StoredLink = {
        ...link,
        displayName: displayNameOf(info, link.displayName),
        groups: stringList(info[this.options.groupsClaim ?? 'groups']),
        checkedAt: now,
        refreshToken: tokens.refresh_token ?? link.refreshToken,
      };
      await this.store(team, user, next);
      return { ok: true, link: next };
    } catch (error) {
      // The IdP said no (revoked, user disabled) or cannot be asked: either way the groups we
      // hold are stale, and acting on stale groups is what the TTL exists to prevent.
      this.options.logger.info({ team, user, err: errorMessage(error) }, 'Slack link refresh failed; the link was removed');
      await this.remove(team, user);
      return { ok: false, reason: 'your link to Castellan expired and the identity provider did not renew it' };
    }
  }

  /** Start a link flow for (team, user): returns the opaque state that goes into the link URL. */
  async begin(team: string, user: string, channel: string | undefined): Promise<string> {
    const state = randomBytes(24).toString('base64url');
    const pending: PendingLink = { team, user, channel };
    await this.redis.set(this.keys.linkState(state), JSON.stringify(pending), 'EX', LINK_STATE_TTL_S);
    return state;
  }

  /**
   * The browser opened the link page: bind the pending flow to this browser (a nonce kept in
   * an HttpOnly cookie) and return the IdP authorization URL. A state can be opened once.
   */
  async authorizationUrl(state: string, redirectUri: string): Promise<{ url: URL; browserNonce: string } | undefined> {
    const key = this.keys.linkState(state);
    const raw = await this.redis.get(key);
    if (raw === null) return undefined;
    const pending = JSON.parse(raw) as PendingLink;
    if (pending.codeVerifier !== undefined) return undefined;
    const codeVerifier = client.randomPKCECodeVerifier();
    const browserNonce = randomBytes(18).toString('base64url');
    // Only the first opener wins: a link URL seen by someone else cannot be replayed.
    const ttl = await this.redis.ttl(key);
    const claimed = await this.redis.eval(
      "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 end return 0",
      1,
      key,
      raw,
      JSON.stringify({ ...pending, codeVerifier, browserNonce }),
      String(Math.max(ttl, 1)),
    );
    if (claimed !== 1) return undefined;
    const config = await this.configuration();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: this.options.scopes.join(' '),
      state,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      // offline_access (a refresh token, to re-read groups per link_ttl) needs consent.
      prompt: 'consent',
    });
    return { url, browserNonce };
  }

  /**
   * The IdP redirected back: consume the state (single use), check it belongs to this browser,
   * exchange the code with the PKCE verifier, read the person's claims and store the link.
   */
  async complete(callbackUrl: URL, browserNonce: string | undefined, redirectUri: string, now = Date.now()): Promise<{ pending: PendingLink; link: StoredLink }> {
    const state = callbackUrl.searchParams.get('state') ?? '';
    const raw = await this.redis.getdel(this.keys.linkState(state));
    if (raw === null) throw new LinkError('this link request is unknown, already used or expired; run /castellan link again');
    const pending = JSON.parse(raw) as PendingLink;
    if (pending.codeVerifier === undefined || pending.browserNonce === undefined || browserNonce !== pending.browserNonce) {
      throw new LinkError('this sign-in did not start in this browser; run /castellan link again and open the link here');
    }
    const error = callbackUrl.searchParams.get('error');
    if (error !== null) throw new LinkError(`the identity provider refused: ${error}`);
    const config = await this.configuration();
    // openid-client checks the redirect URI against the current URL: give it the public one.
    const current = new URL(redirectUri);
    current.search = callbackUrl.search;
    const tokens = await client.authorizationCodeGrant(config, current, { pkceCodeVerifier: pending.codeVerifier, expectedState: state, idTokenExpected: true });
    const claims = tokens.claims();
    if (!claims) throw new LinkError('the identity provider returned no ID token');
    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    const claim = this.options.groupsClaim ?? 'groups';
    const link: StoredLink = {
      subject: claims.sub,
      displayName: displayNameOf({ ...claims, ...info }, claims.sub),
      groups: stringList(info[claim] ?? claims[claim]),
      linkedAt: now,
      checkedAt: now,
      refreshToken: tokens.refresh_token,
    };
    await this.store(pending.team, pending.user, link);
    return { pending, link };
  }

  private configuration(): Promise<client.Configuration> {
    const { issuer, clientId, clientSecret } = this.options;
    if (issuer === undefined || clientId === undefined) return Promise.reject(new LinkError('auth.oidc is not configured, so Slack users cannot be linked'));
    this.oidc ??= (async () => {
      const url = new URL(issuer);
      const insecure = url.protocol === 'http:';
      return client.discovery(url, clientId, clientSecret, clientSecret !== undefined ? client.ClientSecretBasic(clientSecret) : client.None(), insecure ? { execute: [client.allowInsecureRequests] } : {});
    })();
    this.oidc.catch(() => {
      this.oidc = undefined; // try discovery again next time
    });
    return this.oidc;
  }
}

export class LinkError extends Error {}

function stringList(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return typeof value === 'string' ? [value] : [];
}

function displayNameOf(claims: Readonly<Record<string, unknown>>, fallback: string): string {
  for (const key of ['name', 'preferred_username', 'email']) {
    const value = claims[key];
    if (typeof value === 'string' && value.trim() !== '') return value;
  }
  return fallback;
}
