import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../config/inventory.js';
import { resolveTargets, TargetError, targetExpression } from '../../config/targets.js';
import type { Inventory } from '../../config/types.js';

const examples = join(import.meta.dirname, '../../config/examples');
let rack: Inventory;
let lab: Inventory;

beforeAll(async () => {
  rack = await loadInventory([join(examples, 'rack-16.yaml')]);
  lab = await loadInventory([join(examples, 'homelab-13.yaml')]);
});

function targetError(expression: string, inventory: Inventory = rack): TargetError {
  try {
    resolveTargets(expression, inventory);
  } catch (error) {
    expect(error).toBeInstanceOf(TargetError);
    return error as TargetError;
  }
  throw new Error(`expected '${expression}' to fail`);
}

describe('resolveTargets', () => {
  it('resolves hosts, groups, @groups, all and node sets in inventory order', () => {
    expect(resolveTargets('node03', rack)).toEqual(['node03']);
    expect(resolveTargets('blue', rack)).toHaveLength(8);
    expect(resolveTargets('@green', rack)).toEqual(resolveTargets('green', rack));
    expect(resolveTargets('all', rack)).toHaveLength(16);
    expect(resolveTargets('node[07,01-03]', rack)).toEqual(['node01', 'node02', 'node03', 'node07']);
    expect(resolveTargets('lipps,allyrion,lipps', lab)).toEqual(['allyrion', 'lipps']);
  });

  it('selects by label (exact match)', () => {
    expect(resolveTargets('role=storage', rack)).toEqual(['node06', 'node13', 'node14']);
    expect(resolveTargets('half=blue&role=k8s-worker', rack)).toEqual(['node03', 'node04', 'node05']);
    expect(resolveTargets('rack=left&k8s_worker', lab)).toEqual(['dalt', 'erenford', 'fenn']);
  });

  it('evaluates left to right without precedence, like ClusterShell', () => {
    // (blue , node08) & role=k8s-control  — not blue , (node08 & ...)
    expect(resolveTargets('blue,node08&role=k8s-control', rack)).toEqual(['node00', 'node01', 'node08']);
    expect(resolveTargets('blue,(node08&role=k8s-control)', rack)).toEqual([...resolveTargets('blue', rack), 'node08']);
    // difference then union adds back
    expect(resolveTargets('all!storage,node13', rack)).toEqual(resolveTargets('all', rack).filter((h) => h !== 'node06' && h !== 'node14'));
    expect(resolveTargets('all ! ( blue , storage )', rack)).toEqual(['node08', 'node09', 'node10', 'node11', 'node12', 'node15']);
    expect(resolveTargets('node[00-15]!node[01-14]', rack)).toEqual(['node00', 'node15']);
  });

  it('suggests close names for unknown ones', () => {
    expect(targetError('k8s_workr', lab).message).toBe("unknown host or group 'k8s_workr' (did you mean 'k8s_worker'?)");
    expect(targetError('blue,gren').message).toBe("unknown host or group 'gren' (did you mean 'green'?)");
    expect(targetError('@k8s_worker').message).toBe("unknown group 'k8s_worker' (did you mean 'k8s_workers'?)");
    expect(targetError('nodeXYZ').message).toBe("unknown host or group 'nodeXYZ'");
    expect(targetError('blue,gren').position).toBe(5);
  });

  it('names the unknown hosts of a node set, folded', () => {
    expect(targetError('node[10-20]').message).toBe("node set 'node[10-20]' names hosts not in the inventory: node[16-20]");
    expect(targetError('node[1-3]').message).toBe("node set 'node[1-3]' names hosts not in the inventory: node[1-3]");
  });

  it('explains unknown label keys and values', () => {
    expect(targetError('rol=storage').message).toBe("unknown label 'rol' in 'rol=storage' (did you mean 'role'?) (labels in use: half, role)");
    expect(targetError('role=storag').message).toBe(
      "no host has label role=storag (did you mean 'storage'?) (values of role: grafana, k8s-control, k8s-lb, k8s-worker, prometheus, storage)",
    );
    expect(targetError('role=').message).toMatch(/is not a label selector \(write key=value/);
  });

  it('refuses an empty result, naming the expression', () => {
    expect(targetError('blue&green').message).toBe("target expression 'blue&green' matches no hosts");
  });

  it('points at syntax errors', () => {
    const cases: Array<[string, RegExp, number]> = [
      ['blue,', /at the end of the expression \(position 5\)/, 5],
      ['(blue', /unclosed '\(' at position 0/, 0],
      ['blue)', /unexpected '\)' at position 4/, 4],
      ['blue green', /missing operator before 'green' at position 5 \(use ','/, 5],
      ['!blue', /'!' at position 0 needs something to subtract from/, 0],
      ['blue,,green', /expected a host, group, node set or label at position 5, found ','/, 5],
      ['node[1-3', /unclosed '\[' at position 4/, 4],
      ['node[3-1]', /goes backwards in 'node\[3-1\]'/, 5],
      ['blue,no@de', /'@' at position 7 may only start a group name/, 7],
    ];
    for (const [expression, message, position] of cases) {
      const error = targetError(expression);
      expect(error.message, expression).toMatch(message);
      expect(error.position, expression).toBe(position);
      expect(error.expression).toBe(expression);
    }
  });
});

describe('hostile input', () => {
  const corpus = [
    'node01;reboot',
    'node01 && rm -rf /',
    '$(reboot)',
    '`id`',
    'node01\nreboot',
    'node01\0',
    'node01|cat',
    "node01'",
    'node01"',
    'node01>x',
    'node01\\',
    'node01/../x',
    '~root',
    'node01#',
    '*',
    'node0?',
    '{a,b}',
    'node01\r',
    'node01\t',
    'ｎｏｄｅ01',
    'node01\u202e',
  ];

  it('refuses every disallowed character with its position, before parsing', () => {
    for (const expression of corpus) {
      const error = targetError(expression);
      expect(error.message, JSON.stringify(expression)).toMatch(/^character .+ at position \d+ is not allowed in a target expression/);
      expect(error.position).toBeTypeOf('number');
      expect(targetExpression.safeParse(expression).success, JSON.stringify(expression)).toBe(false);
    }
    expect(targetError('node01\nreboot').message).toContain('character "\\n" at position 6');
    expect(targetError('node01\0').message).toContain('character "\\u0000" at position 6');
  });

  it('refuses a leading dash, empty input and overlong input', () => {
    expect(targetError('-rf').message).toBe("a target expression cannot start with '-' (position 0)");
    expect(targetError('  --help').message).toBe("a target expression cannot start with '-' (position 2)");
    expect(targetError('').message).toBe('target expression is empty');
    expect(targetError('   ').message).toBe('target expression is empty');
    expect(targetError('a,'.repeat(600)).message).toBe('target expression is 1200 characters long (at most 1024)');
    expect(targetError('node[1-99999999]').message).toMatch(/expands to more than 100000 names/);
  });

  it('targetExpression accepts valid expressions and explains rejections', () => {
    expect(targetExpression.parse('@k8s_worker&role=storage!node[01-03]')).toBe('@k8s_worker&role=storage!node[01-03]');
    const result = targetExpression.safeParse('node01;reboot');
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toMatch(/character ";" at position 6 is not allowed/);
    expect(targetExpression.safeParse(42).success).toBe(false);
    expect(targetExpression.safeParse('x'.repeat(1025)).success).toBe(false);
    expect(targetExpression.description).toMatch(/node sets like node\[01-09,12\]/);
  });
});
