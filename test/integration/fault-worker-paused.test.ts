// A worker paused mid-roll (SIGSTOP: a VM freeze, a partition from Redis longer than the
// heartbeat TTL) is judged gone; another worker resumes its rolling upgrade from the ledger.
// Then the paused one runs again, finds its BullMQ lock gone and stops. Host locks are the
// one thing that keeps another job off the roll's nodes: whatever the two deliveries do, a job
// waiting for those nodes must not run on one of them while the roll still has a step there.
// (Spawns dist/: run `npx tsc -p tsconfig.build.json` first.)
import { afterAll, describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import type { LedgerEntry } from '../../queues/ledger.js';
import { useCastellan } from '../support/castellan.js';
import type { WorkerProcess } from '../support/castellan-process.js';
import { eventually } from './mcp-harness.js';
import { GREEN_ROLL_LAB, shapeRack, startGreenRoll, type Rack } from './runbook-lab.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

let rack: Rack;
let paused: WorkerProcess | undefined;
const c = useCastellan({
  ...GREEN_ROLL_LAB,
  prepare: async (lab) => {
    rack = await shapeRack(lab, { green: ['node02', 'node03', 'node04'] });
  },
});
afterAll(async () => {
  if (paused && !paused.gone) {
    paused.child.kill('SIGCONT');
    await paused.stop();
  }
  await rack?.stop();
});

const interval = (e: LedgerEntry, end: number): [number, number] => [Date.parse(e.startedAt), e.finishedAt !== undefined ? Date.parse(e.finishedAt) : end];

describe('a worker paused mid-roll, judged gone, then running again', () => {
  it('no other job runs on the roll\'s nodes while the roll has a step there', async () => {
    const started = await startGreenRoll(c, { requester: oscar, approver: april }, 'pre-upgrade-20261129-070000');
    const job = { id: started.jobId };
    paused = started.worker;

    // Paused once node02's reboot is sent: the rest of the roll (node02's gates, node03, node04) is left.
    const rebootSent = async (): Promise<true | undefined> => ((await c.runtime.ctx.ledger.entries(job.id)).some((e) => e.step === 'reboot-b1' && e.finishedAt !== undefined) ? true : undefined);
    await eventually(rebootSent, 90_000, "node02's reboot to be sent");
    await paused.kill('SIGSTOP');

    // This process's worker resumes the roll once the paused one is judged gone.
    await c.runtime.startWorker();
    const said = (text: string): boolean => c.logs.some((l) => l.includes(job.id) && l.includes(text));
    await eventually(async () => (said('resumable job redelivered after a stall: resuming from the ledger') ? true : undefined), 60_000, 'the roll to be resumed by the other worker');

    // Another job on the same nodes: it waits for their locks.
    const { job: other } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node[02-04]', command: 'sleep 3' }, requester: oscar, replyTo: { kind: 'cli' } });
    await c.runtime.service.approve(other.id, april);
    let waited = false;
    const otherDone = c.runtime.service.wait(other.id, oscar, 240_000, (e) => {
      if (e.event.type === 'lock_wait') waited = true;
    });
    await eventually(async () => (waited ? true : undefined), 30_000, 'the other job to wait for the nodes');

    // The paused worker runs again: it finds its BullMQ lock gone and stops.
    paused.child.kill('SIGCONT');
    const [roll, after] = await Promise.all([c.runtime.service.wait(job.id, oscar, 240_000), otherDone]);
    const rollEnd = Date.parse(roll.finishedAt ?? new Date().toISOString());

    const rollEntries = await c.runtime.ctx.ledger.entries(job.id);
    const otherEntries = await c.runtime.ctx.ledger.entries(other.id);
    expect(otherEntries.map((e) => e.host).sort()).toEqual(['node02', 'node03', 'node04']);
    const overlaps: string[] = [];
    for (const o of otherEntries) {
      const [oStart, oEnd] = interval(o, Date.now());
      for (const r of rollEntries.filter((x) => x.host === o.host)) {
        const [rStart, rEnd] = interval(r, rollEnd);
        if (rStart < oEnd && oStart < rEnd) overlaps.push(`${o.host}: ${other.id} ran ${o.startedAt}..${o.finishedAt ?? '?'} during the roll's ${r.step} ${r.startedAt}..${r.finishedAt ?? 'unfinished'} (${r.worker})`);
      }
    }
    expect(overlaps, `the roll ended ${roll.state}: ${roll.reason ?? ''}; the other job ${after.state}: ${after.reason ?? ''}`).toEqual([]);
    // It ran on the nodes only once the roll let go of them: on nodes that were up.
    expect(after.state, after.reason).toBe('succeeded');
    await paused.stop();
  }, 300_000);
});
