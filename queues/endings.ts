// How a job ends, in one place. Every final transition (succeeded, failed, cancelled, denied,
// expired, interrupted…) comes through `endJob`, whichever process makes it: the worker, the
// service (a cancel before the run, a deny vote), a reconciler after a crash. It records the
// state atomically (only from a state the transition table allows), releases the job's host
// locks, writes the audit outcome, publishes the final progress event and applies retention.
// The final event comes last of the three (queues/service.ts wait returns on it): a caller told
// a job ended finds its hosts free and its audit complete. A job that holds no host locks is
// announced right behind its state instead, its waiters not held for the audit write.
// The state write decides who ended the job; the rest only happens for the winner, so two
// processes racing (an expiry and an approval, a cancel and the worker) never both announce.
//
// A worker's ending (`run` given) is also made durable before the worker lets BullMQ complete
// the job: written, confirmed on redis.confirm_replicas replicas, re-read on the current
// primary and written again (and announced again) there if a failover lost it, until it holds
// (queues/durable.ts), bounded by redis.confirm_within. An ending lost with the old primary
// would otherwise leave the job `running` on the new one, to be redelivered and reported
// `interrupted` although it finished.
import { randomBytes } from 'node:crypto';
import { errorMessage } from '../config/errors.js';
import { metrics } from './metrics.js';
import { sleep } from './sleep.js';
import type { QueueContext } from './context.js';
import { jobAuditFacts, type WrittenAudit } from './audit.js';
import type { Condition } from './durable.js';
import type { JobEvent } from './events.js';
import { lockOwner } from './host-locks.js';
import { JobStore, type JobDoc, type JobResult } from './records.js';
import { accountFinished, DEFAULT_RETENTION_MAX_BYTES, pruneToBudget } from './retention.js';
import { ALLOWED_FROM, isFinal, type JobState } from './states.js';

export type FinalState = Exclude<JobState, 'awaiting_approval' | 'queued' | 'waiting_window' | 'running'>;

export interface Ending {
  /** One line for people: why it ended this way. */
  readonly reason: string;
  readonly result?: JobResult | undefined;
  /** Narrower predecessors than the transition table allows (e.g. only `running`). */
  readonly from?: readonly JobState[] | undefined;
  /**
   * The state was already written by an atomic script that decided it together with other
   * fields (a deny vote): do everything else.
   */
  readonly recorded?: boolean | undefined;
  /** Further record fields written in the same atomic step (who cancelled). */
  readonly fields?: Readonly<Record<string, string>> | undefined;
  /**
   * The worker delivery's run token (queues/claims.ts): the state is written only while the
   * record carries it, and the ending is re-asserted until a replica confirms it.
   */
  readonly run?: string | undefined;
  /**
   * Re-assert the ending until a replica confirms it, as a worker's (`run`) is, without a run
   * token guard: the merge of a split job's shards, which no other delivery can supersede.
   */
  readonly durable?: boolean | undefined;
}

export type EndOutcome = { readonly ended: true; readonly state: FinalState } | { readonly ended: false; readonly current: JobState | null };

type EndingContext = Pick<QueueContext, 'redis' | 'keys' | 'store' | 'events' | 'audit' | 'locks' | 'settings' | 'logger' | 'durable'>;

export async function endJob(ctx: EndingContext, record: JobDoc, to: FinalState, ending: Ending): Promise<EndOutcome> {
  const kept = ending.run !== undefined || ending.durable === true;
  if (!ending.recorded) {
    const from = (ending.from ?? ALLOWED_FROM[to]).filter((s) => ALLOWED_FROM[to].includes(s));
    const fields = {
      ...ending.fields,
      reason: ending.reason,
      finishedAt: new Date().toISOString(),
      result: ending.result === undefined ? undefined : JSON.stringify(ending.result),
      // Which ending this is, so a re-read can tell ours from another process's.
      ...(kept ? { ending: randomBytes(6).toString('hex') } : {}),
    };
    const written = ctx.store.transition(record.id, to, fields, from, ending.run ?? '');
    // A worker's ending of a job that holds no host locks (whose release comes first) is
    // announced right behind its write, on the same connection, without waiting for the
    // write's answer: guarded by this ending's token, the event is written only if the state
    // was; the waiting front end hears of the end one round trip sooner.
    const announced = kept && fields.ending !== undefined && !holdsLocks(record)
      ? ctx.events.publishIf(record.id, [finalEvent(to, ending.reason)], { key: ctx.keys.job(record.id), field: 'ending', value: fields.ending }).catch(() => false)
      : Promise.resolve(false);
    const t = await written;
    if (!t.ok) {
      await announced;
      return { ended: false, current: t.current };
    }
    if (kept && fields.ending !== undefined) {
      const outcome = await afterEnd(ctx, record, to, ending.reason, ending.run, await announced);
      // Announced at once (followers see the end now); the worker returns to BullMQ only once
      // the ending is durable. Written again on a new primary, it is announced again there:
      // what was announced after the lost write went to the lost primary too.
      if (await keepEnding(ctx, record, to, fields as Record<string, string | undefined> & { ending: string }, from, ending.run ?? '', outcome)) await afterEnd(ctx, record, to, ending.reason, ending.run);
      return { ended: true, state: to };
    }
  }
  await afterEnd(ctx, record, to, ending.reason, ending.run);
  return { ended: true, state: to };
}

