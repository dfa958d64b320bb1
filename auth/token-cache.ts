// A short, bounded memory of tokens already verified, so a busy MCP session does not cost one
// introspection round trip per request. Keys are SHA-256 digests: the cache never holds a
// token, so a heap dump or a debug print of it leaks nothing usable. Entries live for the
// configured TTL or until the token's own `exp`, whichever comes first; a revocation at the
// IdP is therefore seen within the TTL at worst.
import { createHash } from 'node:crypto';

export interface TokenCacheOptions {
  readonly ttlMs: number;
  readonly maxEntries: number;
  readonly now: () => number;
}

export class TokenCache<T> {
  private readonly entries = new Map<string, { value: T; until: number }>();

  constructor(private readonly options: TokenCacheOptions) {}

  static keyFor(token: string): string {
    return createHash('sha256').update(token).digest('hex');
  }

  get(token: string): T | undefined {
    const key = TokenCache.keyFor(token);
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.until <= this.options.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Remember `value` until min(now + ttl, expiresAtMs). */
  set(token: string, value: T, expiresAtMs: number): void {
    if (this.options.ttlMs <= 0 || this.options.maxEntries <= 0) return;
    const until = Math.min(this.options.now() + this.options.ttlMs, expiresAtMs);
    if (until <= this.options.now()) return;
    const key = TokenCache.keyFor(token);
    this.entries.delete(key);
    // Map iteration order is insertion order, so the first key is the oldest entry.
    while (this.entries.size >= this.options.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
    this.entries.set(key, { value, until });
  }

  get size(): number {
    return this.entries.size;
  }

  /** Digests currently held (for tests asserting no raw token is stored). */
  keys(): string[] {
    return [...this.entries.keys()];
  }
}
