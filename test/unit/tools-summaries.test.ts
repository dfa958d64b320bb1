// Summarizers against realistic captured outputs, and the constant remote scripts run for
// real through /bin/sh on this machine (with a stand-in `wg` that prints a real-format dump).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CERT_SCRIPT, parseCertLines, parseNotAfter } from '../../tools/cert-expiry.js';
import { parseDf } from '../../tools/disk-usage.js';
import { getTool } from '../../tools/index.js';
import { parseKubectlNodes, parseKubectlPods } from '../../tools/k8s-nodes.js';
import { parseResourceUsage, RESOURCE_SCRIPT } from '../../tools/resource-usage.js';
import { parseSystemctlShow } from '../../tools/service-status.js';
import { parseUptime } from '../../tools/uptime.js';
import { parseWireguardDump, WG_SCRIPT } from '../../tools/wireguard-status.js';
import { ctx, hostResult, stepResults } from './tools-fixtures.js';

function summarize(tool: string, input: Record<string, unknown>, stepId: string, results: ReturnType<typeof hostResult>[]): unknown {
  const def = getTool(tool);
  const parsed = def.input.parse(input);
  const data = def.summarize?.(parsed, stepResults(stepId, results), ctx);
  // Whatever summarize returns must satisfy the declared output schema (MCP structuredContent).
  expect(def.output?.safeParse(data).success, JSON.stringify(def.output?.safeParse(data).error?.issues)).toBe(true);
  return data;
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'castellan-tools-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const SYSTEMCTL_SHOW = `Id=nginx.service
Description=A high performance web server and a reverse proxy server
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
ActiveEnterTimestamp=Mon 2025-01-06 10:00:00 UTC
StateChangeTimestamp=Mon 2025-01-06 10:00:00 UTC
MainPID=812
NRestarts=0
`;

describe('service_status', () => {
  it('parses systemctl show', () => {
    expect(parseSystemctlShow(SYSTEMCTL_SHOW)).toEqual({
      unit: 'nginx.service',
      description: 'A high performance web server and a reverse proxy server',
      load_state: 'loaded',
      active_state: 'active',
      sub_state: 'running',
      unit_file_state: 'enabled',
      since: 'Mon 2025-01-06 10:00:00 UTC',
      main_pid: 812,
      restarts: 0,
    });
  });

  it('reports a missing unit as not-found with no pid', () => {
    const state = parseSystemctlShow('Id=nosuch.service\nDescription=nosuch.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\nActiveEnterTimestamp=\nMainPID=0\nNRestarts=0\n');
    expect(state).toMatchObject({ load_state: 'not-found', active_state: 'inactive', since: null, main_pid: null, unit_file_state: null });
  });

  it('summarizes per host, keeping failures and unparseable output as errors', () => {
    const data = summarize('service_status', { unit: 'nginx' }, 'show', [
      hostResult('node01', SYSTEMCTL_SHOW),
      hostResult('node02', '', 'unreachable', { error: 'connect ETIMEDOUT' }),
      hostResult('node03', 'garbage'),
    ]) as { hosts: Record<string, unknown>[] };
    expect(data.hosts[0]).toMatchObject({ host: 'node01', status: 'ok', active_state: 'active' });
    expect(data.hosts[1]).toEqual({ host: 'node02', status: 'unreachable', error: 'connect ETIMEDOUT' });
    expect(data.hosts[2]).toMatchObject({ host: 'node03', status: 'ok', error: expect.stringMatching(/^unexpected output: no ActiveState/) });
  });
});

describe('uptime and resource_usage', () => {
  it('parses /proc/uptime and /proc/loadavg', () => {
    expect(parseUptime('273933.25 1071455.56\n0.52 0.58 0.59 1/389 12345\n')).toEqual({
      uptime_seconds: 273933,
      uptime: '3d 4h 5m',
      load: { one: 0.52, five: 0.58, fifteen: 0.59 },
    });
    expect(() => parseUptime('nonsense')).toThrow(/not a \/proc\/uptime line/);
  });

  it('uptime summary reads this machine\'s real /proc', () => {
    const stdout = execFileSync('cat', ['/proc/uptime', '/proc/loadavg'], { encoding: 'utf8' });
    const data = summarize('uptime', {}, 'uptime', [hostResult('node01', stdout)]) as { hosts: { uptime_seconds: number }[] };
    expect(data.hosts[0]?.uptime_seconds).toBeGreaterThan(0);
  });

  it('parses a Raspberry Pi style capture', () => {
    const usage = parseResourceUsage(
      [
        'loadavg 0.08 0.11 0.09 1/290 4242',
        'cpus 4',
        'mem MemTotal:        7998136 kB',
        'mem MemAvailable:    6542100 kB',
        'mem SwapTotal:        102396 kB',
        'mem SwapFree:         102396 kB',
        'rootfs /dev/mmcblk0p2 61255492 9876543 48870000 17% /',
        'thermal cpu-thermal 48686',
      ].join('\n'),
    );
    expect(usage).toMatchObject({
      cpus: 4,
      memory: { total_bytes: 7998136 * 1024, available_bytes: 6542100 * 1024, used_percent: 18.2 },
      root_disk: { size_bytes: 61255492 * 1024, used_percent: 16.1 },
      cpu_temperature_c: 48.7,
      thermal_zones: [{ zone: 'cpu-thermal', celsius: 48.7 }],
    });
  });

  it('the constant script runs for real and parses (no thermal zone is null, not an error)', () => {
    const stdout = execFileSync('/bin/sh', ['-c', RESOURCE_SCRIPT], { encoding: 'utf8' });
    const data = summarize('resource_usage', {}, 'resources', [hostResult('node01', stdout)]) as {
      hosts: { error?: string; memory: { total_bytes: number }; root_disk: { size_bytes: number }; cpus: number }[];
    };
    expect(data.hosts[0]?.error).toBeUndefined();
    expect(data.hosts[0]?.memory.total_bytes).toBeGreaterThan(0);
    expect(data.hosts[0]?.root_disk.size_bytes).toBeGreaterThan(0);
    expect(data.hosts[0]?.cpus).toBeGreaterThan(0);
  });
});

describe('journal', () => {
  it('returns log lines without the no-entries marker', () => {
    const data = summarize('journal', { unit: 'k3s' }, 'journal', [
      hostResult('cp1', '2025-06-01T11:59:01+0000 cp1 k3s[812]: I0601 started\n2025-06-01T11:59:02+0000 cp1 k3s[812]: ok\n'),
      hostResult('cp2', '-- No entries --\n'),
    ]) as { hosts: { lines: string[] }[] };
    expect(data.hosts[0]?.lines).toHaveLength(2);
    expect(data.hosts[1]?.lines).toEqual([]);
  });
});

describe('disk_usage', () => {
  const DF = `Filesystem     Type     1024-blocks     Used Available Capacity Mounted on
/dev/mmcblk0p2 ext4        61255492  9876543  48870000      17% /
tmpfs          tmpfs        3999068        0   3999068       0% /dev/shm
/dev/mmcblk0p1 vfat          522230    75926    446304      15% /boot/firmware
/dev/sda1      ext4      1921803544 92 1823998772       1% /mnt/usb disk
`;
  it('parses df -PT including mounts with spaces', () => {
    const fs = parseDf(DF);
    expect(fs).toHaveLength(4);
    expect(fs[3]).toEqual({ filesystem: '/dev/sda1', type: 'ext4', size_bytes: 1921803544 * 1024, used_bytes: 92 * 1024, available_bytes: 1823998772 * 1024, used_percent: 1, mounted_on: '/mnt/usb disk' });
  });

  it('drops pseudo filesystems unless asked', () => {
    const hide = summarize('disk_usage', {}, 'df', [hostResult('node01', DF)]) as { hosts: { filesystems: { type: string }[] }[] };
    expect(hide.hosts[0]?.filesystems.map((f) => f.type)).toEqual(['ext4', 'vfat', 'ext4']);
    const show = summarize('disk_usage', { include_pseudo: true }, 'df', [hostResult('node01', DF)]) as { hosts: { filesystems: unknown[] }[] };
    expect(show.hosts[0]?.filesystems).toHaveLength(4);
  });

  it('parses this machine\'s real df -PTk output', () => {
    const fs = parseDf(execFileSync('df', ['-PTk', '--', '/'], { encoding: 'utf8' }));
    expect(fs[0]?.mounted_on).toBe('/');
  });
});

// Real `wg show all dump` layout: interface lines have 5 fields, peer lines 9 (tab-separated).
const WG_DUMP = [
  'wg0\tSECRETPRIVATEKEYaaaaaaaaaaaaaaaaaaaaaaaaaaa=\tPUBLICKEYwg0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=\t51820\toff',
  'wg0\tPEERAPUBLICaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=\tSECRETPRESHAREDaaaaaaaaaaaaaaaaaaaaaaaaaaa=\t192.168.1.20:51820\t10.100.0.2/32\t1748779150\t1234\t5678\t25',
  'wg0\tPEERBPUBLICaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=\t(none)\t(none)\t10.100.0.3/32,10.200.0.0/24\t0\t0\t0\toff',
  'wg0\tPEERCPUBLICaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=\t(none)\t192.168.1.22:51820\t10.100.0.4/32\t1748778000\t99\t100\toff',
].join('\n');

describe('wireguard_status', () => {
  it('masks private and preshared keys on the host, for real', () => {
    const bin = path.join(dir, 'bin');
    execFileSync('mkdir', ['-p', bin]);
    writeFileSync(path.join(bin, 'wg'), `#!/bin/sh\n[ "$*" = "show all dump" ] || exit 2\ncat <<'DUMP'\n${WG_DUMP}\nDUMP\n`);
    chmodSync(path.join(bin, 'wg'), 0o755);
    const stdout = execFileSync('/bin/sh', ['-c', WG_SCRIPT], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:/usr/bin:/bin` } });
    expect(stdout).not.toContain('SECRET');
    expect(stdout).toMatch(/^now \d+$/m);
    expect(stdout.split('\n').filter((l) => l.startsWith('wg\t'))).toHaveLength(4);
    const parsed = parseWireguardDump(stdout, 180_000);
    expect(parsed.interfaces[0]?.peers).toHaveLength(3);
    expect(JSON.stringify(parsed)).not.toContain('SECRET');
  });

  it('a failing wg passes its exit status through', () => {
    const bin = path.join(dir, 'bin-fail');
    execFileSync('mkdir', ['-p', bin]);
    writeFileSync(path.join(bin, 'wg'), '#!/bin/sh\necho "Unable to access interface: Operation not permitted" >&2\nexit 1\n');
    chmodSync(path.join(bin, 'wg'), 0o755);
    const run = spawnSync('/bin/sh', ['-c', WG_SCRIPT], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:/usr/bin:/bin` } });
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('Operation not permitted');
  });

  it('computes handshake ages from the host clock and flags stale peers', () => {
    const masked = `now 1748779200\n${WG_DUMP.split('\n').map((l) => `wg\t${l}`).join('\n')}`;
    const data = summarize('wireguard_status', { stale_after: '5m' }, 'wg', [hostResult('cp1', masked)]) as {
      hosts: { interfaces: { name: string; listen_port: number; peers: Record<string, unknown>[] }[]; stale_peers: number }[];
    };
    const iface = data.hosts[0]?.interfaces[0];
    expect(iface).toMatchObject({ name: 'wg0', listen_port: 51820 });
    expect(iface?.peers[0]).toMatchObject({ endpoint: '192.168.1.20:51820', handshake_age_seconds: 50, stale: false, transfer_rx_bytes: 1234, persistent_keepalive_seconds: 25, latest_handshake: '2025-06-01T11:59:10.000Z' });
    expect(iface?.peers[1]).toMatchObject({ endpoint: null, allowed_ips: ['10.100.0.3/32', '10.200.0.0/24'], latest_handshake: null, handshake_age_seconds: null, stale: true });
    expect(iface?.peers[2]).toMatchObject({ handshake_age_seconds: 1200, stale: true });
    expect(data.hosts[0]?.stale_peers).toBe(2);
  });

  it('default stale_after is 180s', () => {
    const masked = `now 1748779200\nwg\twg0\t(hidden)\tPUB=\t51820\toff\nwg\twg0\tP=\t(none)\t(none)\t10.0.0.2/32\t1748779000\t0\t0\toff`;
    const data = summarize('wireguard_status', {}, 'wg', [hostResult('cp1', masked)]) as { hosts: { stale_peers: number }[] };
    expect(data.hosts[0]?.stale_peers).toBe(1);
  });
});

