// Server-side dashboard sessions in Redis. The browser holds only a random id (HttpOnly
// cookie); Redis holds who signed in, their CSRF token and the ID token for RP-initiated
// logout, under the SHA-256 of the id so a Redis dump yields no usable cookie. A session
// ends after `idleMs` without use and `absoluteMs` after sign-in, whichever comes first.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface SessionData {
  readonly subject: string;
  readonly displayName: string;
  /** IdP groups at sign-in; roles are mapped from them on every request with the current config. */
  readonly groups: readonly string[];
  /** Synchronizer token every state-changing request must echo. */
  readonly csrf: string;
  /** For `id_token_hint` at RP-initiated logout; never shown or logged. */
  readonly idToken?: string | undefined;
  readonly createdAt: number;
  readonly lastSeenAt: number;
}

export interface PendingLogin {
  readonly codeVerifier: string;
  readonly state: string;
  readonly nonce: string;
  /** Dashboard path to return to after sign-in (validated to be a /ui path). */
  readonly returnTo: string;
}

export interface SessionTimeouts {
  readonly idleMs: number;
  readonly absoluteMs: number;
}

/** Only refresh lastSeenAt this often, so reading pages is not a Redis write per request. */
const TOUCH_EVERY_MS = 30_000;
const LOGIN_TTL_S = 600;

export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

function digest(id: string): string {
  return createHash('sha256').update(id).digest('base64url');
}

/** Constant-time comparison of two tokens (unequal lengths are simply unequal). */
export function sameToken(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export class SessionStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly timeouts: SessionTimeouts,
    private readonly now: () => number = Date.now,
  ) {}

  private key(id: string): string {
    return `${this.prefix}:ui:session:${digest(id)}`;
  }

  private loginKey(id: string): string {
    return `${this.prefix}:ui:login:${digest(id)}`;
  }

  private ttlMs(data: SessionData): number {
    return Math.min(this.timeouts.idleMs, data.createdAt + this.timeouts.absoluteMs - this.now());
  }

  /** Start a session for someone who just signed in; returns the cookie value. */
  async create(identity: Pick<SessionData, 'subject' | 'displayName' | 'groups' | 'idToken'>): Promise<{ id: string; data: SessionData }> {
    const id = randomToken();
    const at = this.now();
    const data: SessionData = { ...identity, groups: [...identity.groups], csrf: randomToken(), createdAt: at, lastSeenAt: at };
    await this.redis.set(this.key(id), JSON.stringify(data), 'PX', this.ttlMs(data));
    return { id, data };
  }

  /** The live session for a cookie value, refreshed for idle time; undefined when unknown or expired. */
  async get(id: string | undefined): Promise<SessionData | undefined> {
    if (id === undefined || id === '' || id.length > 128) return undefined;
    const raw = await this.redis.get(this.key(id));
    if (raw === null) return undefined;
    const data = JSON.parse(raw) as SessionData;
    const at = this.now();
    // Redis TTLs already enforce both limits; the checks below make a clock-skewed or
    // hand-edited record fail closed as well.
    if (at - data.lastSeenAt >= this.timeouts.idleMs || at - data.createdAt >= this.timeouts.absoluteMs) {
      await this.destroy(id);
      return undefined;
    }
    if (at - data.lastSeenAt >= TOUCH_EVERY_MS) {
      const touched: SessionData = { ...data, lastSeenAt: at };
      const ttl = this.ttlMs(touched);
      if (ttl <= 0) {
        await this.destroy(id);
        return undefined;
      }
      await this.redis.set(this.key(id), JSON.stringify(touched), 'PX', ttl, 'XX');
      return touched;
    }
    return data;
  }

  async destroy(id: string): Promise<void> {
    await this.redis.del(this.key(id));
  }

  /** Remember a sign-in in progress (PKCE verifier, state, nonce) under a one-time id. */
  async beginLogin(login: PendingLogin): Promise<string> {
    const id = randomToken();
    await this.redis.set(this.loginKey(id), JSON.stringify(login), 'EX', LOGIN_TTL_S);
    return id;
  }

  /** Take (and forget) a sign-in in progress: a callback can be used once. */
  async takeLogin(id: string | undefined): Promise<PendingLogin | undefined> {
    if (id === undefined || id === '' || id.length > 128) return undefined;
    const raw = await this.redis.getdel(this.loginKey(id));
    return raw === null ? undefined : (JSON.parse(raw) as PendingLogin);
  }
}
