// node_expand end to end: node03 is in the inventory but neither pinned nor in the cluster.
// The approval view shows the fingerprint and the Node object; a wrong fingerprint pins
// nothing and applies nothing; the right one pins the key, applies the Node with its role,
// runs the deployment playbook with Debian's ansible, and waits for Ready. node04 joins as a
// control-plane node of a real 3-member etcd: Castellan adds it as a learner with etcdctl on
// node01, the deployment starts a real etcd on it, Castellan promotes it once it caught up, and
// the job waits until etcd lists it as a started voting member. node05's deployment fails: the
// learner (already listed by an earlier try, so not added twice) is removed again.
import { readFile, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { jobView } from '../../src/present/job-view.js';
import { planText } from '../../src/present/render/text.js';
import { fingerprint } from '../../src/ssh/known-hosts.js';
import { findFreePort } from '../../src/lab/net.js';
import { startLabWorld, type LabWorld } from '../fixtures/node-programs/lab-world.js';
import { useCastellan } from '../support/castellan.js';
import { startEtcd, type EtcdCluster } from '../support/etcd.js';
import { parse, stringify } from 'yaml';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

const dir = mkdtempSync(path.join(os.tmpdir(), 'castellan-expand-'));
// The node runs the join script as the lab's login user: it must read the script and write etcd's data.
chmodSync(dir, 0o755);
const etcdData = path.join(dir, 'etcd');
mkdirSync(etcdData, { mode: 0o777 });
chmodSync(etcdData, 0o777);
const joinEtcd = path.join(dir, 'join-etcd.sh');
const etcdPidFile = path.join(etcdData, 'etcd.pid');
const playbook = path.join(dir, 'join.yml');
writeFileSync(playbook, [
  '- hosts: all',
  '  gather_facts: false',
  '  tasks:',
  // node05 stands for a node whose deployment breaks.
  '    - name: a broken node',
  '      ansible.builtin.fail:',
  '        msg: node05 cannot be deployed',
  "      when: inventory_hostname == 'node05'",
  '    - name: join the cluster',
  '      ansible.builtin.command: lab-kubelet-join',
  // What kubeadm join --control-plane does for etcd once the member is added: start it against the existing cluster.
  '    - name: start etcd',
  `      ansible.builtin.command: sh ${joinEtcd} {{ etcd_name }}`,
  "      when: node_role == 'control-plane'",
  '',
].join('\n'));
const run = promisify(execFile);

let etcd: EtcdCluster;
let world: LabWorld;
const fingerprints: Record<string, string> = {};
const peers = { node04: '', node05: '' };
const c = useCastellan({
  nodes: 5,
  lab: { nodeBinDirs: true },
  config: {
    ansible: {
      playbooks: {
        join: {
          path: playbook,
          risk: 'destructive',
          description: 'Join a node to the cluster',
          extra_vars: { node_role: { type: 'enum', values: ['control-plane', 'infra', 'worker'] }, etcd_name: { type: 'string', pattern: '^[a-z0-9-]+$' } },
        },
      },
    },
  },
  prepare: async (lab) => {
    // node03, node04 and node05 were never trusted: their pins are not in known_hosts.
    const fresh = lab.nodes.filter((n) => ['node03', 'node04', 'node05'].includes(n.name));
    const pins = (await readFile(lab.knownHostsFile, 'utf8')).split('\n').filter((l) => l !== '' && !fresh.some((n) => l.startsWith(`[${n.address}]:`)));
    await writeFile(lab.knownHostsFile, `${pins.join('\n')}\n`);
    for (const n of fresh) fingerprints[n.name] = fingerprint(Buffer.from((await readFile(`${n.hostKeyFile}.pub`, 'utf8')).trim().split(/\s+/)[1]!, 'base64'));
    etcd = await startEtcd(3);
    const ports = new Set<number>();
    while (ports.size < 3) ports.add(await findFreePort());
    const [clientPort, peerPort, peer5Port] = [...ports];
    const client = `http://127.0.0.1:${clientPort}`;
    peers.node04 = `http://127.0.0.1:${peerPort}`;
    peers.node05 = `http://127.0.0.1:${peer5Port}`;
    // Castellan added the node as a learner before the deployment: its entry (found by peer URL,
    // still without a name) and the others make --initial-cluster. etcdctl is retried: a loaded
    // machine can time it out.
    writeFileSync(joinEtcd, [
      'set -eu',
      `ctl() { etcdctl --endpoints=${etcd.members.map((m) => m.clientUrl).join(',')} --command-timeout=15s "$@"; }`,
      'tries=0',
      'while :; do',
      `  if list=$(ctl member list) && printf "%s\\n" "$list" | grep -qF ", ${peers.node04}, "; then`,
      `    cluster=$(printf "%s\\n" "$list" | awk -F ', ' -v me="$1" -v peer=${peers.node04} '{ printf "%s%s=%s", sep, ($4 == peer ? me : $3), $4; sep = "," }')`,
      '    break',
      '  fi',
      '  tries=$((tries + 1))',
      '  [ "$tries" -lt 30 ] || { echo "etcd does not list this node: it is added before the deployment" >&2; exit 1; }',
      '  sleep 1',
      'done',
      `setsid etcd --name "$1" --data-dir ${etcdData}/"$1" --listen-client-urls ${client} --advertise-client-urls ${client} --listen-peer-urls ${peers.node04} --initial-advertise-peer-urls ${peers.node04} --initial-cluster "$cluster" --initial-cluster-state existing --log-level error > ${etcdData}/etcd.log 2>&1 < /dev/null &`,
      `echo $! > ${etcdPidFile}`,
      '',
    ].join('\n'), { mode: 0o644 });
    const inventory = await readFile(lab.inventoryFile, 'utf8');
    // node01 is the control plane, asking etcd's members; node04 and node05 name their etcd peer URLs.
    const doc = parse(inventory) as { all: { children: Record<string, { hosts: Record<string, Record<string, unknown> | null> }> } };
    const labHosts = doc.all.children.lab!.hosts;
    for (const n of ['node04', 'node05'] as const) labHosts[n] = { ...labHosts[n], etcd_peer_url: peers[n] };
    doc.all.children.k8s_control_plane = { hosts: { node01: { etcd_endpoints: etcd.members.map((m) => m.clientUrl) } } };
    await writeFile(lab.inventoryFile, stringify(doc, { nullStr: '' }));
    world = await startLabWorld({ lab, controlPlane: ['node01'], notInCluster: ['node03', 'node04', 'node05'] });
  },
});
afterAll(async () => {
  if (existsSync(etcdPidFile)) {
    try {
      process.kill(Number(readFileSync(etcdPidFile, 'utf8').trim()), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await Promise.all([world?.stop(), etcd?.down()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('node_expand', () => {
  it('refuses a key other than the approved one: nothing pinned, nothing applied', async () => {
    const wrong = `SHA256:${'A'.repeat(43)}`;
    const { job } = await c.runtime.service.submit({ tool: 'node_expand', input: { node: 'node03', role: 'worker', host_key_fingerprint: wrong, deploy_playbook: 'join' }, requester: oscar, replyTo: { kind: 'cli' } });
    await c.runtime.service.approve(job.id, april);
    const done = await c.runtime.service.wait(job.id, oscar, 120_000);
    expect(done.state).toBe('failed');
    expect(done.result!.steps[0]!.results[0]).toMatchObject({ status: 'host_key_rejected', error: `node03 presents ${fingerprints.node03!}, not the approved ${wrong}` });
    expect(await readFile(c.lab.knownHostsFile, 'utf8')).not.toContain(c.lab.nodes[2]!.address);
    expect(world.cluster().nodes.node03).toBeUndefined();
  }, 150_000);

  it('pins the approved key, applies the Node with its role, deploys, and waits for Ready', async () => {
    const { job } = await c.runtime.service.submit({ tool: 'node_expand', input: { node: 'node03', role: 'infra', host_key_fingerprint: fingerprints.node03!, deploy_playbook: 'join', ready_timeout: '60s' }, requester: oscar, replyTo: { kind: 'cli' } });
    expect(job.state).toBe('awaiting_approval');
    const card = planText(jobView(job).plan, { color: false });
    expect(card).toContain(`pin node03's host key ${fingerprints.node03!} in known_hosts`);
    expect(card).toContain('"node-role.kubernetes.io/infra":""');
    expect(card).toContain('"taints":[{"key":"node-role.kubernetes.io/infra","effect":"NoSchedule"}]');
    expect(card).toContain(`ansible-playbook --limit node03 --extra-vars '{"node_role":"infra"}' -- ${playbook}`);
    await c.runtime.service.approve(job.id, april);
    const done = await c.runtime.service.wait(job.id, oscar, 240_000);
    expect(done.state, `${done.reason ?? ''}`).toBe('succeeded');
    expect(done.result!.steps.map((s) => [s.id, s.results[0]?.status])).toEqual([['pin-host-key', 'ok'], ['node-object', 'ok'], ['deploy', 'ok'], ['ready', 'ok']]);
    expect(await readFile(c.lab.knownHostsFile, 'utf8')).toContain(`[${c.lab.nodes[2]!.address}]:`);
    expect(world.cluster().nodes.node03).toMatchObject({ ready: true, labels: { 'node-role.kubernetes.io/infra': '' }, taints: [{ key: 'node-role.kubernetes.io/infra', effect: 'NoSchedule' }] });
    // Not a control-plane node: etcd is not touched and not gated on.
    expect(existsSync(etcdPidFile)).toBe(false);
  }, 300_000);

  it('a control-plane node: etcd healthy first, added as a learner by Castellan, deployed, promoted once caught up, then a started voting member', async () => {
    const { job } = await c.runtime.service.submit({ tool: 'node_expand', input: { node: 'node04', role: 'control-plane', host_key_fingerprint: fingerprints.node04!, deploy_playbook: 'join', ready_timeout: '60s' }, requester: oscar, replyTo: { kind: 'cli' } });
    const card = planText(jobView(job).plan, { color: false });
    const ctl = `etcdctl --endpoints=${etcd.members.map((m) => m.clientUrl).join(',')} --dial-timeout=3s --command-timeout=5s`;
    expect(card).toContain('etcd-before: gate etcd_health until healthy (about node04) on node01');
    expect(card).toContain(`etcd-add: ${ctl} member add node04 --learner --peer-urls=${peers.node04} (about node04) on node01`);
    expect(card).toContain(`add node04 (peer ${peers.node04}) to etcd as a learner, unless etcd already lists that peer URL (etcd's passing refusals retried up to 120s)`);
    expect(card).toMatch(/on failure: etcd-remove-learner: etcdctl [^\n]* member remove '<id of the member with that peer URL>'/);
    expect(card).toContain(`etcd-promote: ${ctl} member promote '<id of the member with that peer URL>' (about node04) on node01`);
    expect(card).toContain('etcd-member: gate etcd_health until member name=node04 (about node04) on node01');
    expect(card).toContain(`ansible-playbook --limit node04 --extra-vars '{"node_role":"control-plane","etcd_name":"node04"}' -- ${playbook}`);
    // In this order: nothing changes in etcd before it is known healthy; the learner exists before its etcd starts.
    expect(job.plan.batches[0]!.steps.map((s) => s.id)).toEqual(['pin-host-key', 'etcd-before', 'node-object', 'etcd-add', 'deploy', 'ready', 'etcd-promote', 'etcd-member']);
    await c.runtime.service.approve(job.id, april);
    const done = await c.runtime.service.wait(job.id, oscar, 240_000);
    expect(done.state, `${done.reason ?? ''} ${JSON.stringify(done.result?.steps.map((s) => [s.id, s.results[0]?.status, s.results[0]?.error, s.results[0]?.stdout]))}`).toBe('succeeded');
    expect(done.result!.steps.map((s) => s.id)).toEqual(['pin-host-key', 'etcd-before', 'node-object', 'etcd-add', 'deploy', 'ready', 'etcd-promote', 'etcd-member']);
    const out = (id: string): string => done.result!.steps.find((s) => s.id === id)!.results[0]!.stdout;
    // Each change lists first, and the result shows every command as run.
    expect(out('etcd-add')).toContain(`$ ${ctl} member list --write-out=json\n# 3 member(s); node04 (${peers.node04}) is not a member\n`);
    expect(out('etcd-add')).toContain(`$ ${ctl} member add node04 --learner --peer-urls=${peers.node04}\n`);
    expect(out('etcd-add')).toMatch(/\nadded node04 as a learner\n$/);
    expect(out('etcd-promote')).toMatch(/# 4 member\(s\); node04 is id ([0-9a-f]+) \(learner, started\)\n(.*\n)*\$ etcdctl .* member promote \1\n(.*\n)*promoted node04 \(id \1\) to a voting member\n$/);
    expect(done.result!.steps.find((s) => s.id === 'etcd-member')!.observations![0]!.observed).toMatch(/^node04 is a voting member \(id [0-9a-f]+\) of 4; 3 asked members healthy$/);
    expect(world.cluster().nodes.node04).toMatchObject({ ready: true, labels: { 'node-role.kubernetes.io/control-plane': '', 'node-role.kubernetes.io/etcd': '' } });
    const members = await memberList();
    expect(members.filter((m) => m.peerURLs.includes(peers.node04))).toEqual([expect.objectContaining({ name: 'node04' })]);
    expect(members.find((m) => m.name === 'node04')?.isLearner).toBeUndefined();
  }, 300_000);

  it("a failed deployment removes the learner it left (already listed by an earlier try, so not added twice), and says so", async () => {
    // An earlier try that etcdctl gave up on was committed: node05 is listed, unstarted.
    await ctlRetrying(['member', 'add', 'node05', '--learner', `--peer-urls=${peers.node05}`]);
    const before = await memberList();
    const { job } = await c.runtime.service.submit({ tool: 'node_expand', input: { node: 'node05', role: 'control-plane', host_key_fingerprint: fingerprints.node05!, deploy_playbook: 'join', ready_timeout: '30s' }, requester: oscar, replyTo: { kind: 'cli' } });
    await c.runtime.service.approve(job.id, april);
    const done = await c.runtime.service.wait(job.id, oscar, 240_000);
    expect(done.state).toBe('failed');
    const step = (id: string) => done.result!.steps.find((s) => s.id === id)!;
    expect(step('etcd-add').results[0]!.stdout).toMatch(/already added \(id [0-9a-f]+, learner, not started\): not added again\n$/);
    expect(step('etcd-add').results[0]!.stdout).not.toContain('member add');
    expect(step('deploy').results[0]).toMatchObject({ host: 'node05', status: 'failed' });
    // The rollback: the learner never started, so removing it cannot cost quorum.
    const removed = step('etcd-remove-learner');
    expect(removed.onFailure).toEqual({ subject: 'node05', armedBy: 'etcd-add' });
    expect(removed.results[0]).toMatchObject({ host: 'node01', status: 'ok' });
    expect(removed.results[0]!.stdout).toMatch(/\$ etcdctl .* member remove ([0-9a-f]+)\n(.*\n)*removed learner node05 \(id \1, never started\)\n$/);
    // Later steps did not run; etcd is back to what it was without node05.
    expect(step('etcd-promote').results[0]).toMatchObject({ status: 'skipped' });
    const after = await memberList();
    expect(after.some((m) => m.peerURLs.includes(peers.node05))).toBe(false);
    expect(after).toHaveLength(before.length - 1);
    expect(done.result!.hosts.find((h) => h.host === 'node05')).toMatchObject({ status: 'failed', step: 'deploy' });
  }, 300_000);
});

interface ListedMember {
  name: string;
  peerURLs: string[];
  isLearner?: boolean;
}

/** etcdctl on this machine, retried while etcd refuses a reconfiguration for a while ("unhealthy cluster"). */
async function ctlRetrying(args: readonly string[]): Promise<string> {
  const endpoints = `--endpoints=${etcd.members.map((m) => m.clientUrl).join(',')}`;
  for (let tries = 1; ; tries++) {
    try {
      return (await run('etcdctl', [endpoints, '--command-timeout=15s', ...args])).stdout;
    } catch (err) {
      // A timed-out add may have been committed: then it is listed, and done.
      if (args[1] === 'add' && (await run('etcdctl', [endpoints, 'member', 'list']).catch(() => ({ stdout: '' }))).stdout.includes(args.at(-1)!.replace('--peer-urls=', ''))) return '';
      if (tries >= 30) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

async function memberList(): Promise<ListedMember[]> {
  return (JSON.parse(await ctlRetrying(['member', 'list', '--write-out=json'])) as { members: ListedMember[] }).members;
}
