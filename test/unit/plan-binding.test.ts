import { describe, expect, it } from 'vitest';
import type { Inventory } from '../../config/types.js';
import type { SshTarget } from '../../queues/execution.js';
import { bindPlan, boundPlanHash, describeChanges, type BindingSource, type PlanBinding } from '../../queues/plan-binding.js';
import type { Plan } from '../../tools/types.js';

const plan = (hosts: string[], stdin = 'echo hi'): Plan => ({
  tool: 'exec',
  hosts,
  failureBudget: 0,
  batches: [{ steps: [{ id: 'script', description: 'sh -s < script', hosts, timeoutMs: 1000, action: { kind: 'exec', argv: ['/bin/sh', '-s'], asRoot: false, stdin } }] }],
});
const host: PlanBinding['hosts'][string] = { address: '10.0.0.1', port: 22, user: 'ops', keyFile: '/keys/id', hostKeys: ['SHA256:aaa'] };
const binding = (over: Partial<typeof host> = {}, files: Record<string, string> = {}): PlanBinding => ({ hosts: { n1: { ...host, ...over } }, files });

describe('plan binding', () => {
  it('hashes the same plan and binding the same, and any field of either differently', () => {
    const base = boundPlanHash(plan(['n1']), binding());
    expect(boundPlanHash(plan(['n1']), binding())).toBe(base);
    for (const changed of [
      boundPlanHash(plan(['n1'], 'echo hi\n'), binding()),
      boundPlanHash(plan(['n1']), binding({ address: '10.0.0.2' })),
      boundPlanHash(plan(['n1']), binding({ port: 2222 })),
      boundPlanHash(plan(['n1']), binding({ user: 'root' })),
      boundPlanHash(plan(['n1']), binding({ keyFile: null })),
      boundPlanHash(plan(['n1']), binding({ hostKeys: ['SHA256:bbb'] })),
      boundPlanHash(plan(['n1']), binding({}, { '/files/a': 'ff' })),
    ]) {
      expect(changed).not.toBe(base);
    }
  });

  it('names every difference', () => {
    const now = { plan: plan(['n1']), binding: binding({ address: '10.0.0.2', port: 2222, user: 'root', keyFile: null, hostKeys: [] }, { '/f': 'bbbbbbbbbbbbbbbb' }) };
    expect(describeChanges({ plan: plan(['n1']), binding: binding({}, { '/f': 'aaaaaaaaaaaaaaaa' }) }, now)).toEqual([
      'n1: address 10.0.0.1 → 10.0.0.2',
      'n1: port 22 → 2222',
      'n1: login user ops → root',
      'n1: key file /keys/id → (agent)',
      'n1: pinned host key SHA256:aaa → (none)',
      '/f: content changed (sha256 aaaaaaaaaaaa → bbbbbbbbbbbb)',
    ]);
    expect(describeChanges({ plan: plan(['n1']), binding: binding() }, { plan: plan(['n1', 'n2']), binding: binding() })).toEqual(['hosts added: n2']);
    expect(describeChanges({ plan: plan(['n1']), binding: binding() }, { plan: plan(['n1'], 'rm -rf /'), binding: binding() })).toEqual([
      'the steps (commands, stdin or options) differ',
    ]);
    expect(describeChanges({ plan: plan(['n1']), binding: undefined }, { plan: plan(['n1']), binding: binding() })).toEqual(['the approved job carries no host binding']);
  });
});

describe('binding many hosts', () => {
  const hosts = Array.from({ length: 50 }, (_, i) => `n${String(i).padStart(2, '0')}`);
  const inventory = { hosts: {}, groups: {} } as unknown as Inventory;
  const targetFor = (_inv: Inventory, host: string): SshTarget => ({ name: host, address: `10.0.0.${host.slice(1)}`, port: 22, user: 'ops', privateKeyFile: '/keys/id' });
  const keysOf = (t: SshTarget): string[] => [`SHA256:z${t.name}`, `SHA256:a${t.name}`];

  it('binds the same with a batch lookup as with one lookup per host, and asks the batch once', async () => {
    let single = 0;
    let batches = 0;
    const perHost: BindingSource = { pinnedFingerprints: async (t) => (single++, keysOf(t)), fileDigest: async () => 'd' };
    const batched: BindingSource = { ...perHost, pinnedFingerprintsOf: async (ts) => (batches++, ts.map(keysOf)) };
    const one = await bindPlan(plan(hosts), inventory, targetFor, perHost);
    single = 0;
    const many = await bindPlan(plan(hosts), inventory, targetFor, batched);
    expect(many).toEqual(one);
    expect(Object.keys(many.hosts)).toEqual(hosts);
    expect(many.hosts.n07).toEqual({ address: '10.0.0.07', port: 22, user: 'ops', keyFile: '/keys/id', hostKeys: ['SHA256:an07', 'SHA256:zn07'] });
    expect([batches, single]).toEqual([1, 0]);
  });
});
