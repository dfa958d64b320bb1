// wireguard_mesh against hand-written dumps in the real `wg show <if> dump` layout: how the
// inventory's planes become expectations, how each kind of fault reads, the node × peer matrix,
// the gate conditions, and that keys never appear in the answer. The real wireguard-go mesh in
// network namespaces is test/integration/wireguard-mesh.test.ts.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Host, Inventory } from '../../config/types.js';
import { getTool, validateInput } from '../../tools/index.js';
import type { HostResult } from '../../tools/host-result.js';
import type { PlanContext } from '../../tools/types.js';
import { keyDigest, MESH_SCRIPT, meshLayout, judgeMesh, nodeTrouble, type WireguardMesh } from '../../tools/wireguard-mesh.js';
import { hostResult, stepResults } from './tools-fixtures.js';

const key = (c: string, plane: number): string => `${c.repeat(41)}${plane}A=`;
/** The script replaces public keys by their digest before they leave the host. */
const dg = (c: string, plane: number): string => keyDigest(key(c, plane));
const NODES = ['n1', 'n2', 'n3', 'n4'];
const PLANES = [
  { name: 'wg0', port: 51820, net: '10.77' },
  { name: 'wg1', port: 51821, net: '10.78' },
];

function inventoryWith(edit: (vars: Record<string, Record<string, unknown>>) => void = () => {}): PlanContext {
  const vars: Record<string, Record<string, unknown>> = {};
  NODES.forEach((n, i) => {
    vars[n] = {
      wireguard_planes: Object.fromEntries(PLANES.map((p) => [p.name, { port: p.port }])),
      wireguard_endpoint_host: `192.168.1.${i + 1}`,
      wireguard: Object.fromEntries(PLANES.map((p, j) => [p.name, { address: `${p.net}.0.${i + 1}/16`, public_key: key('ABCD'[i] ?? 'Z', j) }])),
    };
  });
  edit(vars);
  const hosts: Host[] = [...NODES, 'bmc-only'].map((name) => ({ name, address: name, port: 22, user: undefined, privateKeyFile: undefined, groups: ['all'], labels: {}, vars: vars[name] ?? {} }));
  const inventory: Inventory = { sources: ['t.yaml'], hosts: new Map(hosts.map((h) => [h.name, h])), groups: new Map([['all', hosts.map((h) => h.name)]]), children: new Map() };
  return {
    inventory,
    resolve: (e) => e.split(',').flatMap((p) => inventory.groups.get(p) ?? (inventory.hosts.has(p) ? [p] : [])),
    defaults: { commandTimeoutMs: 60_000, connectTimeoutMs: 10_000 },
    localRoot: '/srv',
  };
}

const NOW = 1_800_000_000;

/** What MESH_SCRIPT prints for node `i` when every peer shook hands `age` seconds ago. */
function reading(i: number, opts: { age?: (peer: number, plane: number) => number; skip?: (peer: number, plane: number) => boolean; down?: string[]; pings?: string[]; extra?: string[] } = {}): string {
  const lines = [`now ${NOW}`];
  PLANES.forEach((p, j) => {
    if (opts.down?.includes(p.name)) {
      lines.push(`down\t${p.name}\tUnable to access interface: No such device`);
      return;
    }
    lines.push(`wg\t${p.name}\t(hidden)\t${dg('ABCD'[i] ?? 'Z', j)}\t${p.port}\toff`);
    NODES.forEach((_, k) => {
      if (k === i || opts.skip?.(k, j)) return;
      const age = opts.age?.(k, j) ?? 10;
      lines.push(`wg\t${p.name}\t${dg('ABCD'[k] ?? 'Z', j)}\t(none)\t192.168.1.${k + 1}:${p.port}\t${p.net}.0.${k + 1}/32\t${NOW - age}\t${1000 + k}\t${2000 + k}\t25`);
    });
  });
  lines.push(...(opts.extra ?? []), ...(opts.pings ?? []));
  return lines.join('\n');
}

