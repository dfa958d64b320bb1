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
import type { AuditLog, WrittenAudit } from './audit.js';
import type { QueueContext } from './context.js';
import type { Condition } from './durable.js';
import { HostLocks, lockOwner } from './host-locks.js';
import { ExecutionLedger, ledgerField, writeLedger, type LedgerWrite } from './ledger.js';
import { deliveryGuard, DeliverySuperseded, type RunGuard } from './run-guard.js';
import type { JobStop } from './job-stop.js';
import { JobStore, type TransitionOutcome } from './records.js';
import type { FirstClaim, PreClaim } from './runner.js';
import { shardBoardKey, shardGuard, shardRunField } from './shards.js';

export interface Delivery {
  readonly jobId: string;
  /** This delivery's run token (the record's `run` field). */
  readonly run: string;
  readonly attempt: number;
  readonly worker: string;
  readonly startedAt: string;
  /** Hosts whose per-host lock this job holds (none for read jobs). */
  readonly locked: () => readonly string[];
  /**
   * A shard of a job split by site (queues/shards.ts): its token is in the job's shard board
   * (`run:<site>`), not the record's `run` — the record is shared by the job's shards.
   */
  readonly shard?: { readonly site: string } | undefined;
}

/**
 * Why a claim is not durable (undefined: it is, the step may run). `superseded`: another
 * delivery holds the job (or it ended): this one must neither run nor end it. `lockTaken`:
 * another job took one of its host locks on the current primary (ours was lost with the old
 * one): the job is still this delivery's to run or end — never left `running` for nobody.
 */
export type ClaimVerdict = undefined | { readonly superseded: boolean; readonly lockTaken?: boolean; readonly problem: string };

type Ctx = Pick<QueueContext, 'keys' | 'durable' | 'settings' | 'logger'>;

/** The guard of every write `d` makes about its run (queues/run-guard.ts). */
export function guardOf(keys: QueueContext['keys'], d: Pick<Delivery, 'jobId' | 'run' | 'shard'>): RunGuard {
  return d.shard ? shardGuard(keys, d.jobId, d.shard.site, d.run) : deliveryGuard(keys, d.jobId, d.run);
}

/**
 * A delivery takes its job: the `running` transition (from `queued`, with the delivery's run
 * token) and the ledger claim of the plan's first step (`first`), sent together. The claim goes
 * right behind the transition on the same connection, without waiting for its answer, and is
 * guarded by the run token the transition writes (queues/run-guard.ts): it claims nothing
 * unless the transition took effect, so a delivery whose transition is refused (another
 * delivery holds the job, or it ended) has claimed nothing, as before. One wait for Redis
 * before the first host is touched instead of two. The claim is handed to runPlan
 * (`preclaimed`), which finishes it as not run if the job stops before that step.
 */
export async function startRun(ctx: Pick<QueueContext, 'keys' | 'store' | 'ledger'>, d: Delivery, fields: Readonly<Record<string, string | number | undefined>>, first: FirstClaim | undefined): Promise<{ transition: TransitionOutcome; preclaimed?: PreClaim | undefined }> {
  const transition = ctx.store.transition(d.jobId, 'running', { ...fields, run: d.run }, ['queued']);
  const claim = first ? ctx.ledger.claim(d.jobId, d.attempt, first.step, first.hosts, d.worker, first.claimedAt, guardOf(ctx.keys, d)) : undefined;
  // Both settled before anything is decided: neither is left in flight.
  const [started, claimed] = await Promise.allSettled([transition, claim]);
  if (started.status === 'rejected') throw started.reason;
  // Refused: the guard refused the claim too (DeliverySuperseded), nothing was claimed.
  if (!started.value.ok) return { transition: started.value };
  if (claimed.status === 'rejected') throw claimed.reason;
  return { transition: started.value, preclaimed: first && claimed.value ? { ...first, claimed: claimed.value } : undefined };
}

