// Pinned host keys, read from an OpenSSH known_hosts file. ssh2 has no known_hosts support and
// auto-accepts any key unless `hostVerifier` is set, so this module is what stands between
// Castellan and a man in the middle: every connection is checked against it, and a host that
// is unknown, changed or revoked is refused with both fingerprints in the message.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ServerHostKeyAlgorithm } from 'ssh2';

/** Key types ssh2 can verify and Castellan pins. DSA and security-key types are ignored. */
export const PINNABLE_KEY_TYPES = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
] as const;
export type PinnableKeyType = (typeof PINNABLE_KEY_TYPES)[number];

/** What a host is looked up by: its inventory name and the address actually dialled. */
export interface HostIdentity {
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

export interface KnownHostEntry {
  readonly marker: 'revoked' | 'cert-authority' | null;
  /** The host field as written (patterns or a `|1|salt|hash`). */
  readonly hostField: string;
  readonly keyType: PinnableKeyType;
  readonly key: Buffer;
  readonly source: string;
  readonly line: number;
}

export type HostKeyVerdict =
  | { readonly ok: true; readonly fingerprint: string }
  | { readonly ok: false; readonly reason: 'unknown' | 'changed' | 'revoked'; readonly message: string };

/** OpenSSH's fingerprint form: `SHA256:` + unpadded base64 of the SHA-256 of the key blob. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type written inside an SSH public key blob (its first length-prefixed string). */
export function keyTypeOf(blob: Buffer): string | null {
  if (blob.length < 4) return null;
  const length = blob.readUInt32BE(0);
  if (length === 0 || length > 64 || blob.length < 4 + length) return null;
  return blob.subarray(4, 4 + length).toString('latin1');
}

/** The names OpenSSH would look a host up by: `addr` on port 22, `[addr]:port` otherwise. */
export function lookupNames(host: HostIdentity): string[] {
  const names = [...new Set([host.address, host.name])];
  return host.port === 22 ? names : names.map((name) => `[${name}]:${host.port}`);
}

/** Algorithms ssh2 negotiates for a given pinned key type (rsa keys sign with sha2 first). */
function algorithmsFor(type: PinnableKeyType): ServerHostKeyAlgorithm[] {
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
}

const ALL_ALGORITHMS: readonly ServerHostKeyAlgorithm[] = PINNABLE_KEY_TYPES.flatMap(algorithmsFor);

function isPinnable(type: string): type is PinnableKeyType {
  return (PINNABLE_KEY_TYPES as readonly string[]).includes(type);
}

/** `*` and `?` wildcards as in ssh_config PATTERNS; everything else literal. */
function wildcardMatch(pattern: string, name: string): boolean {
  if (!/[*?]/.test(pattern)) return pattern === name;
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.');
  return new RegExp(`^${source}$`).test(name);
}

/** `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, written by `HashKnownHosts yes`. */
function hashedMatch(field: string, name: string): boolean {
  const parts = field.split('|');
  if (parts.length !== 4 || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2] ?? '', 'base64');
  const expected = Buffer.from(parts[3] ?? '', 'base64');
  const actual = createHmac('sha1', salt).update(name).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** True when the host field names one of `names` (a negated pattern that matches wins: no match). */
export function hostFieldMatches(field: string, names: readonly string[]): boolean {
  if (field.startsWith('|')) return names.some((name) => hashedMatch(field, name));
  let matched = false;
  for (const pattern of field.split(',')) {
    if (pattern.startsWith('!')) {
      if (names.some((name) => wildcardMatch(pattern.slice(1), name))) return false;
    } else if (names.some((name) => wildcardMatch(pattern, name))) {
      matched = true;
    }
  }
  return matched;
}

/** A host field made only of literal names (no wildcard, negation or hash) can be looked up by name. */
function literalNames(field: string): string[] | null {
  if (field.startsWith('|')) return null;
  const names = field.split(',');
  return names.every((name) => name !== '' && !/[*?!]/.test(name)) ? names : null;
}

export class KnownHosts {
  /**
   * Entry positions by literal host name, plus the entries that need pattern matching. With
   * one line per node, a linear scan per connection made a 1000-host fan-out O(N²) (~0.75 s
   * of CPU); file order is kept by merging positions.
   */
  private readonly byName = new Map<string, number[]>();
  private readonly patterned: number[] = [];
  private readonly fingerprints = new Map<string, readonly string[]>();

  private constructor(
    readonly entries: readonly KnownHostEntry[],
    /** Lines that were skipped, and why (unsupported types, @cert-authority, malformed). */
    readonly notes: readonly string[],
  ) {
    entries.forEach((entry, index) => {
      const names = literalNames(entry.hostField);
      if (!names) {
        this.patterned.push(index);
        return;
      }
      for (const name of new Set(names)) {
        const list = this.byName.get(name);
        if (list) list.push(index);
        else this.byName.set(name, [index]);
      }
    });
  }

