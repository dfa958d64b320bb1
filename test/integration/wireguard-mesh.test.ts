// wireguard_mesh on a real WireGuard mesh: 4 nodes × 2 planes (wg0 bootstrap 51820, wg1 control
// 51821, the rack's layout), each node a network namespace running Debian's wireguard-go per
// plane and its own sshd, so Castellan runs the real `wg show <if> dump` and `ping -I <if>`
// there over SSH. Healthy first (real handshakes, every peer answering), then faults: a node's
// WireGuard stopped (stale and unreachable everywhere, its planes down), and a wrong key on one
// plane (the stray key unexpected, the real peer missing). Private keys never leave the nodes.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { rolesForGroups } from '../../auth/roles.js';
import type { LabOptions } from '../../src/lab/sshd-lab.js';
import type { WireguardMesh } from '../../tools/wireguard-mesh.js';
import { useCastellan } from '../support/castellan.js';
import { startWgMesh, type WgMesh } from '../support/wg-mesh.js';

const PLANES = [
  { name: 'wg0', port: 51820, net: '10.77' },
  { name: 'wg1', port: 51821, net: '10.78' },
];
const NODES = ['node01', 'node02', 'node03', 'node04'];
const dir = mkdtempSync(path.join(os.tmpdir(), 'castellan-wgmesh-'));
const varsFile = path.join(dir, 'wireguard-vars.yaml');
writeFileSync(varsFile, stringify({ all: { hosts: {} } }));
const labOptions: Omit<LabOptions, 'nodes' | 'dir' | 'redisUrl'> = {};
let mesh: WgMesh;
let settledAt = 0;

// What a run SIGKILLed earlier leaves: a namespace and a bridge named after a process that is gone.
let stale: { netns: string; bridge: string } | undefined;
function plantStaleMesh(): { netns: string; bridge: string } {
  const gone = spawnSync('/bin/true').pid;
  const planted = { netns: `castellan-cw${gone}-node01`, bridge: `cw${gone}br` };
  execFileSync('/usr/sbin/ip', ['netns', 'add', planted.netns]);
  execFileSync('/usr/sbin/ip', ['link', 'add', planted.bridge, 'type', 'bridge']);
  return planted;
}

// Registered before useCastellan's: the namespaces exist before the lab starts sshd in them.
beforeAll(async () => {
  stale = plantStaleMesh();
  mesh = await startWgMesh({ dir: path.join(dir, 'mesh'), nodes: NODES.length, planes: PLANES });
  Object.assign(labOptions, { namespaces: { addresses: mesh.nodes.map((n) => n.address), port: 22, enter: (name: string) => mesh.nodes.find((n) => n.name === name)?.enter ?? [] } });
  writeFileSync(varsFile, stringify({ all: { hosts: mesh.inventoryVars() } }));
  for (const n of NODES) await mesh.startPlanes(n);
  await mesh.waitHandshakes(NODES, 0);
  settledAt = Math.floor(Date.now() / 1000);
}, 120_000);

const c = useCastellan({ nodes: NODES.length, lab: labOptions, extraInventory: varsFile });

afterAll(async () => {
  await mesh?.down();
  await rm(dir, { recursive: true, force: true });
});

const viewer = { subject: 'vera', displayName: 'vera', groups: ['everyone'], roles: rolesForGroups(['everyone'], { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] }), origin: 'cli' as const };

async function check(input: Record<string, unknown>): Promise<{ data: WireguardMesh; json: string }> {
  const { job } = await c.runtime.service.submit({ tool: 'wireguard_mesh', input, requester: viewer, replyTo: { kind: 'cli' } });
  const done = await c.runtime.service.wait(job.id, viewer, 90_000);
  expect(done.state, JSON.stringify(done.result?.hosts)).toBe('succeeded');
  return { data: done.result?.data as WireguardMesh, json: JSON.stringify(done) };
}

const publicKeys = (): string[] => mesh.nodes.flatMap((n) => [...n.keys.values()].map((k) => k.publicKey));
const privateKeys = (): string[] => mesh.nodes.flatMap((n) => [...n.keys.values()].map((k) => readFileSync(k.privateKeyFile, 'utf8').trim()));