describe('cert_expiry', () => {
  it('parses openssl notAfter lines', () => {
    expect(parseNotAfter('notAfter=Jan  1 00:00:00 2026 GMT').toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(parseNotAfter('notAfter=Dec 31 23:59:59 2025 GMT').toISOString()).toBe('2025-12-31T23:59:59.000Z');
    expect(() => parseNotAfter('notAfter=garbage')).toThrow(/not an openssl notAfter line/);
  });

  it('computes days left and warnings', () => {
    const now = new Date('2025-06-01T12:00:00Z');
    const certs = parseCertLines('ok\tnotAfter=Jun 11 12:00:00 2025 GMT\nok\tnotAfter=May 31 00:00:00 2025 GMT\nerror\tCould not open file\n', ['/a.crt', '/b.crt', '/c.crt'], now, 30);
    expect(certs[0]).toEqual({ path: '/a.crt', not_after: '2025-06-11T12:00:00.000Z', days_left: 10, expired: false, warning: true });
    expect(certs[1]).toMatchObject({ expired: true, warning: true, days_left: -2 });
    expect(certs[2]).toMatchObject({ path: '/c.crt', error: 'Could not open file', days_left: null });
  });

  it('the constant script runs for real with openssl, one line per path', () => {
    const cert = path.join(dir, 'server cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', cert, '-days', '45', '-subj', '/CN=test'], { stdio: 'ignore' });
    const paths = [cert, path.join(dir, 'missing.pem')];
    const stdout = execFileSync('/bin/sh', ['-c', CERT_SCRIPT, 'cert_expiry', ...paths], { encoding: 'utf8' });
    const data = summarize('cert_expiry', { paths, warn_days: 30 }, 'certs', [hostResult('cp1', stdout, 'ok', { startedAt: new Date().toISOString() })]) as {
      hosts: { certificates: { days_left: number | null; warning: boolean | null; error?: string }[] }[];
    };
    const [good, missing] = data.hosts[0]?.certificates ?? [];
    expect(good?.days_left).toBeGreaterThanOrEqual(44);
    expect(good?.days_left).toBeLessThanOrEqual(45);
    expect(good?.warning).toBe(false);
    expect(missing?.error).toMatch(/./);
  });
});

