// The executor against real OpenSSH daemons (the sshd lab): fan-out, quoting, stdin, caps,
// the channel budget, failures per host, host-key pinning and trust, rolling batches.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, type Lab, type LabNode } from '../../src/lab/sshd-lab.js';
import { KnownHosts, SshExecutor, fingerprint, scanHostKeys, trustHosts, type ExecEvent, type SshTarget } from '../../src/ssh/index.js';

const HOSTILE_ARGV: readonly string[] = [
  ';', 'a; touch /tmp/castellan-pwned', '&&', '|', '`id`', '$(id)', '${IFS}', 'line1\nline2', 'cr\rlf', '\ttab',
  "'", "it's", '"', '\\', '\\\'', '*', '~', '~root', '-n', '--help', 'é ü 中文', '🚀', '', ' ', '$HOME', '!', '#x',
  '>out', '2>&1', '{a,b}', '\u001b[0m', 'x'.repeat(30_000),
];
const ECHO_ARGV = ['/usr/bin/python3', '-c', 'import sys,json; sys.stdout.write(json.dumps(sys.argv[1:]))'];

let lab: Lab;
let dir: string;
let ssh: SshExecutor;
let targets: SshTarget[];
let runSeq = 0;
const runId = (label: string): string => `t-${label}-${process.pid}-${++runSeq}`;

function targetOf(node: LabNode): SshTarget {
  return { name: node.name, address: node.address, port: node.port, user: lab.loginUser, privateKeyFile: lab.clientKeyFile };
}

async function pinned(): Promise<KnownHosts> {
  return KnownHosts.load(lab.knownHostsFile);
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'castellan-ssh-exec-'));
  lab = await labUp({ nodes: 10, dir, hostKeyTypes: ['ed25519', 'ecdsa', 'rsa'] });
  targets = lab.nodes.map(targetOf);
  ssh = new SshExecutor({ knownHosts: await pinned(), limits: { connectTimeoutMs: 5_000, commandTimeoutMs: 20_000, killGraceMs: 1_000 } });
});

afterAll(async () => {
  await ssh?.close();
  await lab?.down();
  await rm(dir, { recursive: true, force: true });
});

