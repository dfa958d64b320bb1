// Properties of node sets over generated names: folding loses nothing, adds nothing, and is
// canonical (the same set always folds to the same text, whatever the order or duplicates).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expandNodeSet, foldNodeSet } from '../../config/nodeset.js';

const prefix = fc.constantFrom('', 'node', 'node', 'n', 'rack', 'gpu-', 'x_');
// Mostly small, dense numbers in several paddings, so runs meet across widths (9, 09, 010, 10).
const digits = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 24 }), fc.integer({ min: 1, max: 3 })).map(([n, width]) => String(n).padStart(width, '0')),
  fc.integer({ min: 90, max: 110 }).map(String),
  fc.integer({ min: 0, max: 1200 }).map((n) => String(n).padStart(3, '0')),
);
const segment = fc.tuple(prefix, digits).map(([p, d]) => p + d);
const name = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(segment, fc.constantFrom('', '-eth', 'p', '.lab')).map(([s, tail]) => s + tail) },
  { weight: 3, arbitrary: fc.tuple(segment, fc.constantFrom('-eth', 'n', 'c'), digits).map(([s, mid, d]) => s + mid + d) },
  { weight: 1, arbitrary: fc.constantFrom('gateway', 'bastion', 'db-primary', 'a') },
);
const names = fc.array(name, { minLength: 0, maxLength: 60 });

describe('node set properties', () => {
  it('expand(fold(x)) is exactly the set x', () => {
    fc.assert(
      fc.property(names, (list) => {
        const folded = foldNodeSet(list);
        const expanded = folded === '' ? [] : expandNodeSet(folded);
        expect(new Set(expanded)).toEqual(new Set(list));
        expect(expanded.length).toBe(new Set(list).size);
      }),
      { numRuns: 1000 },
    );
  });

  it('fold is canonical: order and duplicates do not matter, and it is a fixed point', () => {
    fc.assert(
      fc.property(names, fc.func(fc.integer()), (list, key) => {
        const shuffled = [...list, ...list.slice(0, 5)].sort((a, b) => key(a) - key(b) || (a < b ? -1 : a > b ? 1 : 0));
        const folded = foldNodeSet(list);
        expect(foldNodeSet(shuffled)).toBe(folded);
        if (folded !== '') expect(foldNodeSet(expandNodeSet(folded))).toBe(folded);
      }),
      { numRuns: 1000 },
    );
  });

  it('dense ranges fold to one bracket', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 500 }), fc.integer({ min: 1, max: 300 }), fc.constantFrom(1, 2, 3, 4), (start, length, width) => {
        const list = Array.from({ length }, (_, i) => `node${String(start + i).padStart(width, '0')}`);
        const folded = foldNodeSet(list);
        expect(folded.split(',').length).toBe(1);
        expect(expandNodeSet(folded)).toEqual(list);
      }),
      { numRuns: 300 },
    );
  });
});
