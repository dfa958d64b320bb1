// Every approver of a job that ran is in its audit. A decision's record is written right after
// its vote, not with it, so a process that dies (or a Redis failover that strikes) between the
// two leaves a vote that counts without its record — the Sentinel failover test once caught a
// succeeded job whose audit had no decision. The worker writes such a record from the vote
// before the job runs, and the approver's process and the worker never write it twice.
import { describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { auditMissingDecisions, decisionMarker, decisionRecord } from '../../queues/decisions.js';
import type { Vote } from '../../queues/records.js';
import { wakeDecided } from '../../queues/wake.js';
import { useCastellan } from '../support/castellan.js';

const c = useCastellan({ nodes: 1 });

function person(subject: string, groups: string[]): Requester {
  return { subject, displayName: subject, groups, roles: rolesForGroups(groups, { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] }), origin: 'cli' };
}
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

describe('decision audit records', () => {
  it('a vote whose process died before writing its record: the worker writes it from the vote, before the job runs', async () => {
    const { ctx, service } = c.runtime;
    const { job } = await service.submit({ tool: 'exec', input: { targets: 'node01', command: 'true' }, requester: oscar, replyTo: { kind: 'cli' } });
    // The approver's process runs the vote script, then dies: no record, no event, no wake-up.
    const vote: Vote = { subject: april.subject, displayName: april.displayName, origin: april.origin, roles: [...april.roles], decision: 'approve', reason: 'looks right', planHash: job.planHash, at: new Date().toISOString() };
    expect((await ctx.store.vote(job.id, vote, job.approvalsRequired, 'denied')).kind).toBe('approved');
    expect((await ctx.audit.read({ jobId: job.id })).map((a) => a.kind)).toEqual(['request']);
    // A reconcile round wakes the approved job.
    expect(await wakeDecided(ctx)).toBe(1);
    const final = await service.wait(job.id, oscar, 30_000);
    expect(final.state).toBe('succeeded');
    const audit = await ctx.audit.read({ jobId: job.id });
    expect(audit.map((a) => a.kind)).toEqual(['request', 'decision', 'execution', 'outcome']);
    expect(audit[1]).toMatchObject({ kind: 'decision', subject: 'april', decision: 'approve', reason: 'looks right', planHash: job.planHash, requester: 'oscar', approvalsRequired: 1 });
    expect(c.logs.some((l) => l.includes(job.id) && l.includes("decision audit record was missing"))).toBe(true);
  });

  it("the approver's record and the worker's repair, racing, make one record", async () => {
    const { ctx, service } = c.runtime;
    const { job } = await service.submit({ tool: 'exec', input: { targets: 'node01', command: 'true' }, requester: oscar, replyTo: { kind: 'cli' } });
    const record = await ctx.store.get(job.id);
    const vote: Vote = { subject: april.subject, displayName: april.displayName, origin: april.origin, roles: [...april.roles], decision: 'approve', planHash: job.planHash, at: new Date().toISOString() };
    const voted = { ...record!, votes: [vote] };
    // The worker's check and the approver's write interleave: both find no record, both write.
    await Promise.all([
      auditMissingDecisions(ctx, voted),
      ctx.audit.appendMany([decisionRecord(voted, vote)], { markers: [decisionMarker(job.id, vote.subject)] }),
    ]);
    expect((await ctx.audit.read({ jobId: job.id })).filter((a) => a.kind === 'decision')).toHaveLength(1);
    // A job approved the usual way: one decision, written by the approver.
    await service.approve(job.id, april);
    expect((await service.wait(job.id, oscar, 30_000)).state).toBe('succeeded');
  });

  it('an approval the usual way writes its record once, and the worker adds none', async () => {
    const { ctx, service } = c.runtime;
    const { job } = await service.submit({ tool: 'exec', input: { targets: 'node01', command: 'true' }, requester: oscar, replyTo: { kind: 'cli' } });
    await service.approve(job.id, april);
    expect((await service.wait(job.id, oscar, 30_000)).state).toBe('succeeded');
    expect((await ctx.audit.read({ jobId: job.id })).map((a) => a.kind)).toEqual(['request', 'decision', 'execution', 'outcome']);
    expect(c.logs.some((l) => l.includes(job.id) && l.includes('decision audit record was missing'))).toBe(false);
  });
});
