// The fake-node farm: real OpenSSH (strict host keys) and ssh2 talk to it like to real nodes;
// faults fail the way the executor must handle; it also runs as its own process.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startFarm, type Farm, type FarmNode } from '../../src/lab/fake-farm.js';
import { KnownHosts, SshExecutor } from '../../src/ssh/index.js';
import { SideChannel, wrapCommand } from '../../src/ssh/remote-run.js';
import { compileLab } from '../support/compile-lab.js';
import { runSsh } from '../support/openssh.js';
import { connect, exec, runOnce } from '../support/ssh2-client.js';

function target(farm: Farm, node: FarmNode) {
  return { address: node.address, port: node.port, user: farm.loginUser, clientKeyFile: farm.clientKeyFile, knownHostsFile: farm.knownHostsFile };
}

function refused(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port });
    socket.once('connect', () => { socket.destroy(); resolve(false); });
    socket.once('error', () => resolve(true));
  });
}

describe('fake-node farm (20 nodes, in-process)', () => {
  let dir: string;
  let farm: Farm;
  const node = (name: string): FarmNode => farm.nodes.find((n) => n.name === name)!;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-farm-'));
    farm = await startFarm({
      nodes: 20,
      dir,
      faults: { node20: { exitCode: 255 } },
    });
  });

  afterAll(async () => {
    await farm?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('puts every node on its own 127.1.x.y address, one port, apart from the sshd lab', () => {
    expect(farm.nodes).toHaveLength(20);
    expect(new Set(farm.nodes.map((n) => n.address)).size).toBe(20);
    expect(farm.nodes.every((n) => n.address.startsWith('127.1.') && n.port === farm.port)).toBe(true);
    expect(farm.nodes[0]!.name).toBe('node01');
  });

  it('answers the real OpenSSH client with strict host-key checking on every node', async () => {
    const names = farm.nodes.slice(0, 19);
    const outcomes = [];
    // Four ssh processes at a time: the machine has 2 cores shared with other work.
    for (let i = 0; i < names.length; i += 4) {
      outcomes.push(...(await Promise.all(names.slice(i, i + 4).map((n) => runSsh(target(farm, n), ['hostname'])))));
    }
    expect(outcomes.map((o) => o.code)).toEqual(names.map(() => 0));
    expect(outcomes.map((o) => o.stdout)).toEqual(names.map((n) => `${n.name}\n`));
  });

  it('answers ssh2 with plausible output for trivial commands', async () => {
    const client = await connect(target(farm, node('node03')));
    try {
      expect(await exec(client, 'echo ok')).toMatchObject({ code: 0, stdout: 'ok\n', stderr: '' });
      expect(await exec(client, "sh -c 'true && echo done; hostname'")).toMatchObject({ code: 0, stdout: 'done\nnode03\n' });
      expect((await exec(client, 'uptime')).stdout).toMatch(/load average/);
      expect(await exec(client, 'cat', 'piped in')).toMatchObject({ code: 0, stdout: 'piped in' });
      expect(await exec(client, 'no-such-tool --now')).toMatchObject({ code: 127, stderr: 'sh: 1: no-such-tool: not found\n' });
    } finally {
      client.end();
    }
  });

  it("understands the executor's remote wrapper and logs the run id", async () => {
    const runId = 'job-42.step-1';
    const line = wrapCommand(['echo', 'wrapped ok'], { runId, asRoot: false, loginUser: farm.loginUser, deadlineMs: 60_000, killGraceMs: 2000, stdinBytes: 0 });
    const outcome = await runOnce(target(farm, node('node05')), line);
    const side = new SideChannel();
    const stdout = Buffer.concat([side.push(Buffer.from(outcome.stdout)), side.flush()]).toString();
    expect(outcome.code).toBe(0);
    expect(stdout).toBe('wrapped ok\n');
    expect(side.sessionId).toBeGreaterThan(0);
    expect(farm.execLog.filter((e) => e.runId === runId).map((e) => [e.node, e.argv])).toEqual([['node05', ['echo', 'wrapped ok']]]);
  });

  it("Castellan's executor reads every exit although a farm node sends the exec reply, output and exit status in one write", async () => {
    // The exit status then arrives in the same read as the channel confirmation, before a caller
    // awaiting the channel has attached its listeners (src/ssh/channel-open.ts execChannel).
    const ssh = new SshExecutor({ knownHosts: await KnownHosts.load(farm.knownHostsFile), limits: { connectTimeoutMs: 10_000, commandTimeoutMs: 20_000, killGraceMs: 1_000 } });
    try {
      const targets = farm.nodes.slice(0, 5).map((n) => ({ name: n.name, address: n.address, port: n.port, user: farm.loginUser, privateKeyFile: farm.clientKeyFile }));
      for (let run = 0; run < 3; run++) {
        const results = await ssh.fanout(targets, { argv: ['true'], runId: `farm-quick-${run}` });
        expect(results.map((r) => [r.host, r.status, r.exitCode])).toEqual(targets.map((t) => [t.name, 'ok', 0]));
      }
    } finally {
      await ssh.close();
    }
  });

  it('writes known_hosts, hosts.txt and an inventory for every node', async () => {
    const pins = (await readFile(farm.knownHostsFile, 'utf8')).trim().split('\n');
    expect(pins.map((l) => l.split(' ')[0])).toEqual(farm.nodes.map((n) => `[${n.address}]:${n.port}`));
    expect((await readFile(farm.hostsFile, 'utf8')).trim().split('\n')).toEqual(farm.nodes.map((n) => `${n.address}:${n.port}`));
    const inventory = parse(await readFile(farm.inventoryFile, 'utf8'));
    expect(Object.keys(inventory.all.children.lab.hosts)).toEqual(farm.nodes.map((n) => n.name));
    expect(inventory.all.children.lab.hosts.node07).toMatchObject({ ansible_host: node('node07').address, ansible_port: farm.port });
  });

  it('fault: exit 255 on every exec', async () => {
    expect(await runOnce(target(farm, node('node20')), 'true')).toMatchObject({ code: 255 });
  });

  it('fault: a different host key is refused by strict OpenSSH and a pinning ssh2 client', async () => {
    await farm.setFault('node10', { differentHostKey: true });
    const openssh = await runSsh(target(farm, node('node10')), ['true']);
    expect(openssh.code).toBe(255);
    expect(openssh.stderr).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    await expect(runOnce(target(farm, node('node10')), 'true')).rejects.toThrow(/verification failed/i);
    await farm.setFault('node10', null);
    expect(await runOnce(target(farm, node('node10')), 'true')).toMatchObject({ code: 0 });
  });

  it('fault: unreachable nodes refuse connections until the fault is cleared', async () => {
    await farm.setFault('node11', { unreachable: true });
    expect(await refused(node('node11').address, farm.port)).toBe(true);
    await farm.setFault('node11', null);
    expect(await runOnce(target(farm, node('node11')), 'hostname')).toMatchObject({ code: 0, stdout: 'node11\n' });
  });

  it('fault: the connection is cut mid-output, with no exit status', async () => {
    await farm.setFault('node12', { closeMidOutput: true });
    const client = await connect(target(farm, node('node12')));
    client.on('error', () => undefined);
    const outcome = await exec(client, 'echo a-long-line-of-output');
    expect(outcome.cutOff).toBe(true);
    expect(outcome.code).toBeNull();
    expect('a-long-line-of-output\n'.startsWith(outcome.stdout)).toBe(true);
    expect(outcome.stdout.length).toBeLessThan('a-long-line-of-output\n'.length);
    await farm.setFault('node12', null);
  });

  it('fault: a handshake that does not come in time fails the client', async () => {
    await farm.setFault('node13', { handshakeDelayMs: 20_000 });
    await expect(runOnce({ ...target(farm, node('node13')), readyTimeoutMs: 500 }, 'true')).rejects.toThrow(/handshake|timed out/i);
    await farm.setFault('node13', null);
  });

  it('fault: an exec that never answers stays open until the client gives up', async () => {
    await farm.setFault('node14', { neverAnswerExec: true });
    const client = await connect(target(farm, node('node14')));
    client.on('error', () => undefined);
    const pending = exec(client, 'true');
    const first = await Promise.race([pending.then(() => 'answered'), new Promise((r) => setTimeout(() => r('silent'), 300))]);
    expect(first).toBe('silent');
    client.end();
    expect((await pending).code).toBeNull();
    await farm.setFault('node14', null);
  });

  it('a wrapped sleep is cancelled when the client closes stdin (the lifeline)', async () => {
    const line = wrapCommand(['sleep', '30'], { runId: 'cancel-me', asRoot: false, loginUser: farm.loginUser, deadlineMs: 60_000, killGraceMs: 1000, stdinBytes: 0 });
    const client = await connect(target(farm, node('node15')));
    try {
      const outcome = await exec(client, line, '');
      expect(outcome.code).toBe(143);
    } finally {
      client.end();
    }
  });

  it('counts connections and execs', () => {
    const stats = farm.stats();
    expect(stats.connections).toBeGreaterThanOrEqual(19);
    expect(stats.execs).toBeGreaterThanOrEqual(19);
  });

  it('stop() closes every listener', async () => {
    await farm.stop();
    expect(await refused(node('node01').address, farm.port)).toBe(true);
  });
});

