// canonicalJson feeds plan hashes that approvals are bound to and that are stored with jobs: its
// output must never change. The implementation was rewritten for speed (one pass, no per-object
// arrays); here it is compared with the first, plain implementation on random values of every
// shape JSON can meet (and some it cannot: sparse arrays, dates, maps, lone surrogates, -0,
// NaN), plus fixed strings of a real plan's shape.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, sortedKeys } from '../../config/canonical-json.js';

/** The implementation every stored hash was made with, kept verbatim as the reference. */
function reference(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(reference).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${reference(v)}`).join(',')}}`;
}

const sameAsReference = (value: unknown): void => {
  let expected: string | Error;
  try {
    expected = reference(value);
  } catch (error) {
    expected = error as Error;
  }
  if (expected instanceof Error) expect(() => canonicalJson(value)).toThrow(expected.message);
  else expect(canonicalJson(value)).toBe(expected);
};

describe('canonicalJson', () => {
  it('prints what the reference printed, on any value', () => {
    const anything = fc.anything({
      maxDepth: 4,
      withBoxedValues: true,
      withSet: true,
      withMap: true,
      withNullPrototype: true,
      withBigInt: true,
      withDate: true,
      withTypedArray: true,
      withSparseArray: true,
      withObjectString: true,
      stringUnit: 'binary',
    });
    fc.assert(fc.property(anything, sameAsReference), { numRuns: 3000 });
  });

  it('prints what the reference printed, on plan-shaped values with hostile strings', () => {
    const text = fc.oneof(fc.string({ unit: 'binary' }), fc.constantFrom('', '"', '\\', '\n', '\u2028', '\ud800', 'a\udc00b', '\u0000', '\u007f', '😀', 'node001', 'SHA256:abc+/='));
    const number = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(-0, 0, Number.NaN, Infinity, -Infinity, 1e21, 5e-7));
    const host = fc.record({ address: text, port: number, user: text, keyFile: fc.option(text), hostKeys: fc.array(text) }, { requiredKeys: ['address'] });
    const plan = fc.record({ plan: fc.record({ hosts: fc.array(text), argv: fc.array(text), timeout: fc.option(number, { nil: undefined }) }), binding: fc.record({ hosts: fc.dictionary(text, host), files: fc.dictionary(text, text) }) });
    fc.assert(fc.property(plan, sameAsReference), { numRuns: 2000 });
  });

  it('keeps the bytes of a known plan hash', () => {
    const value = {
      plan: { tool: 'ping', hosts: ['node002', 'node001'], steps: [{ id: 'ping', argv: ['true'], stdin: undefined, note: 'é "q" \\ \n' }], budget: 0, ratio: -0 },
      binding: { hosts: { node001: { address: '127.1.0.1', port: 22, user: 'castellan', keyFile: null, hostKeys: ['SHA256:x'] } }, files: {} },
    };
    const text = canonicalJson(value);
    expect(text).toBe('{"binding":{"files":{},"hosts":{"node001":{"address":"127.1.0.1","hostKeys":["SHA256:x"],"keyFile":null,"port":22,"user":"castellan"}}},"plan":{"budget":0,"hosts":["node002","node001"],"ratio":0,"steps":[{"argv":["true"],"id":"ping","note":"é \\"q\\" \\\\ \\n"}],"tool":"ping"}}');
    expect(createHash('sha256').update(text).digest('hex')).toBe(createHash('sha256').update(reference(value)).digest('hex'));
  });

  it('sortedKeys gives the default sort of the own keys, small objects (insertion) and big ones alike', () => {
    const key = fc.oneof(fc.string({ unit: 'binary', maxLength: 6 }), fc.constantFrom('a', 'B', 'b', 'é', '😀', '\uffff', '\ud800', '10', '9', '0', '-1'));
    fc.assert(
      fc.property(fc.uniqueArray(key, { maxLength: 40 }), (keys) => {
        const value: Record<string, number> = {};
        keys.forEach((k, i) => (value[k] = i));
        expect(sortedKeys(value)).toEqual(Object.keys(value).sort());
      }),
      { numRuns: 3000 },
    );
    // Both sides of the insertion-sort limit, with integer-like keys (which own-key order puts first).
    for (const n of [0, 1, 2, 15, 16, 17, 100]) {
      const value = Object.fromEntries(Array.from({ length: n }, (_, i) => [i % 3 === 0 ? String(n - i) : `k${(i * 7919) % 101}`, i]));
      expect(sortedKeys(value)).toEqual(Object.keys(value).sort());
    }
  });

  it('orders keys by UTF-16 code units, as the reference did', () => {
    expect(canonicalJson({ b: 1, B: 2, 'é': 3, '😀': 4, '\uffff': 5, a: undefined })).toBe('{"B":2,"b":1,"é":3,"😀":4,"\uffff":5}');
  });
});
