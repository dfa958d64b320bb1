// The node helper (ssh.node_helper: auto) against real OpenSSH nodes: one Perl helper per
// pooled connection runs every command (fork, setsid, exec of the argv: no shell), streams its
// stdout and stderr apart, byte for byte, and keeps the wrapper's stop guarantees: cancel and
// the per-host timeout stop the whole run (grandchildren in their own process group or session
// included), a client that dies takes every run with it (the helper's lifeline), the remote
// deadline holds while the client is frozen, and a node without perl falls back to the wrapper.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, nodeBinDir, type Lab } from '../../src/lab/sshd-lab.js';
import { KnownHosts, SshExecutor, type SshTarget } from '../../src/ssh/index.js';
import { survivors, uniqueSleep } from '../support/processes.js';

const HOSTILE_ARGV: readonly string[] = [
  ';', 'a; touch /tmp/castellan-pwned', '&&', '|', '`id`', '$(id)', '${IFS}', 'line1\nline2', 'cr\rlf', '\ttab',
  "'", "it's", '"', '\\', '\\\'', '*', '~', '~root', '-n', '--help', 'é ü 中文', '🚀', '', ' ', '$HOME', '!', '#x',
  '>out', '2>&1', '{a,b}', '\u001b[0m', '\u0001\u0002\u0007\u007f',
  // Two arguments near Linux's 128 KiB per argument: together beyond what the wrapper's one
  // command line may carry, fine for an exec'd argv.
  'x'.repeat(120_000), 'y'.repeat(120_000),
];
const ECHO_ARGV = ['/usr/bin/python3', '-c', 'import sys,json; sys.stdout.write(json.dumps(sys.argv[1:]))'];
const REPO = path.resolve(import.meta.dirname, '../..');

async function until<T>(probe: () => T, done: (value: T) => boolean, withinMs: number): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const value = probe();
    if (done(value) || Date.now() > deadline) return value;
    await sleep(100);
  }
}
/** The node helper that runs the process `pid` (an ancestor named castellan-helper). */
function helperOf(pid: string): number | undefined {
  let at = Number(pid);
  for (let hops = 0; hops < 8 && at > 1; hops++) {
    const [ppid, ...args] = spawnSync('ps', ['-o', 'ppid=,args=', '-p', String(at)], { encoding: 'utf8' }).stdout.trim().split(/\s+/);
    if (args.join(' ') === 'castellan-helper') return at;
    at = Number(ppid);
  }
  return undefined;
}
const alive = (pid: number): boolean => spawnSync('ps', ['-p', String(pid)]).status === 0;
const gone = (seconds: string, withinMs = 8_000): Promise<string[]> => until(() => survivors(seconds), (left) => left.length === 0, withinMs);
const appeared = (seconds: string, withinMs = 5_000): Promise<string[]> => until(() => survivors(seconds), (found) => found.length > 0, withinMs);

