// How a tool's structured result reads to a person: its rows, columns and one-line summary.
// Each tool declares this next to its output schema (the row and data types come from that
// schema), and src/present turns it into the result view every front end renders: hosts whose
// rendered rows are equal fold together under node-set notation, rows that differ make a
// table. Pure formatting of data the tool already produced: no I/O, no decisions.
import type { HostStatus } from './host-result.js';

/** How a cell should stand out: renderers map it to colour or emphasis. */
export type Tone = 'ok' | 'warn' | 'bad';
export const TONES = ['ok', 'warn', 'bad'] as const satisfies readonly Tone[];

/** A column whose cell is text computed from the row. Equal cells are what folding compares. */
export interface TextColumn<R> {
  /** Heading, lower case: `up`, `load`, `memory`. */
  readonly label: string;
  /** The cell ('' when not known for this row). */
  cell(row: R): string;
  readonly align?: 'left' | 'right' | undefined;
  tone?(row: R): Tone | undefined;
}

/**
 * A measurement that varies from host to host although the hosts are alike (ping latency):
 * it is left out when rows are compared, and a folded group shows it as `p50 12 ms  max 31 ms`
 * (one host: `12 ms`).
 */
export interface MeasureColumn<R> {
  readonly label: string;
  measure(row: R): number | undefined;
  format(value: number): string;
  readonly align?: 'left' | 'right' | undefined;
}

export type ViewColumn<R> = TextColumn<R> | MeasureColumn<R>;

export function isMeasure<R>(column: ViewColumn<R>): column is MeasureColumn<R> {
  return 'measure' in column;
}

/** One row: about a host (foldable with other hosts' equal rows), or a thing of its own. */
export interface ViewRow<R> {
  /**
   * The inventory host the row is about. Rows of different hosts whose cells are equal fold
   * together; a row without a host (a Kubernetes node, an inventory group) stands alone under
   * `name`.
   */
  readonly host?: string | undefined;
  /** First-column text of a row without a host. */
  readonly name?: string | undefined;
  /** The host did not answer as expected: the row says why instead of filling the columns. */
  readonly problem?: { readonly status: string; readonly text: string } | undefined;
  readonly row?: R | undefined;
}

export interface ResultViewDefinition<D = unknown, R = unknown> {
  /** Heading of the first column: `hosts` (the default), `node`, `group`, `member`. */
  readonly key?: string | undefined;
  /** Show the column headings (default true). Off when the cells say what they are (`ok`, `p50 12 ms`). */
  readonly header?: boolean | undefined;
  /**
   * The tool's answer is text best read as it came (log lines): the view gives the summary and
   * the renderers show the folded output under it instead of a table.
   */
  readonly output?: boolean | undefined;
  readonly columns: readonly ViewColumn<R>[];
  /** The rows, in the order they should read (hosts in plan order, then their items). */
  rows(data: D): readonly ViewRow<R>[];
  /** One line that says what the result means: `5 reachable; p50 12 ms, max 31 ms`. */
  summary(data: D): string;
}

// --- helpers shared by the per-host report tools (tools/reports.ts shapes) ------------------

/** An entry of a per-host report: `{ host, status, error?, ...parsed }`. */
export interface ReportEntry {
  readonly host: string;
  readonly status: HostStatus;
  readonly error?: string | undefined;
}

/**
 * Rows of a per-host report: `items` gives a host's rows (one, or one per filesystem,
 * certificate, peer…); a host that did not answer, or whose output did not parse, gets one
 * problem row with the reason.
 */
export function reportRows<E extends ReportEntry, R>(hosts: readonly E[], items: (entry: E) => readonly R[] | undefined): ViewRow<R>[] {
  return hosts.flatMap((entry): ViewRow<R>[] => {
    const rows = entry.status === 'ok' ? items(entry) : undefined;
    if (rows === undefined || (entry.error !== undefined && rows.length === 0)) {
      return [{ host: entry.host, problem: { status: entry.status === 'ok' ? 'unparsed' : entry.status, text: entry.error ?? entry.status } }];
    }
    return rows.map((row) => ({ host: entry.host, row }));
  });
}

/** Entries that answered with parsed data. */
export function answered<E extends ReportEntry>(hosts: readonly E[], has: (entry: E) => boolean): E[] {
  return hosts.filter((h) => h.status === 'ok' && has(h));
}

/** `3 of 5 hosts`: how many answered, when not all did; '' when all did. */
export function notAll(answeredCount: number, total: number): string {
  return answeredCount === total ? '' : `${answeredCount} of ${total} hosts answered; `;
}

/** `1.5 GiB`, `980 MiB`, `18G`-like sizes in binary units, as `df -h` and `free -h` print them. */
export function bytesText(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const shown = unit === 0 || value >= 100 ? Math.round(value).toString() : value.toFixed(1).replace(/\.0$/, '');
  return `${shown} ${units[unit]}`;
}

/** `41 %`. */
export function percentText(value: number): string {
  return `${Math.round(value)} %`;
}

/** `12 ms`, `1.2 s`. */
export function msText(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** `3d 4h`, `2h 5m`, `4m 10s`, `12s`: two units at most, for uptimes and handshake ages. */
export function ageText(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const days = Math.floor(s / 86_400);
  const hours = Math.floor((s % 86_400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  if (days > 0) return `${days}d ${hours}h`;
  if (hours > 0) return `${hours}h ${minutes}m`;
  if (minutes > 0) return `${minutes}m ${s % 60}s`;
  return `${s}s`;
}

/** The p-th percentile (nearest rank) of values; undefined for none. */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1];
}

export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

/** `df -h` sizes: `29G`, `5.2G`, `980M`, `0` (powers of 1024, one decimal below 10). */
export function dfSize(bytes: number): string {
  if (bytes <= 0) return '0';
  const units = ['B', 'K', 'M', 'G', 'T', 'P'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${bytes}B`;
  return value < 10 ? `${(Math.ceil(value * 10) / 10).toFixed(1)}${units[unit]}` : `${Math.ceil(value)}${units[unit]}`;
}

/** `3.1/7.6 GiB`: a part of a whole, both in the whole's unit. */
export function bytesOf(part: number, whole: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let unit = 0;
  let scale = 1;
  while (whole / scale >= 1024 && unit < units.length - 1) {
    scale *= 1024;
    unit += 1;
  }
  const fmt = (n: number): string => (unit === 0 ? String(Math.round(n)) : (n / scale).toFixed(1));
  return `${fmt(part)}/${fmt(whole)} ${units[unit]}`;
}

/** 'bad' at or above `bad`, 'warn' at or above `warn`, else nothing. */
export function toneAbove(value: number | null | undefined, warn: number, bad: number): Tone | undefined {
  if (value === null || value === undefined) return undefined;
  return value >= bad ? 'bad' : value >= warn ? 'warn' : undefined;
}

/** The entry with the largest `value`, for summaries ("fullest: / on node03 91 %"). */
export function largest<T>(items: readonly T[], value: (item: T) => number | null | undefined): T | undefined {
  let best: T | undefined;
  let bestValue = -Infinity;
  for (const item of items) {
    const v = value(item);
    if (v !== null && v !== undefined && v > bestValue) {
      best = item;
      bestValue = v;
    }
  }
  return best;
}