function judge(outputs: (string | HostResult)[], ctx = inventoryWith(), reachability = false): WireguardMesh {
  const results = new Map(outputs.map((o, i) => {
    const r = typeof o === 'string' ? hostResult(NODES[i] ?? '', o) : o;
    return [r.host, r] as const;
  }));
  return judgeMesh(meshLayout(ctx), NODES, results, { staleAfterMs: 180_000, reachability });
}

describe('wireguard_mesh: judging readings against the inventory', () => {
  it('a healthy mesh: every cell ok, no problems, ages and counters per peer', () => {
    const mesh = judge(NODES.map((_, i) => reading(i)));
    expect(mesh.problems).toEqual([]);
    expect(mesh.healthy).toBe(true);
    expect(mesh.planes.map((p) => p.plane)).toEqual(['wg0', 'wg1']);
    expect(mesh.planes[0]?.matrix.n1).toEqual({ n2: 'ok', n3: 'ok', n4: 'ok' });
    const peer = mesh.nodes[0]?.planes[1]?.peers[0];
    expect(peer).toMatchObject({ peer: 'n2', expected: true, state: 'ok', endpoint: '192.168.1.2:51821', expected_endpoint: '192.168.1.2:51821', allowed_ips: ['10.78.0.2/32'], expected_allowed_ips: ['10.78.0.2/32'], handshake_age_seconds: 10, transfer_rx_bytes: 1001, transfer_tx_bytes: 2001, reachable: null });
    expect(mesh.nodes[0]?.planes[0]).toMatchObject({ up: true, listen_port: 51820, expected_port: 51820, key_matches_inventory: true });
  });

  it('names a stopped node stale on every peer, both planes, and its own row as no answer', () => {
    const n4 = 3;
    const outputs: (string | HostResult)[] = NODES.map((_, i) => reading(i, { age: (k) => (k === n4 ? 600 : 10) }));
    outputs[n4] = hostResult('n4', '', 'unreachable', { error: 'connect ECONNREFUSED' });
    const mesh = judge(outputs);
    expect(mesh.healthy).toBe(false);
    expect(mesh.planes[0]?.matrix.n1).toEqual({ n2: 'ok', n3: 'ok', n4: 'stale' });
    expect(mesh.planes[1]?.matrix.n4).toEqual({ n1: 'no_answer', n2: 'no_answer', n3: 'no_answer' });
    expect(mesh.problems).toContain('n1 wg0: peer n4 stale (last handshake 10m 0s ago)');
    expect(mesh.problems).toContain('n4: no answer (unreachable: connect ECONNREFUSED)');
    expect(nodeTrouble(mesh, 'n4').bad).toHaveLength(12);
    expect(nodeTrouble(mesh, 'n1').bad).toEqual(['wg0 n1→n4 stale', 'wg0 n4→n1 no answer', 'wg1 n1→n4 stale', 'wg1 n4→n1 no answer']);
  });

  it('a wrong key: the expected peer is missing and the stray key is unexpected, shown only as a fingerprint', () => {
    const stray = `${'Q'.repeat(42)}A=`;
    const outputs = NODES.map((_, i) =>
      i === 2 ? reading(i, { skip: (k, j) => k === 1 && j === 1, extra: [`wg\twg1\t${keyDigest(stray)}\t(none)\t192.168.1.2:51821\t10.78.0.2/32\t0\t0\t148\t25`] }) : reading(i),
    );
    const mesh = judge(outputs);
    expect(mesh.planes[1]?.matrix.n3).toEqual({ n1: 'ok', n2: 'missing', n4: 'ok' });
    expect(mesh.problems).toEqual([
      expect.stringMatching(/^n3 wg1: unexpected peer unknown key sha256:[0-9a-f]{12} \(endpoint 192\.168\.1\.2:51821\) allowed 10\.78\.0\.2\/32$/),
      'n3 wg1: peer n2 missing',
    ]);
    expect(JSON.stringify(mesh)).not.toContain(stray);
    expect(mesh.nodes[2]?.planes[1]?.peers.at(-1)?.key_fingerprint).toBe(keyDigest(stray).slice(0, 19));
    expect(JSON.stringify(mesh)).not.toContain(key('C', 1));
  });

  it('endpoint and allowed-IPs mismatches, a wrong port, a changed interface key, a plane down', () => {
    const outputs = NODES.map((_, i) => reading(i));
    outputs[0] = (outputs[0] ?? '').replace('192.168.1.2:51820', '192.168.1.99:51820').replace('10.77.0.3/32', '10.77.0.3/32,10.0.0.0/8');
    outputs[1] = reading(1, { down: ['wg1'] }).replace(`${dg('B', 0)}\t51820`, `${dg('Z', 0)}\t51899`);
    const mesh = judge(outputs);
    expect(mesh.planes[0]?.matrix.n1).toEqual({ n2: 'mismatch', n3: 'mismatch', n4: 'ok' });
    expect(mesh.planes[1]?.matrix.n2).toEqual({ n1: 'down', n3: 'down', n4: 'down' });
    expect(mesh.problems).toEqual(
      expect.arrayContaining([
        'n1 wg0: peer n2 endpoint 192.168.1.99:51820, the inventory says 192.168.1.2:51820',
        'n1 wg0: peer n3 allowed-ips 10.77.0.3/32,10.0.0.0/8, the inventory says 10.77.0.3/32',
        "n2 wg0: the interface's public key is not the one in the inventory",
        "n2 wg0: listens on 51899, the plane's port is 51820",
        'n2 wg1: interface down (Unable to access interface: No such device)',
      ]),
    );
  });

  it('reachability: a failed ping makes the cell unreachable; rtt is kept', () => {
    const pings = (i: number, bad: number[]): string[] => PLANES.flatMap((p) => NODES.flatMap((_, k) => (k === i ? [] : [`ping\t${p.name}\t${p.net}.0.${k + 1}\t${bad.includes(k) ? 'fail\t' : 'ok\t0.42'}`])));
    const mesh = judge(NODES.map((_, i) => reading(i, { pings: pings(i, i === 3 ? [] : [3]) })), inventoryWith(), true);
    expect(mesh.planes[0]?.matrix.n2).toEqual({ n1: 'ok', n3: 'ok', n4: 'unreachable' });
    expect(mesh.nodes[1]?.planes[0]?.peers[0]).toMatchObject({ peer: 'n1', reachable: true, rtt_ms: 0.42 });
    expect(mesh.problems).toContain('n2 wg1: peer n4 unreachable at 10.78.0.4');
  });

  it('hub and spoke: spokes list the hub as their only peer and are not expected on each other', () => {
    const ctx = inventoryWith((vars) => {
      for (const n of ['n2', 'n3', 'n4']) (vars[n]?.wireguard as Record<string, Record<string, unknown>>).wg0!.peers = ['n1'];
    });
    const outputs = NODES.map((_, i) => reading(i, { skip: (k, j) => j === 0 && i !== 0 && k !== 0 }));
    const mesh = judge(outputs, ctx);
    expect(mesh.planes[0]?.matrix).toEqual({ n1: { n2: 'ok', n3: 'ok', n4: 'ok' }, n2: { n1: 'ok' }, n3: { n1: 'ok' }, n4: { n1: 'ok' } });
    expect(mesh.healthy).toBe(true);
  });

  it('two hosts sharing one key in the inventory (a cloned identity) is a problem', () => {
    const ctx = inventoryWith((vars) => {
      (vars.n4?.wireguard as Record<string, Record<string, unknown>>).wg0!.public_key = key('C', 0);
    });
    expect(judge(NODES.map((_, i) => reading(i)), ctx).problems[0]).toBe('wg0: n3, n4 share one public key in the inventory');
  });
});

