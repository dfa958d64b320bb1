// The upgrade runbook's health gates as plans (which node gets which gate, ids of the roll,
// the rollback and the health batch) and the conditions they wait on, judged on recorded
// output: `etcdctl member list -w json` (etcd 3.4.23, Debian bookworm's etcd-server, taken
// from a one-member cluster right after `member add e2 --learner`).
import { describe, expect, it } from 'vitest';
import type { Host } from '../../config/types.js';
import { etcdHealth, parseMemberList } from '../../tools/etcd-health.js';
import { getTool } from '../../tools/index.js';
import type { ConditionDefinition, Observation } from '../../tools/steps/index.js';
import type { Plan, PlanContext, PlanStep } from '../../tools/types.js';
import { walkPlan } from '../../tools/steps/walk.js';
import { ctx, inventory, planFor } from './tools-fixtures.js';

/** The fixture inventory with the rack's vars: BE tool; planes wg0 on cp1 and the workers, wg1 on node01-02 only. */
function rackCtx(): PlanContext {
  const hosts = new Map<string, Host>();
  for (const [name, h] of inventory.hosts) {
    const worker = h.groups.includes('k8s_worker');
    const planes = name === 'node01' || name === 'node02' ? { wg0: null, wg1: null } : worker || name === 'cp1' ? { wg0: null } : undefined;
    hosts.set(name, { ...h, vars: { ...h.vars, castellan_be_tool: 'kbe', ...(planes ? { wireguard: planes } : {}) } });
  }
  return { ...ctx, inventory: { ...inventory, hosts } };
}

const ids = (p: Plan, batch: number): string[] => p.batches[batch]!.steps.map((s) => s.id);
const all = (p: Plan): PlanStep[] => walkPlan(p).map((w) => w.step);

describe('upgrade gates', () => {
  it('gates a control-plane node on etcd (from itself), and every node on its WireGuard links, after the reboot and after a rollback', () => {
    const p = planFor(getTool('rolling_upgrade'), { targets: 'cp1,node01', batch_size: 2, gate_interval: '500ms' }, rackCtx());
    expect(ids(p, 0)).toEqual([
      'version-before-b1', 'drain-cp1', 'drain-node01', 'be-cp1', 'be-node01', 'upgrade-b1', 'reboot-b1',
      'down-b1', 'up-b1', 'ready-cp1', 'ready-node01', 'wg-cp1', 'wg-node01', 'etcd-cp1', 'version-after-b1', 'uncordon-cp1', 'uncordon-node01',
    ]);
    const steps = all(p);
    const etcd = steps.find((s) => s.id === 'etcd-cp1')!;
    expect(etcd).toMatchObject({ subject: 'cp1', hosts: ['cp1'] });
    expect(etcd.action).toMatchObject({ kind: 'gate', check: { tool: 'etcd_health', input: { control_plane: 'cp1', as_root: false } }, until: { name: 'healthy' }, intervalMs: 500 });
    // A node's links are seen from both ends: the check runs on every host of its planes.
    const wg = steps.find((s) => s.id === 'wg-node01')!;
    expect(wg).toMatchObject({ subject: 'node01', hosts: ['cp1', 'node01', 'node02', 'node03', 'node04'] });
    expect(wg.action).toMatchObject({ kind: 'gate', check: { tool: 'wireguard_mesh', input: { planes: ['wg0', 'wg1'], stale_after: 180_000 } }, until: { name: 'node_meshed', args: { node: 'node01' } } });
    expect(steps.find((s) => s.id === 'wg-cp1')!.action).toMatchObject({ check: { input: { planes: ['wg0'] } } });
    // The rollback gates the same way, under its own ids (what the per-node report reads back).
    const rollback = p.batches[0]!.steps.find((s) => s.id === 'be-cp1')!.onFailure!.map((s) => s.id);
    expect(rollback).toEqual(['rb-activate-cp1', 'rb-reboot-cp1', 'down-rb-cp1', 'up-rb-cp1', 'ready-cp1-rb', 'wg-cp1-rb', 'etcd-cp1-rb', 'rb-version-cp1']);
    expect(p.batches[0]!.steps.find((s) => s.id === 'be-node01')!.onFailure!.map((s) => s.id)).not.toContain('etcd-node01-rb');
  });

  it('castellan_etcd_member overrides the control-plane rule; nodes without planes get no WireGuard gate', () => {
    const base = rackCtx();
    const hosts = new Map(base.inventory.hosts);
    hosts.set('node02', { ...hosts.get('node02')!, vars: { ...hosts.get('node02')!.vars, castellan_etcd_member: true } });
    hosts.set('cp1', { ...hosts.get('cp1')!, vars: { ...hosts.get('cp1')!.vars, castellan_etcd_member: false } });
    const c = { ...base, inventory: { ...base.inventory, hosts } };
    expect(ids(planFor(getTool('rolling_upgrade'), { targets: 'node02' }, c), 0)).toContain('etcd-node02');
    expect(ids(planFor(getTool('rolling_upgrade'), { targets: 'cp1' }, c), 0)).not.toContain('etcd-cp1');
    expect(ids(planFor(getTool('rolling_upgrade'), { targets: 'cp2' }, c), 0).filter((id) => id.startsWith('wg-'))).toEqual([]);
  });

  it('refuses a wireguard var wireguard_mesh cannot read, and an etcd flag that is not a boolean', () => {
    const bad = (vars: Record<string, unknown>): PlanContext => {
      const base = rackCtx();
      const hosts = new Map(base.inventory.hosts);
      hosts.set('node03', { ...hosts.get('node03')!, vars: { ...hosts.get('node03')!.vars, ...vars } });
      return { ...base, inventory: { ...base.inventory, hosts } };
    };
    expect(() => planFor(getTool('rolling_upgrade'), { targets: 'node03' }, bad({ wireguard: { 'wg0; reboot': null } }))).toThrow(/inventory var wireguard of node03/);
    expect(() => planFor(getTool('rolling_upgrade'), { targets: 'node03' }, bad({ castellan_etcd_member: 'yes' }))).toThrow(/castellan_etcd_member must be true or false/);
  });

  it("blue/green's health batch runs the same service gates on the first half", () => {
    const p = planFor(getTool('blue_green_upgrade'), { first: 'cp1,node01', second: 'node02', batch_size: 2 }, rackCtx());
    expect(ids(p, 1)).toEqual(['health-answers', 'health-ready-cp1', 'health-ready-node01', 'health-wg-cp1', 'health-wg-node01', 'health-etcd-cp1']);
  });
});

