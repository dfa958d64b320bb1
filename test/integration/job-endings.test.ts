// Every way a job ends goes through one function: the record's final state, exactly one final
// progress event, exactly one audit outcome, and its host locks released. And a job that loses
// a host lock to someone else stops instead of running beside them.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { pgrepFull } from '../support/processes.js';
import { useCastellan } from '../support/castellan.js';

const c = useCastellan({
  nodes: 2,
  // Short host-lock TTL so a renewal happens within the test (every ~1 s).
  jobSettings: { hostLockTtlMs: 3_000 },
  // BullMQ renews job locks every 2 s: a lost one is noticed within the test.
  config: { jobs: { worker: { lock_duration: '4s' } } },
});

function person(subject: string, groups: string[]): Requester {
  return { subject, displayName: subject, groups, roles: rolesForGroups(groups, { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] }), origin: 'cli' };
}
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

async function endingsOf(jobId: string): Promise<{ finalEvents: string[]; outcomes: string[]; lockKeys: string[] }> {
  const ctx = c.runtime.ctx;
  const events = await ctx.events.read(jobId);
  const finalEvents = events.flatMap((e) => (e.event.type === 'state' && !['awaiting_approval', 'queued', 'running'].includes(e.event.state) ? [e.event.state] : []));
  const outcomes = (await ctx.audit.read({ jobId })).filter((a) => a.kind === 'outcome').map((a) => a.state ?? '');
  const lockKeys = await ctx.redis.keys(ctx.keys.hostLock('*'));
  return { finalEvents, outcomes, lockKeys };
}

describe('job endings', () => {
  it('succeeded, denied, cancelled and failed each record one final event and one audit outcome', async () => {
    const s = c.runtime.service;
    const ok = (await s.submit({ tool: 'exec', input: { targets: 'node01', command: 'true' }, requester: oscar, replyTo: { kind: 'cli' } })).job;
    await s.approve(ok.id, april);
    const bad = (await s.submit({ tool: 'exec', input: { targets: 'node02', command: 'exit 3' }, requester: oscar, replyTo: { kind: 'cli' } })).job;
    await s.approve(bad.id, april);
    const denied = (await s.submit({ tool: 'exec', input: { targets: 'node01', command: 'true' }, requester: oscar, replyTo: { kind: 'cli' } })).job;
    await s.deny(denied.id, april, 'not now');
    const cancelled = (await s.submit({ tool: 'exec', input: { targets: 'node01', command: 'true' }, requester: oscar, replyTo: { kind: 'cli' } })).job;
    await s.cancel(cancelled.id, oscar);

    const expected: Array<[string, string]> = [
      [ok.id, 'succeeded'],
      [bad.id, 'failed'],
      [denied.id, 'denied'],
      [cancelled.id, 'cancelled'],
    ];
    for (const [id, state] of expected) {
      const final = await s.wait(id, oscar, 30_000);
      expect(final.state).toBe(state);
      expect(final.finishedAt).toBeTruthy();
      // Read the moment wait returns: a caller told a job ended finds its ending complete.
      const endings = await endingsOf(id);
      expect(endings.finalEvents).toEqual([state]);
      expect(endings.outcomes).toEqual([state]);
    }
    expect((await endingsOf(ok.id)).lockKeys).toEqual([]);
  });

  it('a job whose host lock is taken by someone else stops, says so, and leaves nothing running', async () => {
    const s = c.runtime.service;
    const tag = `castellan-lock-${randomBytes(4).toString('hex')}`;
    const { job } = await s.submit({ tool: 'exec', input: { targets: 'node02', command: `sleep 120 # ${tag}` }, requester: oscar, replyTo: { kind: 'cli' } });
    await s.approve(job.id, april);
    let stolen = false;
    const lockKey = c.runtime.ctx.keys.hostLock('node02');
    const final = await s.wait(job.id, oscar, 60_000, (e) => {
      if (e.event.type === 'host_started' && !stolen) {
        stolen = true;
        // Another owner takes the host (as if the lock had expired and another job got it).
        void c.runtime.ctx.redis.set(lockKey, 'jintruder0000', 'PX', 60_000);
      }
    });
    expect(stolen).toBe(true);
    expect(final.state).toBe('interrupted');
    expect(final.reason).toMatch(/lost the lock on node02 \(now held by jintruder0000\)/);
    // The intruder's lock is theirs: the ending released only what this job owned.
    expect(await c.runtime.ctx.redis.get(lockKey)).toBe('jintruder0000');
    expect(pgrepFull(tag)).toBe('');
    expect((await endingsOf(job.id)).outcomes).toEqual(['interrupted']);
    await c.runtime.ctx.redis.del(lockKey);
  });

  it('a job that loses its BullMQ job lock before it got its hosts ends failed, saying nothing was run', async () => {
    const s = c.runtime.service;
    const ctx = c.runtime.ctx;
    const tag = `castellan-jlock-${randomBytes(4).toString('hex')}`;
    const hostKey = ctx.keys.hostLock('node01');
    // Someone else holds the host: the job waits for it, after its delivery took the job lock.
    await ctx.redis.set(hostKey, 'jblocker0000', 'PX', 60_000);
    try {
      const { job } = await s.submit({ tool: 'exec', input: { targets: 'node01', command: `echo ran # ${tag}` }, requester: oscar, replyTo: { kind: 'cli' } });
      await s.approve(job.id, april);
      let taken = false;
      const final = await s.wait(job.id, oscar, 60_000, (e) => {
        if (e.event.type === 'lock_wait' && !taken) {
          taken = true;
          // The job lock gone (as when a failover loses it): BullMQ's next renewal fails.
          void ctx.redis.del(`${ctx.queue.toKey(job.id)}:lock`);
        }
      });
      expect(taken).toBe(true);
      expect(final.state).toBe('failed');
      expect(final.reason).toBe('not started: this worker lost the job lock; nothing was run');
      expect(await ctx.ledger.entries(job.id)).toEqual([]);
      expect((await endingsOf(job.id)).outcomes).toEqual(['failed']);
    } finally {
      await ctx.redis.del(hostKey);
    }
  });
});
