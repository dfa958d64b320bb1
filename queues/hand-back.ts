// BullMQ gives up on a job without our processor finishing it: it stalled more often than
// `maxStalledCount` (its workers were killed, or lost Redis, while holding it), or the
// processor threw (Redis went away mid-step). What that means depends on the record:
//  - still `queued` with nothing in its ledger: it never started on any host, so nothing ran
//    and nothing can run twice. The job is handed back to the queue (a fresh BullMQ job, same
//    id) — a person who got a job id and an approval expects it to run, not to read "failed:
//    job stalled more than allowable limit". A few times at most: a job that keeps stopping
//    its workers before it starts ends `failed`, saying nothing was run.
//  - `running`: it may have run somewhere: `interrupted`, naming the hosts whose outcome is
//    unknown (the reconcilers check those on the nodes); anything else not final: `failed`.
// Redis may be away right then (that is often why BullMQ gave up): keep trying for a while,
// rather than leave a record `queued` with no queue job behind it.
import type { Job } from 'bullmq';
import { errorMessage } from '../config/errors.js';
import type { QueueContext } from './context.js';
import { bullRetention } from './retention.js';
import { endJob, type FinalState } from './endings.js';
import type { JobDoc, JobRecord, QueuedJob } from './records.js';
import { sleep } from './sleep.js';
import { isFinal } from './states.js';

/** How often a never-started job goes back to the queue before it ends `failed`. */
export const MAX_HAND_BACKS = 3;
const HAND_BACKS_FIELD = 'handBacks';
const RETRY_MS = 1000;
const RETRY_FOR_MS = 5 * 60_000;

export async function onGivenUp(ctx: QueueContext, job: Job<QueuedJob>, why: string): Promise<void> {
  const until = Date.now() + RETRY_FOR_MS;
  let counted: number | undefined;
  for (;;) {
    try {
      const record = await ctx.store.get(job.data.id);
      if (!record || isFinal(record.state)) return;
      if (record.state === 'queued' && (await ctx.ledger.entries(record.id)).length === 0) {
        counted ??= await ctx.redis.hincrby(ctx.keys.job(record.id), HAND_BACKS_FIELD, 1);
        if (counted <= MAX_HAND_BACKS) {
          await handBack(ctx, job, record, why, counted);
          return;
        }
        await endJob(ctx, record, 'failed', { reason: `never started: ${why} (${MAX_HAND_BACKS + 1} times); nothing was run`, from: ['queued'] });
        return;
      }
      await finalizeOrphan(ctx, record.id, why);
      return;
    } catch (err) {
      if (Date.now() > until) {
        ctx.logger.error({ jobId: job.data.id, err: errorMessage(err) }, 'could not settle a job BullMQ gave up on; the record stays as it is');
        return;
      }
      await sleep(RETRY_MS);
    }
  }
}

async function handBack(ctx: QueueContext, job: Job<QueuedJob>, record: JobRecord, why: string, n: number): Promise<void> {
  const id = job.id ?? record.id;
  // The failed BullMQ job keeps the id; a new one can only be added once it is gone.
  await ctx.queue.remove(id);
  await ctx.queue.add(job.name, job.data, {
    jobId: id,
    attempts: 1,
    ...bullRetention(ctx.settings.retention),
  });
  ctx.logger.info({ jobId: record.id, why, handBack: n }, 'job never started: handed back to the queue');
  await ctx.events.publish(record.id, { type: 'state', state: 'queued', reason: `back in the queue: ${why} before it started on any host; nothing was run` });
}

/** End a job BullMQ gave up on that may have run: `interrupted` if it was running, else `failed`. */
export async function finalizeOrphan(ctx: QueueContext, jobId: string, why: string): Promise<void> {
  const record = await ctx.store.get(jobId);
  if (!record || isFinal(record.state)) return;
  const unknown = inPlanOrder(record, (await ctx.ledger.unfinished(jobId)).map((e) => e.host));
  const to: FinalState = record.state === 'running' ? 'interrupted' : 'failed';
  const reason = `${why}${unknown.length ? `; outcome unknown on: ${unknown.join(', ')}` : ''}`;
  await endJob(ctx, record, to, { reason, from: [record.state] });
}

/** Hosts in the order of the job's plan (any the plan does not name, after them). */
export function inPlanOrder(record: JobDoc, hosts: readonly string[]): string[] {
  const set = new Set(hosts);
  const ordered = record.plan.hosts.filter((h) => set.has(h));
  return [...ordered, ...[...set].filter((h) => !ordered.includes(h))];
}
