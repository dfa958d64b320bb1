// Whether a destructive job may run now, given the maintenance windows that govern its hosts.
// A host governed by one or more windows may be touched while any of them is open; a job may
// run when every governed host it touches is in an open window at the same moment. Hosts no
// window names may be touched any time. Pure: the caller passes the instant and the resolver.
import { formatOpening, isOpen, openings, type MaintenanceWindow } from '../config/maintenance.js';

export type WindowDecision =
  | { readonly kind: 'any_time' }
  | { readonly kind: 'open'; readonly windows: readonly string[] }
  | {
      readonly kind: 'closed';
      readonly windows: readonly string[];
      /** The next instant (ms) all of them are open together; absent when none within a week. */
      readonly opensAt?: number | undefined;
      /** For people: which hosts, which windows, when the next one opens. */
      readonly detail: string;
    };

export interface MaintenanceSettings {
  readonly windows: readonly MaintenanceWindow[];
  readonly outside: 'wait' | 'refuse';
  /** A waiting job looks again at least this often (the config or the clock may have changed). */
  readonly recheckMs: number;
}

const SEARCH_DAYS = 8;

export function windowDecision(
  hosts: readonly string[],
  windows: readonly MaintenanceWindow[],
  resolve: (expression: string) => readonly string[],
  nowMs: number,
): WindowDecision {
  if (windows.length === 0 || hosts.length === 0) return { kind: 'any_time' };
  const governing = new Map<string, MaintenanceWindow[]>();
  for (const w of windows) {
    let members: readonly string[];
    try {
      members = resolve(w.targets);
    } catch (err) {
      // A window that cannot be read must not silently allow destructive work: closed.
      return { kind: 'closed', windows: [w.name], detail: `maintenance window '${w.name}' names targets that do not resolve (${err instanceof Error ? err.message : String(err)}); fix policy.maintenance_windows` };
    }
    for (const h of hosts) if (members.includes(h)) governing.set(h, [...(governing.get(h) ?? []), w]);
  }
  if (governing.size === 0) return { kind: 'any_time' };
  const involved = [...new Set([...governing.values()].flat())];
  const names = involved.map((w) => w.name);
  const allOpen = (at: number): boolean => [...governing.values()].every((ws) => ws.some((w) => isOpen(w, at)));
  if (allOpen(nowMs)) return { kind: 'open', windows: names };

  const candidates = [...new Set(involved.flatMap((w) => openings(w, nowMs, SEARCH_DAYS)))].sort((a, b) => a - b);
  const opensAt = candidates.find(allOpen);
  const closedHosts = [...governing.entries()].filter(([, ws]) => !ws.some((w) => isOpen(w, nowMs))).map(([h]) => h);
  const which = involved.map((w) => `'${w.name}' (${w.text})`).join(', ');
  const shown = closedHosts.length > 6 ? `${closedHosts.slice(0, 6).join(', ')} and ${closedHosts.length - 6} more` : closedHosts.join(', ');
  const opener = opensAt === undefined ? undefined : involved.find((w) => isOpen(w, opensAt) && openings(w, opensAt, 1)[0] === opensAt) ?? involved[0];
  const next = opensAt === undefined || !opener ? `no time within ${SEARCH_DAYS} days when they are all open` : `next opening ${formatOpening(opener, opensAt)}`;
  return { kind: 'closed', windows: names, opensAt, detail: `${shown} may only be changed in maintenance window ${which}; ${next}` };
}
