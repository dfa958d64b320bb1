// `as_root` under a non-root login: what operators of Raspberry Pis and cloud images have (a
// `pi` or `ubuntu` user with sudo). Castellan runs the whole remote wrapper under `sudo -n`, so
// the wrapper, its deadline and the finder/killer run as root and can stop the root processes a
// run starts; these tests prove that on real sshd with a real sudo, and that a sudo that refuses
// gets a line that says what to change, not "exit code 1".
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, type Lab } from '../../src/lab/sshd-lab.js';
import { KnownHosts, SshExecutor, type SshTarget } from '../../src/ssh/index.js';
import { sleeperUsers, survivorsAfterSettling, uniqueSleep } from '../support/processes.js';

const LOGIN = 'castellan-lab';
const SUDOERS = `/etc/sudoers.d/castellan-test-${process.pid}`;

/** Install a sudoers drop-in for the lab's login user (checked by visudo first, like an operator would). */
async function sudoRule(rule: string): Promise<void> {
  const candidate = `${SUDOERS}.new`;
  await writeFile(candidate, `${LOGIN} ${rule}\n`, { mode: 0o440 });
  await chmod(candidate, 0o440);
  const check = spawnSync('visudo', ['-cf', candidate], { encoding: 'utf8' });
  expect(check.status, check.stderr + check.stdout).toBe(0);
  await rename(candidate, SUDOERS);
}

for (const nodeHelper of ['auto', 'off'] as const) {
  describe(`as_root through sudo -n under a non-root login (node helper ${nodeHelper})`, () => {
    let lab: Lab;
    let dir: string;
    let ssh: SshExecutor;
    let target: SshTarget;
    const limits = { connectTimeoutMs: 5_000, commandTimeoutMs: 60_000, killGraceMs: 1_000 };

    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), `castellan-ssh-sudo-${nodeHelper}-`));
      lab = await labUp({ nodes: 1, dir, loginUser: LOGIN });
      const node = lab.nodes[0]!;
      target = { name: node.name, address: node.address, port: node.port, user: lab.loginUser, privateKeyFile: lab.clientKeyFile };
      ssh = new SshExecutor({ knownHosts: await KnownHosts.load(lab.knownHostsFile), limits, nodeHelper });
      await sudoRule('ALL=(root) NOPASSWD: ALL');
    });

    afterAll(async () => {
      await rm(SUDOERS, { force: true });
      await ssh?.close();
      await lab?.down();
      await rm(dir, { recursive: true, force: true });
    });

    it('runs as root with as_root, as the login user without it', async () => {
      // Twice each: with the node helper, the second run of a connection goes through the helper.
      for (let i = 0; i < 2; i++) {
        expect(await ssh.exec(target, { argv: ['id', '-un'], runId: `plain-${i}-${process.pid}` })).toMatchObject({ status: 'ok', stdout: `${LOGIN}\n` });
        expect(await ssh.exec(target, { argv: ['id', '-un'], runId: `root-${i}-${process.pid}`, asRoot: true })).toMatchObject({ status: 'ok', stdout: 'root\n' });
      }
    });

    it('command timeout stops the root process it started', async () => {
      const a = uniqueSleep();
      const result = await ssh.exec(target, { argv: ['sh', '-c', `sleep ${a}; echo never`], runId: `timeout-${a}`, asRoot: true }, { commandTimeoutMs: 1_500 });
      expect(result.status).toBe('timed_out');
      expect(result.error).toMatch(/remote run stopped \((terminated|killed)\)/);
      expect(result.stdout).toBe('');
      expect(await survivorsAfterSettling(a)).toEqual([]);
    });

    it('cancel stops the root process, and one that ignores TERM is killed after the grace', async () => {
      const [a, b] = [uniqueSleep(), uniqueSleep()];
      const controller = new AbortController();
      const result = await ssh.exec(
        target,
        { argv: ['sh', '-c', `trap '' TERM; echo started; sleep ${a} & sleep ${b}`], runId: `cancel-${a}`, asRoot: true },
        { signal: controller.signal, onEvent: (event) => event.type === 'output' && event.chunk.includes('started') && controller.abort() },
      );
      expect(result.status).toBe('cancelled');
      expect(result.error).toMatch(/remote run stopped/);
      expect(await survivorsAfterSettling(a)).toEqual([]);
      expect(await survivorsAfterSettling(b)).toEqual([]);
    });

    it('reconciliation finds and stops a root run from another executor', async () => {
      const a = uniqueSleep();
      const runId = `crash.${a}`;
      let started!: () => void;
      const running = new Promise<void>((resolve) => (started = resolve));
      const inFlight = ssh.exec(target, { argv: ['sh', '-c', `echo up; exec sleep ${a}`], runId, asRoot: true }, { onEvent: (e) => e.type === 'output' && started() });
      await running;
      expect(sleeperUsers(a)).toEqual(['root']);
      const other = new SshExecutor({ knownHosts: await KnownHosts.load(lab.knownHostsFile), limits, nodeHelper });
      try {
        // Without as_root the login user cannot see a root run's environment: it must not claim "absent".
        const found = await other.findRemoteRun(target, runId, { asRoot: true });
        expect(found.state).toBe('running');
        expect(found.processes.map((p) => p.command)).toContain(`sleep ${a}`);
        // TERM, or KILL once the grace passed on a loaded machine: stopped either way (checked next).
        expect(['terminated', 'killed']).toContain((await other.killRemoteRun(target, runId, { asRoot: true })).outcome);
        expect(await survivorsAfterSettling(a)).toEqual([]);
      } finally {
        await other.close();
      }
      expect((await inFlight).status).toBe('failed');
    });

    it('a sudo rule for single commands gets a line that says what Castellan needs instead', async () => {
      await sudoRule('ALL=(root) NOPASSWD: /usr/bin/id');
      try {
        const result = await ssh.exec(target, { argv: ['id', '-un'], runId: `narrow-${process.pid}`, asRoot: true });
        // sudo is asked for `sh -c <wrapper>`, which the rule does not cover, so it falls back to a password.
        expect(result).toMatchObject({ status: 'failed', stdout: '' });
        expect(result.error).toBe(`sudo wants a password here: as_root runs the command's wrapper as \`sudo -n sh -c …\` (so it can stop what it starts), ` +
          `which needs \`${LOGIN} ALL=(ALL) NOPASSWD: ALL\` in sudoers; a rule for id alone is not enough`);
      } finally {
        await sudoRule('ALL=(root) NOPASSWD: ALL');
      }
    });

    it('a sudo that wants a password is refused with a line that says so', async () => {
      await sudoRule('ALL=(root) ALL');
      try {
        const result = await ssh.exec(target, { argv: ['id', '-un'], runId: `password-${process.pid}`, asRoot: true });
        expect(result).toMatchObject({ status: 'failed', stdout: '', stderr: 'sudo: a password is required\n' });
        expect(result.error).toMatch(/^sudo wants a password here: .*NOPASSWD: ALL/);
      } finally {
        await sudoRule('ALL=(root) NOPASSWD: ALL');
      }
    });
  });
}