describe('fan-out over real sshd', () => {
  it('runs on all 10 nodes (ed25519, ecdsa and rsa pins), streams events, results in target order', async () => {
    const events: ExecEvent[] = [];
    const results = await ssh.fanout(targets, (t) => ({ argv: ['echo', `hello from ${t.name}`], runId: runId(t.name) }), {
      onEvent: (event) => events.push(event),
      window: 4,
    });
    expect(results.map((r) => r.host)).toEqual(targets.map((t) => t.name));
    for (const [i, result] of results.entries()) {
      expect(result).toMatchObject({ status: 'ok', exitCode: 0, stdout: `hello from ${targets[i]!.name}\n`, stderr: '', truncated: false });
    }
    for (const t of targets) {
      expect(events.filter((e) => e.type === 'host_started' && e.host === t.name)).toHaveLength(1);
      const streamed = events.flatMap((e) => (e.type === 'output' && e.host === t.name && e.stream === 'stdout' ? [e.chunk] : []));
      expect(streamed.join('')).toBe(`hello from ${t.name}\n`);
      expect(events.filter((e) => e.type === 'host_finished' && e.host === t.name)).toHaveLength(1);
    }
  });

  it('reuses pooled connections (connectMs 0 on the second run)', async () => {
    const results = await ssh.fanout(targets, (t) => ({ argv: ['true'], runId: runId(t.name) }));
    expect(results.every((r) => r.status === 'ok' && r.connectMs === 0)).toBe(true);
    expect(ssh.openConnections).toBe(10);
  });

  it('delivers a hostile argv corpus to the remote program byte for byte', async () => {
    const result = await ssh.exec(targets[0]!, { argv: [...ECHO_ARGV, ...HOSTILE_ARGV], runId: runId('argv') });
    expect(result.status).toBe('ok');
    expect(JSON.parse(result.stdout)).toEqual(HOSTILE_ARGV);
  });

  it('feeds stdin exactly (pipe and script) while keeping the lifeline open', async () => {
    const reversed = await ssh.exec(targets[1]!, {
      argv: ['/usr/bin/python3', '-c', 'import sys; sys.stdout.write(sys.stdin.read()[::-1])'],
      stdin: 'héllo\nworld',
      runId: runId('stdin'),
    });
    expect(reversed).toMatchObject({ status: 'ok', stdout: 'dlrow\nolléh' });
    const script = await ssh.exec(targets[2]!, { argv: ['sh', '-s', '--', 'arg1'], stdin: 'echo "got $1"\necho oops >&2\nexit 3\n', runId: runId('script') });
    expect(script).toMatchObject({ status: 'failed', exitCode: 3, stdout: 'got arg1\n', stderr: 'oops\n' });
    expect(script.error).toContain('exit code 3');
  });

  it('caps output per stream and flags truncation', async () => {
    const result = await ssh.exec(
      targets[3]!,
      { argv: ['sh', '-c', 'head -c 200000 /dev/zero | tr "\\0" o; head -c 5000 /dev/zero | tr "\\0" e >&2'], runId: runId('cap') },
      { maxOutputBytes: 1000 },
    );
    expect(result.status).toBe('ok');
    expect(result.truncated).toBe(true);
    expect(result.stdout).toBe('o'.repeat(1000));
    expect(result.stderr).toBe('e'.repeat(1000));
  });

  it('queues more than 8 concurrent execs on one host instead of failing (MaxSessions 10)', async () => {
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) => ssh.exec(targets[4]!, { argv: ['sh', '-c', `sleep 0.3; echo ${i}`], runId: runId(`q${i}`) })),
    );
    expect(results.map((r) => r.status)).toEqual(Array(24).fill('ok'));
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 24 }, (_, i) => `${i}\n`));
  });

  it('waits out sshd refusing a channel (no free session) and runs each command exactly once', async () => {
    // 12 channels against MaxSessions 10: sshd refuses opens ("no more sessions") until ours close,
    // the same refusal a loaded node gives while it still counts sessions we already closed.
    // A channel per command is the wrapper's way (node helper off; with it, sudo runs and transfers).
    const greedy = new SshExecutor({ knownHosts: await pinned(), maxChannelsPerHost: 12, nodeHelper: 'off', limits: { connectTimeoutMs: 20_000, commandTimeoutMs: 20_000 } });
    const marks = path.join(dir, 'once.log');
    try {
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          greedy.exec(targets[4]!, { argv: ['sh', '-c', `echo ${i} >> "$1"; sleep 1`, 'sh', marks], runId: runId(`refused${i}`) }),
        ),
      );
      expect(results.map((r) => r.error ?? r.status)).toEqual(Array(12).fill('ok'));
      const ran = (await readFile(marks, 'utf8')).trim().split('\n').map(Number).sort((a, b) => a - b);
      expect(ran).toEqual(Array.from({ length: 12 }, (_, i) => i));
      const sshdLog = await readFile(path.join(dir, 'nodes', targets[4]!.name, 'sshd.log'), 'utf8');
      expect(sshdLog).toContain('no more sessions');
    } finally {
      await greedy.close();
    }
  });

  it('reports exit codes, refuses bad requests per host, and runs asRoot without sudo for a root login', async () => {
    const [failed, badRun, badArgv, root] = await Promise.all([
      ssh.exec(targets[5]!, { argv: ['sh', '-c', 'exit 42'], runId: runId('exit') }),
      ssh.exec(targets[5]!, { argv: ['true'], runId: 'bad id; rm' }),
      ssh.exec(targets[5]!, { argv: [], runId: runId('empty') }),
      ssh.exec(targets[5]!, { argv: ['id', '-u'], asRoot: true, runId: runId('root') }),
    ]);
    expect(failed).toMatchObject({ status: 'failed', exitCode: 42 });
    expect(badRun.status).toBe('failed');
    expect(badRun.error).toMatch(/refused before running: run id/);
    expect(badArgv.error).toMatch(/empty command/);
    expect(root).toMatchObject({ status: 'ok', stdout: '0\n' });
  });

  it('auth_failed for an account the key does not open', async () => {
    const result = await ssh.exec({ ...targets[6]!, user: 'castellan-nobody' }, { argv: ['true'], runId: runId('auth') });
    expect(result.status).toBe('auth_failed');
    expect(result.error).toMatch(/authentication as castellan-nobody on node07 failed/);
  });

  it('refuses a host missing from known_hosts (hostVerifier is always set)', async () => {
    const stranger = new SshExecutor({ knownHosts: KnownHosts.parse('') });
    try {
      const result = await stranger.exec(targets[0]!, { argv: ['true'], runId: runId('unknown') });
      expect(result.status).toBe('host_key_rejected');
      expect(result.error).toMatch(/node01 .* is not in known_hosts \(presented SHA256:/);
    } finally {
      await stranger.close();
    }
  });

  it('unreachable with the reason: refused, or connect timeout', async () => {
    const closedPort = await ssh.exec({ ...targets[0]!, port: 1 }, { argv: ['true'], runId: runId('refused') });
    expect(closedPort.status).toBe('unreachable');
    expect(closedPort.error).toMatch(/connection refused/);
  });

  it('unreachable with a connect timeout when the peer never completes the SSH handshake', async () => {
    // A TCP listener that accepts and stays silent: the connect timeout must cover the handshake too.
    const silent = createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      const result = await ssh.exec({ ...targets[0]!, address: '127.0.0.1', port }, { argv: ['true'], runId: runId('silent') }, { connectTimeoutMs: 400 });
      expect(result.status).toBe('unreachable');
      expect(result.error).toMatch(/connect timeout: SSH handshake with 127\.0\.0\.1:\d+ not done within 400 ms/);
    } finally {
      silent.close();
    }
  });

  it('scans host keys without authenticating; fingerprints match the lab keys', async () => {
    const scanned = await scanHostKeys(targets.slice(0, 3), { algorithms: undefined });
    for (const [i, scan] of scanned.entries()) {
      const pub = (await readFile(`${lab.nodes[i]!.hostKeyFile}.pub`, 'utf8')).trim().split(/\s+/);
      expect(scan.key).toBe(pub[1]);
      expect(scan.fingerprint).toBe(fingerprint(Buffer.from(pub[1]!, 'base64')));
    }
  });
});