describe('wireguard_mesh: plan, inventory errors, conditions', () => {
  const tool = getTool('wireguard_mesh');
  const plan = (raw: unknown, ctx = inventoryWith()) => {
    const v = validateInput(tool, raw);
    if (!v.ok) throw new Error(JSON.stringify(v.issues));
    return tool.plan!(v.input, ctx);
  };

  it('runs one masked script as root on every node that has a plane, pinging every plane address when asked', () => {
    const p = plan({ reachability: true });
    expect(p.hosts).toEqual(NODES);
    const step = p.batches[0]?.steps[0];
    expect(step?.action).toMatchObject({ kind: 'exec', asRoot: true });
    const argv = step?.action.kind === 'exec' ? step.action.argv : [];
    expect(argv.slice(3)).toEqual(['wireguard_mesh', '2', 'wg0', 'wg1', '--', 'wg0', '10.77.0.1', 'wg0', '10.77.0.2', 'wg0', '10.77.0.3', 'wg0', '10.77.0.4', 'wg1', '10.78.0.1', 'wg1', '10.78.0.2', 'wg1', '10.78.0.3', 'wg1', '10.78.0.4']);
    expect(plan({ planes: ['wg1'] }).batches[0]?.steps[0]?.action).toMatchObject({ argv: ['/bin/sh', '-c', MESH_SCRIPT, 'wireguard_mesh', '2', 'wg1', '--'] });
  });

  it('says which inventory var is wrong, and refuses unknown planes and plane-less targets', () => {
    expect(() => plan({}, inventoryWith((v) => ((v.n2!.wireguard as Record<string, Record<string, unknown>>).wg0!.public_key = 'nope')))).toThrow(/inventory var wireguard of n2: wg0.public_key: expected a base64 WireGuard public key/);
    expect(() => plan({}, inventoryWith((v) => ((v.n2!.wireguard as Record<string, Record<string, unknown>>).wg0!.peers = ['n9'])))).toThrow(/wireguard.wg0.peers of n2 names n9, which has no wg0/);
    expect(() => plan({ planes: ['wg3'] })).toThrow(/planes: no inventory host has plane 'wg3' in its wireguard var \(planes: wg0, wg1\)/);
    expect(() => plan({ targets: 'bmc-only' })).toThrow(/none of 'bmc-only' has a WireGuard plane/);
    expect(validateInput(tool, { planes: ['wg0; rm -rf /'] })).toMatchObject({ ok: false });
  });

  it('conditions: healthy for the whole mesh, node_meshed for one node both ways', () => {
    const n4 = 3;
    const outputs = NODES.map((_, i) => reading(i, { age: (k) => (k === n4 ? 600 : 10) }));
    const data = judge(outputs);
    const observation = { tool: 'wireguard_mesh', data, results: stepResults('mesh', []) };
    expect(tool.conditions?.healthy?.judge(observation, 'n1', {})).toMatchObject({ state: 'waiting', observed: expect.stringContaining('n1 wg0: peer n4 stale') });
    expect(tool.conditions?.node_meshed?.judge(observation, 'n4', {})).toMatchObject({ state: 'waiting', observed: expect.stringMatching(/^wg0 n1→n4 stale; wg0 n2→n4 stale; .*and 2 more$/) });
    const fine = judge(NODES.map((_, i) => reading(i)));
    expect(tool.conditions?.node_meshed?.judge({ ...observation, data: fine }, 'n4', {})).toEqual({ state: 'holds', observed: 'n4: 12 peer links ok' });
    expect(tool.conditions?.healthy?.judge({ ...observation, data: fine }, 'n4', {})).toEqual({ state: 'holds', observed: '4 nodes, 2 planes healthy' });
    expect(tool.conditions?.node_meshed?.judge({ ...observation, data: fine }, 'bmc-only', {}).state).toBe('waiting');
  });
});