function judge(def: ConditionDefinition | undefined, data: unknown, subject: string, args: Record<string, string>) {
  const observation: Observation = { tool: 'x', data, results: new Map() };
  return def!.judge(observation, subject, args);
}

// Recorded (see the header): one started member, one learner added but not started.
const MEMBER_LIST = '{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"raft_term":2},"members":[{"ID":7166512484567704226,"peerURLs":["http://127.0.0.1:23802"],"isLearner":true},{"ID":13668033151171901709,"name":"e1","peerURLs":["http://127.0.0.1:23801"],"clientURLs":["http://127.0.0.1:23791"]}]}';

describe('etcd membership', () => {
  it('reads member list with exact 64-bit ids, learners and members not yet started', () => {
    expect(parseMemberList(MEMBER_LIST)).toEqual([
      { id: '63749122890f62a2', name: '', peer_urls: ['http://127.0.0.1:23802'], client_urls: [], learner: true, started: false },
      { id: 'bdae9bbc11dd390d', name: 'e1', peer_urls: ['http://127.0.0.1:23801'], client_urls: ['http://127.0.0.1:23791'], learner: false, started: true },
    ]);
    expect(parseMemberList('')).toBeNull();
    expect(() => parseMemberList('Error: context deadline exceeded')).toThrow(/not JSON/);
  });

  it('the member condition waits for a started, voting member in a healthy cluster', () => {
    const member = etcdHealth.conditions?.member;
    const healthy = { members: [{}], healthy: true, problems: [] };
    const listed = (learner: boolean, name: string) => [{ id: 'a1', name, peer_urls: [], client_urls: [], learner, started: name !== '' }];
    expect(judge(member, { ...healthy, membership: listed(true, '') }, 'cp3', { name: 'cp3' })).toMatchObject({ state: 'waiting', observed: 'cp3 not a started member yet (1 member(s), 1 not started)' });
    expect(judge(member, { ...healthy, membership: listed(true, 'cp3') }, 'cp3', { name: 'cp3' })).toMatchObject({ state: 'waiting', observed: expect.stringContaining('is a learner') });
    expect(judge(member, { members: [{}], healthy: false, problems: ['http://e2 unhealthy'], membership: listed(false, 'cp3') }, 'cp3', { name: 'cp3' })).toMatchObject({ state: 'waiting', observed: 'cp3 is a voting member, but: http://e2 unhealthy' });
    expect(judge(member, { ...healthy, membership: listed(false, 'cp3') }, 'cp3', { name: 'cp3' })).toMatchObject({ state: 'holds' });
    expect(judge(member, { control_plane: 'cp1', error: 'etcdctl did not run on cp1: unreachable' }, 'cp3', { name: 'cp3' })).toMatchObject({ state: 'waiting', observed: 'etcdctl did not run on cp1: unreachable' });
  });
});
