// Durations and sizes as operators write them in castellan.yaml: `250ms`, `15s`, `1h30m`, `7d`;
// `64KiB`, `1MiB`, `100000`. A plain integer is milliseconds (durations) or bytes (sizes), so a
// value copied from a metrics dashboard or an older config still means what it says.

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1_000,
  mb: 1_000_000,
  gb: 1_000_000_000,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
const SIZE = /^(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?$/i;

/** The wording used in every error about a duration, so messages stay consistent. */
export const DURATION_HINT = 'a duration like 250ms, 15s, 5m, 1h or 7d';
export const SIZE_HINT = 'a size like 64KiB, 1MiB or 100000 (bytes)';

/**
 * Milliseconds for `250ms`, `15s`, `5m`, `1h`, `7d`, compounds like `1h30m`, or a plain
 * non-negative integer (ms). Throws RangeError naming the expected form.
 */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value >= 0) return value;
    throw new RangeError(`expected ${DURATION_HINT}, found ${value}`);
  }
  const text = value.trim();
  if (/^\d+$/.test(text)) return parseDuration(Number(text));
  let total = 0;
  let offset = 0;
  DURATION_PART.lastIndex = 0;
  while (offset < text.length) {
    DURATION_PART.lastIndex = offset;
    const match = DURATION_PART.exec(text);
    if (!match) break;
    total += Number(match[1]) * (DURATION_UNITS[match[2] ?? ''] ?? Number.NaN);
    offset = DURATION_PART.lastIndex;
  }
  if (text === '' || offset !== text.length || !Number.isFinite(total)) {
    throw new RangeError(`expected ${DURATION_HINT}, found ${JSON.stringify(value)}`);
  }
  return Math.round(total);
}

/** Bytes for `64KiB`, `1MiB`, `10MB`, `512B` or a plain integer. Units are case-insensitive. */
export function parseSize(value: string | number): number {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value >= 0) return value;
    throw new RangeError(`expected ${SIZE_HINT}, found ${value}`);
  }
  const match = SIZE.exec(value.trim());
  const unit = SIZE_UNITS[(match?.[2] ?? 'b').toLowerCase()];
  const bytes = match && unit !== undefined ? Math.round(Number(match[1]) * unit) : Number.NaN;
  if (!Number.isSafeInteger(bytes)) {
    throw new RangeError(`expected ${SIZE_HINT}, found ${JSON.stringify(value)}`);
  }
  return bytes;
}