describe('fake-node farm as a separate process', () => {
  it('prints a JSON ready line, serves ssh, and exits on SIGTERM', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-farm-proc-'));
    const compiled = await compileLab(['fake-farm']);
    try {
      const child = spawn(process.execPath, [compiled.file('fake-farm'), '--nodes', '5', '--dir', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const line = await new Promise<string>((resolve, reject) => {
        let buffered = '';
        child.stdout.on('data', (chunk: Buffer) => {
          buffered += chunk.toString();
          if (buffered.includes('\n')) resolve(buffered.split('\n')[0]!);
        });
        child.once('exit', (code) => reject(new Error(`farm exited early (${code})`)));
      });
      const ready = JSON.parse(line);
      expect(ready).toMatchObject({ ready: true, pid: child.pid, dir });
      expect(ready.nodes).toHaveLength(5);
      const last = ready.nodes[4] as FarmNode;
      const outcome = await runSsh({ address: last.address, port: last.port, user: ready.loginUser, clientKeyFile: ready.clientKeyFile, knownHostsFile: ready.knownHostsFile }, ['hostname']);
      expect(outcome).toMatchObject({ code: 0, stdout: 'node05\n' });
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(await refused(last.address, last.port)).toBe(true);
    } finally {
      await compiled.remove();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
