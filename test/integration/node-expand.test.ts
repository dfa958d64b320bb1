// node_expand end to end: node03 is in the inventory but neither pinned nor in the cluster.
// The approval view shows the fingerprint and the Node object; a wrong fingerprint pins
// nothing and applies nothing; the right one pins the key, applies the Node with its role,
// runs the deployment playbook with Debian's ansible, and waits for Ready.
import { readFile, writeFile } from 'node:fs/promises';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { jobView } from '../../src/present/job-view.js';
import { planText } from '../../src/present/render/text.js';
import { fingerprint } from '../../src/ssh/known-hosts.js';
import { startLabWorld, type LabWorld } from '../fixtures/node-programs/lab-world.js';
import { useCastellan } from '../support/castellan.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

const dir = mkdtempSync(path.join(os.tmpdir(), 'castellan-expand-'));
const playbook = path.join(dir, 'join.yml');
writeFileSync(playbook, ['- hosts: all', '  gather_facts: false', '  tasks:', '    - name: join the cluster', '      ansible.builtin.command: lab-kubelet-join', ''].join('\n'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let world: LabWorld;
let node03Fingerprint = '';
const c = useCastellan({
  nodes: 3,
  lab: { nodeBinDirs: true },
  config: { ansible: { playbooks: { join: { path: playbook, risk: 'destructive', description: 'Join a node to the cluster' } } } },
  prepare: async (lab) => {
    // node03 was never trusted: its pin is not in known_hosts.
    const node03 = lab.nodes.find((n) => n.name === 'node03')!;
    const pins = (await readFile(lab.knownHostsFile, 'utf8')).split('\n').filter((l) => l !== '' && !l.startsWith(`[${node03.address}]:`));
    await writeFile(lab.knownHostsFile, `${pins.join('\n')}\n`);
    const blob = Buffer.from((await readFile(`${node03.hostKeyFile}.pub`, 'utf8')).trim().split(/\s+/)[1]!, 'base64');
    node03Fingerprint = fingerprint(blob);
    const inventory = await readFile(lab.inventoryFile, 'utf8');
    await writeFile(lab.inventoryFile, `${inventory.trimEnd()}\n    k8s_control_plane:\n      hosts:\n        node01:\n`);
    world = await startLabWorld({ lab, controlPlane: ['node01'], notInCluster: ['node03'] });
  },
});
afterAll(async () => {
  await world.stop();
});

describe('node_expand', () => {
  it('refuses a key other than the approved one: nothing pinned, nothing applied', async () => {
    const wrong = `SHA256:${'A'.repeat(43)}`;
    const { job } = await c.runtime.service.submit({ tool: 'node_expand', input: { node: 'node03', role: 'worker', host_key_fingerprint: wrong, deploy_playbook: 'join' }, requester: oscar, replyTo: { kind: 'cli' } });
    await c.runtime.service.approve(job.id, april);
    const done = await c.runtime.service.wait(job.id, oscar, 120_000);
    expect(done.state).toBe('failed');
    expect(done.result!.steps[0]!.results[0]).toMatchObject({ status: 'host_key_rejected', error: `node03 presents ${node03Fingerprint}, not the approved ${wrong}` });
    expect(await readFile(c.lab.knownHostsFile, 'utf8')).not.toContain(c.lab.nodes[2]!.address);
    expect(world.cluster().nodes.node03).toBeUndefined();
  }, 150_000);

  it('pins the approved key, applies the Node with its role, deploys, and waits for Ready', async () => {
    const { job } = await c.runtime.service.submit({ tool: 'node_expand', input: { node: 'node03', role: 'infra', host_key_fingerprint: node03Fingerprint, deploy_playbook: 'join', ready_timeout: '60s' }, requester: oscar, replyTo: { kind: 'cli' } });
    expect(job.state).toBe('awaiting_approval');
    const card = planText(jobView(job).plan, { color: false });
    expect(card).toContain(`pin node03's host key ${node03Fingerprint} in known_hosts`);
    expect(card).toContain('"node-role.kubernetes.io/infra":""');
    expect(card).toContain('"taints":[{"key":"node-role.kubernetes.io/infra","effect":"NoSchedule"}]');
    expect(card).toContain(`ansible-playbook --limit node03 -- ${playbook}`);
    await c.runtime.service.approve(job.id, april);
    const done = await c.runtime.service.wait(job.id, oscar, 240_000);
    expect(done.state, `${done.reason ?? ''}`).toBe('succeeded');
    expect(done.result!.steps.map((s) => [s.id, s.results[0]?.status])).toEqual([['pin-host-key', 'ok'], ['node-object', 'ok'], ['deploy', 'ok'], ['ready', 'ok']]);
    expect(await readFile(c.lab.knownHostsFile, 'utf8')).toContain(`[${c.lab.nodes[2]!.address}]:`);
    expect(world.cluster().nodes.node03).toMatchObject({ ready: true, labels: { 'node-role.kubernetes.io/infra': '' }, taints: [{ key: 'node-role.kubernetes.io/infra', effect: 'NoSchedule' }] });
  }, 300_000);
});
