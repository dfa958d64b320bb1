// The rack's upgrade runbooks end to end: real Redis, real sshd nodes, real jobs, approvals,
// ledger and gates, a real etcd (node01's etcd gate); only zfs/kbe/kubectl and the node's
// upgrade/reboot are lab stand-ins. (The WireGuard gate is tested on a namespaced mesh in
// runbooks-mesh.test.ts: these nodes share one network namespace.)
// Gates poll every 200 ms here (gate_interval, its minimum) and a lab reboot lasts until the "down" gate
// has seen the node gone: the same gates, without waiting for what the lab need not wait for.
import { afterAll, describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { jobView } from '../../src/present/job-view.js';
import { planText } from '../../src/present/render/text.js';
import { walkPlan } from '../../tools/steps/walk.js';
import type { NodeReport } from '../../tools/upgrade-plan.js';
import type { LabWorld } from '../fixtures/node-programs/lab-world.js';
import { useCastellan } from '../support/castellan.js';
import { shapeRack, type Rack } from './runbook-lab.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

const GREEN = ['node03', 'node04', 'node05', 'node06', 'node07', 'node08', 'node09', 'node10'];
let rack: Rack;
let world: LabWorld;
const c = useCastellan({
  nodes: 10,
  lab: { nodeBinDirs: true },
  config: { ssh: { connect_timeout: '3s' } },
  prepare: async (lab) => {
    rack = await shapeRack(lab, { green: GREEN, etcd: true });
    world = rack.world;
  },
});
afterAll(async () => {
  await rack?.stop();
});
const FAST = { gate_interval: '200ms', up_timeout: '60s', down_timeout: '30s' };

function reports(data: unknown): Map<string, NodeReport> {
  return new Map((data as { nodes: NodeReport[] }).nodes.map((n) => [n.node, n]));
}

describe('blue/green upgrade with boot environments', () => {
  it('lists every step per node in the approval view, then upgrades green in batches of 2, checks it, then blue', async () => {
    const { job } = await c.runtime.service.submit({
      tool: 'blue_green_upgrade',
      input: { batch_size: 2, boot_environment: 'pre-upgrade-20261129-060000', ready_timeout: '60s', ...FAST },
      requester: oscar,
      replyTo: { kind: 'cli' },
    });
    expect(job.state).toBe('awaiting_approval');
    // Green (node03–10) in 4 batches of 2, the health check of green, then blue.
    expect(job.plan.batches).toHaveLength(6);
    expect(job.plan.batches[0]!.steps.map((s) => s.id)).toEqual([
      'version-before-first1', 'drain-node03', 'drain-node04', 'be-node03', 'be-node04', 'upgrade-first1', 'reboot-first1',
      'down-first1', 'up-first1', 'ready-node03', 'ready-node04', 'version-after-first1', 'uncordon-node03', 'uncordon-node04',
    ]);
    expect(job.plan.batches[4]!.steps.map((s) => s.id)).toEqual(['health-answers', ...GREEN.map((n) => `health-ready-${n}`)]);
    // Blue: node01 is the control plane, so etcd must be healthy after its reboot (and after a rollback).
    expect(job.plan.batches[5]!.steps.map((s) => s.id)).toContain('etcd-node01');
    expect(job.plan.batches[5]!.steps.map((s) => s.id)).not.toContain('etcd-node02');
    const card = planText(jobView(job).plan, { color: false });
    for (const { step } of walkPlan(job.plan)) expect(card).toContain(`${step.id}: `);
    expect(card).toMatch(/on failure: rb-activate-node10: [^\n]*kbe activate pre-upgrade-20261129-060000/);
    expect(card).toContain('drain-node10: kubectl drain --ignore-daemonsets --delete-emptydir-data --timeout=300s -- node10 (about node10) on node01');
    expect(card).toContain('failure budget: 0');
    expect(card).toContain('stop rule: once more than 0 node(s)/host(s) have failed (rolled-back ones count), the remaining batches are skipped');
    expect(card).toMatch(/etcd-node01: gate etcd_health until healthy \(about node01\) on node01\n\s+until etcd is healthy \(every member answers, one leader\): etcd_health every 200 ms, up to 1 min\n/);
    expect(card).toMatch(/on failure: etcd-node01-rb: gate etcd_health until healthy/);

    await c.runtime.service.approve(job.id, april);
    const done = await c.runtime.service.wait(job.id, oscar, 400_000);
    expect(done.state, `${done.reason ?? ''} ${JSON.stringify(done.result?.data)}`).toBe('succeeded');
    const nodes = reports(done.result?.data);
    for (const name of [...GREEN, 'node01', 'node02']) {
      expect(nodes.get(name)).toEqual({ node: name, old_version: '12.7', new_version: '12.8', boot_environment: 'pre-upgrade-20261129-060000', outcome: 'upgraded' });
      expect(world.boots(name)).toBe(1);
      expect(world.node(name).bes.map((b) => b.name)).toContain('pre-upgrade-20261129-060000');
      expect(world.cluster().nodes[name]).toMatchObject({ ready: true, unschedulable: false });
    }
    // Green was upgraded and checked before blue was touched.
    const order = done.result!.steps.map((s) => s.id);
    expect(order.indexOf('uncordon-node10')).toBeLessThan(order.indexOf('health-answers'));
    expect(order.indexOf('health-answers')).toBeLessThan(order.indexOf('drain-node01'));
    // The gate looked at the real etcd.
    const observed = (id: string): string => done.result!.steps.find((s) => s.id === id)?.observations?.map((o) => o.observed).join('; ') ?? '';
    expect(observed('etcd-node01')).toMatch(/^3 members healthy, leader http:\/\/127\.0\.0\.1:\d+$/);
  }, 420_000);

  it("rolls node10 back when its gate fails, while the others proceed", async () => {
    for (const name of ['node07', 'node08', 'node09', 'node10']) world.updateNode(name, (w) => { w.available = '12.9'; });
    world.updateNode('node10', (w) => { w.faults.kubeletNotReadyOn = ['12.9']; });
    const boots10 = world.boots('node10');
    const { job } = await c.runtime.service.submit({
      tool: 'rolling_upgrade',
      input: { targets: 'node[07-10]', batch_size: 2, failure_budget: 1, boot_environment: 'pre-upgrade-20261129-061500', ready_timeout: '10s', ...FAST },
      requester: oscar,
      replyTo: { kind: 'cli' },
    });
    await c.runtime.service.approve(job.id, april);
    const done = await c.runtime.service.wait(job.id, oscar, 280_000);
    expect(done.state).toBe('partially_failed');
    const nodes = reports(done.result?.data);
    for (const name of ['node07', 'node08', 'node09']) expect(nodes.get(name)).toMatchObject({ outcome: 'upgraded', old_version: '12.8', new_version: '12.9' });
    expect(nodes.get('node10')).toMatchObject({ outcome: 'rolled_back', old_version: '12.8', new_version: '12.8', boot_environment: 'pre-upgrade-20261129-061500', failed_at: 'ready-node10' });
    expect(nodes.get('node10')?.reason).toMatch(/did not hold within 10s/);
    // Rolled back for real: booted into the pre-upgrade environment after a second reboot, Ready, back in service.
    expect(world.node('node10').booted).toBe('pre-upgrade-20261129-061500');
    expect(world.boots('node10')).toBe(boots10 + 2);
    expect(world.cluster().nodes.node10).toMatchObject({ ready: true, unschedulable: false });
    const rollback = done.result!.steps.filter((s) => s.onFailure?.subject === 'node10').map((s) => s.id);
    expect(rollback).toEqual(['rb-activate-node10', 'rb-reboot-node10', 'down-rb-node10', 'up-rb-node10', 'ready-node10-rb', 'rb-version-node10', 'uncordon-node10-rb']);
  }, 300_000);

  it('stops at the control-plane node when etcd is unhealthy after its reboot: rolled back, the rest not run', async () => {
    const stopped = rack.etcd!.members[2]!;
    await rack.etcd!.stop(stopped.name);
    const boots = { node01: world.boots('node01'), node02: world.boots('node02') };
    const { job } = await c.runtime.service.submit({
      tool: 'rolling_upgrade',
      input: { targets: 'node01,node02', batch_size: 1, boot_environment: 'pre-upgrade-20261129-063000', ready_timeout: '8s', ...FAST },
      requester: oscar,
      replyTo: { kind: 'cli' },
    });
    await c.runtime.service.approve(job.id, april);
    const done = await c.runtime.service.wait(job.id, oscar, 240_000);
    expect(done.state).toBe('failed');
    const nodes = reports(done.result?.data);
    // The rollback's own etcd gate fails too (the member is still down): rollback_failed, said as such.
    expect(nodes.get('node01')).toMatchObject({ outcome: 'rollback_failed', failed_at: 'etcd-node01', boot_environment: 'pre-upgrade-20261129-063000' });
    expect(nodes.get('node01')?.reason).toContain(`${stopped.clientUrl} unhealthy`);
    expect(world.node('node01').booted).toBe('pre-upgrade-20261129-063000');
    expect(world.boots('node01')).toBe(boots.node01 + 2);
    // Failure budget 0: node02's batch never started.
    expect(nodes.get('node02')).toMatchObject({ outcome: 'not_run', old_version: null, boot_environment: null });
    expect(world.boots('node02')).toBe(boots.node02);
  }, 300_000);
});
