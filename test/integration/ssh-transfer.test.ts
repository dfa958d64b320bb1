// SFTP transfers against real sshd: both directions, host-to-host relay, modes, the size
// limit, and no half files. The lab nodes share this machine's filesystem, so each test
// writes under its own directory.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, type Lab } from '../../src/lab/sshd-lab.js';
import { KnownHosts, SshExecutor, type ExecEvent, type SshTarget } from '../../src/ssh/index.js';

let lab: Lab;
let dir: string;
let ssh: SshExecutor;
let targets: SshTarget[];
let payload: Buffer;
let source: string;

async function leftovers(where: string): Promise<string[]> {
  return (await readdir(where)).filter((name) => name.includes('.castellan-'));
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'castellan-ssh-transfer-'));
  lab = await labUp({ nodes: 3, dir: path.join(dir, 'lab') });
  targets = lab.nodes.map((n) => ({ name: n.name, address: n.address, port: n.port, user: lab.loginUser, privateKeyFile: lab.clientKeyFile }));
  ssh = new SshExecutor({ knownHosts: await KnownHosts.load(lab.knownHostsFile), maxTransferBytes: 1024 * 1024 });
  payload = randomBytes(300_000);
  source = path.join(dir, 'payload.bin');
  await writeFile(source, payload);
  await chmod(source, 0o751);
});

afterAll(async () => {
  await ssh?.close();
  await lab?.down();
  await rm(dir, { recursive: true, force: true });
});

describe('upload', () => {
  it('writes the file on every host with the local mode, atomically', async () => {
    const remoteDir = path.join(dir, 'up');
    await mkdir(remoteDir);
    const events: ExecEvent[] = [];
    const results = await ssh.upload(targets, source, path.join(remoteDir, 'payload.bin'), { onEvent: (e) => events.push(e) });
    expect(results.map((r) => [r.host, r.status])).toEqual(targets.map((t) => [t.name, 'ok']));
    expect((await readFile(path.join(remoteDir, 'payload.bin'))).equals(payload)).toBe(true);
    expect((await stat(path.join(remoteDir, 'payload.bin'))).mode & 0o777).toBe(0o751);
    expect(await leftovers(remoteDir)).toEqual([]);
    expect(events.filter((e) => e.type === 'host_finished')).toHaveLength(3);
  });

  it('applies an explicit mode and replaces an existing file', async () => {
    const remote = path.join(dir, 'up-mode.bin');
    await writeFile(remote, 'old');
    const [result] = await ssh.upload([targets[0]!], source, remote, { mode: 0o600 });
    expect(result!.status).toBe('ok');
    expect((await readFile(remote)).equals(payload)).toBe(true);
    expect((await stat(remote)).mode & 0o777).toBe(0o600);
  });

  it('refuses a file over the size limit on every host, writing nothing', async () => {
    const remote = path.join(dir, 'too-big.bin');
    const results = await ssh.upload(targets, source, remote, { maxTransferBytes: 1000 });
    expect(results.map((r) => r.status)).toEqual(['failed', 'failed', 'failed']);
    expect(results[0]!.error).toMatch(/refused: .* is 300000 bytes, over the size limit of 1000/);
    await expect(stat(remote)).rejects.toThrow(/ENOENT/);
  });

  it('a failed write leaves no temp file behind', async () => {
    const target = path.join(dir, 'is-a-dir');
    await mkdir(path.join(target, 'child'), { recursive: true });
    const [result] = await ssh.upload([targets[0]!], source, target);
    expect(result!.status).toBe('failed');
    expect(await leftovers(dir)).toEqual([]);
  });
});

describe('download', () => {
  it('fetches each host file to <localDir>/<host>/<basename> with its mode', async () => {
    const remote = path.join(dir, 'remote-src.bin');
    await writeFile(remote, payload);
    await chmod(remote, 0o640);
    const localDir = path.join(dir, 'down');
    const results = await ssh.download(targets, remote, localDir);
    expect(results.map((r) => r.status)).toEqual(['ok', 'ok', 'ok']);
    for (const t of targets) {
      const local = path.join(localDir, t.name, 'remote-src.bin');
      expect((await readFile(local)).equals(payload)).toBe(true);
      expect((await stat(local)).mode & 0o777).toBe(0o640);
      expect(await leftovers(path.join(localDir, t.name))).toEqual([]);
    }
  });

  it('refuses over the limit (checked by stat) and a missing file, per host', async () => {
    const remote = path.join(dir, 'remote-src.bin');
    const [big] = await ssh.download([targets[0]!], remote, path.join(dir, 'down-big'), { maxTransferBytes: 10 });
    expect(big!.status).toBe('failed');
    expect(big!.error).toMatch(/refused: .* over the size limit of 10/);
    const [missing] = await ssh.download([targets[1]!], path.join(dir, 'nope'), path.join(dir, 'down-missing'));
    expect(missing!.status).toBe('failed');
    expect(missing!.error).toMatch(/No such file/);
  });
});

describe('relay', () => {
  it('streams a file from one host to others, mode preserved', async () => {
    const remote = path.join(dir, 'relay-src.bin');
    await writeFile(remote, payload);
    await chmod(remote, 0o704);
    const dest = path.join(dir, 'relay-dest.bin');
    const results = await ssh.relay(targets[0]!, remote, targets.slice(1), dest);
    expect(results.map((r) => [r.host, r.status])).toEqual([['node02', 'ok'], ['node03', 'ok']]);
    expect((await readFile(dest)).equals(payload)).toBe(true);
    expect((await stat(dest)).mode & 0o777).toBe(0o704);
  });

  it('refuses a source over the limit for every destination', async () => {
    const dest = path.join(dir, 'relay-big.bin');
    const results = await ssh.relay(targets[0]!, path.join(dir, 'relay-src.bin'), targets.slice(1), dest, { maxTransferBytes: 100 });
    expect(results.map((r) => r.status)).toEqual(['failed', 'failed']);
    expect(results[0]!.error).toMatch(/source node01:.*refused: .* over the size limit of 100/);
    await expect(stat(dest)).rejects.toThrow(/ENOENT/);
  });

  it('SFTP sessions are released: many transfers in a row on one connection keep working', async () => {
    const remoteDir = path.join(dir, 'many');
    await mkdir(remoteDir);
    for (let i = 0; i < 14; i++) {
      const [result] = await ssh.upload([targets[2]!], source, path.join(remoteDir, `f${i}`));
      expect(result!.status).toBe('ok');
    }
    expect((await readdir(remoteDir)).length).toBe(14);
  });
});
