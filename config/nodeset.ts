// Node sets: the compact names operators use for many hosts at once, as ClusterShell writes
// them. `node[01-09,12]` is node01..node09 and node12; `node[1-3]-eth[0-1]` is the cartesian
// product; `node[1-9/2]` takes every second number. `foldNodeSet` is the inverse: any list of
// names folds to one canonical string, so output and approvals show `node[01-03,07]` instead
// of a wall of names, and the same hosts always print the same way.

/** Largest expansion accepted: a typo like `node[1-1000000]` must fail, not eat the server. */
export const DEFAULT_EXPAND_LIMIT = 100_000;

/** Numbers longer than this are kept literal (beyond exact float integers, and never a rack). */
const MAX_DIGITS = 15;
const NAME_CHAR = /[A-Za-z0-9._-]/;

export class NodeSetError extends Error {
  constructor(
    message: string,
    /** 0-based character offset in the pattern, when the problem is at one place. */
    readonly position?: number,
  ) {
    super(message);
    this.name = 'NodeSetError';
  }
}

export interface ExpandOptions {
  readonly limit?: number;
  /** The setting the limit comes from, named in the refusal (`limits.max_hosts`). */
  readonly limitName?: string | undefined;
}

/**
 * Every name a node set pattern denotes, in written order (leftmost bracket varies slowest),
 * without duplicates. Top-level commas separate patterns; commas inside brackets belong to the
 * range. Throws NodeSetError with the position of a syntax error, or when the expansion would
 * exceed `limit` names.
 */
export function expandNodeSet(pattern: string, options: ExpandOptions = {}): string[] {
  const limit = options.limit ?? DEFAULT_EXPAND_LIMIT;
  const named = options.limitName !== undefined ? ` (${options.limitName}); nothing was expanded` : '';
  const seen = new Set<string>();
  let total = 0;
  for (const { text, offset } of splitTopLevel(pattern)) {
    const parts = parseElement(text, offset, limit, named);
    const size = parts.reduce((n, part) => n * part.length, 1);
    total += size;
    if (total > limit) {
      throw new NodeSetError(`node set '${pattern}' expands to more than ${limit} names${named}`);
    }
    for (const name of cartesian(parts)) seen.add(name);
  }
  return [...seen];
}

/** True when the text uses bracket range syntax (and so must go through expandNodeSet). */
export function hasRange(text: string): boolean {
  return text.includes('[');
}

function splitTopLevel(pattern: string): Array<{ text: string; offset: number }> {
  const out: Array<{ text: string; offset: number }> = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '[') depth++;
    else if (ch === ']') depth--;
    else if ((ch === ',' && depth === 0) || ch === undefined) {
      if (i === start) throw new NodeSetError(`empty name in node set '${pattern}' at position ${i}`, i);
      out.push({ text: pattern.slice(start, i), offset: start });
      start = i + 1;
    }
  }
  return out;
}

/** One comma-free element -> its parts: literal strings (1 choice) and brackets (n choices). */
function parseElement(text: string, offset: number, limit: number, named = ''): string[][] {
  const parts: string[][] = [];
  let literal = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '[') {
      const close = text.indexOf(']', i);
      const nested = text.indexOf('[', i + 1);
      if (close < 0 || (nested >= 0 && nested < close)) {
        throw new NodeSetError(`unclosed '[' at position ${offset + i}`, offset + i);
      }
      if (literal !== '') parts.push([literal]);
      literal = '';
      parts.push(parseRangeList(text.slice(i + 1, close), offset + i + 1, limit, named));
      i = close + 1;
    } else if (ch === ']') {
      throw new NodeSetError(`unexpected ']' at position ${offset + i}`, offset + i);
    } else if (NAME_CHAR.test(ch)) {
      literal += ch;
      i++;
    } else {
      throw new NodeSetError(`character ${JSON.stringify(ch)} at position ${offset + i} is not allowed in a node name`, offset + i);
    }
  }
  if (literal !== '') parts.push([literal]);
  return parts;
}

/** `01-03,07,10-20/5` -> ['01','02','03','07','10','15','20'] (duplicates dropped). */
function parseRangeList(body: string, offset: number, limit: number, named = ''): string[] {
  if (body === '') throw new NodeSetError(`empty range '[]' at position ${offset - 1}`, offset - 1);
  const values = new Set<string>();
  let at = offset;
  for (const item of body.split(',')) {
    const match = /^(\d+)(?:-(\d+)(?:\/(\d+))?)?$/.exec(item);
    if (!match) throw new NodeSetError(`bad range '${item}' at position ${at} (expected N, N-M or N-M/step)`, at);
    const [, startText = '', endText, stepText] = match;
    if (startText.length > MAX_DIGITS || (endText?.length ?? 0) > MAX_DIGITS) {
      throw new NodeSetError(`range '${item}' at position ${at} has too many digits`, at);
    }
    const start = Number(startText);
    const end = endText === undefined ? start : Number(endText);
    const step = stepText === undefined ? 1 : Number(stepText);
    const width = isPadded(startText) ? startText.length : 1;
    if (endText !== undefined && isPadded(endText) && endText.length !== startText.length) {
      throw new NodeSetError(`range '${item}' at position ${at} mixes zero paddings (write both ends with the same width)`, at);
    }
    if (end < start) throw new NodeSetError(`range '${item}' at position ${at} goes backwards`, at);
    if (step < 1) throw new NodeSetError(`range '${item}' at position ${at} has a zero step`, at);
    if (Math.floor((end - start) / step) + 1 + values.size > limit) {
      throw new NodeSetError(`range '${item}' at position ${at} expands to more than ${limit} names${named}`, at);
    }
    for (let n = start; n <= end; n += step) values.add(pad(n, width));
    at += item.length + 1;
  }
  return [...values];
}