describe('k8s_nodes', () => {
  const NODES = JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'cp1', labels: { 'kubernetes.io/hostname': 'cp1', 'node-role.kubernetes.io/control-plane': '', 'node-role.kubernetes.io/etcd': 'true' } },
        spec: { podCIDR: '10.42.0.0/24' },
        status: {
          addresses: [{ type: 'InternalIP', address: '10.0.0.31' }, { type: 'Hostname', address: 'cp1' }],
          conditions: [
            { type: 'MemoryPressure', status: 'False' },
            { type: 'Ready', status: 'True', reason: 'KubeletReady' },
          ],
          nodeInfo: { kubeletVersion: 'v1.31.4+k3s1', architecture: 'arm64' },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'node01', labels: { 'kubernetes.io/hostname': 'node01' } },
        spec: { unschedulable: true, taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }] },
        status: { conditions: [{ type: 'Ready', status: 'Unknown', reason: 'NodeStatusUnknown' }], nodeInfo: { kubeletVersion: 'v1.31.4+k3s1' } },
      },
    ],
  });

  it('parses readiness, roles, version and cordon state', () => {
    expect(parseKubectlNodes(NODES)).toEqual([
      { name: 'cp1', ready: true, roles: ['control-plane', 'etcd'], version: 'v1.31.4+k3s1', unschedulable: false, internal_ip: '10.0.0.31' },
      { name: 'node01', ready: false, roles: [], version: 'v1.31.4+k3s1', unschedulable: true, internal_ip: null },
    ]);
    expect(() => parseKubectlNodes('error: You must be logged in')).toThrow(/not JSON/);
    expect(() => parseKubectlNodes('{"kind":"Pod"}')).toThrow(/expected a NodeList/);
  });

  it('summarizes through the tool', () => {
    const data = summarize('k8s_nodes', {}, 'nodes', [hostResult('cp1', NODES)]) as { hosts: { nodes: unknown[] }[] };
    expect(data.hosts[0]?.nodes).toHaveLength(2);
    expect(data.hosts[0]?.nodes[1]).toMatchObject({ name: 'node01', ready_reason: 'NodeStatusUnknown', pods_left: null });
  });

  it('counts pods a drain would still evict: not DaemonSet, mirror or finished pods', () => {
    const pod = (node: string, name: string, extra: Record<string, unknown> = {}) => ({ metadata: { namespace: 'ns', name, ...(extra.metadata as object) }, spec: { nodeName: node }, status: { phase: extra.phase ?? 'Running' } });
    const PODS = JSON.stringify({
      kind: 'List',
      items: [
        pod('node01', 'web-1'),
        pod('node01', 'proxy', { metadata: { ownerReferences: [{ kind: 'DaemonSet' }] } }),
        pod('node01', 'static', { metadata: { annotations: { 'kubernetes.io/config.mirror': 'x' } } }),
        pod('node01', 'job-done', { phase: 'Succeeded' }),
        pod('cp1', 'api-1'),
      ],
    });
    expect(parseKubectlPods(PODS)).toEqual(new Map([['node01', ['ns/web-1']], ['cp1', ['ns/api-1']]]));
    expect(() => parseKubectlPods('{"kind":"Node"}')).toThrow(/expected a PodList/);
  });
});

describe('ping', () => {
  it('reports latency and reachability per host', () => {
    const data = summarize('ping', {}, 'ping', [
      hostResult('node01', '', 'ok', { durationMs: 35, connectMs: 20 }),
      hostResult('node02', '', 'unreachable', { error: 'connect ECONNREFUSED', durationMs: 3 }),
      hostResult('node03', '', 'host_key_rejected', { error: 'host key mismatch' }),
    ]) as { hosts: Record<string, unknown>[] };
    expect(data.hosts).toEqual([
      { host: 'node01', status: 'ok', reachable: true, latency_ms: 35, connect_ms: 20 },
      { host: 'node02', status: 'unreachable', reachable: false, latency_ms: 3, connect_ms: 12, error: 'connect ECONNREFUSED' },
      { host: 'node03', status: 'host_key_rejected', reachable: false, latency_ms: 42, connect_ms: 12, error: 'host key mismatch' },
    ]);
  });
});