  static parse(text: string, source = 'known_hosts'): KnownHosts {
    const entries: KnownHostEntry[] = [];
    const notes: string[] = [];
    text.split(/\r?\n/).forEach((raw, index) => {
      const line = index + 1;
      const trimmed = raw.trim();
      if (trimmed === '' || trimmed.startsWith('#')) return;
      const fields = trimmed.split(/\s+/);
      let marker: KnownHostEntry['marker'] = null;
      if (fields[0]?.startsWith('@')) {
        const word = fields.shift();
        if (word === '@revoked') marker = 'revoked';
        else if (word === '@cert-authority') marker = 'cert-authority';
        else {
          notes.push(`${source}:${line}: unknown marker ${word}, line ignored`);
          return;
        }
      }
      const [hostField, keyType, base64] = fields;
      if (!hostField || !keyType || !base64) {
        notes.push(`${source}:${line}: not "hosts keytype key", line ignored`);
        return;
      }
      if (marker === 'cert-authority') {
        // ssh2 cannot verify host certificates: a CA line must never make a host trusted.
        notes.push(`${source}:${line}: @cert-authority is not supported (ssh2 has no certificate support); ignored`);
        return;
      }
      if (!isPinnable(keyType)) {
        notes.push(`${source}:${line}: key type ${keyType} is not supported; line ignored`);
        return;
      }
      const key = Buffer.from(base64, 'base64');
      if (keyTypeOf(key) !== keyType) {
        notes.push(`${source}:${line}: key data does not hold a ${keyType} key; line ignored`);
        return;
      }
      entries.push({ marker, hostField, keyType, key, source, line });
    });
    return new KnownHosts(entries, notes);
  }

  static async load(file: string): Promise<KnownHosts> {
    return KnownHosts.parse(await readFile(file, 'utf8'), file);
  }

  /** Entries that apply to the host (pins and revocations). */
  entriesFor(host: HostIdentity): KnownHostEntry[] {
    const names = lookupNames(host);
    const positions = new Set<number>();
    for (const name of names) for (const index of this.byName.get(name) ?? []) positions.add(index);
    for (const index of this.patterned) {
      if (hostFieldMatches((this.entries[index] as KnownHostEntry).hostField, names)) positions.add(index);
    }
    return [...positions].sort((a, b) => a - b).map((index) => this.entries[index] as KnownHostEntry);
  }

  /** Pinned (not revoked) keys for the host, in file order. */
  pinnedKeys(host: HostIdentity): KnownHostEntry[] {
    return this.entriesFor(host).filter((entry) => entry.marker === null);
  }

  /**
   * The fingerprints of `pinnedKeys`, in file order. Kept per host: a plan's binding asks for
   * every host of the job twice a job (submit and the worker's re-check), and this object never
   * changes (an edited known_hosts is loaded as a new KnownHosts).
   */
  pinnedFingerprints(host: HostIdentity): readonly string[] {
    const key = `${host.port}\0${host.address}\0${host.name}`;
    let found = this.fingerprints.get(key);
    if (found === undefined) {
      found = this.pinnedKeys(host).map((entry) => fingerprint(entry.key));
      this.fingerprints.set(key, found);
    }
    return found;
  }

  /**
   * Accept only a key pinned for this host and not revoked. `@revoked` applies to a key
   * wherever it appears, whatever host it names (as in OpenSSH).
   */
  verify(host: HostIdentity, presented: Buffer): HostKeyVerdict {
    const shown = `${fingerprint(presented)} (${keyTypeOf(presented) ?? 'unknown type'})`;
    const where = `${host.name} (${host.address}:${host.port})`;
    if (this.entries.some((entry) => entry.marker === 'revoked' && entry.key.equals(presented))) {
      return { ok: false, reason: 'revoked', message: `host key of ${where} is revoked: presented ${shown}` };
    }
    const pins = this.pinnedKeys(host);
    if (pins.length === 0) {
      return {
        ok: false,
        reason: 'unknown',
        message: `host ${where} is not in known_hosts (presented ${shown}); record it explicitly with \`castellan hosts trust ${host.name}\``,
      };
    }
    if (pins.some((pin) => pin.key.equals(presented))) return { ok: true, fingerprint: fingerprint(presented) };
    const expected = pins.map((pin) => `${fingerprint(pin.key)} (${pin.keyType})`).join(', ');
    return {
      ok: false,
      reason: 'changed',
      message: `host key of ${where} changed: expected ${expected}, presented ${shown} (possible man in the middle; connection refused)`,
    };
  }

  /**
   * ssh2's `serverHostKey` list with this host's pinned types first. Without it a host pinned
   * by its rsa key would negotiate ed25519 and look changed.
   */
  preferredAlgorithms(host: HostIdentity): ServerHostKeyAlgorithm[] {
    const first = [...new Set(this.pinnedKeys(host).flatMap((pin) => algorithmsFor(pin.keyType)))];
    return [...first, ...ALL_ALGORITHMS.filter((algorithm) => !first.includes(algorithm))];
  }
}
