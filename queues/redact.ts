// Secrets must never reach logs, job data, audit records, Slack or MCP responses.
// Two layers: field names that always hold secrets are censored by path (pino redact),
// and every known secret *value* (from config: client secrets, Redis password, Slack
// secrets, the metrics token, the SSH private keys Castellan logs in with), in its common
// encodings too (hex, base64), is scrubbed from any string that leaves the process.

export const REDACTED = '[REDACTED]';

/** Field names whose values are secret whatever they contain (matched case-insensitively). */
const SECRET_FIELD = /^(authorization|cookie|set-cookie|password|passphrase|secret|client_secret|token|access_token|refresh_token|id_token|private_key|signing_secret|bot_token)$/i;

/** Encoded forms shorter than this are not scrubbed on their own (they would hit innocent text). */
const MIN_ENCODED = 12;

/**
 * What to look for besides the value itself: each line of a multi-line secret (a PEM private
 * key is printed line by line as often as whole), its hex (lower and upper case), and its
 * base64 and base64url at each of the three byte alignments a secret can have inside a longer
 * encoded stream (`printf 'x%s' "$SECRET" | base64` still contains the middle of the secret's
 * encoding; only the first and last few characters depend on the neighbours).
 */
export function secretVariants(value: string): string[] {
  const out = new Set<string>([value]);
  const lines = value.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length >= 16 && !/^-----(BEGIN|END) /.test(l));
  if (lines.length > 1) for (const line of lines) out.add(line);
  const bytes = Buffer.from(value, 'utf8');
  const hex = bytes.toString('hex');
  for (const encoded of [hex, hex.toUpperCase()]) if (encoded.length >= MIN_ENCODED) out.add(encoded);
  for (const form of [value, `${value}\n`]) {
    const whole = Buffer.from(form, 'utf8');
    out.add(whole.toString('base64'));
    out.add(whole.toString('base64url'));
  }
  for (let shift = 0; shift < 3; shift++) {
    const part = bytes.subarray(shift);
    const aligned = part.subarray(0, part.length - (part.length % 3));
    if (aligned.length === 0) continue;
    for (const encoded of [aligned.toString('base64'), aligned.toString('base64url')]) if (encoded.length >= MIN_ENCODED) out.add(encoded);
  }
  return [...out].filter((v) => v.length >= 6);
}

export class Redactor {
  private values: string[];

  constructor(secretValues: Iterable<string | undefined>) {
    this.values = [];
    this.add(secretValues);
  }

  /**
   * Register more secrets (SSH private keys named in the inventory, read once it loads). Longest
   * first so a secret containing another is scrubbed whole. Very short values would scrub
   * innocent text and are refused by config validation; skip them here too.
   */
  add(secretValues: Iterable<string | undefined>): void {
    const fresh = [...secretValues].filter((v): v is string => typeof v === 'string' && v.length >= 6).flatMap(secretVariants);
    this.values = [...new Set([...this.values, ...fresh])].sort((a, b) => b.length - a.length);
  }

  get size(): number {
    return this.values.length;
  }

  /** Length of the longest secret: a streaming writer holds back this many characters minus one. */
  get longest(): number {
    return this.values[0]?.length ?? 0;
  }

  /**
   * How many characters at the end of `text` could still grow into a secret: the longest
   * suffix that is the beginning of a secret (or of an encoding of one) without being all of it.
   * A streaming writer holds back only these, so live output of a host does not wait for the
   * longest secret's length (a whole RSA key's hex is 6 KB) when nothing in it looks like a
   * secret starting. Any secret that is complete within `text` is scrubbed by `scrub`; any that
   * is not starts inside the suffix returned here.
   */
  pendingTail(text: string): number {
    let tail = 0;
    for (const value of this.values) {
      const first = value[0] as string;
      // Only suffixes longer than the current best and shorter than the value can matter.
      let at = text.indexOf(first, Math.max(0, text.length - value.length + 1));
      while (at !== -1 && text.length - at > tail) {
        if (value.startsWith(text.slice(at))) {
          tail = text.length - at;
          break;
        }
        at = text.indexOf(first, at + 1);
      }
    }
    return tail;
  }

  /** Replace every occurrence of a known secret value (or an encoding of one). */
  scrub(text: string): string {
    let out = text;
    for (const value of this.values) {
      // Longer than the text: it cannot be in it (host names, statuses: most strings scrubbed).
      if (value.length > out.length) continue;
      if (out.includes(value)) out = out.split(value).join(REDACTED);
    }
    return out;
  }

  /**
   * The value with secret values scrubbed from its strings and secret-named fields censored.
   * Copy on write: an object or array none of whose parts changed is returned as it is (the
   * common case: a 1000-host fan-out scrubs ~2000 events and audit results with nothing to
   * hide, and copying each was ~1.4 MB of garbage per fan-out). Callers treat the result as
   * read-only, as they do its input.
   */
  scrubDeep<T>(value: T): T {
    return this.walk(value) as T;
  }

  private walk(value: unknown): unknown {
    if (typeof value === 'string') return this.scrub(value);
    // Numbers, booleans, null, undefined: nothing to scrub, checked first (most fields of an
    // audit record or event are these or short strings).
    if (value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) {
      let copy: unknown[] | undefined;
      for (let i = 0; i < value.length; i++) {
        const v: unknown = value[i];
        const clean = this.walk(v);
        if (clean !== v && copy === undefined) copy = value.slice(0, i);
        copy?.push(clean);
      }
      return copy ?? value;
    }
    if (value instanceof Map) {
      const entries = [...value].map(([k, v]): [unknown, unknown] => [k, this.walk(v)]);
      return entries.every(([k, v]) => v === value.get(k)) ? value : new Map(entries);
    }
    if (value instanceof Date || Buffer.isBuffer(value)) return value;
    const keys = Object.keys(value);
    let out: Record<string, unknown> | undefined;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const v = (value as Record<string, unknown>)[k];
      const clean = v !== undefined && v !== null && v !== '' && isSecretField(k) ? REDACTED : this.walk(v);
      if (clean !== v && out === undefined) {
        out = {};
        for (let j = 0; j < i; j++) out[keys[j]!] = (value as Record<string, unknown>)[keys[j]!];
      }
      if (out !== undefined) out[k] = clean;
    }
    return out ?? value;
  }
}

/**
 * SECRET_FIELD's verdict per field name, kept: a 1000-host fan-out scrubs ~3000 records and
 * events made of the same dozen field names. Bounded, since names can come from input.
 */
const secretFieldVerdicts = new Map<string, boolean>();
const MAX_KEPT_VERDICTS = 4096;

function isSecretField(name: string): boolean {
  let verdict = secretFieldVerdicts.get(name);
  if (verdict === undefined) {
    verdict = SECRET_FIELD.test(name);
    if (secretFieldVerdicts.size < MAX_KEPT_VERDICTS) secretFieldVerdicts.set(name, verdict);
  }
  return verdict;
}
