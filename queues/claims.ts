// A worker's claim on a job, made durable before it touches a host (queues/durable.ts).
//
// Each delivery of a job to a worker carries its own run token, written with `running`. Before
// a step is sent to any host, the worker confirms on the current primary, and on
// redis.confirm_replicas replicas of it, everything that proves the step is claimed: the
// record is `running` with this delivery's token, the job's host locks are its own, and the
// ledger holds the step's claim for those hosts. Only then does the step run. So after any
// failover a later delivery finds either "claimed, durably" (it is this run: it reconciles,
// never re-runs) or "never claimed" (nothing ran: it may run it once).
//
// When the current primary does not hold the claim (it was written to the old primary and
// lost), the claim is written again there (`queued` → `running` with the same token, the locks,
// the ledger entry) and confirmed again; when someone else's claim is there (another delivery
// of the job took it on the new primary), this delivery does not run the step and never ends
// the job (endings are guarded by the run token). When no replica confirms within
// redis.confirm_within, the step does not run either: the job ends saying so (its ending is
// itself re-asserted, queues/endings.ts).
import type { Redis } from 'ioredis';
import type { QueueContext } from './context.js';
import type { Condition } from './durable.js';
import { HostLocks } from './host-locks.js';
import { ExecutionLedger, ledgerField } from './ledger.js';
import { JobStore } from './records.js';

export interface Delivery {
  readonly jobId: string;
  /** This delivery's run token (the record's `run` field). */
  readonly run: string;
  readonly attempt: number;
  readonly worker: string;
  readonly startedAt: string;
  /** Hosts whose per-host lock this job holds (none for read jobs). */
  readonly locked: () => readonly string[];
}

/** Why a claim is not durable (undefined: it is, the step may run). */
export type ClaimVerdict = undefined | { readonly superseded: boolean; readonly problem: string };

type Ctx = Pick<QueueContext, 'keys' | 'durable' | 'settings' | 'logger'>;

/** Confirm the claim of `step` on `hosts`; repair it on the current primary when it was lost. */
export async function confirmClaim(ctx: Ctx, d: Delivery, step: string, hosts: readonly string[], signal?: AbortSignal): Promise<ClaimVerdict> {
  if (!ctx.durable.enabled) return undefined;
  const record = ctx.keys.job(d.jobId);
  const locked = d.locked();
  const conditions: Condition[] = [
    { key: record, field: 'state', is: ['running'] },
    { key: record, field: 'run', is: [d.run] },
    ...locked.map((h) => ({ key: ctx.keys.hostLock(h), is: d.jobId })),
    ...hosts.map((h) => ({ hash: ctx.keys.ledger(d.jobId), has: ledgerField(d.attempt, step, h) })),
  ];
  const repair = async (redis: Redis, differs: { index: number; actual: string }): Promise<boolean> => {
    if (differs.index === 0) {
      // `queued` here: our `running` was lost with the old primary, and nobody has taken the
      // job since. Take it again (atomically: only from `queued`). Anything else is not ours.
      if (differs.actual !== 'queued') return false;
      const t = await new JobStore(redis, ctx.keys).transition(d.jobId, 'running', { startedAt: d.startedAt, worker: d.worker, attempt: d.attempt, run: d.run }, ['queued']);
      return t.ok;
    }
    // Another delivery's token: it runs the job now.
    if (differs.index === 1) return false;
    if (differs.index < 2 + locked.length) return (await new HostLocks(redis, ctx.keys, ctx.settings.hostLockTtlMs).tryAcquire(d.jobId, locked)).acquired;
    // The ledger entry was lost (we never ran the step: we run only after confirming it).
    await new ExecutionLedger(redis, ctx.keys).claim(d.jobId, d.attempt, step, hosts, d.worker);
    return true;
  };
  let repaired = 0;
  const assured = await ctx.durable.assert(
    conditions,
    async (redis, differs) => {
      const again = await repair(redis, differs);
      if (again) repaired += 1;
      return again;
    },
    signal,
  );
  if (assured.ok) {
    // Normally one round; more means a failover was settling: say what it took.
    if (assured.rounds > 1) ctx.logger.info({ jobId: d.jobId, step, rounds: assured.rounds, rewritten: repaired }, `claim confirmed on a Redis replica after ${assured.rounds} rounds${repaired ? ' (written again on the new primary)' : ''}`);
    return undefined;
  }
  if (assured.kind === 'unconfirmed') return { superseded: false, problem: `Redis could not confirm this worker's claim on a replica within ${seconds(ctx.durable.settings?.withinMs ?? 0)} (${assured.problem})` };
  const what = assured.index === 0 ? `the job is ${assured.actual || 'gone'} on the current Redis primary` : assured.index === 1 ? 'another delivery of the job holds it on the current Redis primary' : assured.index < 2 + locked.length ? 'another job holds one of its host locks on the current Redis primary' : 'its ledger claim could not be written again';
  return { superseded: true, problem: `this worker's claim was lost in a Redis failover: ${what}` };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1).replace(/\.0$/, '')} s`;
}
