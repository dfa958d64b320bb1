// Sites: where a host sits (a rack, a building, a remote location), so that a worker close to
// it runs its commands (`castellan worker --site rack-a`). A host's site is its inventory var
// `castellan_site`, else its label `site`; a host without one belongs to no site and is served
// by workers started without --site. With no sites in the inventory, nothing changes.
import { CastellanError } from './errors.js';
import type { Host, Inventory } from './types.js';

/** Site names become part of queue names: keep them short and plain. */
export const SITE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

export function checkSiteName(site: string, where: string): string {
  if (!SITE_PATTERN.test(site)) {
    throw new CastellanError('invalid_input', `${where}: site '${site.slice(0, 80)}' must be 1-63 letters, digits, '_' or '-' (starting with a letter or digit)`);
  }
  return site;
}

/** The host's site, or undefined when it has none. */
export function siteOf(host: Host): string | undefined {
  const fromVar = host.vars.castellan_site;
  const raw = typeof fromVar === 'string' || typeof fromVar === 'number' ? String(fromVar) : host.labels.site;
  if (raw === undefined || raw === '') return undefined;
  return checkSiteName(raw, `host ${host.name}`);
}

/** Parse `--site rack-a,rack-b` (repeatable); an empty list means "no site": hosts without one. */
export function parseSites(values: readonly string[]): string[] {
  const sites = values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  return [...new Set(sites.map((s) => checkSiteName(s, '--site')))];
}

/** True when at least one host of the inventory names a site. */
export function hasSites(inventory: Inventory): boolean {
  for (const host of inventory.hosts.values()) if (siteOf(host) !== undefined) return true;
  return false;
}