describe('per-host failures while the rest of the fleet succeeds', () => {
  it('a stopped node is unreachable, the others are ok', async () => {
    await lab.stopNode('node03');
    try {
      const results = await ssh.fanout(targets, (t) => ({ argv: ['true'], runId: runId(t.name) }));
      expect(results[2]).toMatchObject({ host: 'node03', status: 'unreachable' });
      expect(results[2]!.error).toMatch(/connection refused|connection to .* lost|closed/);
      expect(results.filter((r) => r.status === 'ok')).toHaveLength(9);
    } finally {
      await lab.startNode('node03');
    }
  });

  it('a rotated host key is rejected naming both fingerprints; trust refuses then replaces it', async () => {
    const before = (await readFile(`${lab.nodes[3]!.hostKeyFile}.pub`, 'utf8')).trim().split(/\s+/)[1]!;
    await lab.rotateHostKey('node04');
    const after = (await readFile(`${lab.nodes[3]!.hostKeyFile}.pub`, 'utf8')).trim().split(/\s+/)[1]!;
    const oldPrint = fingerprint(Buffer.from(before, 'base64'));
    const newPrint = fingerprint(Buffer.from(after, 'base64'));

    const results = await ssh.fanout(targets, (t) => ({ argv: ['true'], runId: runId(t.name) }));
    expect(results[3]!.status).toBe('host_key_rejected');
    expect(results[3]!.error).toContain('node04');
    expect(results[3]!.error).toContain(`expected ${oldPrint}`);
    expect(results[3]!.error).toContain(`presented ${newPrint}`);
    expect(results.filter((r) => r.status === 'ok')).toHaveLength(9);

    const refused = await trustHosts([targets[3]!], lab.knownHostsFile);
    expect(refused[0]).toMatchObject({ action: 'refused', fingerprint: newPrint, previous: [oldPrint] });
    const replaced = await trustHosts([targets[3]!], lab.knownHostsFile, { replace: true });
    expect(replaced[0]).toMatchObject({ action: 'replaced', fingerprint: newPrint });
    const unchanged = await trustHosts(targets.slice(0, 2), lab.knownHostsFile);
    expect(unchanged.map((r) => r.action)).toEqual(['unchanged', 'unchanged']);

    ssh.replaceKnownHosts(await pinned(), [targets[3]!]);
    const again = await ssh.exec(targets[3]!, { argv: ['true'], runId: runId('retrusted') });
    expect(again.status).toBe('ok');
    const text = await readFile(lab.knownHostsFile, 'utf8');
    expect(text).not.toContain(before);
    expect(text).toContain(`[${targets[3]!.address}]:${targets[3]!.port} ${replaced[0]!.keyType} ${after}`);
  });
});

