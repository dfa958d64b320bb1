import { describe, expect, it } from 'vitest';
import { compareNodeNames, expandNodeSet, foldNodeSet, NodeSetError, sortNodeNames } from '../../config/nodeset.js';

describe('expandNodeSet', () => {
  it('expands ranges, lists and padding', () => {
    expect(expandNodeSet('node[01-03,07]')).toEqual(['node01', 'node02', 'node03', 'node07']);
    expect(expandNodeSet('node[01-10]')).toEqual(['node01', 'node02', 'node03', 'node04', 'node05', 'node06', 'node07', 'node08', 'node09', 'node10']);
    expect(expandNodeSet('node[8-10]')).toEqual(['node8', 'node9', 'node10']);
    expect(expandNodeSet('node[098-100]')).toEqual(['node098', 'node099', 'node100']);
    expect(expandNodeSet('node[1-9/2]')).toEqual(['node1', 'node3', 'node5', 'node7', 'node9']);
    expect(expandNodeSet('plain')).toEqual(['plain']);
  });

  it('takes the cartesian product of several brackets, leftmost slowest', () => {
    expect(expandNodeSet('node[1-2]-eth[0-1]')).toEqual(['node1-eth0', 'node1-eth1', 'node2-eth0', 'node2-eth1']);
    expect(expandNodeSet('rack[1-2]node[1-3]')).toEqual(['rack1node1', 'rack1node2', 'rack1node3', 'rack2node1', 'rack2node2', 'rack2node3']);
  });

  it('splits top-level commas but not those inside brackets, and drops duplicates', () => {
    expect(expandNodeSet('a,node[1,3],b,node1')).toEqual(['a', 'node1', 'node3', 'b']);
    expect(expandNodeSet('node[1-3,2-4]')).toEqual(['node1', 'node2', 'node3', 'node4']);
  });

  it('refuses bad syntax with the position', () => {
    const cases: Array<[string, RegExp, number | undefined]> = [
      ['node[1-3', /unclosed '\[' at position 4/, 4],
      ['node1-3]', /unexpected '\]' at position 7/, 7],
      ['node[]', /empty range/, 4],
      ['node[3-1]', /goes backwards/, 5],
      ['node[a-b]', /bad range 'a-b' at position 5/, 5],
      ['node[1-3/0]', /zero step/, 5],
      ['node[1-010]', /mixes zero paddings/, 5],
      ['node[[1]]', /unclosed/, 4],
      ['a,,b', /empty name/, 2],
      ['no de', /character " " at position 2/, 2],
    ];
    for (const [pattern, message, position] of cases) {
      let caught: unknown;
      try {
        expandNodeSet(pattern);
      } catch (error) {
        caught = error;
      }
      expect(caught, pattern).toBeInstanceOf(NodeSetError);
      expect((caught as NodeSetError).message, pattern).toMatch(message);
      expect((caught as NodeSetError).position, pattern).toBe(position);
    }
  });

  it('refuses expansions over the limit before building them', () => {
    expect(() => expandNodeSet('node[1-1000000000000]')).toThrow(/expands to more than 100000 names/);
    expect(() => expandNodeSet('a[1-1000]b[1-1000]')).toThrow(/more than 100000 names/);
    expect(() => expandNodeSet('n[1-50]', { limit: 10 })).toThrow(/more than 10 names/);
    expect(expandNodeSet('n[1-10]', { limit: 10 })).toHaveLength(10);
  });

  it('names the configured limit, for every way of exceeding it', () => {
    const named = { limit: 64, limitName: 'limits.max_hosts' };
    for (const pattern of ['node[1-100000000]', 'n[1-10]-[1-10]', 'a[1-40],b[1-40]', 'n[1-50,60-100]']) {
      expect(() => expandNodeSet(pattern, named), pattern).toThrow(/more than 64 names \(limits\.max_hosts\); nothing was expanded/);
    }
  });
});

describe('foldNodeSet', () => {
  it('folds on the last number, keeping padding', () => {
    expect(foldNodeSet(['node01', 'node02', 'node03', 'node07'])).toBe('node[01-03,07]');
    expect(foldNodeSet(['node07', 'node01', 'node03', 'node02', 'node01'])).toBe('node[01-03,07]');
    expect(foldNodeSet(expandNodeSet('node[01-10]'))).toBe('node[01-10]');
    expect(foldNodeSet(['node9', 'node10', 'node11'])).toBe('node[9-11]');
    expect(foldNodeSet(['node7', 'node07'])).toBe('node[7,07]');
    expect(foldNodeSet(['node07'])).toBe('node07');
    expect(foldNodeSet([])).toBe('');
  });

  it('sorts numerically, not lexically', () => {
    expect(foldNodeSet(['n10', 'n9', 'n100', 'n2'])).toBe('n[2,9-10,100]');
    expect(foldNodeSet(['rack10a', 'rack2a', 'rack1a'])).toBe('rack[1-2,10]a');
  });

  it('keeps names without digits as they are', () => {
    expect(foldNodeSet(['gateway', 'node1', 'node2', 'bastion'])).toBe('bastion,gateway,node[1-2]');
  });

  it('folds several dimensions when the other ranges match', () => {
    expect(foldNodeSet(expandNodeSet('rack[1-2]node[1-3]'))).toBe('rack[1-2]node[1-3]');
    expect(foldNodeSet(expandNodeSet('node[1-3]-eth[0-1]'))).toBe('node[1-3]-eth[0-1]');
    expect(foldNodeSet(['rack1node1', 'rack1node2', 'rack2node1'])).toBe('rack1node[1-2],rack2node1');
  });

  it('orders names naturally', () => {
    expect(sortNodeNames(['node10', 'node9', 'node09', 'alpha', 'node1'])).toEqual(['alpha', 'node1', 'node9', 'node09', 'node10']);
    expect(compareNodeNames('a2b10', 'a2b9')).toBeGreaterThan(0);
  });
});
