import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expandNodeSet } from '../../config/nodeset.js';
import { foldOutputs, renderFolded, type HostOutput } from '../../queues/fold.js';

const out = (host: string, text: string, status = 'ok'): HostOutput => ({ host, status, text });

describe('foldOutputs', () => {
  it('groups identical outputs under a node set, biggest group first', () => {
    const groups = foldOutputs([
      out('node05', 'inactive'),
      out('node01', 'active'),
      out('node02', 'active'),
      out('node07', 'active'),
      out('node03', 'active'),
    ]);
    expect(groups).toEqual([
      { nodeset: 'node[01-03,07]', hosts: ['node01', 'node02', 'node07', 'node03'], count: 4, status: 'ok', text: 'active' },
      { nodeset: 'node05', hosts: ['node05'], count: 1, status: 'ok', text: 'inactive' },
    ]);
  });

  it('keeps outputs with the same text but different status apart', () => {
    const groups = foldOutputs([out('a1', '', 'ok'), out('a2', '', 'timed_out'), out('a3', '', 'ok')]);
    expect(groups.map((g) => [g.nodeset, g.status])).toEqual([
      ['a[1,3]', 'ok'],
      ['a2', 'timed_out'],
    ]);
  });

  it('breaks size ties by the first host to appear, and ignores repeated hosts', () => {
    const groups = foldOutputs([out('z1', 'x'), out('a1', 'y'), out('z1', 'x'), out('a2', 'y'), out('z2', 'x')]);
    expect(groups.map((g) => g.nodeset)).toEqual(['z[1-2]', 'a[1-2]']);
    expect(groups[0]!.count).toBe(2);
  });

  it('does not confuse fields that would collide if joined naively', () => {
    const groups = foldOutputs([out('a', 'b\0c', 'ok'), out('b', 'c', 'ok\0b')]);
    expect(groups).toHaveLength(2);
  });

  it('covers every host exactly once (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ host: fc.integer({ min: 0, max: 40 }).map((n) => `n${n}`), status: fc.constantFrom('ok', 'failed'), text: fc.constantFrom('a', 'b', 'a\nb', '') })),
        (outputs) => {
          const firstByHost = new Map<string, HostOutput>();
          for (const o of outputs) if (!firstByHost.has(o.host)) firstByHost.set(o.host, o);
          const groups = foldOutputs(outputs.filter((o) => firstByHost.get(o.host) === o));
          const hosts = groups.flatMap((g) => g.hosts);
          expect(new Set(hosts).size).toBe(hosts.length);
          expect(new Set(hosts)).toEqual(new Set(firstByHost.keys()));
          for (const g of groups) {
            expect(new Set(expandNodeSet(g.nodeset))).toEqual(new Set(g.hosts));
            for (const h of g.hosts) expect(firstByHost.get(h)).toMatchObject({ status: g.status, text: g.text });
          }
          for (let i = 1; i < groups.length; i++) expect(groups[i - 1]!.count).toBeGreaterThanOrEqual(groups[i]!.count);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('renderFolded', () => {
  it('prints one line per group for one-line outputs', () => {
    const text = renderFolded(foldOutputs([out('node01', 'active\n'), out('node02', 'active\n'), out('node03', 'active\n'), out('node07', 'active\n')]));
    expect(text).toBe('node[01-03,07] (4): active');
  });

  it('prints a header and an indented block for multi-line outputs, and shows non-ok status', () => {
    const text = renderFolded(
      foldOutputs([
        out('web1', 'Filesystem  Size\n/dev/sda1   30G\n'),
        out('web2', 'Filesystem  Size\n/dev/sda1   30G\n'),
        out('db1', 'inactive\n', 'failed'),
        out('db2', '', 'unreachable'),
      ]),
    );
    expect(text).toBe(['web[1-2] (2):', '    Filesystem  Size', '    /dev/sda1   30G', 'db1 (1) [failed]: inactive', 'db2 (1) [unreachable]: (no output)'].join('\n'));
  });

  it('honours a custom quiet status and indent', () => {
    const text = renderFolded(foldOutputs([out('a1', 'x\ny', 'done')]), { quietStatus: 'done', indent: '  ' });
    expect(text).toBe('a1 (1):\n  x\n  y');
  });
});