describe('wireguard_mesh: the host script', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'castellan-mesh-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('masks the private and preshared keys, replaces public keys by their digest, reports a missing plane as down, skips its own address when pinging', () => {
    const bin = path.join(dir, 'bin');
    execFileSync('mkdir', ['-p', bin]);
    // A stand-in wg for the layout only; the real one runs in the integration test.
    writeFileSync(
      path.join(bin, 'wg'),
      [
        '#!/bin/sh',
        'case "$*" in',
        `"show wg0 dump") printf 'PRIVATESECRETaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=\\t${key('A', 0)}\\t51820\\toff\\n${key('B', 0)}\\tPRESHAREDSECRETaaaaaaaaaaaaaaaaaaaaaaaaaaa=\\t192.168.1.2:51820\\t10.77.0.2/32\\t${NOW}\\t1\\t2\\t25\\n' ;;`,
        '*) echo "Unable to access interface: No such device" >&2; exit 1 ;;',
        'esac',
      ].join('\n'),
    );
    writeFileSync(path.join(bin, 'ip'), '#!/bin/sh\n[ "$5" = "127.0.0.1" ] && echo "1: lo inet 127.0.0.1/8"\nexit 0\n');
    writeFileSync(path.join(bin, 'ping'), '#!/bin/sh\nfor a; do last=$a; done\n[ "$last" = "127.0.0.9" ] && exit 1\necho "rtt min/avg/max/mdev = 0.1/0.25/0.3/0.0 ms"\n');
    for (const f of ['wg', 'ip', 'ping']) chmodSync(path.join(bin, f), 0o755);
    const out = execFileSync('/bin/sh', ['-c', MESH_SCRIPT, 'wireguard_mesh', '2', 'wg0', 'wg1', '--', 'wg0', '127.0.0.1', 'wg0', '127.0.0.8', 'wg0', '127.0.0.9'], { encoding: 'utf8', env: { PATH: `${bin}:/usr/bin:/bin` } });
    expect(out).not.toContain('SECRET');
    expect(out).not.toContain(key('A', 0));
    expect(out).not.toContain(key('B', 0));
    const lines = out.split('\n').filter((l) => l !== '').sort(); // not trim(): the pings print in any order, and a 'fail' line ends in a tab
    expect(lines).toEqual(
      [
        `now ${lines.find((l) => l.startsWith('now '))?.slice(4)}`,
        `wg\twg0\t(hidden)\t${dg('A', 0)}\t51820\toff`,
        `wg\twg0\t${dg('B', 0)}\t(hidden)\t192.168.1.2:51820\t10.77.0.2/32\t${NOW}\t1\t2\t25`,
        'down\twg1\tUnable to access interface: No such device',
        'ping\twg0\t127.0.0.8\tok\t0.25',
        'ping\twg0\t127.0.0.9\tfail\t',
      ].sort(),
    );
  });
});

