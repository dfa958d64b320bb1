// The upgrade runbook's WireGuard gate on a real mesh: 3 nodes, each a network namespace with
// its own sshd and a Debian wireguard-go plane (wg0), the lab stand-ins for the upgrade and the
// reboot. A node whose links handshake both ways passes its gate after the reboot; a node whose
// WireGuard is down fails it, is rolled back, and its rollback's gate says the same.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import type { LabOptions } from '../../src/lab/sshd-lab.js';
import type { NodeReport } from '../../tools/upgrade-plan.js';
import { startLabWorld, type LabWorld } from '../fixtures/node-programs/lab-world.js';
import { useCastellan } from '../support/castellan.js';
import { startWgMesh, type WgMesh } from '../support/wg-mesh.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

const NODES = ['node01', 'node02', 'node03'];
const dir = mkdtempSync(path.join(os.tmpdir(), 'castellan-rbmesh-'));
const varsFile = path.join(dir, 'vars.yaml');
writeFileSync(varsFile, stringify({ all: { hosts: {} } }));
const labOptions: Omit<LabOptions, 'nodes' | 'dir' | 'redisUrl'> = { nodeBinDirs: true };
let mesh: WgMesh;
let world: LabWorld;

// Registered before useCastellan's: the namespaces exist before the lab starts sshd in them.
beforeAll(async () => {
  mesh = await startWgMesh({ dir: path.join(dir, 'mesh'), nodes: NODES.length, planes: [{ name: 'wg0', port: 51820, net: '10.79' }] });
  Object.assign(labOptions, { namespaces: { addresses: mesh.nodes.map((n) => n.address), port: 22, enter: (name: string) => mesh.nodes.find((n) => n.name === name)?.enter ?? [] } });
  const vars = mesh.inventoryVars();
  for (const n of NODES) vars[n] = { ...vars[n], castellan_be_tool: 'kbe', castellan_upgrade_command: ['lab-upgrade'], castellan_reboot_command: ['lab-reboot'], castellan_version_command: ['lab-os-version'], castellan_k8s_node: false };
  writeFileSync(varsFile, stringify({ all: { hosts: vars } }));
  for (const n of NODES) await mesh.startPlanes(n);
  await mesh.waitHandshakes(NODES, 0);
}, 120_000);

const c = useCastellan({
  nodes: NODES.length,
  lab: labOptions,
  extraInventory: varsFile,
  config: { ssh: { connect_timeout: '3s' } },
  prepare: async (lab) => {
    world = await startLabWorld({ lab, k8sNodes: [], enter: (name) => mesh.nodes.find((n) => n.name === name)?.enter ?? [] });
  },
});

afterAll(async () => {
  await world?.stop();
  await mesh?.down();
  await rm(dir, { recursive: true, force: true });
});

const FAST = { gate_interval: '200ms', up_timeout: '60s', down_timeout: '30s' };

async function upgrade(node: string, be: string, readyTimeout: string) {
  const { job } = await c.runtime.service.submit({ tool: 'rolling_upgrade', input: { targets: node, boot_environment: be, ready_timeout: readyTimeout, ...FAST }, requester: oscar, replyTo: { kind: 'cli' } });
  await c.runtime.service.approve(job.id, april);
  const done = await c.runtime.service.wait(job.id, oscar, 180_000);
  const report = (done.result?.data as { nodes: NodeReport[] }).nodes[0]!;
  const observed = (id: string): string => done.result!.steps.find((s) => s.id === id)?.observations?.map((o) => o.observed).join('; ') ?? '';
  return { done, report, observed };
}

describe('the WireGuard gate of an upgrade, on a real mesh', () => {
  it('passes when the rebooted node handshakes with every peer both ways', async () => {
    const { done, report, observed } = await upgrade('node02', 'pre-upgrade-20261129-070000', '60s');
    expect(done.plan.batches[0]!.steps.find((s) => s.id === 'wg-node02')).toMatchObject({ subject: 'node02', hosts: NODES });
    expect(done.state, JSON.stringify(report)).toBe('succeeded');
    expect(report).toMatchObject({ outcome: 'upgraded', old_version: '12.7', new_version: '12.8' });
    expect(observed('wg-node02')).toBe('node02: 4 peer links ok');
    expect(world.boots('node02')).toBe(1);
  }, 200_000);

  it("fails a node whose WireGuard is down, rolls it back, and the rollback's gate fails the same way", async () => {
    await mesh.stopPlanes('node03');
    const { done, report, observed } = await upgrade('node03', 'pre-upgrade-20261129-071500', '6s');
    expect(done.state).toBe('failed');
    expect(report).toMatchObject({ outcome: 'rollback_failed', failed_at: 'wg-node03', boot_environment: 'pre-upgrade-20261129-071500' });
    expect(report.reason).toMatch(/did not hold within 6s.*wg0 node03→node01 down/);
    expect(observed('wg-node03-rb')).toContain('wg0 node03→node01 down');
    expect(world.node('node03').booted).toBe('pre-upgrade-20261129-071500');
    expect(world.boots('node03')).toBe(2);
  }, 200_000);
});
