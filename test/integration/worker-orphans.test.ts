// Jobs whose worker is gone, against real worker processes and sshd nodes. A SIGSTOPped worker
// keeps its SSH connections open, so its remote commands run on unobserved: once its
// heartbeat runs out, another worker checks each unfinished host on the node (by the run's
// CASTELLAN_RUN), stops what is still running and says so per host; the job ends
// `interrupted`, or `cancelled` when someone cancelled it meanwhile (without waiting for any
// worker restart). Nothing runs twice and nothing is left running on the nodes.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { useCastellan } from '../support/castellan.js';
import { startWorkerProcess, type WorkerProcess } from '../support/castellan-process.js';
import { pgrepFull } from '../support/processes.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

const c = useCastellan({ nodes: 2, worker: false, config: { jobs: { worker: { lock_duration: '2s', stalled_interval: '1s' } } } });
const workers: WorkerProcess[] = [];
afterAll(() => {
  for (const w of workers) {
    w.child.kill('SIGCONT');
    w.child.kill('SIGKILL');
  }
});

async function worker(): Promise<WorkerProcess> {
  const w = await startWorkerProcess(c.configFile);
  workers.push(w);
  return w;
}

async function ranLines(file: string): Promise<number> {
  return (await readFile(file, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean).length;
}

async function gone(tag: string): Promise<string> {
  let left = pgrepFull(tag);
  for (let i = 0; i < 60 && left !== ''; i++) {
    await new Promise((r) => setTimeout(r, 250));
    left = pgrepFull(tag);
  }
  return left;
}

/** Submit, approve and wait until the command runs on both nodes under a worker process; then freeze that worker. */
async function jobOnFrozenWorker(): Promise<{ jobId: string; tag: string; ranFile: string; worker: WorkerProcess }> {
  const frozen = await worker();
  const tag = `castellan-orphan-${randomBytes(4).toString('hex')}`;
  const ranFile = `/tmp/${tag}.log`;
  const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node[01-02]', command: `echo ran >> ${ranFile}; sleep 120 # ${tag}` }, requester: oscar, replyTo: { kind: 'cli' } });
  await c.runtime.service.approve(job.id, april);
  for (let i = 0; i < 300 && (await ranLines(ranFile)) < 2; i++) await new Promise((r) => setTimeout(r, 100));
  expect(await ranLines(ranFile)).toBe(2);
  await frozen.kill('SIGSTOP');
  return { jobId: job.id, tag, ranFile, worker: frozen };
}

describe('a worker that is gone', () => {
  it('SIGSTOPped mid-job: its hosts are checked and stopped on the nodes, the job ends interrupted and says what was found', async () => {
    const { jobId, tag, ranFile, worker: frozen } = await jobOnFrozenWorker();
    // A healthy worker elsewhere notices (the frozen one's heartbeat runs out) and reconciles.
    const rescuer = await c.runtime.startWorker();
    try {
      const final = await c.runtime.service.wait(jobId, oscar, 60_000);
      expect(final.state).toBe('interrupted');
      expect(final.reason).toMatch(/outcome unknown on: node01, node02/);
      expect(final.reason).toMatch(/Checked on the nodes: node01: was still running, stopped \(\d+ process\(es\), (terminated|killed)\); node02: was still running, stopped/);
      expect([...(final.result?.unknownHosts ?? [])]).toEqual(['node01', 'node02']);
      expect(await gone(tag)).toBe('');
      // Nothing ran twice.
      expect(await ranLines(ranFile)).toBe(2);
      const audit = await c.runtime.ctx.audit.read({ jobId });
      expect(audit.filter((r) => r.kind === 'outcome').map((r) => r.state)).toEqual(['interrupted']);
    } finally {
      frozen.child.kill('SIGKILL');
      await rescuer.close();
    }
  }, 180_000);

  it('a cancel of a job whose worker is frozen stops the commands on the nodes and ends it cancelled', async () => {
    const { jobId, tag, ranFile, worker: frozen } = await jobOnFrozenWorker();
    const rescuer = await c.runtime.startWorker();
    try {
      const after = await c.runtime.service.cancel(jobId, oscar, 'wrong hosts');
      expect(after.state).toBe('running'); // its worker cannot answer: a reconciler ends it
      const final = await c.runtime.service.wait(jobId, oscar, 60_000);
      expect(final.state).toBe('cancelled');
      expect(final.reason).toMatch(/^cancelled by oscar: wrong hosts; the worker running this job \(\S+\) (is gone|stopped before it finished); outcome unknown on: node01, node02\. Checked on the nodes: node01: was still running, stopped/);
      expect(await gone(tag)).toBe('');
      expect(await ranLines(ranFile)).toBe(2);
    } finally {
      frozen.child.kill('SIGKILL');
      await rescuer.close();
    }
  }, 180_000);

  it('SIGKILLed after its commands ended: "its run had already ended"', async () => {
    const doomed = await worker();
    const tag = `castellan-orphan-${randomBytes(4).toString('hex')}`;
    const ranFile = `/tmp/${tag}.log`;
    // The command leaves the run (a detached short sleep would outlive it; here nothing does):
    // once the worker is killed the remote lifeline ends the rest.
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node01', command: `echo ran >> ${ranFile}; sleep 120 # ${tag}` }, requester: oscar, replyTo: { kind: 'cli' } });
    await c.runtime.service.approve(job.id, april);
    for (let i = 0; i < 300 && (await ranLines(ranFile)) < 1; i++) await new Promise((r) => setTimeout(r, 100));
    await doomed.kill('SIGKILL');
    // The lifeline sees the connection drop and ends the run before anyone looks.
    expect(await gone(tag)).toBe('');
    const rescuer = await c.runtime.startWorker();
    try {
      const final = await c.runtime.service.wait(job.id, oscar, 60_000);
      expect(final.state).toBe('interrupted');
      expect(final.reason).toMatch(/outcome unknown on: node01\. Checked on the nodes: node01: its run had already ended/);
      expect(await ranLines(ranFile)).toBe(1);
    } finally {
      await rescuer.close();
    }
  }, 180_000);
});
