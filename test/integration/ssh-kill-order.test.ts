// A stopped run must not run its next command. Under the wrapper (ssh.node_helper: off), a
// cancel and a command timeout both go through killRemoteRun, which TERMs every process of
// the run; a dropped connection through the wrapper's lifeline, which TERMs its session. If the `sleep` died of its TERM before the shell running `sleep; echo never > F`
// got its own, the shell would see its child end and write F (the node helper had exactly
// that race: commit dbd8fc7). Each case runs 20 times; in every other run the command makes
// the next pid low before it starts the sleep, so the sleep's pid is below the shell's (as
// after a pid wrap-around, frequent where pid_max is 32768): a killer that TERMs in pid order
// then reaches the sleep first. F must never appear. (Before killRemoteRun froze the run,
// the cancel and timeout cases wrote F within their first four runs, always a reversed one.)
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, type Lab } from '../../src/lab/sshd-lab.js';
import { KnownHosts, SshExecutor, type SshTarget } from '../../src/ssh/index.js';

// KILL_ORDER_RUNS: more runs, to look for the race by hand.
const RUNS = Number(process.env.KILL_ORDER_RUNS ?? 20);
let seq = 0;
/** A `sleep N` nobody else runs (N unique per run), so `pgrep` finds only ours. */
const uniqueSleep = (): string => String(5_000_000 + (process.pid % 10_000) * 100 + ++seq);
const running = (seconds: string): string[] => spawnSync('pgrep', ['-f', `^sleep ${seconds}$`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);

async function until(check: () => boolean, what: string, withinMs = 10_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * `sh -c 'sleep N; echo never > "$1"'`; with `lowPid`, the shell first points the kernel's
 * next pid at 300 (where it may: /proc/sys/kernel/ns_last_pid), so the sleep it forks gets a
 * pid below its own.
 */
function command(seconds: string, file: string, lowPid: boolean): string[] {
  const low = lowPid ? '{ echo 300 > /proc/sys/kernel/ns_last_pid; } 2>/dev/null; ' : '';
  return ['sh', '-c', `${low}sleep ${seconds}; echo never > "$1"`, 'sh', file];
}

describe('stopping a wrapper run (ssh.node_helper: off)', () => {
  let lab: Lab;
  let dir: string;
  let ssh: SshExecutor;
  let target: SshTarget;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'castellan-kill-order-'));
    lab = await labUp({ nodes: 1, dir: path.join(dir, 'lab') });
    const node = lab.nodes[0]!;
    target = { name: node.name, address: node.address, port: node.port, user: lab.loginUser, privateKeyFile: lab.clientKeyFile };
    ssh = new SshExecutor({ knownHosts: await KnownHosts.load(lab.knownHostsFile), limits: { connectTimeoutMs: 5_000, commandTimeoutMs: 60_000, killGraceMs: 2_000 }, nodeHelper: 'off' });
  }, 60_000);

  afterAll(async () => {
    await ssh?.close();
    await lab?.down();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`cancel, ${RUNS} times: the shell never runs its next command`, async () => {
    for (let i = 0; i < RUNS; i++) {
      const seconds = uniqueSleep();
      const file = path.join(dir, `never-cancel-${i}`);
      const controller = new AbortController();
      const result = ssh.exec(target, { argv: command(seconds, file, i % 2 === 1), runId: `order-cancel-${seconds}` }, { signal: controller.signal });
      await until(() => running(seconds).length > 0, 'the sleep to start');
      controller.abort();
      const done = await result;
      expect(done.status, done.error).toBe('cancelled');
      expect(done.error).toMatch(/remote run stopped/);
      // Once nothing of the run is left, nothing can write the file any more.
      await until(() => running(seconds).length === 0, 'the run to be gone');
      expect(existsSync(file), `run ${i}: the shell ran 'echo never' after its sleep was killed`).toBe(false);
    }
  }, 180_000);

  it(`command timeout, ${RUNS} times: the shell never runs its next command`, async () => {
    for (let i = 0; i < RUNS; i++) {
      const seconds = uniqueSleep();
      const file = path.join(dir, `never-timeout-${i}`);
      const done = await ssh.exec(target, { argv: command(seconds, file, i % 2 === 1), runId: `order-timeout-${seconds}` }, { commandTimeoutMs: 1_000 });
      expect(done.status, done.error).toBe('timed_out');
      expect(done.error).toMatch(/remote run stopped/);
      await until(() => running(seconds).length === 0, 'the run to be gone');
      expect(existsSync(file), `run ${i}: the shell ran 'echo never' after its sleep was killed`).toBe(false);
    }
  }, 180_000);

  it(`a dropped connection, ${RUNS} times: the lifeline stops the run, the shell never runs its next command`, async () => {
    for (let i = 0; i < RUNS; i++) {
      const seconds = uniqueSleep();
      const file = path.join(dir, `never-drop-${i}`);
      // Its own executor, closed under the run without any kill request: only the lifeline stops it.
      const doomed = new SshExecutor({ knownHosts: await KnownHosts.load(lab.knownHostsFile), limits: { connectTimeoutMs: 5_000, commandTimeoutMs: 60_000, killGraceMs: 2_000 }, nodeHelper: 'off' });
      const result = doomed.exec(target, { argv: command(seconds, file, i % 2 === 1), runId: `order-drop-${seconds}` });
      await until(() => running(seconds).length > 0, 'the sleep to start');
      await doomed.close();
      expect((await result).status).toBe('failed');
      await until(() => running(seconds).length === 0, 'the run to be gone');
      expect(existsSync(file), `run ${i}: the shell ran 'echo never' after its sleep was killed`).toBe(false);
    }
  }, 180_000);
});
