// Timeouts and cancellation must stop the remote command itself, grandchildren included, for a
// root login (where sshd refuses channel signals) and for a non-root login. Every check looks
// for a unique marker in the node's process table (the lab nodes live on this machine).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, type Lab } from '../../src/lab/sshd-lab.js';
import { KnownHosts, SshExecutor, type SshTarget } from '../../src/ssh/index.js';
import { survivors, survivorsAfterSettling, uniqueSleep } from '../support/processes.js';

/** `echo` reaches us before the next command has started: wait (bounded) for it to show up. */
async function appeared(seconds: string, withinMs = 5_000): Promise<string[]> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const found = survivors(seconds);
    if (found.length > 0 || Date.now() > deadline) return found;
    await sleep(50);
  }
}

function grandchildren(a: string, b: string): string[] {
  // The background sleep is a grandchild of the wrapper; the foreground one a child of sh.
  return ['sh', '-c', `sleep ${a} & sleep ${b}; echo never`];
}

for (const login of ['root', 'castellan-lab'] as const) {
  describe(`stopping remote runs (${login} login)`, () => {
    let lab: Lab;
    let dir: string;
    let ssh: SshExecutor;
    let target: SshTarget;
    const limits = { connectTimeoutMs: 5_000, commandTimeoutMs: 60_000, killGraceMs: 1_000 };

    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), `castellan-ssh-kill-${login}-`));
      lab = await labUp({ nodes: 1, dir, loginUser: login });
      const node = lab.nodes[0]!;
      target = { name: node.name, address: node.address, port: node.port, user: lab.loginUser, privateKeyFile: lab.clientKeyFile };
      ssh = new SshExecutor({ knownHosts: await KnownHosts.load(lab.knownHostsFile), limits });
    });

    afterAll(async () => {
      await ssh?.close();
      await lab?.down();
      await rm(dir, { recursive: true, force: true });
    });

    it('runs as the login user', async () => {
      const result = await ssh.exec(target, { argv: ['id', '-un'], runId: `whoami-${process.pid}` });
      expect(result).toMatchObject({ status: 'ok', stdout: `${login}\n` });
    });

    it('command timeout: timed_out, and no process of the run is left', async () => {
      const [a, b] = [uniqueSleep(), uniqueSleep()];
      const result = await ssh.exec(target, { argv: grandchildren(a, b), runId: `timeout-${a}` }, { commandTimeoutMs: 1_500 });
      expect(result.status).toBe('timed_out');
      expect(result.error).toMatch(/command timeout after 1500 ms; remote run stopped \((terminated|killed|gone)\)/);
      expect(result.stdout).toBe('');
      expect(await survivorsAfterSettling(a)).toEqual([]);
      expect(await survivorsAfterSettling(b)).toEqual([]);
    });

    it('cancel via AbortSignal: cancelled, and no process of the run is left', async () => {
      const [a, b] = [uniqueSleep(), uniqueSleep()];
      const controller = new AbortController();
      const result = await ssh.exec(
        target,
        { argv: ['sh', '-c', `echo started; sleep ${a} & sleep ${b}`], runId: `cancel-${a}` },
        { signal: controller.signal, onEvent: (event) => event.type === 'output' && event.chunk.includes('started') && controller.abort() },
      );
      expect(result.status).toBe('cancelled');
      expect(result.stdout).toBe('started\n');
      expect(result.error).toMatch(/remote run stopped/);
      expect(await survivorsAfterSettling(a)).toEqual([]);
      expect(await survivorsAfterSettling(b)).toEqual([]);
    });

    it('cancel before the command exists: the kill waits for the wrapper, and the report is true at once', async () => {
      const a = uniqueSleep();
      const controller = new AbortController();
      // Abort as the host starts, before the remote wrapper has even been spawned.
      const result = await ssh.exec(target, { argv: ['sleep', a], runId: `early-${a}` }, {
        signal: controller.signal,
        onEvent: (event) => event.type === 'host_started' && controller.abort(),
      });
      expect(result.status).toBe('cancelled');
      // Checked without settling: "stopped" must mean stopped when it is reported.
      if (/remote run stopped/.test(result.error ?? '')) expect(survivors(a)).toEqual([]);
      expect(await survivorsAfterSettling(a)).toEqual([]);
    });

    it('finds a grandchild that left the run session and cleared its run tag, through the process tree', async () => {
      const a = uniqueSleep();
      const runId = `detached-${a}`;
      let started!: () => void;
      const running = new Promise<void>((resolve) => {
        started = resolve;
      });
      // A background job is not a group leader, so setsid execs at once: `sleep` gets its own
      // session and no CASTELLAN_RUN, and only its parent ties it to the run.
      const inFlight = ssh.exec(target, { argv: ['sh', '-c', `env -u CASTELLAN_RUN setsid sleep ${a} & echo started; wait`], runId }, {
        onEvent: (event) => event.type === 'output' && event.chunk.includes('started') && started(),
      });
      await running;
      expect(await appeared(a)).not.toEqual([]);
      const found = await ssh.findRemoteRun(target, runId);
      expect(found.processes.map((p) => p.command)).toContain(`sleep ${a}`);
      const report = await ssh.killRemoteRun(target, runId, { killGraceMs: 1_000 });
      expect(['terminated', 'killed']).toContain(report.outcome);
      expect(survivors(a)).toEqual([]);
      await inFlight;
    });

    it('killRemoteRun escalates to KILL after the grace for a command that ignores TERM', async () => {
      const a = uniqueSleep();
      const runId = `stubborn-${a}`;
      let started!: () => void;
      const running = new Promise<void>((resolve) => {
        started = resolve;
      });
      // SIG_IGN survives exec, so the sleep ignores TERM too.
      // The run's own grace (the remote `timeout -k`) is long, so the escalation seen is the killer's.
      const inFlight = ssh.exec(target, { argv: ['sh', '-c', `trap '' TERM; echo started; sleep ${a}`], runId }, {
        killGraceMs: 30_000,
        onEvent: (event) => event.type === 'output' && started(),
      });
      await running;
      const report = await ssh.killRemoteRun(target, runId, { killGraceMs: 300 });
      expect(report.outcome).toBe('killed');
      expect(await survivorsAfterSettling(a)).toEqual([]);
      expect((await inFlight).status).toBe('failed');
    });

    it('reconciliation from another executor: findRemoteRun sees the run, killRemoteRun stops it', async () => {
      const [a, b] = [uniqueSleep(), uniqueSleep()];
      const runId = `crash.${a}`;
      let started!: () => void;
      const running = new Promise<void>((resolve) => {
        started = resolve;
      });
      const inFlight = ssh.exec(target, { argv: ['sh', '-c', `echo up; sleep ${a} & sleep ${b}`], runId }, { onEvent: (e) => e.type === 'output' && started() });
      await running;
      const other = new SshExecutor({ knownHosts: await KnownHosts.load(lab.knownHostsFile), limits });
      try {
        const found = await other.findRemoteRun(target, runId);
        expect(found.state).toBe('running');
        const commands = found.processes.map((p) => p.command);
        expect(commands).toContain(`sleep ${a}`);
        expect(commands).toContain(`sleep ${b}`);
        // The wrapper carries the run id in its argv; a node helper's run only in its environment.
        if (ssh.nodeHelper === 'off') expect(commands.some((c) => c.includes(`castellan-run:${runId}`))).toBe(true);
        // A different run id with the same prefix is not this run.
        expect((await other.findRemoteRun(target, `crash.${a.slice(0, -1)}`)).state).toBe('absent');

        const report = await other.killRemoteRun(target, runId);
        expect(report.outcome).toBe('terminated');
        expect(await survivorsAfterSettling(a)).toEqual([]);
        expect(await survivorsAfterSettling(b)).toEqual([]);
        expect((await other.findRemoteRun(target, runId)).state).toBe('absent');
        expect((await other.killRemoteRun(target, runId)).outcome).toBe('gone');
      } finally {
        await other.close();
      }
      const result = await inFlight;
      expect(result.status).toBe('failed');
    });

    it('a dropped connection stops the run (the remote lifeline sees stdin close)', async () => {
      const [a, b] = [uniqueSleep(), uniqueSleep()];
      const doomed = new SshExecutor({ knownHosts: await KnownHosts.load(lab.knownHostsFile), limits });
      let started!: () => void;
      const running = new Promise<void>((resolve) => {
        started = resolve;
      });
      const inFlight = doomed.exec(target, { argv: ['sh', '-c', `echo up; sleep ${a} & sleep ${b}`], runId: `drop-${a}` }, {
        onEvent: (e) => e.type === 'output' && started(),
      });
      await running;
      expect(await appeared(b)).toHaveLength(1); // really running before the client vanishes
      await doomed.close(); // the client goes away without any kill request
      const result = await inFlight;
      expect(result.status).toBe('failed');
      expect(await survivorsAfterSettling(a)).toEqual([]);
      expect(await survivorsAfterSettling(b)).toEqual([]);
    });

    it('a dropped connection also stops a run that was given stdin (the wrapper\'s pipeline branch)', async () => {
      const [a, b] = [uniqueSleep(), uniqueSleep()];
      const doomed = new SshExecutor({ knownHosts: await KnownHosts.load(lab.knownHostsFile), limits });
      let started!: () => void;
      const running = new Promise<void>((resolve) => {
        started = resolve;
      });
      // The command reads its stdin to the end first: the wrapper must feed exactly these bytes
      // and close it, while its lifeline keeps watching the channel.
      const inFlight = doomed.exec(target, { argv: ['sh', '-c', `cat; sleep ${a} & sleep ${b}`], runId: `drop-stdin-${a}`, stdin: 'fed\n' }, {
        onEvent: (e) => e.type === 'output' && e.chunk.includes('fed') && started(),
      });
      await running;
      expect(await appeared(b)).toHaveLength(1);
      await doomed.close();
      const result = await inFlight;
      expect(result.status).toBe('failed');
      expect(result.stdout).toBe('fed\n');
      expect(await survivorsAfterSettling(a)).toEqual([]);
      expect(await survivorsAfterSettling(b)).toEqual([]);
    });
  });
}