function* cartesian(parts: readonly string[][]): Generator<string> {
  const index = parts.map(() => 0);
  if (parts.some((p) => p.length === 0)) return;
  for (;;) {
    yield parts.map((p, k) => p[index[k]!]!).join('');
    let k = parts.length - 1;
    while (k >= 0 && ++index[k]! === parts[k]!.length) index[k--] = 0;
    if (k < 0) return;
  }
}

function isPadded(digits: string): boolean {
  return digits.length > 1 && digits.startsWith('0');
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

// ---------------------------------------------------------------------------------------------
// Folding

/**
 * The canonical node set for a list of names: duplicates dropped, order irrelevant. Names are
 * folded on their last number (`node01..node03,node07` -> `node[01-03,07]`), then names that
 * share the same folded tail are folded again on the number before it
 * (`rack1node[1-3],rack2node[1-3]` -> `rack[1-2]node[1-3]`). Zero padding is kept exactly:
 * `node7` and `node07` are different hosts and both survive. Names without digits stay as is.
 */
export function foldNodeSet(names: Iterable<string>): string {
  return foldPatterns([...new Set(names)]).join(',');
}

/** Natural order: `node2` before `node10`; for equal numbers, the shorter spelling first. */
export function compareNodeNames(a: string, b: string): number {
  const ca = a.match(/\d+|\D+/g) ?? [];
  const cb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    const x = ca[i]!;
    const y = cb[i]!;
    if (x === y) continue;
    const xd = /^\d/.test(x);
    const yd = /^\d/.test(y);
    if (xd && yd) {
      const xs = x.replace(/^0+(?=\d)/, '');
      const ys = y.replace(/^0+(?=\d)/, '');
      if (xs.length !== ys.length) return xs.length - ys.length;
      if (xs !== ys) return xs < ys ? -1 : 1;
      return x.length - y.length;
    }
    return x < y ? -1 : 1;
  }
  return ca.length - cb.length;
}

/** Names sorted in natural order (a new array). */
export function sortNodeNames(names: Iterable<string>): string[] {
  return [...names].sort(compareNodeNames);
}

interface Numbered {
  readonly digits: string;
  readonly value: number;
}

function foldPatterns(names: readonly string[]): string[] {
  const patterns: string[] = [];
  // prefix \0 suffix -> numbers seen with that prefix and suffix
  const byAffix = new Map<string, { prefix: string; suffix: string; numbers: Numbered[] }>();
  for (const name of names) {
    const match = /^(.*?)(\d+)(\D*)$/s.exec(name);
    if (!match || match[2]!.length > MAX_DIGITS) {
      patterns.push(name);
      continue;
    }
    const [, prefix = '', digits = '', suffix = ''] = match;
    const key = `${prefix}\0${suffix}`;
    let entry = byAffix.get(key);
    if (!entry) byAffix.set(key, (entry = { prefix, suffix, numbers: [] }));
    entry.numbers.push({ digits, value: Number(digits) });
  }
  // Second pass: prefixes whose folded tails are identical fold together on their own numbers.
  const byTail = new Map<string, string[]>();
  for (const { prefix, suffix, numbers } of byAffix.values()) {
    const runs = foldRuns(numbers);
    const single = runs.length === 1 && !runs[0]!.includes('-');
    const tail = (single ? runs[0]! : `[${runs.join(',')}]`) + suffix;
    const prefixes = byTail.get(tail);
    if (prefixes) prefixes.push(prefix);
    else byTail.set(tail, [prefix]);
  }
  for (const [tail, prefixes] of byTail) {
    const heads = prefixes.length === 1 ? prefixes : foldPatterns(prefixes);
    for (const head of heads) patterns.push(head + tail);
  }
  return patterns.sort(compareNodeNames);
}

interface Run {
  readonly start: Numbered;
  last: Numbered;
  /** Zero-padding width of the run (1 = unpadded), set by its first number. */
  readonly width: number;
}

/** Consecutive numbers with a compatible spelling become `a-b` runs, in numeric order. */
function foldRuns(numbers: Numbered[]): string[] {
  const unique = [...new Map(numbers.map((n) => [n.digits, n])).values()];
  unique.sort((a, b) => a.value - b.value || a.digits.length - b.digits.length);
  const runs: Run[] = [];
  // Open runs indexed by their last value, so each number finds its run in O(1).
  const openByLast = new Map<number, Run[]>();
  for (const n of unique) {
    const candidates = openByLast.get(n.value - 1) ?? [];
    const index = candidates.findIndex((run) => pad(n.value, run.width) === n.digits);
    let run: Run;
    if (index >= 0) {
      run = candidates[index]!;
      candidates.splice(index, 1);
      run.last = n;
    } else {
      run = { start: n, last: n, width: isPadded(n.digits) ? n.digits.length : 1 };
      runs.push(run);
    }
    const bucket = openByLast.get(n.value);
    if (bucket) bucket.push(run);
    else openByLast.set(n.value, [run]);
  }
  return runs.map((r) => (r.start === r.last ? r.start.digits : `${r.start.digits}-${r.last.digits}`));
}