/**
 * Re-assert a worker's ending until a replica holds it: a failover that lost it finds the job
 * still `running` with this delivery's token on the new primary, and it is written again there.
 * Another process's ending found there stands (logged). Not confirmed within
 * redis.confirm_within: logged — the worker cannot hold the job forever, and the ending is
 * still the truth on the primary it was written to. True when it was written again.
 */
async function keepEnding(ctx: EndingContext, record: JobDoc, to: FinalState, fields: Record<string, string | undefined> & { ending: string }, from: readonly JobState[], run: string, outcome: WrittenAudit | undefined): Promise<boolean> {
  const key = ctx.keys.job(record.id);
  let rewritten = false;
  const conditions: Condition[] = [
    { key, field: 'state', is: [to] },
    { key, field: 'ending', is: [fields.ending] },
  ];
  // The outcome audit record, written after the state: a failover can lose it alone (the state
  // had reached the replica, the record had not). Written again, it has a new id: checked next.
  const audited = outcome?.entries[0];
  const auditAt = conditions.length;
  if (outcome?.ids[0] !== undefined) conditions.push({ zset: ctx.keys.auditBy('job', record.id), member: outcome.ids[0], present: true });
  const assured = await ctx.durable.assert(
    conditions,
    async (redis, differs) => {
      if (differs.index === auditAt && audited !== undefined) {
        const [id] = await ctx.audit.rewrite(redis, [audited]);
        if (id === undefined) return false;
        conditions[auditAt] = { zset: ctx.keys.auditBy('job', record.id), member: id, present: true };
        return true;
      }
      if (differs.index !== 0 || !from.includes(differs.actual as JobState)) return false;
      const t = await new JobStore(redis, ctx.keys).transition(record.id, to, fields, from, run);
      if (t.ok) {
        rewritten = true;
        // The whole ending is announced again afterwards, its audit record with it.
        if (conditions.length > auditAt) conditions[auditAt] = { key, field: 'state', is: [to] };
      }
      return t.ok;
    },
  );
  if (assured.ok) {
    if (rewritten) ctx.logger.warn({ jobId: record.id, state: to, rounds: assured.rounds }, 'job ending lost in a Redis failover; written again on the new primary and confirmed');
  } else if (assured.kind === 'differs') {
    ctx.logger.warn({ jobId: record.id, state: to, found: assured.actual }, 'job ending lost in a Redis failover; the current primary holds another outcome, which stands');
  } else {
    ctx.logger.error({ jobId: record.id, state: to, problem: assured.problem }, 'job ended, but no Redis replica confirmed its ending: a failover now could undo it');
  }
  return rewritten;
}

/**
 * The follow-up of a recorded ending. The state is already durable, so a failure here must not
 * undo it or throw: each part is retried a few times (a Redis failover takes seconds) and a
 * part that still fails is logged with the job id, never dropped silently.
 */
