// etcd_health against a real 3-member etcd (Debian's etcd-server) on loopback, asked with the
// real etcdctl from a lab sshd node whose inventory vars name the members: healthy; one member
// killed → that member unhealthy and the check failed, quorum kept; two killed → no quorum.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { rolesForGroups } from '../../auth/roles.js';
import type { EtcdHealth } from '../../tools/etcd-health.js';
import { useCastellan } from '../support/castellan.js';
import { startEtcd, type EtcdCluster } from '../support/etcd.js';

const varsDir = mkdtempSync(path.join(os.tmpdir(), 'castellan-etcd-inv-'));
const varsFile = path.join(varsDir, 'etcd-vars.yaml');
const writeVars = (endpoints: string[]): void => writeFileSync(varsFile, stringify({ all: { hosts: { node01: { etcd_endpoints: endpoints } } } }));
writeVars(['http://127.0.0.1:1']);

const c = useCastellan({ nodes: 1, extraInventory: varsFile });
let etcd: EtcdCluster;
beforeAll(async () => {
  etcd = await startEtcd(3);
  writeVars(etcd.members.map((m) => m.clientUrl));
}, 60_000);
afterAll(async () => {
  await etcd?.down();
  await rm(varsDir, { recursive: true, force: true });
});

const viewer = { subject: 'vera', displayName: 'vera', groups: ['everyone'], roles: rolesForGroups(['everyone'], { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] }), origin: 'cli' as const };

/** Runs etcd_health; the job fails (etcdctl exits 1) exactly when a member is down. */
async function check(state: 'succeeded' | 'failed' = 'succeeded'): Promise<{ data: EtcdHealth; commands: string[][] }> {
  const { job } = await c.runtime.service.submit({ tool: 'etcd_health', input: { control_plane: 'node01' }, requester: viewer, replyTo: { kind: 'cli' } });
  const done = await c.runtime.service.wait(job.id, viewer, 60_000);
  expect(done.state).toBe(state);
  const commands = done.plan.batches.flatMap((b) => b.steps.map((s) => (s.action.kind === 'exec' ? [...s.action.argv] : [])));
  return { data: done.result?.data as EtcdHealth, commands };
}

describe('etcd_health on a real etcd cluster', () => {
  it('is healthy with three members and one leader, asking the members the inventory names', async () => {
    const { data, commands } = await check();
    expect(commands[0]).toEqual(['etcdctl', `--endpoints=${etcd.members.map((m) => m.clientUrl).join(',')}`, '--write-out=json', '--dial-timeout=3s', '--command-timeout=5s', 'endpoint', 'status']);
    expect(data).toMatchObject({ control_plane: 'node01', healthy: true, quorum: true, healthy_members: 3, split_leader: false, problems: [] });
    expect(data.members.filter((m) => m.is_leader)).toHaveLength(1);
    expect(new Set(data.members.map((m) => m.leader_id)).size).toBe(1);
    for (const m of data.members) {
      expect(m.version).toMatch(/^3\.\d+\.\d+$/);
      expect(m.member_id).toMatch(/^[0-9a-f]+$/);
      expect(m.db_size_bytes).toBeGreaterThan(0);
      expect(m.index_lag).toBeGreaterThanOrEqual(0);
    }
  }, 60_000);

  it('names the stopped member unhealthy and fails the check, keeping quorum; two stopped is no quorum', async () => {
    const [first, second, third] = etcd.members;
    await etcd.stop(third!.name);
    const one = (await check('failed')).data;
    expect(one.healthy).toBe(false);
    expect(one.quorum).toBe(true);
    expect(one.healthy_members).toBe(2);
    expect(one.members.find((m) => m.endpoint === third!.clientUrl)).toMatchObject({ healthy: false });
    expect(one.problems[0]).toMatch(new RegExp(`^${third!.clientUrl.replaceAll('.', '\\.')} unhealthy`));

    await etcd.stop(second!.name);
    const two = (await check('failed')).data;
    expect(two.quorum).toBe(false);
    expect(two.healthy_members).toBeLessThanOrEqual(1);
    expect(two.problems.join('\n')).toMatch(/no quorum: [01] of 3 members healthy, 2 needed/);
    expect(two.members.find((m) => m.endpoint === first!.clientUrl)).toBeDefined();
  }, 120_000);
});
