// A `castellan worker` process stopped gracefully (SIGTERM, as systemd or Kubernetes stop it):
// it takes no new job, lets a running job finish within `jobs.worker.shutdown_grace`, and
// exits on its own; a job that outlasts the grace is stopped on its nodes and ends
// `interrupted`, saying why, and is never run again by the worker that comes next. Queued
// jobs stay in the queue for the other workers. Every check is made on the nodes (marker
// lines, process table) and in the audit. (Spawns dist/: run `npx tsc -p tsconfig.build.json` first.)
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { useCastellan } from '../support/castellan.js';
import { startWorkerProcess, type WorkerProcess } from '../support/castellan-process.js';
import { pgrepFull } from '../support/processes.js';
import { eventually } from './mcp-harness.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

const c = useCastellan({ nodes: 2, worker: false });

/** The test's config with another shutdown grace, for a worker process. */
async function configWithGrace(grace: string): Promise<string> {
  const doc = parse(await readFile(c.configFile, 'utf8')) as { jobs: Record<string, unknown> };
  doc.jobs.worker = { ...((doc.jobs.worker) ?? {}), shutdown_grace: grace };
  const file = path.join(c.dir, `castellan-grace-${grace}.yaml`);
  await writeFile(file, stringify(doc));
  return file;
}

const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);

/** Submit an approved exec on both nodes and wait until it runs on both under `worker`. */
async function runningOnBoth(command: (file: string, tag: string) => string): Promise<{ jobId: string; tag: string; file: string }> {
  const tag = `castellan-stop-${randomBytes(4).toString('hex')}`;
  const file = `/tmp/${tag}.log`;
  const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node[01-02]', command: command(file, tag) }, requester: oscar, replyTo: { kind: 'cli' } });
  await c.runtime.service.approve(job.id, april);
  await eventually(async () => ((await lines(file)).length === 2 ? true : undefined), 60_000, 'the command to run on both nodes');
  return { jobId: job.id, tag, file };
}

/** SIGTERM, then wait for it to exit on its own (a SIGKILL after 3 min would show as signal SIGKILL). */
async function terminate(worker: WorkerProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  worker.child.kill('SIGTERM');
  const kill = setTimeout(() => worker.child.kill('SIGKILL'), 180_000);
  const code = await worker.exited;
  clearTimeout(kill);
  return { code, signal: worker.child.signalCode };
}

describe('worker SIGTERM', () => {
  it('a job that ends within the grace finishes succeeded; the worker takes no new job and exits 0', async () => {
    const worker = await startWorkerProcess(await configWithGrace('2m'));
    const { jobId, tag, file } = await runningOnBoth((f, t) => `echo ran >> ${f}; sleep 4; echo done # ${t}`);
    const stopped = terminate(worker);
    // Submitted after the SIGTERM: the closing worker must leave it in the queue.
    await eventually(async () => (worker.stderr().includes('worker shutting down') ? true : undefined), 60_000, 'the worker to say it shuts down');
    const late = await c.runtime.service.submit({ tool: 'uptime', input: { targets: 'node01' }, requester: oscar, replyTo: { kind: 'cli' } });

    expect(await stopped).toEqual({ code: 0, signal: null });
    const final = await c.runtime.service.get(jobId, oscar);
    expect(final.state, final.reason).toBe('succeeded');
    expect(final.result?.hosts.map((h) => `${h.host}:${h.status}:${h.stdout}`)).toEqual(['node01:ok:done\n', 'node02:ok:done\n']);
    expect(await lines(file)).toEqual(['ran', 'ran']);
    const audit = await c.runtime.ctx.audit.read({ jobId });
    expect(audit.filter((a) => a.kind === 'execution').map((a) => a.host).sort()).toEqual(['node01', 'node02']);
    expect(audit.filter((a) => a.kind === 'outcome').map((a) => a.state)).toEqual(['succeeded']);
    expect(pgrepFull(tag)).toBe('');

    // The late job waited in the queue (no worker ran it), and the next worker runs it.
    expect((await c.runtime.service.get(late.job.id, oscar)).state).toBe('queued');
    expect(await c.runtime.ctx.ledger.entries(late.job.id)).toEqual([]);
    const next = await startWorkerProcess(c.configFile);
    try {
      const done = await c.runtime.service.wait(late.job.id, oscar, 60_000);
      expect(done.state).toBe('succeeded');
      expect((await c.runtime.ctx.ledger.entries(late.job.id)).map((e) => e.worker)).toEqual([next.id]);
    } finally {
      await next.stop();
    }
  }, 300_000);

  it('a job longer than the grace is stopped on its nodes and ends interrupted; the next worker never runs it again', async () => {
    const worker = await startWorkerProcess(await configWithGrace('2s'));
    const { jobId, tag, file } = await runningOnBoth((f, t) => `echo ran >> ${f}; sleep 300 # ${t}`);
    expect(await terminate(worker)).toEqual({ code: 0, signal: null });

    const final = await c.runtime.service.get(jobId, oscar);
    expect(final.state).toBe('interrupted');
    expect(final.reason).toMatch(/worker shutting down/);
    // Stopped on the nodes: nothing of the run is left.
    await eventually(async () => (pgrepFull(tag) === '' ? true : undefined), 30_000, 'the remote commands to be gone');
    const audit = await c.runtime.ctx.audit.read({ jobId });
    expect(audit.filter((a) => a.kind === 'outcome').map((a) => a.state)).toEqual(['interrupted']);
    expect(audit.filter((a) => a.kind === 'request')).toHaveLength(1);
    expect(audit.filter((a) => a.kind === 'decision')).toHaveLength(1);

    // Another worker comes: the job stays interrupted and runs nowhere again.
    const next = await startWorkerProcess(c.configFile);
    try {
      // A job submitted now runs on it: proof it is up and taking work before we look again.
      const probe = await c.runtime.service.submit({ tool: 'uptime', input: { targets: 'node01' }, requester: oscar, replyTo: { kind: 'cli' } });
      expect((await c.runtime.service.wait(probe.job.id, oscar, 60_000)).state).toBe('succeeded');
      expect((await c.runtime.service.get(jobId, oscar)).state).toBe('interrupted');
      expect(await lines(file)).toEqual(['ran', 'ran']);
      const ledger = await c.runtime.ctx.ledger.entries(jobId);
      expect(ledger.map((e) => `${e.host}:${e.attempt}:${e.worker}`).sort()).toEqual([`node01:0:${worker.id}`, `node02:0:${worker.id}`]);
    } finally {
      await next.stop();
    }
  }, 300_000);
});
