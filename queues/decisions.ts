// A decision's audit record is written right after its vote (queues/service.ts), not in the
// same step: a lost connection or a Redis failover between the two can leave a vote — which
// counts — without its record, and the approver's retry then finds the vote already there
// ("you already voted"). Before an approved job runs, the worker writes any decision record its
// votes have and the audit lacks, so the audit names every approver of everything that ran.
// Both writers use one marker per vote (the audit append's idempotency key), so a worker that
// starts while the approver's process is still between its vote and its record (a reconcile
// round woke the job) does not make a second record.
import type { QueueContext } from './context.js';
import { jobAuditFacts, type AuditRecord } from './audit.js';
import type { JobDoc, JobRecord, Vote } from './records.js';

/** The audit append's idempotency key for a vote's decision record. */
export function decisionMarker(jobId: string, subject: string): string {
  return `decision.${jobId}.${subject}`;
}

/** The decision record of one vote, as the approver's process writes it. */
export function decisionRecord(job: JobDoc, vote: Pick<Vote, 'subject' | 'displayName' | 'origin' | 'decision' | 'reason'>, extra: Partial<AuditRecord> = {}): AuditRecord {
  return {
    kind: 'decision',
    jobId: job.id,
    subject: vote.subject,
    displayName: vote.displayName,
    origin: vote.origin,
    tool: job.tool,
    decision: vote.decision,
    reason: vote.reason,
    planHash: job.planHash,
    hosts: job.plan.hosts,
    ...extra,
    ...jobAuditFacts(job),
  };
}

/** Write the decision records the job's votes have and its audit lacks; how many were missing. */
export async function auditMissingDecisions(ctx: Pick<QueueContext, 'audit' | 'logger'>, job: JobRecord): Promise<number> {
  if (job.votes.length === 0) return 0;
  const audited = new Set((await ctx.audit.read({ jobId: job.id })).filter((a) => a.kind === 'decision').map((a) => `${a.subject}\u0000${a.decision ?? ''}`));
  const missing = job.votes.filter((v) => !audited.has(`${v.subject}\u0000${v.decision}`));
  if (missing.length === 0) return 0;
  await ctx.audit.appendMany(missing.map((v) => decisionRecord(job, v)), { markers: missing.map((v) => decisionMarker(job.id, v.subject)) });
  ctx.logger.warn({ jobId: job.id, subjects: missing.map((v) => v.subject) }, "a vote's decision audit record was missing (lost between the vote and its record); written from the vote before the job runs");
  return missing.length;
}
