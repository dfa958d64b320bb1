// Secrets must never reach logs, job data, audit records, Slack or MCP responses.
// Two layers: field names that always hold secrets are censored by path (pino redact),
// and every known secret *value* (from config: client secrets, Redis password, Slack
// secrets) is scrubbed from any string that leaves the process, wherever it appears.

export const REDACTED = '[REDACTED]';

/** Field names whose values are secret whatever they contain (matched case-insensitively). */
const SECRET_FIELD = /^(authorization|cookie|set-cookie|password|passphrase|secret|client_secret|token|access_token|refresh_token|id_token|private_key|signing_secret|bot_token)$/i;

export class Redactor {
  private readonly values: string[];

  constructor(secretValues: Iterable<string | undefined>) {
    // Longest first so a secret containing another is scrubbed whole. Very short values
    // would scrub innocent text and are refused by config validation; skip them here too.
    this.values = [...new Set([...secretValues].filter((v): v is string => typeof v === 'string' && v.length >= 6))].sort(
      (a, b) => b.length - a.length,
    );
  }

  get size(): number {
    return this.values.length;
  }

  /** Length of the longest secret: a streaming writer holds back this many characters minus one. */
  get longest(): number {
    return this.values[0]?.length ?? 0;
  }

  /** Replace every occurrence of a known secret value. */
  scrub(text: string): string {
    let out = text;
    for (const value of this.values) {
      if (out.includes(value)) out = out.split(value).join(REDACTED);
    }
    return out;
  }

  /** Deep copy with secret values scrubbed from strings and secret-named fields censored. */
  scrubDeep<T>(value: T): T {
    return this.walk(value) as T;
  }

  private walk(value: unknown): unknown {
    if (typeof value === 'string') return this.scrub(value);
    if (Array.isArray(value)) return value.map((v) => this.walk(v));
    if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, this.walk(v)]));
    if (value !== null && typeof value === 'object' && !(value instanceof Date) && !Buffer.isBuffer(value)) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        out[k] = SECRET_FIELD.test(k) && v !== undefined && v !== null && v !== '' ? REDACTED : this.walk(v);
      }
      return out;
    }
    return value;
  }
}
