// BullMQ gives up on a job that stalled more often than `maxStalledCount` (its workers were
// killed, or lost Redis, while they held it) — found by the chaos soak: an approved job whose
// workers died twice before it started ended "failed: job stalled more than allowable limit".
// A job that never started on any host is handed back to the queue and runs once; after a few
// hand-backs it ends failed saying nothing was run. Real redis-server, BullMQ, sshd nodes; the
// second stall is what BullMQ's own stalled-jobs script writes (`defa`, `stc`) on the job.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { MAX_HAND_BACKS } from '../../queues/hand-back.js';
import { useCastellan } from '../support/castellan.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

const c = useCastellan({ nodes: 2, worker: false });

/** An approved change job, queued, not yet taken by any worker, marked as BullMQ marks a job that stalled twice. */
async function stalledTwice(): Promise<{ jobId: string; file: string }> {
  const tag = `castellan-handback-${randomBytes(4).toString('hex')}`;
  const file = `/tmp/${tag}.log`;
  const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node[01-02]', command: `echo "$CASTELLAN_RUN" >> ${file} # ${tag}` }, requester: oscar, replyTo: { kind: 'cli' } });
  await c.runtime.service.approve(job.id, april);
  expect((await c.runtime.service.get(job.id, oscar)).state).toBe('queued');
  await c.runtime.ctx.redis.hset(c.runtime.ctx.queue.toKey(job.id), 'stc', '2', 'defa', 'job stalled more than allowable limit');
  return { jobId: job.id, file };
}

const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);

describe('a job BullMQ gave up on before it started', () => {
  it('is handed back to the queue and runs once on each host', async () => {
    const { jobId, file } = await stalledTwice();
    const worker = await c.runtime.startWorker();
    try {
      const final = await c.runtime.service.wait(jobId, oscar, 60_000);
      expect(final.state, final.reason).toBe('succeeded');
      expect((await lines(file)).sort()).toEqual([`${jobId}.exec.node01`, `${jobId}.exec.node02`]);
      const events = (await c.runtime.ctx.events.read(jobId)).map((e) => e.event);
      expect(events.some((e) => e.type === 'state' && e.state === 'queued' && /^back in the queue: job stalled more than allowable limit before it started on any host; nothing was run$/.test(e.reason ?? ''))).toBe(true);
      const audit = await c.runtime.ctx.audit.read({ jobId });
      expect(audit.filter((a) => a.kind === 'outcome').map((a) => a.state)).toEqual(['succeeded']);
    } finally {
      await worker.close();
    }
  });

  it(`after ${MAX_HAND_BACKS} hand-backs it ends failed, saying nothing was run`, async () => {
    const { jobId, file } = await stalledTwice();
    await c.runtime.ctx.redis.hset(c.runtime.ctx.keys.job(jobId), 'handBacks', String(MAX_HAND_BACKS));
    const worker = await c.runtime.startWorker();
    try {
      const final = await c.runtime.service.wait(jobId, oscar, 60_000);
      expect(final.state).toBe('failed');
      expect(final.reason).toBe(`never started: job stalled more than allowable limit (${MAX_HAND_BACKS + 1} times); nothing was run`);
      expect(await lines(file)).toEqual([]);
      expect(await c.runtime.ctx.ledger.entries(jobId)).toEqual([]);
    } finally {
      await worker.close();
    }
  });
});