describe('wireguard_mesh as a gate, as every front end shows it', () => {
  it('a node_meshed gate reads as a gate (its condition and check), not as a command', async () => {
    const { gateStep } = await import('../../tools/steps/index.js');
    const { planView } = await import('../../src/present/job-view.js');
    const { planText } = await import('../../src/present/render/text.js');
    const ctx = inventoryWith();
    const tool = getTool('wireguard_mesh');
    const validate = (t: typeof tool, raw: unknown): unknown => {
      const v = validateInput(t, raw);
      if (!v.ok) throw new Error(JSON.stringify(v.issues));
      return v.input;
    };
    const gate = gateStep({ id: 'meshed-n2', subject: 'n2', check: tool, input: { planes: ['wg1'] }, until: 'node_meshed', intervalMs: 5000, timeoutMs: 180_000 }, ctx, validate);
    const view = planView({ tool: 'rolling_upgrade', hosts: NODES, batches: [{ steps: [gate] }], failureBudget: 1 });
    expect(view.batches[0]?.steps[0]).toMatchObject({ kind: 'gate', command: ['gate', 'wireguard_mesh', 'until', 'node_meshed'], gate: { check: 'wireguard_mesh', until: 'node_meshed', check_hosts: NODES } });
    const text = planText(view, { color: false });
    expect(text).toContain('meshed-n2: gate wireguard_mesh until node_meshed (about n2) on n[1-4] (4 hosts)');
    expect(text).toContain('until n2 has fresh handshakes with every peer on every plane, both ways: wireguard_mesh every 5.0 s, up to 3 min');
    // The gate's own description says the same: not repeated as a comment.
    expect(text).not.toContain('# wait until n2 has fresh handshakes');
  });
});
