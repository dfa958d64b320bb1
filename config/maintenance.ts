// Maintenance windows: when destructive work may touch a group of hosts. A window is a set
// of week days and a span of wall-clock hours in a time zone (`sat,sun` `22:00-04:00`
// `Europe/Berlin`); a span that crosses midnight belongs to the day it opens on. Wall-clock
// arithmetic across DST changes is luxon's (a well-kept library), not ours. Pure: every
// function takes the instant it judges.
import { DateTime, IANAZone } from 'luxon';

const DAY_NAMES = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

export interface MaintenanceWindow {
  readonly name: string;
  /** Target expression (groups, labels, hosts) the window governs. */
  readonly targets: string;
  /** ISO week days (1 = Monday … 7 = Sunday) the window opens on. */
  readonly days: readonly number[];
  /** Minutes after local midnight: opens at `start`, closes at `end` (next day when end <= start). */
  readonly start: number;
  readonly end: number;
  readonly timeZone: string;
  /** As the operator wrote it, for messages: `sat,sun 22:00-04:00 Europe/Berlin`. */
  readonly text: string;
}

/** `mon-fri`, `sat,sun`, `*` → ISO week days. Throws with the offending part. */
export function parseDays(text: string): number[] {
  const t = text.trim().toLowerCase();
  if (t === '*' || t === 'daily') return [1, 2, 3, 4, 5, 6, 7];
  const days = new Set<number>();
  for (const part of t.split(',').map((p) => p.trim())) {
    const [from = '', to] = part.split('-').map((p) => p.trim());
    const a = DAY_NAMES.indexOf(from as (typeof DAY_NAMES)[number]);
    const b = to === undefined ? a : DAY_NAMES.indexOf(to as (typeof DAY_NAMES)[number]);
    if (a < 0 || b < 0) throw new Error(`'${part}' is not a day or day range (use mon…sun, e.g. mon-fri or sat,sun)`);
    // A range may wrap the week end: fri-mon.
    for (let d = a; ; d = (d + 1) % 7) {
      days.add(d + 1);
      if (d === b) break;
    }
  }
  return [...days].sort();
}

/** `22:00-04:00` → minutes after midnight; `00:00-24:00` is the whole day. */
export function parseHours(text: string): { start: number; end: number } {
  const m = /^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$/.exec(text);
  if (!m) throw new Error(`'${text}' is not an hour span like 22:00-04:00`);
  const [sh, sm, eh, em] = m.slice(1).map(Number) as [number, number, number, number];
  const start = sh * 60 + sm;
  const end = eh * 60 + em;
  if (sh > 23 || sm > 59 || eh > 24 || em > 59 || end > 24 * 60) throw new Error(`'${text}' has an hour or minute out of range`);
  if (start === end) throw new Error(`'${text}' is empty: start and end are the same`);
  return { start, end };
}

export function isTimeZone(zone: string): boolean {
  return IANAZone.isValidZone(zone);
}

/** Is the window open at `atMs`? */
export function isOpen(w: MaintenanceWindow, atMs: number): boolean {
  const local = DateTime.fromMillis(atMs, { zone: w.timeZone });
  const minute = local.hour * 60 + local.minute;
  const wraps = w.end <= w.start;
  if (w.days.includes(local.weekday) && minute >= w.start && (wraps || minute < w.end)) return true;
  // The tail of a span that opened yesterday and crosses midnight.
  const yesterday = local.minus({ days: 1 }).weekday;
  return wraps && w.days.includes(yesterday) && minute < w.end;
}

/** Instants (ms) the window opens within [fromMs, fromMs + days), in order. */
export function openings(w: MaintenanceWindow, fromMs: number, days = 8): number[] {
  const out: number[] = [];
  const first = DateTime.fromMillis(fromMs, { zone: w.timeZone }).startOf('day').minus({ days: 1 });
  for (let i = 0; i <= days + 1; i++) {
    const day = first.plus({ days: i });
    if (!w.days.includes(day.weekday)) continue;
    const at = day.set({ hour: Math.floor(w.start / 60), minute: w.start % 60 }).toMillis();
    if (at >= fromMs && at < fromMs + days * 86_400_000) out.push(at);
  }
  return out;
}

/** `Sat 5 Dec 22:00 CET`: how an opening reads in the window's own zone. */
export function formatOpening(w: MaintenanceWindow, atMs: number): string {
  return DateTime.fromMillis(atMs, { zone: w.timeZone }).toFormat('ccc d LLL HH:mm ZZZZ');
}

const hhmm = (m: number): string => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;

/** `sat,sun 22:00-04:00 Europe/Berlin`, `every day 02:00-05:00 UTC`. */
export function describeWindow(days: readonly number[], start: number, end: number, timeZone: string): string {
  const names = days.length === 7 ? 'every day' : days.map((d) => DAY_NAMES[d - 1]).join(',');
  return `${names} ${hhmm(start)}-${hhmm(end)} ${timeZone}`;
}
