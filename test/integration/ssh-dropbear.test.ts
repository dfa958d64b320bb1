// Dropbear is the SSH server of many small nodes (OpenWrt, Buildroot and Yocto images, some
// Raspberry Pi setups). Castellan must work against it as it does against OpenSSH: pinned host
// keys, output and exit codes, the node helper and the wrapper, runs that really stop on a
// timeout or a cancel, reconciliation, and many commands at once on one connection. A real
// `dropbear` (Debian's dropbear-bin) on loopback, logged into as a dedicated non-root user.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../src/lab/keys.js';
import { knownHostsLine, writeKnownHosts } from '../../src/lab/lab-files.js';
import { ensureLoginUser } from '../../src/lab/login-user.js';
import { allocateLoopbackAddresses, findPortFreeOnAll, waitForSshBanner } from '../../src/lab/net.js';
import { KnownHosts, SshExecutor, type SshTarget } from '../../src/ssh/index.js';
import { survivorsAfterSettling, uniqueSleep } from '../support/processes.js';

const LOGIN = 'castellan-dropbear';

/** dropbearkey writes Dropbear's own key format; `-y` prints the OpenSSH public line. */
function dropbearHostKey(file: string): string {
  const made = spawnSync('dropbearkey', ['-t', 'ed25519', '-f', file], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`dropbearkey: ${made.stderr}`);
  const shown = spawnSync('dropbearkey', ['-y', '-f', file], { encoding: 'utf8' });
  const line = shown.stdout.split('\n').find((l) => l.startsWith('ssh-ed25519 '));
  if (!line) throw new Error(`dropbearkey -y printed no public key: ${shown.stdout}`);
  return line;
}

/** The login user's ~/.ssh/authorized_keys: Dropbear has no AuthorizedKeysFile option. */
async function authorize(publicKey: string): Promise<void> {
  const home = spawnSync('getent', ['passwd', LOGIN], { encoding: 'utf8' }).stdout.split(':')[5] ?? '';
  const { uid, gid } = { uid: Number(spawnSync('id', ['-u', LOGIN], { encoding: 'utf8' }).stdout), gid: Number(spawnSync('id', ['-g', LOGIN], { encoding: 'utf8' }).stdout) };
  await mkdir(path.join(home, '.ssh'), { recursive: true, mode: 0o700 });
  await chown(path.join(home, '.ssh'), uid, gid);
  await writeFile(path.join(home, '.ssh', 'authorized_keys'), `${publicKey}\n`, { mode: 0o600 });
  await chown(path.join(home, '.ssh', 'authorized_keys'), uid, gid);
}