describe('wireguard_mesh on real wireguard-go in network namespaces', () => {
  it('the harness removed what an earlier, SIGKILLed run left (its namespace and bridge), and kept its own', () => {
    const namespaces = execFileSync('/usr/sbin/ip', ['netns', 'list'], { encoding: 'utf8' });
    expect(namespaces).not.toContain(stale?.netns);
    expect(spawnSync('/usr/sbin/ip', ['link', 'show', stale?.bridge ?? '']).status).not.toBe(0);
    for (const n of mesh.nodes) expect(namespaces).toContain(n.netns);
  });

  it('a healthy mesh: every node × peer ok on both planes, real handshakes, counters and pings; no private key anywhere', async () => {
    const { data, json } = await check({ reachability: true });
    expect(data.problems).toEqual([]);
    expect(data.healthy).toBe(true);
    for (const plane of data.planes) {
      expect(Object.keys(plane.matrix)).toEqual(NODES);
      for (const row of NODES) expect(Object.values(plane.matrix[row] ?? {})).toEqual(['ok', 'ok', 'ok']);
    }
    const n1wg1 = data.nodes[0]?.planes.find((p) => p.plane === 'wg1');
    expect(n1wg1).toMatchObject({ up: true, listen_port: 51821, expected_port: 51821, key_matches_inventory: true });
    for (const peer of n1wg1?.peers ?? []) {
      expect(peer.latest_handshake).not.toBeNull();
      expect(peer.transfer_rx_bytes).toBeGreaterThan(0);
      expect(peer.reachable).toBe(true);
      expect(peer.rtt_ms).toBeGreaterThan(0);
      expect(peer.endpoint).toBe(peer.expected_endpoint);
    }
    expect(n1wg1?.peers.map((p) => p.peer)).toEqual(['node02', 'node03', 'node04']);
    for (const key of privateKeys()) {
      expect(json).not.toContain(key);
      expect(readFileSync(path.join(c.dir, 'audit.jsonl'), 'utf8')).not.toContain(key);
      expect(c.logs.join('')).not.toContain(key);
    }
    // Public keys are not shown either (the nodes send digests): peers are named by inventory host.
    for (const key of publicKeys()) expect(json).not.toContain(key);
  }, 120_000);

  it('the CLI reads it as the tool\'s view (alike nodes folded per plane) and shows no key', async () => {
    const r = await c.cli(['wireguard_mesh', '--planes', 'wg0'], { timeoutMs: 90_000 });
    expect(r.code, r.stderr).toBe(0);
    // The tool's result view: alike nodes folded into one row per plane.
    expect(r.stdout).toMatch(/^node\[01-04\] \(4\)\s+wg0\s+up\s+3 of 3 ok$/m);
    for (const key of [...privateKeys(), ...publicKeys()]) expect(r.stdout + r.stderr).not.toContain(key);
  }, 120_000);

  it('a stopped node is stale and unreachable on every plane, its planes down; a wrong key is an unexpected peer and a missing one', async () => {
    const stray = (await mesh.exec('node01', ['/bin/sh', '-c', 'wg genkey | wg pubkey'])).trim();
    await mesh.replacePeerKey('node03', 'wg1', 'node02', stray);
    await mesh.stopPlanes('node04');
    // node04's last handshakes were at settle time; give the live peers fresh ones (WireGuard
    // re-keys only every two minutes) so a 15 s threshold tells them apart.
    const wait = settledAt + 30 - Math.floor(Date.now() / 1000);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait * 1000));
    const rekeyedAt = Math.floor(Date.now() / 1000) - 1;
    const live = ['node01', 'node02', 'node03'];
    const broken = (a: string, plane: string, b: string): boolean => plane === 'wg1' && [a, b].sort().join() === 'node02,node03';
    for (const a of live) for (const p of PLANES) for (const b of live) if (a !== b && !broken(a, p.name, b)) await mesh.readdPeer(a, p.name, b);
    await mesh.waitHandshakes(live, rekeyedAt, 60_000, broken);

    const { data, json } = await check({ reachability: true, stale_after: '15s' });
    expect(data.healthy).toBe(false);
    const [wg0, wg1] = data.planes;
    expect(wg0?.matrix).toEqual({
      node01: { node02: 'ok', node03: 'ok', node04: 'unreachable' },
      node02: { node01: 'ok', node03: 'ok', node04: 'unreachable' },
      node03: { node01: 'ok', node02: 'ok', node04: 'unreachable' },
      node04: { node01: 'down', node02: 'down', node03: 'down' },
    });
    expect(wg1?.matrix.node03).toEqual({ node01: 'ok', node02: 'missing', node04: 'unreachable' });
    expect(wg1?.matrix.node02?.node03).toMatch(/^(unreachable|stale)$/);
    const stale = data.nodes[0]?.planes[0]?.peers.find((p) => p.peer === 'node04');
    expect(stale).toMatchObject({ stale: true, reachable: false });
    expect(stale?.handshake_age_seconds).toBeGreaterThan(15);
    expect(data.problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^node01 wg0: peer node04 stale \(last handshake (\d+m )?\d+s ago\)$/),
        'node01 wg1: peer node04 unreachable at 10.78.0.4',
        expect.stringMatching(/^node04 wg0: interface down \(.+\)$/),
        'node03 wg1: peer node02 missing',
        expect.stringMatching(/^node03 wg1: unexpected peer unknown key sha256:[0-9a-f]{12} \(endpoint [\d.]+:51821\) allowed 10\.78\.0\.2\/32$/),
      ]),
    );
    expect(json).not.toContain(stray);
    for (const key of privateKeys()) expect(json).not.toContain(key);
  }, 240_000);
});
