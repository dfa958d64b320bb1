// An approved job sleeps as a delayed BullMQ job until its approval deadline; the decision
// (queues/service.ts) wakes it right after the vote script writes `queued`. If the deciding
// process dies between the two, or Redis drops the wake-up, the record says `queued` while the
// BullMQ job still sleeps until the deadline. `wakeDecided` (every reconcile round, every
// long-lived process) finds such jobs — delayed in BullMQ, `queued` in the state index — and
// wakes them, so an approval is never silently held back.
import type { QueueContext } from './context.js';

type Ctx = Pick<QueueContext, 'redis' | 'keys' | 'queue' | 'logger'>;

/** Delayed jobs looked at per round: pending approvals and maintenance-window waits, normally few. */
const PAGE = 1000;

/** Wake one job if it is still delayed. True when this call woke it. */
export async function wakeIfDelayed(ctx: Pick<QueueContext, 'queue'>, jobId: string): Promise<boolean> {
  const bull = await ctx.queue.getJob(jobId);
  if (!bull || !(await bull.isDelayed())) return false;
  try {
    await bull.promote();
    return true;
  } catch (err) {
    // Promoted meanwhile by the decider or another process: that is the outcome we wanted.
    if (!(await bull.isDelayed().catch(() => true))) return false;
    throw err;
  }
}

/** Wake every delayed job whose record is already `queued` (approved). Returns how many were woken. */
export async function wakeDecided(ctx: Ctx): Promise<number> {
  const delayed = await ctx.queue.getRanges(['delayed'], 0, PAGE - 1, true);
  if (delayed.length === 0) return 0;
  const queuedKey = ctx.keys.jobsBy('state', 'queued');
  const pipeline = ctx.redis.pipeline();
  for (const id of delayed) pipeline.zscore(queuedKey, id);
  const scores = (await pipeline.exec()) ?? [];
  let woken = 0;
  for (const [i, id] of delayed.entries()) {
    const [err, score] = scores[i] ?? [null, null];
    if (err || score === null) continue;
    if (await wakeIfDelayed(ctx, id)) {
      woken += 1;
      ctx.logger.warn({ jobId: id }, 'an approved job was still asleep (its wake-up was lost); woken now');
    }
  }
  return woken;
}