/** Confirm the claim of `step` on `hosts`; repair it on the current primary when it was lost. */
export async function confirmClaim(ctx: Ctx, d: Delivery, step: string, hosts: readonly string[], signal?: AbortSignal): Promise<ClaimVerdict> {
  if (!ctx.durable.enabled) return undefined;
  const record = ctx.keys.job(d.jobId);
  const locked = d.locked();
  const board = shardBoardKey(ctx.keys, d.jobId);
  const conditions: Condition[] = [
    { key: record, field: 'state', is: ['running'] },
    d.shard ? { key: board, field: shardRunField(d.shard.site), is: [d.run] } : { key: record, field: 'run', is: [d.run] },
    ...locked.map((h) => ({ key: ctx.keys.hostLock(h), is: lockOwner(d.jobId, d.run) })),
    ...hosts.map((h) => ({ hash: ctx.keys.ledger(d.jobId), has: ledgerField(d.attempt, step, h) })),
  ];
  const repair = async (redis: Redis, differs: { index: number; actual: string }): Promise<boolean> => {
    if (differs.index === 0) {
      // `queued` here: our `running` was lost with the old primary, and nobody has taken the
      // job since. Take it again (atomically: only from `queued`). Anything else is not ours.
      if (differs.actual !== 'queued') return false;
      const t = await new JobStore(redis, ctx.keys).transition(d.jobId, 'running', { startedAt: d.startedAt, worker: d.worker, attempt: d.attempt, ...(d.shard ? {} : { run: d.run }) }, ['queued']);
      return t.ok;
    }
    if (differs.index === 1) {
      // A shard's token lost with the old primary: take the shard again, unless another
      // delivery of it has since. Another delivery's token: it runs the job (shard) now.
      if (!d.shard || differs.actual !== '') return false;
      return (await redis.hsetnx(board, shardRunField(d.shard.site), d.run)) === 1;
    }
    if (differs.index < 2 + locked.length) return (await new HostLocks(redis, ctx.keys, ctx.settings.hostLockTtlMs).tryAcquire(lockOwner(d.jobId, d.run), locked)).acquired;
    // The ledger entry was lost (we never ran the step: we run only after confirming it).
    // Refused (another delivery's token there now): not ours to write; give up, do not retry.
    try {
      await new ExecutionLedger(redis, ctx.keys).claim(d.jobId, d.attempt, step, hosts, d.worker, undefined, guardOf(ctx.keys, d));
    } catch (err) {
      if (err instanceof DeliverySuperseded) return false;
      throw err;
    }
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
  if (assured.index >= 2 && assured.index < 2 + locked.length) {
    const host = locked[assured.index - 2] ?? '?';
    return { superseded: false, lockTaken: true, problem: `this worker's claim was lost in a Redis failover: another job (${assured.actual || '?'}) holds the lock on ${host} on the current Redis primary` };
  }
  const what = assured.index === 0 ? `the job is ${assured.actual || 'gone'} on the current Redis primary` : assured.index === 1 ? `another delivery of the ${d.shard ? 'shard' : 'job'} holds it on the current Redis primary` : 'its ledger claim could not be written again';
  // The ledger entry not written again (index past the locks) is not another delivery's either.
  return { superseded: assured.index <= 1, problem: `this worker's claim was lost in a Redis failover: ${what}` };
}

/**
 * One delivery's hold on a job (or a shard): its claim confirmed before each step touches a
 * host, and what its ending needs to know.
 */
export class DeliveryClaim {
  /** Steps whose claim was confirmed, i.e. sent to hosts. */
  dispatched = 0;
  /** Another delivery holds the job (or shard): this one must neither end it nor release its locks. */
  superseded = false;

  constructor(
    private readonly ctx: Ctx & { readonly locks: Pick<HostLocks, 'acquire'> },
    private readonly halt: Pick<JobStop, 'signal' | 'stop'>,
    private readonly o: { readonly onLockWait: (host: string, holder: string) => void; readonly log: Readonly<Record<string, unknown>> },
  ) {}

  /**
   * Confirm the claim of `step` on `hosts` before they are touched: undefined, go; otherwise
   * the problem, and the delivery is stopped (`unconfirmed`). Where a failover handed one of
   * our host locks to another job before any step was sent, this is the wait every job does
   * for its hosts: take the locks again, then confirm again. After a step was sent, another
   * job ran on our hosts between our steps: the verdict stands.
   */
  async confirm(d: Delivery, step: string, hosts: readonly string[]): Promise<string | undefined> {
    const { ctx, halt } = this;
    let verdict = await confirmClaim(ctx, d, step, hosts, halt.signal);
    while (verdict?.lockTaken && this.dispatched === 0 && !halt.signal.aborted) {
      ctx.logger.warn({ ...this.o.log, step, why: verdict.problem }, 'host lock lost in a Redis failover before any step ran; waiting for it again');
      if (!(await ctx.locks.acquire(lockOwner(d.jobId, d.run), d.locked(), halt.signal, this.o.onLockWait))) break;
      verdict = await confirmClaim(ctx, d, step, hosts, halt.signal);
    }
    if (verdict === undefined) {
      this.dispatched += 1;
      return undefined;
    }
    if (verdict.superseded) this.superseded = true;
    halt.stop('unconfirmed', verdict.problem);
    return verdict.problem;
  }
}

/**
 * A step's checkpoint: its ledger finish and its execution audit records, written on the worker
 * connection after the step, confirmed on a replica; written again on the current primary when a
 * failover lost them. Without it, a finish lost with the old primary leaves the host "mid-step"
 * (a later reconcile reports its outcome unknown although it is known) and the audit trail
 * misses the record of a command that ran. The step has run: nothing waits on the answer but
 * the next step, and an unconfirmed checkpoint is logged, never a reason to stop.
 */
export async function confirmStep(ctx: Ctx & { readonly audit: Pick<AuditLog, 'rewrite'> }, jobId: string, step: string, finished: LedgerWrite, audit: WrittenAudit, signal?: AbortSignal): Promise<string | undefined> {
  if (!ctx.durable.enabled) return undefined;
  const fields = Object.keys(finished.values);
  // Audit entries written again get new stream ids: their conditions are replaced in place,
  // and the next round checks the new ones.
  const conditions: Condition[] = [
    ...fields.map((f) => ({ hash: finished.key, has: f, containing: '"finishedAt"' })),
    ...audit.ids.map((id) => ({ zset: ctx.keys.auditBy('job', jobId), member: id, present: true })),
  ];
  if (conditions.length === 0) return undefined;
  const rewritten = { ledger: 0, audit: 0 };
  const assured = await ctx.durable.assert(
    conditions,
    async (redis: Redis, differs) => {
      if (differs.index < fields.length) {
        // Under the writing delivery's guard: a zombie's lost finish is not written again (a
        // refusal gives up at once; anything else is a dropped connection, tried again).
        try {
          await writeLedger(redis, ctx.keys, finished, `the ledger finish of step ${step}`);
        } catch (err) {
          if (err instanceof DeliverySuperseded) return false;
          throw err;
        }
        rewritten.ledger += 1;
        return true;
      }
      const i = differs.index - fields.length;
      const entry = audit.entries[i];
      if (entry === undefined) return false;
      const [id] = await ctx.audit.rewrite(redis, [entry]);
      if (id === undefined) return false;
      conditions[differs.index] = { zset: ctx.keys.auditBy('job', jobId), member: id, present: true };
      rewritten.audit += 1;
      return true;
    },
    signal,
  );
  if (assured.ok) {
    if (rewritten.ledger + rewritten.audit > 0) ctx.logger.warn({ jobId, step, rounds: assured.rounds, ...rewritten }, "step's ledger finish or audit record lost in a Redis failover; written again on the new primary and confirmed");
    return undefined;
  }
  const problem = assured.kind === 'unconfirmed' ? assured.problem : `the current primary holds ${assured.actual || 'nothing'}`;
  ctx.logger.error({ jobId, step, problem }, "step finished, but no Redis replica confirmed its ledger finish and audit records: a failover now could lose them");
  return problem;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1).replace(/\.0$/, '')} s`;
}
