// The set algebra of target expressions checked against a naive model: random inventories,
// random expressions, and a plain Set evaluation written the obvious way.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseInventory } from '../../config/inventory.js';
import { foldNodeSet } from '../../config/nodeset.js';
import { resolveTargets, TargetError } from '../../config/targets.js';
import type { Inventory } from '../../config/types.js';

/** A random inventory: hosts h0..hN, groups g0..gK with random members, random `tier` labels. */
const inventoryArb = fc
  .record({
    hostCount: fc.integer({ min: 1, max: 14 }),
    groups: fc.array(fc.array(fc.integer({ min: 0, max: 13 }), { maxLength: 8 }), { minLength: 1, maxLength: 5 }),
    tiers: fc.array(fc.constantFrom('a', 'b', 'c'), { minLength: 14, maxLength: 14 }),
  })
  .map(({ hostCount, groups, tiers }) => {
    const lines = ['all:', '  hosts:'];
    for (let i = 0; i < hostCount; i++) lines.push(`    h${i}: { castellan_labels: { tier: ${tiers[i]} } }`);
    lines.push('  children:');
    groups.forEach((members, g) => {
      lines.push(`    g${g}:`, '      hosts:');
      for (const m of new Set(members.filter((m) => m < hostCount))) lines.push(`        h${m}:`);
    });
    return parseInventory(lines.join('\n'), 'random.yaml');
  });

type Term = { kind: 'term'; text: string; hosts: (inv: Inventory) => Set<string> };
type Expr = Term | { kind: 'op'; op: ',' | '&' | '!'; left: Expr; right: Expr; paren: boolean };

function termArb(): fc.Arbitrary<Term> {
  return fc.oneof(
    fc.integer({ min: 0, max: 13 }).map((i): Term => ({ kind: 'term', text: `h${i}`, hosts: () => new Set([`h${i}`]) })),
    fc.integer({ min: 0, max: 4 }).map((g): Term => ({ kind: 'term', text: `g${g}`, hosts: (inv) => new Set(inv.groups.get(`g${g}`)) })),
    fc.integer({ min: 0, max: 4 }).map((g): Term => ({ kind: 'term', text: `@g${g}`, hosts: (inv) => new Set(inv.groups.get(`g${g}`)) })),
    fc.constantFrom('a', 'b', 'c').map(
      (t): Term => ({ kind: 'term', text: `tier=${t}`, hosts: (inv) => new Set([...inv.hosts.values()].filter((h) => h.labels.tier === t).map((h) => h.name)) }),
    ),
    fc.constant<Term>({ kind: 'term', text: 'all', hosts: (inv) => new Set(inv.hosts.keys()) }),
    fc
      .uniqueArray(fc.integer({ min: 0, max: 13 }), { minLength: 1, maxLength: 5 })
      .map((ids): Term => ({ kind: 'term', text: foldNodeSet(ids.map((i) => `h${i}`)), hosts: () => new Set(ids.map((i) => `h${i}`)) })),
  );
}

const exprArb: fc.Arbitrary<Expr> = fc.letrec<{ expr: Expr }>((tie) => ({
  expr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    termArb(),
    fc.record({ op: fc.constantFrom<',' | '&' | '!'>(',', '&', '!'), left: tie('expr'), right: tie('expr'), paren: fc.boolean() }).map((r): Expr => ({ kind: 'op', ...r })),
  ),
})).expr;

function render(e: Expr, spaced: boolean): string {
  if (e.kind === 'term') return e.text;
  // The right operand is always parenthesized when it is compound, so the string means the
  // tree regardless of left-to-right evaluation; `paren` adds optional extra parentheses.
  const right = e.right.kind === 'op' ? `(${render(e.right, spaced)})` : render(e.right, spaced);
  const body = `${render(e.left, spaced)}${spaced ? ` ${e.op} ` : e.op}${right}`;
  return e.paren ? `(${body})` : body;
}

/** The naive model: plain Sets, evaluated along the tree. Unknown names are absent. */
function evaluate(e: Expr, inv: Inventory): Set<string> {
  if (e.kind === 'term') return e.hosts(inv);
  const left = evaluate(e.left, inv);
  const right = evaluate(e.right, inv);
  if (e.op === ',') return new Set([...left, ...right]);
  if (e.op === '&') return new Set([...left].filter((h) => right.has(h)));
  return new Set([...left].filter((h) => !right.has(h)));
}

function knowsAllNames(e: Expr, inv: Inventory): boolean {
  if (e.kind === 'op') return knowsAllNames(e.left, inv) && knowsAllNames(e.right, inv);
  if (e.text.startsWith('tier=')) return [...inv.hosts.values()].some((h) => h.labels.tier === e.text.slice(5));
  if (e.text === 'all') return true;
  const name = e.text.replace(/^@/, '');
  if (e.text.includes('[') || /^h\d+(,h\d+)*$/.test(e.text)) return [...e.hosts(inv)].every((h) => inv.hosts.has(h));
  return inv.groups.has(name) || inv.hosts.has(name);
}

describe('target algebra (property)', () => {
  it('matches a naive Set model on random inventories and expressions', () => {
    fc.assert(
      fc.property(inventoryArb, exprArb, fc.boolean(), (inv, expr, spaced) => {
        const text = render(expr, spaced);
        if (text.length > 1024) return;
        const expected = evaluate(expr, inv);
        let actual: string[] | TargetError;
        try {
          actual = resolveTargets(text, inv);
        } catch (error) {
          if (!(error instanceof TargetError)) throw error;
          actual = error;
        }
        if (!knowsAllNames(expr, inv)) {
          expect(actual).toBeInstanceOf(TargetError);
        } else if (expected.size === 0) {
          expect(actual).toBeInstanceOf(TargetError);
          expect((actual as TargetError).message).toBe(`target expression '${text}' matches no hosts`);
        } else {
          const order = [...inv.hosts.keys()];
          expect(actual).toEqual(order.filter((h) => expected.has(h)));
        }
      }),
      { numRuns: 700 },
    );
  });

  it('evaluates a flat chain strictly left to right', () => {
    fc.assert(
      fc.property(inventoryArb, fc.array(fc.tuple(fc.constantFrom<',' | '&' | '!'>(',', '&', '!'), termArb()), { minLength: 1, maxLength: 6 }), termArb(), (inv, rest, first) => {
        const all: Term[] = [first, ...rest.map(([, t]) => t)];
        if (!all.every((t) => knowsAllNames(t, inv))) return;
        let acc = first.hosts(inv);
        for (const [op, term] of rest) {
          const right = term.hosts(inv);
          acc = op === ',' ? new Set([...acc, ...right]) : op === '&' ? new Set([...acc].filter((h) => right.has(h))) : new Set([...acc].filter((h) => !right.has(h)));
        }
        const text = first.text + rest.map(([op, t]) => op + t.text).join('');
        if (acc.size === 0) expect(() => resolveTargets(text, inv)).toThrow(/matches no hosts/);
        else expect(new Set(resolveTargets(text, inv))).toEqual(acc);
      }),
      { numRuns: 500 },
    );
  });
});
