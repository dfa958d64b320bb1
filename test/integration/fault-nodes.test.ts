// Nodes misbehaving mid-command, against a separate `castellan worker` process:
//  - a node that drops its connections (its sshd session processes die: a crashed daemon, a
//    reset on the network path): the host fails saying the connection was lost — never retried,
//    since the command may have done its work — the other host finishes normally, the remote
//    command does not outlive its connection, the next job on that node connects afresh;
//  - a node that stops answering (its sshd SIGSTOPped, the TCP connection open): the host's
//    timeout still holds through the whole pipeline (timed out at its deadline plus the kill
//    grace, not when a keepalive gives up), the other host finishes, and once the node runs
//    again nothing of the run is left.
// (Spawns dist/: run `npx tsc -p tsconfig.build.json` first.)
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { processFamily, readCommandLine } from '../../src/lab/processes.js';
import { useCastellan } from '../support/castellan.js';
import { startWorkerProcess, type WorkerProcess } from '../support/castellan-process.js';
import { pgrepFull } from '../support/processes.js';
import { eventually } from './mcp-harness.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

const c = useCastellan({ nodes: 2, worker: false });
let worker: WorkerProcess | undefined;
beforeAll(async () => {
  worker = await startWorkerProcess(c.configFile);
}, 180_000);
afterAll(async () => {
  await worker?.stop();
});

/** Every sshd process of one lab node (listener and per-connection), not the commands they run. */
function sshdFamily(listener: number): number[] {
  return [...processFamily([listener])].filter((pid) => (readCommandLine(pid)?.[0] ?? '').startsWith('sshd'));
}

const frozen: number[] = [];
const signalAll = (pids: readonly number[], signal: NodeJS.Signals): void => {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // gone already
    }
  }
};
afterAll(() => signalAll(frozen.splice(0), 'SIGCONT'));

/** The per-connection sshd processes of one lab node (not its listener, not the commands). */
function sessionDaemons(listener: number): number[] {
  return [...processFamily([listener])].filter((pid) => pid !== listener && (readCommandLine(pid)?.[0] ?? '').startsWith('sshd:'));
}

const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);

describe('a node that drops connections', () => {
  it("fails that host with 'connection lost', never runs it again, leaves nothing running; the next job reconnects", async () => {
    const tag = `castellan-drop-${randomBytes(4).toString('hex')}`;
    const file = `/tmp/${tag}.log`;
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node[01-02]', command: `echo "$CASTELLAN_RUN" >> ${file}; sleep 5; echo done # ${tag}` }, requester: oscar, replyTo: { kind: 'cli' } });
    await c.runtime.service.approve(job.id, april);
    await eventually(async () => ((await lines(file)).length === 2 ? true : undefined), 60_000, 'the command to run on both nodes');

    const node01 = c.lab.nodes.find((n) => n.name === 'node01')!;
    const daemons = sessionDaemons(node01.pid!);
    expect(daemons.length).toBeGreaterThan(0);
    for (const pid of daemons) process.kill(pid, 'SIGKILL');

    const final = await c.runtime.service.wait(job.id, oscar, 90_000);
    expect(final.result?.hosts.map((h) => `${h.host}:${h.status}`)).toEqual(['node01:failed', 'node02:ok']);
    expect(final.state).toBe('partially_failed');
    expect(final.result?.hosts[0]?.error).toMatch(/connection (lost|closed)/i);
    expect(final.result?.hosts[1]?.stdout).toBe('done\n');
    // Once each, never again; the dropped run did not outlive its connection.
    expect((await lines(file)).sort()).toEqual([`${job.id}.exec.node01`, `${job.id}.exec.node02`]);
    await eventually(async () => (pgrepFull(tag) === '' ? true : undefined), 30_000, 'the dropped run to be gone');
    const audit = await c.runtime.ctx.audit.read({ jobId: job.id });
    expect(audit.filter((a) => a.kind === 'execution').map((a) => `${a.host}:${a.status}`).sort()).toEqual(['node01:failed', 'node02:ok']);
    expect(audit.filter((a) => a.kind === 'outcome').map((a) => a.state)).toEqual(['partially_failed']);

    // The node is back to normal: the next job connects afresh.
    const next = await c.runtime.service.submit({ tool: 'uptime', input: { targets: 'node01' }, requester: oscar, replyTo: { kind: 'cli' } });
    const ok = await c.runtime.service.wait(next.job.id, oscar, 60_000);
    expect(ok.state, ok.reason).toBe('succeeded');
  }, 240_000);
});

describe('a node that stops answering mid-command', () => {
  it('is timed out at its deadline through the worker, the other host finishes, nothing is left once it runs again', async () => {
    const tag = `castellan-frozen-${randomBytes(4).toString('hex')}`;
    const file = `/tmp/${tag}.log`;
    // node01's command would run on for a minute: the frozen node must not keep it past the timeout.
    const command = `echo "$CASTELLAN_RUN" >> ${file}; case "$CASTELLAN_RUN" in *.node01) sleep 60 ;; *) sleep 3 ;; esac; echo done # ${tag}`;
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node[01-02]', command, timeout: '20s' }, requester: oscar, replyTo: { kind: 'cli' } });
    await c.runtime.service.approve(job.id, april);
    await eventually(async () => ((await lines(file)).length === 2 ? true : undefined), 60_000, 'the command to run on both nodes');
    const node01 = c.lab.nodes.find((n) => n.name === 'node01')!;
    const pids = sshdFamily(node01.pid!);
    frozen.push(...pids);
    signalAll(pids, 'SIGSTOP');
    try {
      const final = await c.runtime.service.wait(job.id, oscar, 120_000);
      expect(final.result?.hosts.map((h) => `${h.host}:${h.status}`)).toEqual(['node01:timed_out', 'node02:ok']);
      expect(final.result?.hosts[0]?.error).toMatch(/command timeout after 20000 ms; remote stop NOT verified: node01 did not answer/);
      expect(final.state).toBe('partially_failed');
    } finally {
      signalAll(frozen.splice(0), 'SIGCONT');
    }
    expect((await lines(file)).sort()).toEqual([`${job.id}.exec.node01`, `${job.id}.exec.node02`]);
    await eventually(async () => (pgrepFull(tag) === '' ? true : undefined), 60_000, 'nothing of the run left once the node runs again');
    const audit = await c.runtime.ctx.audit.read({ jobId: job.id });
    expect(audit.filter((a) => a.kind === 'execution').map((a) => `${a.host}:${a.status}`).sort()).toEqual(['node01:timed_out', 'node02:ok']);
    const next = await c.runtime.service.submit({ tool: 'uptime', input: { targets: 'node01' }, requester: oscar, replyTo: { kind: 'cli' } });
    expect((await c.runtime.service.wait(next.job.id, oscar, 60_000)).state).toBe('succeeded');
  }, 240_000);
});