describe('node helper (ssh.node_helper: auto)', () => {
  let lab: Lab;
  let dir: string;
  let ssh: SshExecutor;
  let target: SshTarget;
  let noPerl: SshTarget;
  const limits = { connectTimeoutMs: 5_000, commandTimeoutMs: 60_000, killGraceMs: 1_000 };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'castellan-node-helper-'));
    lab = await labUp({ nodes: 2, dir, nodeBinDirs: true });
    const [one, two] = lab.nodes;
    target = { name: one!.name, address: one!.address, port: one!.port, user: lab.loginUser, privateKeyFile: lab.clientKeyFile };
    noPerl = { name: two!.name, address: two!.address, port: two!.port, user: lab.loginUser, privateKeyFile: lab.clientKeyFile };
    // node02 has no perl: what a shell says for a program that is not installed.
    const bin = nodeBinDir(dir, two!.name);
    await mkdir(bin, { recursive: true });
    await writeFile(path.join(bin, 'perl'), '#!/bin/sh\necho "sh: 1: perl: not found" >&2\nexit 127\n');
    await chmod(path.join(bin, 'perl'), 0o755);
    ssh = new SshExecutor({ knownHosts: await KnownHosts.load(lab.knownHostsFile), limits, nodeHelper: 'auto' });
    // A connection's first command runs under the wrapper and starts the helper for the next ones.
    expect((await ssh.exec(target, { argv: ['true'], runId: `warm-${process.pid}` })).status).toBe('ok');
  });

  afterAll(async () => {
    await ssh?.close();
    await lab?.down();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs the command under the helper: stdout and stderr apart, exact bytes across many frames, exit status', async () => {
    // Every byte value a text stream can carry (control characters included) and multi-byte
    // characters, 300 kB per stream so they arrive in many frames cut at arbitrary places.
    const unit = Array.from({ length: 127 }, (_, i) => String.fromCharCode(i + 1)).join('') + 'é中🚀\n';
    const outText = unit.repeat(Math.ceil(300_000 / unit.length));
    const errText = `E${unit}`.repeat(Math.ceil(300_000 / unit.length));
    await writeFile(path.join(dir, 'out.txt'), outText);
    await writeFile(path.join(dir, 'err.txt'), errText);
    const result = await ssh.exec(target, {
      argv: ['sh', '-c', 'cat "$1"; cat "$2" >&2; ps -o args= -p "$PPID"; exit 7', 'sh', path.join(dir, 'out.txt'), path.join(dir, 'err.txt')],
      runId: `bytes-${process.pid}`,
    }, { maxOutputBytes: 4 * 1024 * 1024 });
    expect(result.status).toBe('failed');
    expect(result.exitCode).toBe(7);
    expect(result.stderr).toBe(errText);
    // The command's parent is the helper, not sshd's login shell: helper mode really ran it.
    expect(result.stdout).toBe(`${outText}castellan-helper\n`);
    expect(result.truncated).toBe(false);
  });

  it('passes signals, stdin bytes, the run id, and "not found" for a missing program', async () => {
    const [signalled, fed, env, missing] = await Promise.all([
      ssh.exec(target, { argv: ['sh', '-c', 'kill -USR1 $$'], runId: `sig-${process.pid}` }),
      ssh.exec(target, { argv: ['cat'], stdin: 'in\u0000\u0001put\n', runId: `stdin-${process.pid}` }),
      // The process the helper exec'd reads its own status (a shell's would show its own fork windows).
      ssh.exec(target, { argv: ['sh', '-c', 'echo "$CASTELLAN_RUN"; exec grep -E "^Sig(Blk|Ign):" /proc/self/status'], runId: `env.${process.pid}` }),
      ssh.exec(target, { argv: ['castellan-no-such-program'], runId: `missing-${process.pid}` }),
    ]);
    expect(signalled).toMatchObject({ status: 'failed', exitCode: null, signal: 'USR1' });
    expect(fed).toMatchObject({ status: 'ok', stdout: 'in\u0000\u0001put\n' });
    // Nothing blocked or ignored: a command started by the helper can be stopped with TERM.
    expect(env).toMatchObject({ status: 'ok', stdout: `env.${process.pid}\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n` });
    expect(missing).toMatchObject({ status: 'failed', exitCode: 127 });
    expect(missing.error).toMatch(/castellan-no-such-program is not installed here/);
  });

  it('delivers a hostile argv corpus to the program byte for byte (exec of the argv, no shell)', async () => {
    const result = await ssh.exec(target, { argv: [...ECHO_ARGV, ...HOSTILE_ARGV], runId: `argv-${process.pid}` });
    expect(result.status).toBe('ok');
    expect(JSON.parse(result.stdout)).toEqual(HOSTILE_ARGV);
  });

  it('concurrent commands on one connection keep their output apart', async () => {
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => ssh.exec(target, {
      argv: ['sh', '-c', `i=0; while [ $i -lt 2000 ]; do echo "run${i} line $i"; echo "err${i} $i" >&2; i=$((i+1)); done`],
      runId: `mix-${process.pid}-${i}`,
    })));
    results.forEach((result, i) => {
      expect(result.status).toBe('ok');
      expect(result.stdout).toBe(Array.from({ length: 2000 }, (_, n) => `run${i} line ${n}\n`).join(''));
      expect(result.stderr).toBe(Array.from({ length: 2000 }, (_, n) => `err${i} ${n}\n`).join(''));
    });
    expect(ssh.openConnections).toBe(1);
  });

  it('cancel stops grandchildren in their own process group and in their own session', async () => {
    const [group, session, fg] = [uniqueSleep(), uniqueSleep(), uniqueSleep()];
    const controller = new AbortController();
    // `set -m`: the background job gets a process group of its own (still in the run's
    // session); setsid leaves the session (the helper finds it by CASTELLAN_RUN).
    const result = await ssh.exec(target, {
      argv: ['sh', '-c', `set -m; sleep ${group} & setsid sleep ${session} & echo started; sleep ${fg}`],
      runId: `cancel-${group}`,
    }, {
      signal: controller.signal,
      onEvent: (event) => {
        if (event.type === 'output' && event.chunk.includes('started')) {
          void Promise.all([appeared(group), appeared(session), appeared(fg)]).then(() => controller.abort());
        }
      },
    });
    expect(result.status).toBe('cancelled');
    expect(result.error).toMatch(/^cancelled; remote run stopped \((terminated|killed)\)$/);
    // "stopped" is reported only once verified: nothing left at that moment.
    expect([...survivors(group), ...survivors(session), ...survivors(fg)]).toEqual([]);
  });

  it('timeout escalates to KILL for a command that ignores TERM, and says what was verified', async () => {
    const a = uniqueSleep();
    const result = await ssh.exec(target, { argv: ['sh', '-c', `trap '' TERM; sleep ${a}`], runId: `stubborn-${a}` }, { commandTimeoutMs: 1_500 });
    expect(result.status).toBe('timed_out');
    expect(result.error).toMatch(/command timeout after 1500 ms; remote run stopped \(killed\)/);
    expect(survivors(a)).toEqual([]);
  });

  it('findRemoteRun / killRemoteRun from another executor find and stop a helper run (reconciliation)', async () => {
    const a = uniqueSleep();
    const runId = `crash.${a}`;
    let started!: () => void;
    const running = new Promise<void>((resolve) => { started = resolve; });
    const inFlight = ssh.exec(target, { argv: ['sh', '-c', `echo up; sleep ${a}`], runId }, { onEvent: (e) => e.type === 'output' && started() });
    await running;
    const other = new SshExecutor({ knownHosts: await KnownHosts.load(lab.knownHostsFile), limits, nodeHelper: 'off' });
    try {
      const found = await other.findRemoteRun(target, runId);
      expect(found.processes.map((p) => p.command)).toContain(`sleep ${a}`);
      expect((await other.killRemoteRun(target, runId)).outcome).toBe('terminated');
      expect(survivors(a)).toEqual([]);
    } finally {
      await other.close();
    }
    expect((await inFlight).signal).toBe('TERM');
  });

  it('a node without perl falls back to the wrapper and still runs (and stops) commands', async () => {
    expect((await ssh.exec(noPerl, { argv: ['true'], runId: `noperl-warm-${process.pid}` })).status).toBe('ok');
    // This one waits for the helper's start, which fails: it runs under the wrapper.
    const result = await ssh.exec(noPerl, { argv: ['sh', '-c', 'echo ok; ps -o args= -p "$PPID"'], runId: `noperl-${process.pid}` });
    expect(result.status).toBe('ok');
    expect(result.stdout).toMatch(/^ok\n/);
    expect(result.stdout).not.toContain('castellan-helper');
    const a = uniqueSleep();
    const timed = await ssh.exec(noPerl, { argv: ['sleep', a], runId: `noperl-t-${a}` }, { commandTimeoutMs: 1_000 });
    expect(timed.status).toBe('timed_out');
    expect(timed.error).toMatch(/remote run stopped/);
    expect(survivors(a)).toEqual([]);
  });

  it('a helper that dies mid-run: the run is stopped and verified over a control channel, the connection goes on with the wrapper', async () => {
    const a = uniqueSleep();
    const own = new SshExecutor({ knownHosts: await KnownHosts.load(lab.knownHostsFile), limits, nodeHelper: 'auto' });
    try {
      await own.exec(target, { argv: ['true'], runId: `orphan-warm-${a}` });
      const inFlight = own.exec(target, { argv: ['sleep', a], runId: `orphan-${a}` });
      const [sleeper] = await appeared(a);
      // The sleep's parent is the helper (its argv is exec'd directly): SIGKILL it, as the OOM killer would.
      const helperPid = Number(spawnSync('ps', ['-o', 'ppid=', '-p', sleeper!], { encoding: 'utf8' }).stdout.trim());
      expect(spawnSync('ps', ['-o', 'args=', '-p', String(helperPid)], { encoding: 'utf8' }).stdout.trim()).toBe('castellan-helper');
      process.kill(helperPid, 'SIGKILL');
      const result = await inFlight;
      expect(result.status).toBe('failed');
      expect(result.error).toMatch(/^the node helper stopped \(its channel closed.*\); remote run stopped \((terminated|killed)\)$/);
      expect(survivors(a)).toEqual([]);
      const after = await own.exec(target, { argv: ['sh', '-c', 'echo again; ps -o args= -p "$PPID"'], runId: `after-${a}` });
      expect(after.status).toBe('ok');
      expect(after.stdout).toMatch(/^again\n/);
      expect(after.stdout).not.toContain('castellan-helper');
      expect(own.openConnections).toBe(1);
    } finally {
      await own.close();
    }
  });

  describe('a client process that dies or freezes', () => {
    let client: ChildProcess | undefined;
    afterAll(() => {
      if (client?.exitCode === null) client.kill('SIGKILL');
    });

    /** An executor in its own process running `commands` on the helper; resolves once all print "up". */
    async function startClient(commands: string[], commandTimeoutMs: number): Promise<ChildProcess> {
      const script = `
        import { KnownHosts, SshExecutor } from ${JSON.stringify(path.join(REPO, 'dist/src/ssh/index.js'))};
        const target = ${JSON.stringify(target)};
        const ssh = new SshExecutor({ knownHosts: await KnownHosts.load(${JSON.stringify(lab.knownHostsFile)}), nodeHelper: 'auto',
          limits: { connectTimeoutMs: 5000, commandTimeoutMs: ${commandTimeoutMs}, killGraceMs: 1000 } });
        const commands = ${JSON.stringify(commands)};
        await ssh.exec(target, { argv: ['true'], runId: 'client-warm.' + process.pid });
        let up = 0;
        await Promise.all(commands.map((c, i) => ssh.exec(target, { argv: ['sh', '-c', c], runId: 'client.' + process.pid + '.' + i },
          { onEvent: (e) => { if (e.type === 'output' && e.chunk.includes('up') && ++up === commands.length) console.log('all up'); } })));
        console.log('ended');`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      client = child;
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('all up') && resolve());
        child.once('exit', (code) => reject(new Error(`client exited ${code} before its commands were up`)));
      });
      return child;
    }

    it('killing the client kills every run of its connection (the helper sees EOF)', async () => {
      const sleeps = [uniqueSleep(), uniqueSleep(), uniqueSleep()];
      const child = await startClient(sleeps.map((s) => `echo up; sleep ${s}`), 60_000);
      for (const s of sleeps) expect(await appeared(s)).toHaveLength(1);
      const helpers = new Set(sleeps.map((s) => helperOf(survivors(s)[0]!)));
      expect(helpers.size).toBe(1);
      child.kill('SIGKILL');
      for (const s of sleeps) expect(await gone(s)).toEqual([]);
      // The helper itself exits once its runs are stopped (it once waited for ever here).
      const [helper] = [...helpers];
      expect(await until(() => alive(helper!), (up) => !up, 10_000)).toBe(false);
    });

    it('the remote deadline stops the run while the client is frozen (connection open, nobody asks)', async () => {
      const a = uniqueSleep();
      // Deadline on the node: 1 s timeout + 1 s grace + the 5 s margin.
      const child = await startClient([`echo up; trap '' TERM; sleep ${a}`], 1_000);
      expect(await appeared(a)).toHaveLength(1);
      child.kill('SIGSTOP');
      try {
        expect(await gone(a, 30_000)).toEqual([]);
        // The client never got to stop it: it was frozen all along.
        expect(child.exitCode).toBe(null);
      } finally {
        child.kill('SIGKILL');
      }
    }, 60_000);
  });
});