describe('Dropbear nodes', () => {
  let dir: string;
  let daemon: ChildProcess;
  let daemonLog = '';
  let address: string;
  let port: number;
  let hostKey: string;
  let clientKey: string;
  let knownHostsFile: string;
  const limits = { connectTimeoutMs: 5_000, commandTimeoutMs: 60_000, killGraceMs: 1_000 };
  const executors: SshExecutor[] = [];

  async function executor(nodeHelper: 'auto' | 'off'): Promise<SshExecutor> {
    const made = new SshExecutor({ knownHosts: await KnownHosts.load(knownHostsFile), limits, nodeHelper });
    executors.push(made);
    return made;
  }

  const target = (): SshTarget => ({ name: 'tiny01', address, port, user: LOGIN, privateKeyFile: clientKey });

  async function startDropbear(keyFile: string): Promise<void> {
    // -F foreground (a child of this test), -E log to stderr, -s no passwords, -R off: only our key.
    daemon = spawn('dropbear', ['-F', '-E', '-s', '-r', keyFile, '-p', `${address}:${port}`, '-P', path.join(dir, 'dropbear.pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
    // Its log (-E) is kept, the last 8 KB: a connection it drops says why in a failure message.
    daemon.stderr?.on('data', (chunk: Buffer) => {
      daemonLog = (daemonLog + chunk.toString()).slice(-8192);
    });
    await waitForSshBanner(address, port, 10_000);
  }

  async function stopDropbear(): Promise<void> {
    if (!daemon || daemon.exitCode !== null) return;
    const exited = new Promise((resolve) => daemon.once('exit', resolve));
    daemon.kill('SIGTERM');
    await exited;
  }

  beforeAll(async () => {
    expect(userInfo().uid, 'the Dropbear test logs in as a user of its own, which needs root to create').toBe(0);
    dir = await mkdtemp(path.join(tmpdir(), 'castellan-dropbear-'));
    await chmod(dir, 0o755);
    await ensureLoginUser(LOGIN);
    clientKey = path.join(dir, 'id_ed25519');
    await generateKeyPair(clientKey, 'ed25519', 'castellan-dropbear-test');
    await authorize(await readFile(`${clientKey}.pub`, 'utf8'));
    [address] = allocateLoopbackAddresses(1, '127.0.9.2') as [string];
    port = await findPortFreeOnAll([address]);
    hostKey = path.join(dir, 'host_ed25519');
    knownHostsFile = path.join(dir, 'known_hosts');
    await writeKnownHosts(knownHostsFile, [knownHostsLine(address, port, dropbearHostKey(hostKey))]);
    await startDropbear(hostKey);
    // Where commands count their runs: the login user's own directory inside ours.
    await mkdir(path.join(dir, 'tally'));
    await chown(path.join(dir, 'tally'), Number(spawnSync('id', ['-u', LOGIN], { encoding: 'utf8' }).stdout), 0);
  });

  afterAll(async () => {
    for (const made of executors) await made.close();
    await stopDropbear();
    await rm(dir, { recursive: true, force: true });
  });

  for (const nodeHelper of ['auto', 'off'] as const) {
    it(`runs commands with their output and exit codes (node helper ${nodeHelper})`, async () => {
      const ssh = await executor(nodeHelper);
      // Three runs on one connection: with the helper, the later ones go through it.
      for (let i = 0; i < 3; i++) {
        const result = await ssh.exec(target(), { argv: ['sh', '-c', 'id -un; echo "a\tb" >&2; exit 3'], runId: `out-${nodeHelper}-${i}` });
        expect(result).toMatchObject({ status: 'failed', exitCode: 3, stdout: `${LOGIN}\n`, stderr: 'a\tb\n' });
      }
      expect(await ssh.exec(target(), { argv: ['printf', '%s', "it's \"quoted\" $HOME `x`"], runId: `quote-${nodeHelper}` })).toMatchObject({ status: 'ok', stdout: "it's \"quoted\" $HOME `x`" });
    });

    it(`many commands at once on one host (node helper ${nodeHelper})`, async () => {
      const ssh = await executor(nodeHelper);
      // Dropbear refuses some exec requests while other channels open and close (nothing ran):
      // each is retried, so every command runs, once.
      const tally = path.join(dir, 'tally', `many-${nodeHelper}`);
      const runs = await Promise.all(Array.from({ length: 24 }, (_, i) => ssh.exec(target(), { argv: ['sh', '-c', `sleep 0.2; echo ${i} >> "$0"; echo ${i}`, tally], runId: `many-${nodeHelper}-${i}` })));
      expect(runs.filter((r) => r.status !== 'ok').map((r) => `${r.status}: ${r.error} / ${r.stderr}`), `dropbear's log:\n${daemonLog}`).toEqual([]);
      expect(runs.map((r) => r.stdout)).toEqual(Array.from({ length: 24 }, (_, i) => `${i}\n`));
      const ran = (await readFile(tally, 'utf8')).split('\n').filter(Boolean).map(Number);
      expect(ran.sort((x, y) => x - y)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    });

    it(`a command timeout and a cancel stop the remote run, grandchildren included (node helper ${nodeHelper})`, async () => {
      const ssh = await executor(nodeHelper);
      await ssh.exec(target(), { argv: ['true'], runId: `warm-${nodeHelper}` });
      const [a, b] = [uniqueSleep(), uniqueSleep()];
      const timedOut = await ssh.exec(target(), { argv: ['sh', '-c', `sleep ${a} & sleep ${b}; echo never`], runId: `timeout-${a}` }, { commandTimeoutMs: 1_500 });
      expect(timedOut.status).toBe('timed_out');
      expect(timedOut.stdout).toBe('');
      expect(timedOut.error).toMatch(/remote run stopped \((terminated|killed)\)/);
      expect(await survivorsAfterSettling(a)).toEqual([]);
      expect(await survivorsAfterSettling(b)).toEqual([]);

      const c = uniqueSleep();
      const controller = new AbortController();
      const cancelled = await ssh.exec(target(), { argv: ['sh', '-c', `trap '' TERM; echo started; sleep ${c}`], runId: `cancel-${c}` }, {
        signal: controller.signal,
        onEvent: (event) => event.type === 'output' && event.chunk.includes('started') && controller.abort(),
      });
      expect(cancelled.status).toBe('cancelled');
      expect(cancelled.error).toMatch(/remote run stopped/);
      expect(await survivorsAfterSettling(c)).toEqual([]);
    });
  }

  it('a command longer than Dropbear takes is refused before it is sent, and the connection lives on', async () => {
    const ssh = await executor('off');
    const long = 'x'.repeat(9_000);
    const neighbour = ssh.exec(target(), { argv: ['sh', '-c', 'sleep 0.5; echo alive'], runId: `neighbour-${process.pid}` });
    await sleep(100);
    const result = await ssh.exec(target(), { argv: ['printf', '%s', long], runId: `long-${process.pid}` });
    expect(result.status).toBe('failed');
    expect(result.error).toMatch(/^refused before running: the node's SSH server \(dropbear_[\d.]+\) takes commands of at most 9000 bytes and drops the whole connection for a longer one; this one is \d+ bytes once wrapped/);
    // Sent anyway, the command would have reset the connection under the neighbour.
    expect(await neighbour).toMatchObject({ status: 'ok', stdout: 'alive\n' });
    // Below the limit it runs.
    expect(await ssh.exec(target(), { argv: ['printf', '%s', 'x'.repeat(7_000)], runId: `shorter-${process.pid}` })).toMatchObject({ status: 'ok', stdout: 'x'.repeat(7_000) });
  });

  it('through the node helper, a long argv travels in a frame: no command line, no limit', async () => {
    const ssh = await executor('auto');
    await ssh.exec(target(), { argv: ['true'], runId: `first-${process.pid}` });
    const long = 'y'.repeat(20_000);
    expect(await ssh.exec(target(), { argv: ['printf', '%s', long], runId: `long-helper-${process.pid}` })).toMatchObject({ status: 'ok', stdout: long });
  });

  it('reconciliation: another executor finds a run and stops it', async () => {
    const ssh = await executor('auto');
    const a = uniqueSleep();
    const runId = `crash.${a}`;
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const inFlight = ssh.exec(target(), { argv: ['sh', '-c', `echo up; exec sleep ${a}`], runId }, { onEvent: (e) => e.type === 'output' && started() });
    await running;
    const other = await executor('off');
    const found = await other.findRemoteRun(target(), runId);
    expect(found.state).toBe('running');
    expect(found.processes.map((p) => p.command)).toContain(`sleep ${a}`);
    // TERM, or KILL once the grace passed on a loaded machine: stopped either way (checked next).
    expect(['terminated', 'killed']).toContain((await other.killRemoteRun(target(), runId)).outcome);
    expect(await survivorsAfterSettling(a)).toEqual([]);
    expect((await inFlight).status).toBe('failed');
  });

  it('refuses a node whose host key changed, and runs nothing there', async () => {
    const ssh = await executor('auto');
    await stopDropbear();
    const otherKey = path.join(dir, 'host_ed25519.new');
    dropbearHostKey(otherKey);
    await startDropbear(otherKey);
    const marker = path.join(dir, 'ran');
    const result = await ssh.exec(target(), { argv: ['touch', marker], runId: `changed-${process.pid}` });
    expect(result.status).toBe('host_key_rejected');
    expect(result.error).toMatch(/host key/i);
    expect(spawnSync('test', ['-e', marker]).status).toBe(1);
  });
});
