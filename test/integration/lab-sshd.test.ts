// The real-sshd lab, checked with the real OpenSSH client and strict host-key checking.
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { labDown, labOpen, labUp, type Lab, type LabNode } from '../../src/lab/sshd-lab.js';
import { isAlive } from '../../src/lab/processes.js';
import { runSsh } from '../support/openssh.js';

const run = promisify(execFile);

function target(lab: Lab, node: LabNode) {
  return { address: node.address, port: node.port, user: lab.loginUser, clientKeyFile: lab.clientKeyFile, knownHostsFile: lab.knownHostsFile };
}

function nodeOf(lab: Lab, name: string): LabNode {
  const node = lab.nodes.find((n) => n.name === name);
  if (!node) throw new Error(`no ${name}`);
  return node;
}

/** pgrep -f PATTERN: the pids of every process whose command line mentions the pattern. */
async function pgrep(pattern: string): Promise<number[]> {
  try {
    const { stdout } = await run('pgrep', ['-f', pattern]);
    return stdout.split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

function tcpRefused(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port });
    socket.once('connect', () => { socket.destroy(); resolve(false); });
    socket.once('error', () => resolve(true));
  });
}

describe('sshd lab (3 nodes, mixed host key types, current user)', () => {
  let dir: string;
  let lab: Lab;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-lab-'));
    lab = await labUp({ nodes: 3, dir, hostKeyTypes: ['ed25519', 'ecdsa', 'rsa'] });
  });

  afterAll(async () => {
    await lab?.down();
    await rm(dir, { recursive: true, force: true });
  });

  it('gives each node its own address, one shared port and a running sshd', () => {
    expect(lab.nodes.map((n) => n.name)).toEqual(['node01', 'node02', 'node03']);
    expect(new Set(lab.nodes.map((n) => n.address)).size).toBe(3);
    expect(new Set(lab.nodes.map((n) => n.port)).size).toBe(1);
    for (const node of lab.nodes) {
      expect(node.address).toMatch(/^127\.0\.0\.\d+$/);
      expect(node.pid).not.toBeNull();
      expect(isAlive(node.pid!)).toBe(true);
    }
  });

  it('answers the strict OpenSSH client on every node', async () => {
    for (const node of lab.nodes) {
      const outcome = await runSsh(target(lab, node), ['echo', 'ok']);
      expect(outcome, node.name).toMatchObject({ code: 0, stdout: 'ok\n' });
    }
  });

  it('writes pinned known_hosts, an Ansible inventory and a castellan.yaml', async () => {
    const pins = (await readFile(lab.knownHostsFile, 'utf8')).trim().split('\n');
    expect(pins.map((line) => line.split(' ')[0])).toEqual(lab.nodes.map((n) => `[${n.address}]:${n.port}`));
    expect(pins.map((line) => line.split(' ')[1])).toEqual(['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ssh-rsa']);

    const inventory = parse(await readFile(lab.inventoryFile, 'utf8'));
    const groups = inventory.all.children;
    expect(Object.keys(groups.lab.hosts)).toEqual(['node01', 'node02', 'node03']);
    expect(Object.keys(groups.odd.hosts)).toEqual(['node01', 'node03']);
    expect(Object.keys(groups.even.hosts)).toEqual(['node02']);
    const node02 = nodeOf(lab, 'node02');
    expect(groups.lab.hosts.node02).toEqual({
      ansible_host: node02.address,
      ansible_port: node02.port,
      ansible_user: lab.loginUser,
      ansible_ssh_private_key_file: lab.clientKeyFile,
      castellan_labels: { role: 'worker' },
    });
    expect(groups.lab.hosts.node01.castellan_labels.role).toBe('control');

    const config = parse(await readFile(lab.configFile, 'utf8'));
    expect(config).toMatchObject({
      inventory: lab.inventoryFile,
      known_hosts: lab.knownHostsFile,
      ssh: { user: lab.loginUser, private_key_file: lab.clientKeyFile, connect_timeout: '5s' },
    });
  });

  it('re-opens from lab.json with the same pids', async () => {
    const reopened = await labOpen(dir);
    expect(reopened.nodes.map((n) => n.pid)).toEqual(lab.nodes.map((n) => n.pid));
  });

  it('stopNode makes one node refuse, startNode brings it back with the same key', async () => {
    const node = nodeOf(lab, 'node02');
    await lab.stopNode('node02');
    expect(node.pid).toBeNull();
    expect(await tcpRefused(node.address, node.port)).toBe(true);
    const refused = await runSsh(target(lab, node), ['true']);
    expect(refused.code).toBe(255);
    expect((await runSsh(target(lab, nodeOf(lab, 'node01')), ['true'])).code).toBe(0);

    await lab.startNode('node02');
    expect(node.pid).not.toBeNull();
    expect((await runSsh(target(lab, node), ['true'])).code).toBe(0);
  });

  it('rotateHostKey makes strict OpenSSH refuse that node only', async () => {
    const node = nodeOf(lab, 'node03');
    await lab.rotateHostKey('node03');
    const outcome = await runSsh(target(lab, node), ['true']);
    expect(outcome.code).toBe(255);
    expect(outcome.stderr).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    expect((await runSsh(target(lab, nodeOf(lab, 'node01')), ['true'])).code).toBe(0);
  });

  it('re-running labUp on the same dir downs the running lab first', async () => {
    const oldPids = lab.nodes.map((n) => n.pid!);
    lab = await labUp({ nodes: 2, dir });
    for (const pid of oldPids) expect(isAlive(pid)).toBe(false);
    expect(lab.nodes).toHaveLength(2);
    expect((await runSsh(target(lab, nodeOf(lab, 'node02')), ['true'])).code).toBe(0);
  });

  it('down() stops every sshd and the sessions they serve', async () => {
    const node = nodeOf(lab, 'node01');
    // A session that would outlive a careless shutdown: the remote sleep is a grandchild of sshd.
    const marker = `sleep 3${Math.floor(Math.random() * 900 + 100)}7`;
    const client = spawn('ssh', ['-F', '/dev/null', '-i', lab.clientKeyFile, '-o', 'BatchMode=yes',
      '-o', `UserKnownHostsFile=${lab.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes',
      '-p', String(node.port), `${lab.loginUser}@${node.address}`, marker], { stdio: 'ignore' });
    const clientGone = new Promise((resolve) => client.once('close', resolve));
    for (let i = 0; i < 200 && (await pgrep(`^${marker}$`)).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await pgrep(`^${marker}$`)).toHaveLength(1);

    await lab.down();
    expect(lab.nodes.every((n) => n.pid === null)).toBe(true);
    expect(await pgrep(dir)).toEqual([]);
    expect(await pgrep(`^${marker}$`)).toEqual([]);
    expect(await tcpRefused(node.address, node.port)).toBe(true);
    await clientGone;
    // labDown on a stopped lab is a no-op, not an error.
    await labDown(dir);
  });
});

describe('sshd lab with a non-root login user', () => {
  let dir: string;
  let lab: Lab;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-lab-user-'));
    lab = await labUp({ nodes: 2, dir, loginUser: 'castellan-lab' });
  });

  afterAll(async () => {
    await lab?.down();
    await rm(dir, { recursive: true, force: true });
  });

  it('logs in as castellan-lab on each node', async () => {
    expect(lab.loginUser).toBe('castellan-lab');
    for (const node of lab.nodes) {
      const outcome = await runSsh(target(lab, node), ['id', '-un']);
      expect(outcome, `${node.name}: ${outcome.stderr}`).toMatchObject({ code: 0, stdout: 'castellan-lab\n' });
    }
  });

  it('refuses root with the same key: the key opens the login user only', async () => {
    const outcome = await runSsh({ ...target(lab, lab.nodes[0]!), user: 'root' }, ['id', '-un']);
    expect(outcome.code).toBe(255);
    expect(outcome.stderr).toMatch(/Permission denied/);
  });
});