async function afterEnd(ctx: EndingContext, record: JobDoc, state: FinalState, reason: string, run: string | undefined, announced = false): Promise<WrittenAudit | undefined> {
  let outcome: WrittenAudit | undefined;
  const step = async (what: string, work: () => Promise<unknown>): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      try {
        await work();
        return;
      } catch (err) {
        if (attempt >= 5) {
          ctx.logger.error({ jobId: record.id, state, err: errorMessage(err) }, `job ended ${state}, but ${what} failed`);
          return;
        }
        await sleep(200 * 2 ** attempt);
      }
    }
  };
  // Locks first: a job waiting for these hosts may start as soon as possible.
  // Ended by the delivery that runs it: that delivery's locks. Otherwise (a reconcile, a cancel
  // before it ran) whichever of its deliveries holds them: the job is over.
  if (holdsLocks(record)) {
    await step('releasing its host locks', () => (run ? ctx.locks.release(lockOwner(record.id, run), record.plan.hosts) : ctx.locks.release(record.id, record.plan.hosts, true)));
  }
  // The audit outcome before the final event: a front end told "ended" by that event (a CLI
  // wait, an MCP call) finds the job's audit complete. A lock-free job's ending may have been
  // announced already, right behind its state (endJob): its waiters do not wait for this.
  // Marked per job and final state: written at most once however often it is tried. A try
  // whose answer a dropped connection lost is retried here, and a worker's ending written again
  // on a new primary (keepEnding) comes through here again while its first outcome record may
  // have survived the failover; either way the record already there is kept, not doubled.
  // Another process's different ending of the job (that stands) still gets its own record.
  await step('writing its audit outcome', async () => {
    outcome = await ctx.audit.appendMany([{
      kind: 'outcome',
      jobId: record.id,
      subject: record.requester.subject,
      displayName: record.requester.displayName,
      origin: record.requester.origin,
      tool: record.tool,
      hosts: record.plan.hosts,
      state,
      reason,
      ...jobAuditFacts(record),
    }], { markers: [outcomeMarker(record.id, state)] });
  });
  if (!announced) await step('publishing its final event', () => ctx.events.publish(record.id, finalEvent(state, reason)));
  if (record.previewOf !== undefined) {
    const of = record.previewOf;
    await step('attaching it to the job it previews', async () => {
      const done = await ctx.store.get(record.id);
      await ctx.store.setPreview(of, { jobId: record.id, state, reason, folded: done?.result?.folded });
      // Cards of the previewed job re-render on its events: say it there while it waits.
      if ((await ctx.store.state(of)) === 'awaiting_approval') {
        await ctx.events.publish(of, { type: 'state', state: 'awaiting_approval', reason: `preview (job ${record.id}) ${state.replaceAll('_', ' ')}: ${reason}` });
      }
    });
  }
  metrics().jobsFinished.inc({ tool: record.tool, state });
  const retention = ctx.settings.retention;
  await step('applying retention', async () => {
    // The job's expiry, the sweep by count and age (its reads) and the count of the job's bytes
    // are independent: sent together, one wait for Redis at the end of every job, not three.
    // What they find to delete (rare) follows; the byte budget's prune comes last, after the
    // sweep's deletions (it reads the total it prunes against itself).
    const [, , counted] = await Promise.all([
      ctx.store.expireFinished(record.id, state === 'succeeded' ? retention.completedAgeS : retention.failedAgeS),
      // Bound history by count as well as age, like BullMQ's own retention: Redis memory stays
      // flat however many jobs run.
      ctx.store.trim(Math.max(retention.completedCount + retention.failedCount, 1), (s) => isFinal(s as JobState)),
      accountFinished(ctx.redis, ctx.keys, record.id),
    ]);
    await keepWithinBytes(ctx, record.id, counted.total, retention.maxBytes ?? DEFAULT_RETENTION_MAX_BYTES);
  });
  return outcome;
}

/** The write marker of a job's audit outcome (queues/audit.ts APPEND): one per final state. */
export function outcomeMarker(jobId: string, state: FinalState): string {
  return `outcome.${jobId}.${state}`;
}

/** Jobs that change hosts lock them; a read locks none. */
function holdsLocks(record: JobDoc): boolean {
  return record.risk !== 'read' && record.plan.hosts.length > 0;
}

/**
 * Every job's final event, built here only: IF_FINAL (records.ts) finds it in the stream by its
 * JSON's leading `"type":"state","state":"<final state>"`, so keep that key order.
 */
function finalEvent(state: FinalState, reason: string): JobEvent {
  return { type: 'state', state, reason };
}

/**
 * With this job's bytes counted (`total`: all finished jobs' bytes then), prune the oldest
 * finished jobs beyond jobs.retention.max_bytes (queues/retention.ts): each pruned job gets an
 * audit entry, so its history says where it went.
 */
async function keepWithinBytes(ctx: EndingContext, jobId: string, total: number, maxBytes: number): Promise<void> {
  const m = metrics();
  m.retainedBytes.set(total);
  if (total <= maxBytes) return;
  const { pruned, total: left } = await pruneToBudget(ctx.redis, ctx.keys, maxBytes, jobId);
  m.retainedBytes.set(left);
  if (pruned.length === 0) return;
  const freed = pruned.reduce((sum, p) => sum + p.bytes, 0);
  m.prunedJobs.inc(pruned.length);
  m.prunedBytes.inc(freed);
  ctx.logger.info({ jobs: pruned.length, freed, left, maxBytes }, 'finished jobs pruned to keep jobs.retention.max_bytes');
  await ctx.audit.appendMany(
    pruned.map((p) => ({
      kind: 'pruned' as const,
      jobId: p.id,
      subject: 'castellan',
      origin: 'worker' as const,
      state: p.state,
      reason: `record, events and ledger (${p.bytes} bytes) deleted: finished jobs held more than jobs.retention.max_bytes (${maxBytes} bytes); the oldest go first`,
    })),
  );
}
