// splitBySite: hosts per site in plan order. Its lookups became sets (it searched the plan's
// hosts per host); here it is compared with the former implementation, kept verbatim, on plans
// with subjects, on-failure steps, hosts in several sites and hosts no step names.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Host, Inventory } from '../../config/types.js';
import { siteOf } from '../../config/sites.js';
import { NO_SITE, splitBySite } from '../../queues/shards.js';
import type { Plan, PlanStep } from '../../tools/types.js';

function ownerSite(step: PlanStep, inventory: Inventory): string | undefined {
  if (step.subject === undefined) return undefined;
  const subject = inventory.hosts.get(step.subject);
  return subject ? (siteOf(subject) ?? NO_SITE) : undefined;
}

/** The implementation before, verbatim. */
function reference(plan: Plan, inventory: Inventory): Map<string, string[]> {
  const sites = new Map<string, Set<string>>();
  const add = (site: string, host: string): void => {
    let set = sites.get(site);
    if (!set) sites.set(site, (set = new Set()));
    set.add(host);
  };
  const siteOfName = (name: string): string => {
    const host = inventory.hosts.get(name);
    return host ? (siteOf(host) ?? NO_SITE) : NO_SITE;
  };
  const visit = (step: PlanStep): void => {
    const owner = ownerSite(step, inventory);
    for (const h of step.hosts) add(owner ?? siteOfName(h), h);
    for (const r of step.onFailure ?? []) visit(r);
  };
  for (const batch of plan.batches) for (const step of batch.steps) visit(step);
  for (const h of plan.hosts) if (![...sites.values()].some((s) => s.has(h))) add(siteOfName(h), h);
  const order = (set: Set<string>): string[] => [...plan.hosts.filter((h) => set.has(h)), ...[...set].filter((h) => !plan.hosts.includes(h))];
  return new Map([...sites].sort(([a], [b]) => a.localeCompare(b)).map(([site, set]) => [site, order(set)]));
}

const NAMES = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'cp1', 'ghost'];

function inventoryOf(siteByName: Record<string, string | undefined>): Inventory {
  const hosts = new Map<string, Host>();
  for (const name of NAMES.filter((n) => n !== 'ghost')) {
    const site = siteByName[name];
    hosts.set(name, { name, address: name, port: 22, user: undefined, privateKeyFile: undefined, groups: [], labels: {}, vars: site === undefined ? {} : { castellan_site: site } });
  }
  return { hosts } as unknown as Inventory;
}

const step = (id: string, hosts: string[], subject?: string, onFailure?: PlanStep[]): PlanStep =>
  ({ id, description: id, hosts, ...(subject !== undefined ? { subject } : {}), ...(onFailure ? { onFailure } : {}), action: { kind: 'exec', argv: ['true'] } }) as unknown as PlanStep;

describe('splitBySite', () => {
  it('splits as the former implementation did', () => {
    const name = fc.constantFrom(...NAMES);
    const site = fc.option(fc.constantFrom('rack-a', 'rack-b', 'rack-c'), { nil: undefined });
    const stepArb = fc.record({ hosts: fc.uniqueArray(name, { maxLength: 5 }), subject: fc.option(name, { nil: undefined }), rollback: fc.option(fc.uniqueArray(name, { maxLength: 3 }), { nil: undefined }) });
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...NAMES), site), fc.uniqueArray(name, { maxLength: 8 }), fc.array(fc.array(stepArb, { maxLength: 3 }), { maxLength: 3 }), (sites, planHosts, batches) => {
        const inventory = inventoryOf(sites);
        const plan = {
          tool: 't',
          hosts: planHosts,
          failureBudget: 0,
          batches: batches.map((steps, b) => ({ steps: steps.map((s, i) => step(`s${b}-${i}`, s.hosts, s.subject, s.rollback ? [step(`r${b}-${i}`, s.rollback)] : undefined)) })),
        } as unknown as Plan;
        expect([...splitBySite(plan, inventory)]).toEqual([...reference(plan, inventory)]);
      }),
      { numRuns: 2000 },
    );
  });

  it('1000 hosts over two sites: plan order kept in each, sites in name order', () => {
    const names = Array.from({ length: 1000 }, (_, i) => `node${String(i).padStart(4, '0')}`);
    const hosts = new Map(names.map((n, i) => [n, { name: n, vars: { castellan_site: i % 2 === 0 ? 'rack-b' : 'rack-a' }, labels: {} } as unknown as Host]));
    const reversed = [...names].reverse();
    const plan = { tool: 'ping', hosts: reversed, failureBudget: 0, batches: [{ steps: [step('ping', names)] }] } as unknown as Plan;
    const split = splitBySite(plan, { hosts } as unknown as Inventory);
    expect([...split.keys()]).toEqual(['rack-a', 'rack-b']);
    expect(split.get('rack-a')).toEqual(reversed.filter((_, i) => i % 2 === 0));
    expect(split.get('rack-b')).toEqual(reversed.filter((_, i) => i % 2 === 1));
  });
});
