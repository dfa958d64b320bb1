// Large YAML (inventories) is parsed in a worker thread so a server's event loop never stalls on
// it. The thread's script and the in-thread parser must give the same answers, and the thread
// must really take the work off the event loop.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { InventoryError, loadInventory } from '../../config/inventory.js';
import { OFF_THREAD_MIN_CHARS, parseYamlTree, parseYamlTreeOffThread } from '../../config/yaml-tree.js';

/** An inventory of `count` hosts in the shape operators keep (vars, labels, nested groups). */
function bigInventory(count: number): string {
  const hosts: Record<string, unknown> = {};
  const odd: Record<string, null> = {};
  for (let i = 1; i <= count; i++) {
    const name = `node${String(i).padStart(5, '0')}`;
    hosts[name] = { ansible_host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, ansible_port: 22, castellan_labels: { rack: `r${i % 40}` } };
    if (i % 2 === 1) odd[name] = null;
  }
  return stringify({ all: { vars: { ansible_user: 'ops' }, children: { lab: { hosts }, odd: { hosts: odd } } } }, { nullStr: '' });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'castellan-yaml-tree-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('YAML off the event loop', () => {
  it('gives the same tree and the same errors as parsing here', async () => {
    const texts = [
      bigInventory(50),
      'all:\n  hosts:\n    1: {}\n    "2": {x: [1, {y: null}]}\n',
      'all:\n  hosts:\n    a: {}\n    a: {}\n', // duplicate key
      'all: [unclosed\n',
      '',
    ];
    for (const text of texts) expect(await parseYamlTreeOffThread(text)).toEqual(parseYamlTree(text));
    const error = await parseYamlTreeOffThread('all:\n  hosts:\n    a: {}\n    a: {}\n');
    expect(error).toMatchObject({ ok: false, line: 4 });
  });

  it('leaves the event loop free while a large inventory is read', async () => {
    const file = join(dir, 'big.yaml');
    await writeFile(file, bigInventory(2000));
    // Event-loop utilisation: near 1 while this thread parses, near 0 while it only waits.
    const before = performance.eventLoopUtilization();
    const inventory = await loadInventory([file], { offThread: true });
    const used = performance.eventLoopUtilization(before);
    expect(inventory.hosts.size).toBe(2000);
    expect(inventory.groups.get('odd')).toHaveLength(1000);
    expect(used.utilization).toBeLessThan(0.5);
    // The same file read on this thread: identical inventory.
    const here = await loadInventory([file]);
    expect([...here.hosts.values()]).toEqual([...inventory.hosts.values()]);
  });

  it('reports an error in a large file with its line, as when parsed here', async () => {
    const file = join(dir, 'broken.yaml');
    const text = `${bigInventory(1000)}  oops: [\n`;
    expect(text.length).toBeGreaterThan(OFF_THREAD_MIN_CHARS);
    await writeFile(file, text);
    const offThread = await loadInventory([file], { offThread: true }).catch((e: unknown) => e);
    const here = await loadInventory([file]).catch((e: unknown) => e);
    expect(offThread).toBeInstanceOf(InventoryError);
    expect((offThread as Error).message).toBe((here as Error).message);
    expect((offThread as Error).message).toMatch(/broken\.yaml: line \d+, column \d+: invalid YAML/);
  });
});
