// node_expand end to end: node03 is in the inventory but neither pinned nor in the cluster.
// The approval view shows the fingerprint and the Node object; a wrong fingerprint pins
// nothing and applies nothing; the right one pins the key, applies the Node with its role,
// runs the deployment playbook with Debian's ansible, and waits for Ready. node04 joins as a
// control-plane node: its deployment adds it to a real 3-member etcd (etcdctl member add, then
// a real etcd started on it), and the job waits until etcd lists it as a started voting member.
import { readFile, writeFile } from 'node:fs/promises';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  '    - name: join the cluster',
  '      ansible.builtin.command: lab-kubelet-join',
  // What kubeadm join --control-plane does for etcd: add the member, start it against the existing cluster.
  '    - name: join etcd',
  `      ansible.builtin.command: sh ${joinEtcd} {{ etcd_name }}`,
  "      when: node_role == 'control-plane'",
  '',
].join('\n'));

let etcd: EtcdCluster;
let world: LabWorld;
const fingerprints: Record<string, string> = {};
const c = useCastellan({
  nodes: 4,
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
    // node03 and node04 were never trusted: their pins are not in known_hosts.
    const fresh = lab.nodes.filter((n) => n.name === 'node03' || n.name === 'node04');
    const pins = (await readFile(lab.knownHostsFile, 'utf8')).split('\n').filter((l) => l !== '' && !fresh.some((n) => l.startsWith(`[${n.address}]:`)));
    await writeFile(lab.knownHostsFile, `${pins.join('\n')}\n`);
    for (const n of fresh) fingerprints[n.name] = fingerprint(Buffer.from((await readFile(`${n.hostKeyFile}.pub`, 'utf8')).trim().split(/\s+/)[1]!, 'base64'));
    etcd = await startEtcd(3);
    const clientPort = await findFreePort();
    let peerPort = await findFreePort();
    while (peerPort === clientPort) peerPort = await findFreePort();
    const client = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    // Like kubeadm, the member add is retried: etcd refuses a reconfiguration ("unhealthy cluster")
    // until the member asked has been connected to every peer for 5 s, and a loaded machine can
    // time etcdctl out. A try etcdctl gave up on may still have been committed: then the new
    // member is listed (unstarted, no name yet) and is not added twice.
    writeFileSync(joinEtcd, [
      'set -eu',
      `ctl() { etcdctl --endpoints=${etcd.members.map((m) => m.clientUrl).join(',')} --command-timeout=15s "$@"; }`,
      'tries=0',
      'while :; do',
      `  if out=$(ctl member add "$1" --peer-urls=${peer}); then`,
      '    cluster=$(printf "%s\\n" "$out" | sed -n "s/^ETCD_INITIAL_CLUSTER=\\"\\(.*\\)\\"$/\\1/p")',
      '    break',
      '  fi',
      `  if list=$(ctl member list) && printf "%s\\n" "$list" | grep -qF ", ${peer}, "; then`,
      `    cluster=$(printf "%s\\n" "$list" | awk -F ', ' -v me="$1" -v peer=${peer} '{ printf "%s%s=%s", sep, ($4 == peer ? me : $3), $4; sep = "," }')`,
      '    break',
      '  fi',
      '  tries=$((tries + 1))',
      '  [ "$tries" -lt 30 ] || { echo "etcd member add refused $tries times" >&2; exit 1; }',
      '  sleep 1',
      'done',
      `setsid etcd --name "$1" --data-dir ${etcdData}/"$1" --listen-client-urls ${client} --advertise-client-urls ${client} --listen-peer-urls ${peer} --initial-advertise-peer-urls ${peer} --initial-cluster "$cluster" --initial-cluster-state existing --log-level error > ${etcdData}/etcd.log 2>&1 < /dev/null &`,
      `echo $! > ${etcdPidFile}`,
      '',
    ].join('\n'), { mode: 0o644 });
    const inventory = await readFile(lab.inventoryFile, 'utf8');
    await writeFile(lab.inventoryFile, `${inventory.trimEnd()}\n    k8s_control_plane:\n      hosts:\n        node01:\n          etcd_endpoints: ${JSON.stringify(etcd.members.map((m) => m.clientUrl))}\n`);
    world = await startLabWorld({ lab, controlPlane: ['node01'], notInCluster: ['node03', 'node04'] });
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

  it('a control-plane node checks etcd first, deploys, and waits until it is a started voting etcd member', async () => {
    const { job } = await c.runtime.service.submit({ tool: 'node_expand', input: { node: 'node04', role: 'control-plane', host_key_fingerprint: fingerprints.node04!, deploy_playbook: 'join', ready_timeout: '60s' }, requester: oscar, replyTo: { kind: 'cli' } });
    const card = planText(jobView(job).plan, { color: false });
    expect(card).toContain('etcd-before: gate etcd_health until healthy (about node04) on node01');
    expect(card).toContain('etcd-member: gate etcd_health until member name=node04 (about node04) on node01');
    expect(card).toContain(`ansible-playbook --limit node04 --extra-vars '{"node_role":"control-plane","etcd_name":"node04"}' -- ${playbook}`);
    await c.runtime.service.approve(job.id, april);
    const done = await c.runtime.service.wait(job.id, oscar, 240_000);
    expect(done.state, `${done.reason ?? ''} ${JSON.stringify(done.result?.steps.map((s) => [s.id, s.results[0]?.status, s.results[0]?.error]))}`).toBe('succeeded');
    expect(done.result!.steps.map((s) => s.id)).toEqual(['pin-host-key', 'etcd-before', 'node-object', 'deploy', 'ready', 'etcd-member']);
    expect(done.result!.steps.find((s) => s.id === 'etcd-member')!.observations![0]!.observed).toMatch(/^node04 is a voting member \(id [0-9a-f]+\) of 4; 3 asked members healthy$/);
    expect(world.cluster().nodes.node04).toMatchObject({ ready: true, labels: { 'node-role.kubernetes.io/control-plane': '', 'node-role.kubernetes.io/etcd': '' } });
  }, 300_000);
});
