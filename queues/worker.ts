// The execution side. A BullMQ worker takes a job id, and the job record decides what
// happens: an approval that ran out becomes `expired`; a queued job is re-planned, its plan
// hash checked against the approved one, its hosts locked, then run; a job found `running`
// is a redelivery after a worker crash or stall — `read` jobs may run again, `change` and
// `destructive` jobs are reported `interrupted` with the hosts whose outcome is unknown,
// never silently re-run.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { DelayedError, FlowProducer, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { checkRecordedApprovals } from '../auth/policy.js';
import { metrics } from './metrics.js';
import { errorMessage } from '../config/errors.js';
import type { HostStatus } from '../tools/host-result.js';
import type { QueueContext } from './context.js';
import { bullRetention } from './retention.js';
import { ThrottledPublisher } from './events.js';
import { foldOutputs } from './fold.js';
import { boundResult } from './output-budget.js';
import { DEFAULT_LIMITS } from './limits.js';
import { bindPlan, boundPlanHash, describeChanges } from './plan-binding.js';
import type { HostOutcome, JobDoc, JobRecord, JobResult, QueuedJob } from './records.js';
import { firstClaimOf, runPlan, type PreClaim, type RunContext } from './runner.js';
import { endJob, type FinalState } from './endings.js';
import { confirmStep, DeliveryClaim, guardOf, startRun, type Delivery } from './claims.js';
import { DeliverySuperseded, type RunGuard } from './run-guard.js';
import { auditMissingDecisions } from './decisions.js';
import { lockOwner, ownerWorker, runToken } from './host-locks.js';
import { windowDecision } from './maintenance.js';
import { isUnconfirmed, settled } from './submission.js';
import { finalizeOrphan, inPlanOrder, onGivenUp } from './hand-back.js';
import { isRedisUnavailable } from './connections.js';
import { isFinal, type JobState } from './states.js';
import { Heartbeat, registryTiming, WorkerRegistry } from './heartbeat.js';
import { reconcileDelivery, reconcileLoop, reconcileOrphan, reconcileShardHosts } from './orphans.js';
import {
  mergeOutcomes,
  mergeQueueName,
  NO_SITE,
  shardBoardKey,
  shardJobId,
  shardLabel,
  shardPlan,
  shardQueueName,
  shardResultField,
  shardRunField,
  ShardBoard,
  ShardHalt,
  splitBySite,
  type ShardDoc,
  type ShardOutcome,
} from './shards.js';
import { sleep } from './sleep.js';
import { abortStatusOf, JobStop, type StopReason } from './job-stop.js';
import type { Inventory } from '../config/types.js';
import type { Plan, PlanContext } from '../tools/types.js';

/** How soon BullMQ tries again after a failed Redis command (its default is 15 s). */
const RUN_RETRY_DELAY_MS = 1000;

export interface WorkerHandle {
  readonly id: string;
  /** Takes new jobs (the entry queue); the site and merge queues have their own workers. */
  readonly worker: Worker;
  /** Sites served ('' = hosts without a site). */
  readonly sites: readonly string[];
  /** Graceful: stop taking jobs, let running ones finish within the grace, then interrupt them. */
  close(): Promise<void>;
}


export interface WorkerOptions {
  /**
   * Sites this worker serves (`castellan worker --site rack-a,rack-b`). Empty: hosts without a
   * site, as a worker always did. A job on hosts of other sites is split into shards that the
   * workers of those sites run.
   */
  readonly sites?: readonly string[] | undefined;
}

/** What the job functions of this file share within one worker process. */
interface Here {
  readonly id: string;
  /** Sites served, NO_SITE for hosts without one. */
  readonly served: readonly string[];
  /** Stop hooks of what runs here, by BullMQ job id. */
  readonly running: Map<string, (reason: StopReason, detail?: string) => void>;
  readonly heartbeat: Heartbeat;
  readonly registry: WorkerRegistry;
  readonly board: ShardBoard;
  flow(): FlowProducer;
}

export async function startWorker(ctx: QueueContext, connection: Redis, options: WorkerOptions = {}): Promise<WorkerHandle> {
  const id = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const served = options.sites?.length ? [...options.sites] : [NO_SITE];
  const prefix = `${ctx.keys.prefix}:bull`;
  let flow: FlowProducer | undefined;
  const heartbeat = new Heartbeat(connection, ctx.keys, { id, sites: served, pid: process.pid, host: hostname() }, ctx.settings.worker.heartbeatTtlMs, ctx.logger);
  const here: Here = {
    id,
    served,
    running: new Map(),
    heartbeat,
    registry: new WorkerRegistry(connection, ctx.keys, registryTiming(ctx.settings.worker)),
    board: new ShardBoard(connection, ctx.keys),
    flow: () => (flow ??= new FlowProducer({ connection, prefix })),
  };
  await ctx.cancel.listen();
  await heartbeat.start();

  const common = {
    connection,
    prefix,
    concurrency: ctx.settings.worker.concurrency,
    lockDuration: ctx.settings.worker.lockDurationMs,
    stalledInterval: ctx.settings.worker.stalledIntervalMs,
    // One redelivery after a stall: that delivery is how a crash gets noticed and reported
    // (`interrupted`), never re-executed (see processJob).
    maxStalledCount: 1,
    // BullMQ waits this long before fetching (or completing) again after a Redis command failed.
    // Its default, 15 s, came on top of a Sentinel failover's own ~10 s: a worker took no job for
    // up to 15 s after the new primary was there. Retries are cheap (commands wait in ioredis
    // until it reconnects) and their errors are not logged per retry (see the 'error' handler).
    runRetryDelay: RUN_RETRY_DELAY_MS,
    ...bullRetention(ctx.settings.retention),
  };
  // Every BullMQ delivery is listed (heartbeat + running list) while it runs here, so that a
  // reconciler elsewhere can tell whether its worker is still alive. The work starts beside the
  // listing's write and gets it as `listed`: it may read meanwhile, but awaits it before it
  // writes anything (and fails, having done nothing, when the listing failed).
  const tracked = <T>(job: Job, site: string | undefined, work: (listed: Promise<unknown>) => Promise<T>): Promise<T> => {
    const bullId = job.id ?? '';
    const doc = job.data as { id: string };
    const listed = heartbeat.running(bullId, { job: doc.id, ...(site !== undefined ? { site } : {}) });
    const run = work(listed);
    // Its failure is this function's answer once the listing settles; until then it must not
    // count as unhandled.
    run.catch(() => undefined);
    return listed.then((fresh) =>
      // A redelivery to this very worker while its first delivery still runs here (a lock
      // lost in a failover): the first delivery keeps the entry and takes it off when it ends.
      fresh ? run.finally(() => heartbeat.done(bullId).catch(() => undefined)) : run,
    );
  };
  const stopOnAbort = (job: Job, signal: AbortSignal | undefined): void => {
    signal?.addEventListener('abort', () => here.running.get(job.id ?? '')?.('cancel', 'cancelled by worker'), { once: true });
  };

  const worker = new Worker<QueuedJob>(
    ctx.queueName,
    async (job, token, signal) => {
      stopOnAbort(job, signal);
      return tracked(job, undefined, (listed) => processJob(ctx, here, job, listed, token));
    },
    common,
  );
  const shardWorkers = served.map(
    (site) =>
      new Worker<ShardDoc>(
        shardQueueName(ctx.queueName, site),
        async (job, _token, signal) => {
          stopOnAbort(job, signal);
          return tracked(job, site, (listed) => listed.then(() => runShard(ctx, here, job)));
        },
        common,
      ),
  );
  const merger = new Worker<{ id: string; sites: string[] }>(mergeQueueName(ctx.queueName), async (job) => mergeShards(ctx, job), common);
  const all = [worker, ...shardWorkers, merger];
  for (const w of all) {
    w.on('lockRenewalFailed', (jobIds: string[]) => {
      for (const jobId of jobIds) {
        const stop = here.running.get(jobId);
        if (!stop) continue;
        // With claims confirmed on a replica before every step (redis.confirm_replicas > 0), a
        // lost BullMQ lock cannot make a step run twice: a second delivery finds the job
        // `running` (the confirmed claim) and leaves it to this live worker, or — only if no
        // claim of ours was ever confirmed, so nothing ran yet — takes it with its own token,
        // and our next claim check finds that token and stops us before any step. So the run
        // goes on (a failover often costs the lock) and ends with its token guard. Without
        // replicas nothing is confirmed: stop rather than risk running beside another delivery.
        if (ctx.durable.enabled) {
          ctx.logger.warn({ jobId }, 'this worker lost the BullMQ job lock; the run goes on: its claim is confirmed before every step, so no other delivery can run one');
          continue;
        }
        stop('lock_lost', 'this worker lost the job lock');
      }
    });
    w.on('error', (err) => {
      // Outages are logged once per state change by the connection (src/redis.ts), not per retry.
      if (!isRedisUnavailable(err)) ctx.logger.warn({ err: errorMessage(err) }, 'worker error');
    });
  }
  // BullMQ gave up on a job (for example "stalled more than allowable limit") without our
  // processor finishing it: a job that never started goes back to the queue, one that may have
  // run ends (queues/hand-back.ts); no record stays `queued` or `running` forever. (A shard that
  // gave up is the parent's business: it merges what it has.)
  worker.on('failed', (job: Job<QueuedJob> | undefined, err: Error) => {
    if (job) void onGivenUp(ctx, job, errorMessage(err));
  });
  merger.on('failed', (job: Job<{ id: string }> | undefined, err: Error) => {
    if (job) void finalizeOrphan(ctx, job.data.id, errorMessage(err)).catch(() => undefined);
  });
  await Promise.all(all.map((w) => w.waitUntilReady()));
  const reconciler = reconcileLoop(ctx, here.registry, here.board, id, Math.max(250, Math.min(1000, ctx.settings.worker.stalledIntervalMs)));

  return {
    id,
    worker,
    sites: served,
    async close() {
      const closing = Promise.all(all.map((w) => w.close()));
      const grace = setTimeout(() => {
        for (const stop of here.running.values()) stop('shutdown', 'worker shutting down');
      }, ctx.settings.worker.shutdownGraceMs);
      await closing;
      clearTimeout(grace);
      await reconciler.stop();
      await heartbeat.stop();
      await flow?.close();
      await ctx.cancel.close();
    },
  };
}

/** `listed`: this delivery's entry in the running list, awaited before anything is written. */
async function processJob(ctx: QueueContext, here: Here, job: Job<QueuedJob>, listed: Promise<unknown>, token?: string): Promise<{ state: JobState }> {
  const jobId = job.data.id;
  // The record and its submission marker in one wait for Redis (the marker is read after the
  // record, as it was when asked only for a queued record), beside the listing's write.
  const [found, unconfirmed] = await Promise.all([ctx.store.get(jobId), isUnconfirmed(ctx, jobId), listed]);
  let record = found;
  if (!record) return { state: 'failed' };
  // Never start a job its submitter has not confirmed: it may yet be ended "never queued".
  // Read again only after waiting for that (a 1000-host record is ~0.2 MB of JSON to decode).
  if (record.state === 'queued' && unconfirmed) {
    if (!(await settled(ctx, jobId, ctx.settings.submitGraceMs))) return { state: (await ctx.store.state(jobId)) ?? 'failed' };
    record = (await ctx.store.get(jobId)) ?? record;
  }
  const runNow = async (current: JobRecord): Promise<{ state: JobState }> => {
    const held = await holdForWindow(ctx, current, job, token);
    // Leaving a window wait is the one write holdForWindow makes and goes on after.
    return held ?? execute(ctx, here, current.state === 'waiting_window' ? ((await ctx.store.get(jobId)) ?? current) : current, false);
  };

  // A second delivery to the worker whose first delivery still runs here, the record found
  // `queued` because that one's claim was lost with the old primary: the first one writes its
  // claim again (or gives the job its ending) itself. Running a second copy beside it would
  // overwrite its stop hook and, when it lost the race for the claim, release the host locks
  // the first still holds.
  if ((record.state === 'queued' || record.state === 'waiting_window') && here.running.has(record.id)) {
    ctx.logger.info({ jobId: record.id }, 'job redelivered to the worker that still runs it (its claim was lost in a Redis failover): leaving it to that run');
    return { state: record.state };
  }
  switch (record.state) {
    case 'awaiting_approval': {
      // The delayed BullMQ job fired at the approval deadline: nobody decided in time.
      const reason = `no approval within ${Math.round(ctx.settings.approvals.expiryMs / 60_000)} min`;
      const t = await endJob(ctx, record, 'expired', { reason });
      if (t.ended) return { state: 'expired' };
      const now = await ctx.store.get(jobId);
      if (now?.state !== 'queued') return { state: now?.state ?? 'failed' };
      return runNow(now);
    }
    case 'queued':
    case 'waiting_window':
      return runNow(record);
    case 'running':
      return redelivered(ctx, here, record);
    default:
      // Denied, cancelled, expired…: already final; the delivery only closes the BullMQ job.
      return { state: record.state };
  }
}

async function redelivered(ctx: QueueContext, here: Here, record: JobRecord): Promise<{ state: JobState }> {
  // Split by site: the shards and the merge carry on; this delivery only closes the entry job.
  if (await mergeQueueJobExists(ctx, record.id)) return { state: record.state };
  // Redelivered to this worker while it still runs the first delivery (its BullMQ lock was
  // lost, e.g. in a failover): the run goes on here; never reconcile our own live run.
  if (here.running.has(record.id)) {
    ctx.logger.info({ jobId: record.id }, 'job redelivered to the worker that still runs it: leaving it running');
    return { state: record.state };
  }
  // Its worker may still be running it (a stall after a long Redis outage, not a crash): let
  // it finish rather than report it interrupted under its feet.
  if (record.worker && record.worker !== here.id && !(await here.registry.isGone(record.worker))) {
    ctx.logger.info({ jobId: record.id, owner: record.worker }, 'job redelivered while its worker is alive: leaving it to that worker');
    return { state: record.state };
  }
  const unknownHosts = inPlanOrder(record, (await ctx.ledger.unfinished(record.id)).map((e) => e.host));
  if (record.risk === 'read' && record.attempt <= ctx.settings.worker.readRetries && !record.cancel) {
    ctx.logger.info({ jobId: record.id, attempt: record.attempt + 1 }, 'read job redelivered after a stall: running it again');
    return execute(ctx, here, record, true);
  }
  if (record.plan.resumable === true && !record.cancel) {
    // Orchestrations resume per subject: the runner reuses what the ledger shows finished.
    ctx.logger.info({ jobId: record.id, unknownHosts }, 'resumable job redelivered after a stall: resuming from the ledger');
    return execute(ctx, here, record, true);
  }
  const state = await reconcileOrphan(ctx, record, `the worker running this job (${record.worker ?? 'unknown'}) stopped before it finished`);
  return { state };
}

/**
 * A host lock held by another delivery of this same job, one the record does not name as the
 * delivery this one replaces: it took the locks before its run token reached the record (locks
 * come first) and its worker died, or a failover lost its `running` but not its locks. Nobody
 * renews them, but they lived on for their TTL (60 s) while this delivery waited for its own
 * job. Taken over once that delivery's worker is gone (its run token names it: runToken) and
 * what it may have left running on the hosts is found and stopped (reconcileDelivery); never
 * while its worker may be alive, nor while a host it may have a run on cannot be looked at.
 */
async function takeOverSibling(ctx: QueueContext, here: Here, record: JobDoc, sibling: string, hosts: readonly string[], publisher: ThrottledPublisher): Promise<boolean> {
  const worker = ownerWorker(sibling);
  // An older version's token: nothing says whose it is; its TTL is waited out.
  if (worker === undefined) return false;
  // This worker runs one delivery of a job at a time (processJob): an earlier one here is over.
  if (worker !== here.id) {
    if (!(await here.registry.isGone(worker))) return false;
    const left = await reconcileDelivery(ctx, record, worker, hosts);
    if (left.unchecked.length > 0) {
      ctx.logger.warn({ jobId: record.id, sibling, unchecked: left.unchecked }, "an earlier delivery of this job left host locks, but what it may still run could not be checked on every host; waiting for its locks to expire");
      return false;
    }
    if (left.notes.length > 0) publisher.emit({ type: 'gate', step: 'locks', subject: 'host locks', text: `an earlier delivery's runs checked: ${left.notes.join('; ')}` });
  }
  ctx.logger.info({ jobId: record.id, sibling, worker }, 'taking over the host locks an earlier delivery of this job left (its worker is gone)');
  return true;
}

async function mergeQueueJobExists(ctx: QueueContext, jobId: string): Promise<boolean> {
  const { Queue } = await import('bullmq');
  const merge = new Queue(mergeQueueName(ctx.queueName), { connection: ctx.redis, prefix: `${ctx.keys.prefix}:bull` });
  try {
    return (await merge.getJob(jobId)) !== undefined;
  } finally {
    await merge.close();
  }
}

async function execute(ctx: QueueContext, here: Here, record: JobRecord, isRetry: boolean): Promise<{ state: JobState }> {
  const { running, id: workerId } = here;
  const m = metrics();
  const tool = ctx.tools.get(record.tool);
  const publisher = new ThrottledPublisher(ctx.events, record.id, undefined, undefined, (ctx.settings.limits ?? DEFAULT_LIMITS).outputPerJobBytes);
  const halt = new JobStop();
  const stop = (reason: StopReason, detail?: string): void => halt.stop(reason, detail);
  running.set(record.id, stop);
  const unwatch = ctx.cancel.watch(record.id, (reason) => stop('cancel', reason));
  const deadline = setTimeout(() => stop('timeout', `job timed out after ${Math.round(record.timeoutMs / 1000)}s`), record.timeoutMs);
  let lockedHosts: readonly string[] = [];
  let renew: NodeJS.Timeout | undefined;
  // This delivery's run token, and its claim (steps confirmed; whether another delivery took over).
  const run = runToken(workerId);
  const owner = lockOwner(record.id, run);
  const claim = new DeliveryClaim(ctx, halt, { onLockWait: (host, holder) => publisher.emit({ type: 'lock_wait', host, holder }), log: { jobId: record.id } });
  // Steps' checkpoints under way (queues/claims.ts confirmStep): awaited before BullMQ hears back.
  const checkpoints: Promise<unknown>[] = [];
  m.activeJobs.inc();

  try {
    if (!tool) return await fail(ctx, record, `tool '${record.tool}' is not known to this worker`);
    if (record.cancel) return await finishCancelled(ctx, record, record.cancel.reason);
    if (!isRetry && record.approvalsRequired > 0) {
      // The state field alone is not proof: the approvals must be in the vote records.
      const check = checkRecordedApprovals({
        job: record,
        votes: record.votes.map((v) => ({ subject: v.subject, decision: v.decision, origin: v.origin, roles: v.roles, planHash: v.planHash, at: v.at })),
        allowSelfApproval: ctx.settings.approvals.allowSelfApproval,
      });
      if (!check.ok) return await refuse(ctx, record, `denied: not approved as required: ${check.reason}`, isRetry);
      // Every vote that let it run has its decision record before anything runs.
      await auditMissingDecisions(ctx, record);
    }

    // Re-plan with the current inventory. An approved plan must be exactly what runs.
    const inventory = await ctx.inventory.current();
    const planCtx = ctx.planContext(inventory);
    let plan = record.plan;
    if (tool.plan) {
      let fresh;
      try {
        fresh = tool.plan(record.input as never, planCtx);
      } catch (err) {
        return await refuse(ctx, record, `the plan can no longer be built: ${errorMessage(err)}`, isRetry);
      }
      const binding = await bindPlan(fresh, inventory, (inv, host) => ctx.targetFor(inv, host), ctx.executor);
      const freshHash = boundPlanHash(fresh, binding);
      if (freshHash !== record.planHash) {
        if (record.approvalsRequired > 0) {
          const changes = describeChanges({ plan: record.plan, binding: record.binding }, { plan: fresh, binding });
          return await refuse(ctx, record, `denied: plan changed since it was approved: ${changes.join('; ')}. Submit it again for a fresh approval.`, isRetry);
        }
        plan = fresh;
      }
    }

    // Hosts of other sites (or of several): split into one shard per site, each run by a
    // worker of its site; the merge queue's job ends the one job people see.
    const split = splitBySite(plan, inventory);
    const [only] = split.keys();
    if (split.size > 1 || (only !== undefined && !here.served.includes(only))) return await dispatch(ctx, here, record, plan, split, inventory);

    if (record.risk !== 'read' && plan.hosts.length > 0) {
      // Owned by this delivery (queues/host-locks.ts). A redelivery takes over the locks of the
      // delivery it replaces, judged gone: that one can no longer release them, and must not
      // release ours if it runs again.
      const previous = isRetry ? await ctx.redis.hget(ctx.keys.job(record.id), 'run') : null;
      const got = await ctx.locks.acquire(
        owner,
        plan.hosts,
        halt.signal,
        (host, holder) => {
          publisher.emit({ type: 'lock_wait', host, holder });
        },
        previous ? lockOwner(record.id, previous) : '',
        (sibling) => takeOverSibling(ctx, here, record, sibling, plan.hosts, publisher),
      );
      if (!got) return await finishStopped(ctx, record, halt.reason, halt.detail, isRetry);
      lockedHosts = plan.hosts;
      renew = setInterval(() => {
        ctx.locks.renew(owner, lockedHosts).then(
          (renewal) => {
            // Someone else holds one of our hosts now: running beside them is exactly what the
            // lock exists to prevent, so stop (remote commands are killed) and say why.
            if (!renewal.held) stop('lock_lost', `lost the lock on ${renewal.host} (now held by ${renewal.holder}); stopped so two jobs never run on one host`);
          },
          // Redis unreachable: keep running (the lock's TTL outlasts short outages) and retry.
          (err: unknown) => ctx.logger.warn({ jobId: record.id, err: errorMessage(err) }, 'host lock renewal failed; retrying'),
        );
      }, ctx.locks.renewEveryMs);
    }

    const attempt = record.risk === 'read' ? record.attempt + 1 : 0;
    const startedAt = new Date().toISOString();
    // Before each step touches a host, its claim must be durable (queues/claims.ts).
    const delivery: Delivery = { jobId: record.id, run, attempt, worker: workerId, startedAt, locked: () => lockedHosts };
    let preclaimed: PreClaim | undefined;
    if (!isRetry) {
      // `running` and the first step's claim in one wait for Redis (queues/claims.ts startRun).
      const started = await startRun(ctx, delivery, { startedAt, worker: workerId, attempt }, tool.answer ? undefined : firstClaimOf(plan));
      const t = started.transition;
      if (!t.ok) {
        // Another delivery took the job meanwhile: the host locks (the job's) are its own now.
        if (t.current === 'running') claim.superseded = true;
        return { state: t.current ?? 'failed' };
      }
      preclaimed = started.preclaimed;
      if (record.queuedAt) m.queueWait.observe((Date.now() - Date.parse(record.queuedAt)) / 1000);
    } else {
      await ctx.store.update(record.id, { worker: workerId, attempt, run });
    }
    // From here on its progress is written only while this delivery holds the job.
    const guard = guardOf(ctx.keys, delivery);
    publisher.guardWith(guard);
    publisher.emit({ type: 'state', state: 'running' });
    const confirm = (step: string, hosts: readonly string[]): Promise<string | undefined> => claim.confirm(delivery, step, hosts);

    let result: JobResult;
    if (tool.answer) {
      const data = ctx.redactor.scrubDeep(tool.answer(record.input as never, planCtx));
      result = { hosts: [], steps: [], folded: [], data };
    } else {
      const outcome = await runPlan({ ...runContextFor(ctx, { jobId: record.id, attempt, worker: workerId, record, plan, inventory, planContext: planCtx, publisher, halt, checkpoints, guard }), confirmClaim: confirm, preclaimed });
      for (const h of outcome.hosts) m.hostResults.inc({ status: h.status });
      const { hosts } = outcome;
      let data: unknown;
      if (tool.summarize) {
        const byStep = new Map(outcome.steps.map((s) => [s.id, new Map(s.results.map((r) => [r.host, r]))]));
        try {
          data = ctx.redactor.scrubDeep(tool.summarize(record.input as never, byStep, planCtx));
        } catch (err) {
          data = { summary_error: errorMessage(err) };
        }
      }
      // Bounded as stored (limits.output_per_host / output_per_job); `data` saw all of it.
      result = boundResult(
        {
          hosts,
          steps: outcome.steps,
          folded: foldOutputs(hosts.map((h) => ({ host: h.host, status: h.status, text: foldText(h) }))),
          data,
        },
        ctx.settings.limits ?? DEFAULT_LIMITS,
      );
    }

    // Sent now, awaited after the ending: the ending goes out behind the last events on the
    // same connection, so followers still read them before the final state.
    const drained = publisher.drain();
    if (claim.superseded) {
      await drained;
      // Another delivery holds the job on the current primary: it is that one's to run and end.
      ctx.logger.warn({ jobId: record.id, why: halt.detail }, 'job claim lost in a Redis failover; left to the delivery that holds it');
      return { state: (await ctx.store.state(record.id)) ?? 'failed' };
    }
    // Stopped before any step was sent to a host (its claim not confirmed, or the job lock lost
    // in a failover): nothing ran, the job failed — it may be submitted again, and the person
    // reading it must know that nothing ran anywhere. After some steps ran: interrupted, like
    // any stopped run.
    const notStarted = (halt.reason === 'unconfirmed' || halt.reason === 'lock_lost') && claim.dispatched === 0;
    const state = notStarted ? 'failed' : finalState(result.hosts, halt.reason);
    const reason = notStarted
      ? `not started: ${halt.detail}; nothing was run`
      : halt.reason === 'unconfirmed'
        ? `stopped: ${halt.detail}; no later step was run`
        : halt.reason
          ? halt.detail
          : summaryLine(plan.hosts, result.hosts);
    const t = await endJob(ctx, record, state, { reason, result, from: ['running'], run });
    await drained;
    if (t.ended) m.jobDuration.observe({ tool: record.tool }, (Date.now() - Date.parse(startedAt)) / 1000);
    return { state: t.ended ? state : (t.current ?? 'failed') };
  } catch (err) {
    if (err instanceof DeliverySuperseded) {
      // A zombie: this delivery was replaced (judged gone while paused, or its stalled BullMQ
      // job re-delivered) and a write of its run was refused. Stop here: the other delivery
      // runs and ends the job, and holds its locks.
      claim.superseded = true;
      stop('unconfirmed', err.message);
      await publisher.drain();
      ctx.logger.warn({ jobId: record.id, why: err.message }, 'this delivery was replaced by another; stopped, leaving the job to it');
      return { state: (await ctx.store.state(record.id)) ?? 'failed' };
    }
    ctx.logger.error({ jobId: record.id, err: errorMessage(err) }, 'job failed unexpectedly');
    await publisher.drain();
    const current = await ctx.store.state(record.id);
    if (current === 'running') {
      const unknown = inPlanOrder(record, (await ctx.ledger.unfinished(record.id)).map((e) => e.host));
      const reason = `internal error: ${errorMessage(err)}${unknown.length ? `; outcome unknown on: ${unknown.join(', ')}` : ''}`;
      await endJob(ctx, record, 'interrupted', { reason, from: ['running'], run });
      return { state: 'interrupted' };
    }
    if (current === 'queued') return fail(ctx, record, `internal error: ${errorMessage(err)}`);
    return { state: current ?? 'failed' };
  } finally {
    clearTimeout(deadline);
    if (renew) clearInterval(renew);
    // Our own locks only (a delivery that took over has its own). Superseded: another delivery
    // holds the job; what is left of ours expires.
    if (lockedHosts.length && !claim.superseded) await ctx.locks.release(owner, lockedHosts).catch(() => undefined);
    unwatch();
    // A second delivery of this job to this worker (a failover) may have its own entry now.
    if (running.get(record.id) === stop) running.delete(record.id);
    m.activeJobs.dec();
    await publisher.drain();
    await Promise.all(checkpoints);
  }
}

function foldText(h: HostOutcome): string {
  const out = h.stdout.replace(/\s+$/, '');
  if (h.status === 'ok') return out;
  // The executor's error for a plain non-zero exit is "exit code N": the prefix says it already.
  const error = h.error === `exit code ${h.exitCode}` ? undefined : h.error;
  const detail = [error, h.stderr.replace(/\s+$/, ''), out].filter((s) => s).join('\n');
  return h.exitCode !== null ? `exit ${h.exitCode}${detail ? `: ${detail}` : ''}` : detail;
}

/** The runner's context for one job, or one site's shard of it, on this worker. */
function runContextFor(
  ctx: QueueContext,
  o: { jobId: string; attempt: number; worker: string; record: JobRecord; plan: Plan; inventory: Inventory; planContext: PlanContext; publisher: ThrottledPublisher; halt: JobStop; checkpoints?: Promise<unknown>[]; guard: RunGuard },
): RunContext {
  return {
    jobId: o.jobId,
    attempt: o.attempt,
    worker: o.worker,
    subject: o.record.requester.subject,
    tool: o.record.tool,
    approvalsRequired: o.record.approvalsRequired,
    plan: o.plan,
    targetFor: (host) => ctx.targetFor(o.inventory, host),
    executor: ctx.executor,
    ledger: ctx.ledger,
    guard: o.guard,
    audit: ctx.audit,
    publisher: o.publisher,
    signal: o.halt.signal,
    window: o.plan.window ?? ctx.settings.window,
    redactor: ctx.redactor,
    abortStatus: () => abortStatusOf(o.halt.reason),
    rollbackSignal: () => o.halt.rollbackSignal(),
    tools: ctx.tools,
    planContext: o.planContext,
    // Each step's finish and audit records confirmed on a replica (none sent without replicas),
    // in the background: the next step and the job's ending do not wait for it (with no replica
    // left that would add redis.confirm_within to every step); the delivery awaits them all
    // before it hands the job back to BullMQ, as it does its ending.
    checkpoint:
      ctx.durable.enabled && o.checkpoints
        ? (step, finished, audit) => {
            o.checkpoints?.push(confirmStep(ctx, o.jobId, step, finished, audit).catch(() => undefined));
            return Promise.resolve();
          }
        : undefined,
  };
}

function finalState(hosts: readonly HostOutcome[], stop: StopReason | undefined): FinalState {
  if (stop === 'cancel') return 'cancelled';
  if (stop === 'shutdown' || stop === 'lock_lost' || stop === 'crash' || stop === 'halt' || stop === 'unconfirmed') return 'interrupted';
  if (stop === 'timeout') return 'failed';
  if (hosts.length === 0) return 'succeeded';
  const ok = hosts.filter((h) => h.status === 'ok').length;
  if (ok === hosts.length) return 'succeeded';
  return ok === 0 ? 'failed' : 'partially_failed';
}

/** The reason a finished job records: its host counts, or that it needed no host at all. */
function summaryLine(planned: readonly string[], hosts: readonly HostOutcome[]): string {
  // Inventory tools plan no host: their live line reads "» succeeded: answered from the inventory".
  if (planned.length === 0) return 'answered from the inventory';
  const counts = new Map<HostStatus, number>();
  for (const h of hosts) counts.set(h.status, (counts.get(h.status) ?? 0) + 1);
  return [...counts].map(([s, n]) => `${n} ${s.replaceAll('_', ' ')}`).join(', ') || 'no host answered';
}

async function fail(ctx: QueueContext, record: JobRecord, reason: string): Promise<{ state: JobState }> {
  await endJob(ctx, record, 'failed', { reason });
  return { state: 'failed' };
}

async function refuse(ctx: QueueContext, record: JobRecord, reason: string, isRetry: boolean): Promise<{ state: JobState }> {
  const to: FinalState = isRetry ? 'failed' : 'denied';
  await endJob(ctx, record, to, { reason });
  return { state: to };
}

async function finishCancelled(ctx: QueueContext, record: JobRecord, reason?: string): Promise<{ state: JobState }> {
  await endJob(ctx, record, 'cancelled', { reason: reason ?? 'cancelled' });
  return { state: 'cancelled' };
}

/** Stopped while waiting for its host locks: this delivery sent nothing to any host. */
async function finishStopped(ctx: QueueContext, record: JobRecord, stop: StopReason | undefined, detail: string, isRetry: boolean): Promise<{ state: JobState }> {
  if (stop === 'cancel') return finishCancelled(ctx, record, detail);
  const to: FinalState = isRetry ? 'interrupted' : 'failed';
  // A first delivery that never got its hosts ran nothing anywhere: say so, as a claim that
  // was never confirmed does. (A retry's earlier delivery may have: its reason stays as is.)
  await endJob(ctx, record, to, { reason: isRetry ? detail : `not started: ${detail}; nothing was run` });
  return { state: to };
}

/**
 * Destructive jobs run only inside the maintenance windows of their hosts. Outside: `refuse`
 * ends the job denied; `wait` parks it as `waiting_window` and moves the BullMQ job back to
 * delayed until the next opening (looking again at least every `recheckMs`, since the config
 * or the clock may change). Returns undefined when the job may run now (a parked job is put
 * back to `queued` first).
 */
async function holdForWindow(ctx: QueueContext, record: JobRecord, job: Job<QueuedJob>, token: string | undefined): Promise<{ state: JobState } | undefined> {
  const settings = ctx.settings.maintenance;
  if (record.risk !== 'destructive' || settings.windows.length === 0) return leaveWindowWait(ctx, record);
  const inventory = await ctx.inventory.current();
  const now = (ctx.settings.clock ?? Date.now)();
  const planCtx = ctx.planContext(inventory);
  const decision = windowDecision(record.plan.hosts, settings.windows, (e) => planCtx.resolve(e), now);
  if (decision.kind !== 'closed') return leaveWindowWait(ctx, record);
  if (settings.outside === 'refuse' || decision.opensAt === undefined) {
    const to: FinalState = 'denied';
    await endJob(ctx, record, to, { reason: `refused: ${decision.detail}`, from: [record.state] });
    return { state: to };
  }
  const reason = `waiting for its maintenance window: ${decision.detail}`;
  if (record.state !== 'waiting_window') {
    const t = await ctx.store.transition(record.id, 'waiting_window', { reason }, ['queued']);
    if (!t.ok) return { state: t.current ?? 'failed' };
    await ctx.events.publish(record.id, { type: 'state', state: 'waiting_window', reason });
  }
  const wait = Math.max(250, Math.min(decision.opensAt - now, settings.recheckMs));
  await job.moveToDelayed(Date.now() + wait, token);
  throw new DelayedError();
}

async function leaveWindowWait(ctx: QueueContext, record: JobRecord): Promise<undefined> {
  if (record.state !== 'waiting_window') return undefined;
  const t = await ctx.store.transition(record.id, 'queued', { reason: 'its maintenance window is open' }, ['waiting_window']);
  if (t.ok) await ctx.events.publish(record.id, { type: 'state', state: 'queued', reason: 'its maintenance window is open' });
  return undefined;
}


// --- site shards (queues/shards.ts) ---------------------------------------------------------

function siteCount(split: ReadonlyMap<string, readonly string[]>): string {
  return [...split].map(([site, hosts]) => `${shardLabel(site)} (${hosts.length} host${hosts.length === 1 ? '' : 's'})`).join(', ');
}

/**
 * Split the job into a flow: one child per site on that site's queue, a parent on the merge
 * queue. Job ids are fixed (the job's, the shard's), so a second dispatch of the same job (a
 * redelivery after this worker died mid-way) adds nothing. The record stays `queued` until a
 * shard starts; it says which sites have no live worker to start theirs.
 */
async function dispatch(ctx: QueueContext, here: Here, record: JobRecord, plan: JobDoc['plan'], split: ReadonlyMap<string, readonly string[]>, inventory: Inventory): Promise<{ state: JobState }> {
  // Already split by an earlier delivery (its worker died before closing the entry job).
  if (await mergeQueueJobExists(ctx, record.id)) return { state: record.state };
  const sites = [...split.keys()];
  const attempt = record.risk === 'read' ? record.attempt + 1 : 0;
  const keep = bullRetention(ctx.settings.retention);
  await here.flow().add({
    name: record.tool,
    queueName: mergeQueueName(ctx.queueName),
    data: { id: record.id, sites },
    opts: { jobId: record.id, ...keep },
    children: sites.map((site) => ({
      name: record.tool,
      queueName: shardQueueName(ctx.queueName, site),
      data: { id: record.id, site, sites, plan: shardPlan(plan, site, inventory), attempt } satisfies ShardDoc,
      // A shard whose worker died twice fails in BullMQ; the parent still merges the others.
      opts: { jobId: shardJobId(record.id, site), ignoreDependencyOnFailure: true, ...keep },
    })),
  });
  const served = await here.registry.sitesServed();
  const waiting = sites.filter((s) => !served.has(s));
  const reason = `split by site into ${sites.length} shard${sites.length === 1 ? '' : 's'}: ${siteCount(split)}${waitingPhrase(waiting)}`;
  await ctx.store.update(record.id, { reason });
  await ctx.events.publish(record.id, { type: 'state', state: 'queued', reason });
  ctx.logger.info({ jobId: record.id, sites, waiting }, 'job split by site');
  return { state: 'queued' };
}

function waitingPhrase(waiting: readonly string[]): string {
  if (waiting.length === 0) return '';
  const how = (s: string): string => (s === NO_SITE ? 'castellan worker' : `castellan worker --site ${s}`);
  return `; waiting for a worker of ${waiting.map(shardLabel).join(', ')}: none is running (start one: ${waiting.map(how).join('; ')})`;
}

/** A shard started: the job's reason no longer names its site as waiting (others may still). */
async function refreshSiteWait(ctx: QueueContext, here: Here, doc: ShardDoc): Promise<void> {
  const record = await ctx.store.get(doc.id);
  if (!record?.reason?.startsWith('split by site')) return;
  const [started, served] = await Promise.all([here.board.startedSites(doc.id), here.registry.sitesServed()]);
  const waiting = doc.sites.filter((s) => !started.has(s) && !served.has(s));
  const base = record.reason.split('; waiting for a worker of ')[0] ?? record.reason;
  const reason = `${base}${waitingPhrase(waiting)}`;
  if (reason !== record.reason) await ctx.store.update(doc.id, { reason });
}

/** A shard's result when it did not run at all. */
function notStarted(doc: ShardDoc, worker: string, why: string, status: HostStatus, stop?: ShardOutcome['stop']): ShardOutcome {
  const hosts = doc.plan.hosts.map((h) => ({ ...notRunOutcome(h, why, status) }));
  return { site: doc.site, worker, hosts, steps: [], stop };
}

function notRunOutcome(host: string, error: string, status: HostStatus): HostOutcome {
  return { host, status, step: '', exitCode: null, signal: null, stdout: '', stderr: '', truncated: false, durationMs: 0, error };
}

/** One site's part of a split job: its hosts, every batch, a barrier after each (global budget). */
async function runShard(ctx: QueueContext, here: Here, job: Job<ShardDoc>): Promise<ShardOutcome> {
  const doc = job.data;
  const label = shardLabel(doc.site);
  const bullId = job.id ?? shardJobId(doc.id, doc.site);
  const record = await ctx.store.get(doc.id);
  if (!record || isFinal(record.state)) return notStarted(doc, here.id, `not started: the job already ended (${record?.state ?? 'gone'})`, 'skipped');
  const started = await here.board.start(doc.id, doc.site, here.id);
  let attempt = doc.attempt;
  // This delivery's run token (the board's `run:<site>`), confirmed before each step.
  const run = runToken(here.id);
  const owner = lockOwner(doc.id, run);
  // The shard delivery this one replaces (its token is still on the board): its locks are taken over.
  const previousRun = started.first ? null : await ctx.redis.hget(shardBoardKey(ctx.keys, doc.id), shardRunField(doc.site));
  if (!started.first) {
    // Redelivered to this worker while its first delivery still runs here (the BullMQ lock was
    // lost in a failover): never a second copy beside it; its outcome is this one's.
    if (here.running.has(bullId)) {
      ctx.logger.info({ jobId: doc.id, site: doc.site }, 'shard redelivered to the worker that still runs it: waiting for that run');
      while (here.running.has(bullId)) await sleep(500);
    }
    // The shard had finished (its BullMQ completion was lost): its outcome stands.
    const finished = await here.board.result(doc.id, doc.site);
    if (finished) return finished;
    // A redelivery: the worker that started this shard stopped (a crash, or a stall).
    if (started.previous && started.previous !== here.id) {
      // Its worker may still be running it (a stall after a long Redis outage, not a crash):
      // stand by until it reports (its outcome is kept on the board) or is gone.
      let logged = false;
      while (!(await here.registry.isGone(started.previous))) {
        const done = await here.board.result(doc.id, doc.site);
        if (done) return done;
        if (!logged) ctx.logger.info({ jobId: doc.id, site: doc.site, owner: started.previous }, 'shard redelivered while its worker is alive: standing by');
        logged = true;
        await new Promise((r) => setTimeout(r, 1000));
      }
      const done = await here.board.result(doc.id, doc.site);
      if (done) return done;
    }
    if (record.risk === 'read' && !record.cancel && attempt <= ctx.settings.worker.readRetries) {
      attempt += 1;
    } else if (record.plan.resumable !== true || record.cancel) {
      const checked = await reconcileShardHosts(ctx, record, doc, here.board);
      const why = `the worker running ${label} (${started.previous ?? 'unknown'}) stopped before it finished`;
      await here.board.halt(doc.id, why);
      return {
        site: doc.site,
        worker: here.id,
        hosts: doc.plan.hosts.map((h) => notRunOutcome(h, checked.unknown.includes(h) ? `outcome unknown: ${why}` : 'not started: its worker stopped', checked.unknown.includes(h) ? 'failed' : 'skipped')),
        steps: [],
        stop: { reason: 'crash', detail: why },
        unknownHosts: checked.unknown,
        notes: checked.notes,
      };
    }
  }

  const publisher = new ThrottledPublisher(ctx.events, doc.id);
  // The other shards stop at their next barrier instead of waiting for this one.
  const halt = new JobStop((reason, detail) => {
    if (reason !== 'halt') void here.board.halt(doc.id, `${label}: ${detail}`).catch(() => undefined);
  });
  const stop = (reason: StopReason, detail?: string): void => halt.stop(reason, detail);
  here.running.set(bullId, stop);
  const unwatch = ctx.cancel.watch(doc.id, (reason) => stop('cancel', reason));
  if (record.cancel) stop('cancel', record.cancel.reason ?? 'cancelled');
  const since = record.startedAt ? Date.parse(record.startedAt) : Date.now();
  const deadline = setTimeout(() => stop('timeout', `job timed out after ${Math.round(record.timeoutMs / 1000)}s`), Math.max(0, since + record.timeoutMs - Date.now()));
  const plan = doc.plan;
  let lockedHosts: readonly string[] = [];
  let renew: NodeJS.Timeout | undefined;
  // The shard delivery's claim (steps confirmed; whether another delivery of the shard took over).
  const claim = new DeliveryClaim(ctx, halt, { onLockWait: (host, holder) => publisher.emit({ type: 'lock_wait', host, holder }), log: { jobId: doc.id, site: doc.site } });
  const checkpoints: Promise<unknown>[] = [];
  try {
    if (record.risk !== 'read' && plan.hosts.length > 0) {
      const got = await ctx.locks.acquire(
        owner,
        plan.hosts,
        halt.signal,
        (host, holder) => publisher.emit({ type: 'lock_wait', host, holder }),
        previousRun ? lockOwner(doc.id, previousRun) : '',
        (sibling) => takeOverSibling(ctx, here, record, sibling, plan.hosts, publisher),
      );
      if (!got) return notStarted(doc, here.id, `not started: ${halt.detail || 'stopped'}`, abortStatusOf(halt.reason), { reason: halt.reason ?? 'cancel', detail: halt.detail });
      lockedHosts = plan.hosts;
      renew = setInterval(() => {
        ctx.locks.renew(owner, lockedHosts).then(
          (renewal) => {
            if (!renewal.held) stop('lock_lost', `lost the lock on ${renewal.host} (now held by ${renewal.holder}); stopped so two jobs never run on one host`);
          },
          (err: unknown) => ctx.logger.warn({ jobId: doc.id, err: errorMessage(err) }, 'host lock renewal failed; retrying'),
        );
      }, ctx.locks.renewEveryMs);
    }
    const startedAt = new Date().toISOString();
    const ledgerAttempt = record.risk === 'read' ? attempt : 0;
    const t = await ctx.store.transition(doc.id, 'running', { startedAt, worker: here.id, attempt: ledgerAttempt }, ['queued']);
    await refreshSiteWait(ctx, here, doc).catch(() => undefined);
    if (t.ok) {
      publisher.emit({ type: 'state', state: 'running', reason: `${label} started on worker ${here.id}` });
    } else if (t.current === 'running') {
      publisher.emit({ type: 'gate', step: 'shards', subject: label, text: `started on worker ${here.id}` });
    } else {
      return notStarted(doc, here.id, `not started: the job is ${t.current ?? 'gone'}`, 'skipped');
    }
    // The shard is this delivery's: a first delivery takes it only if no other has; a
    // redelivery that goes on (a read retry, a resumed run) found its worker gone and takes over.
    const taken = started.first ? await here.board.claimRun(doc.id, doc.site, run) : (await here.board.takeRun(doc.id, doc.site, run), { ours: true });
    if (!taken.ours) {
      ctx.logger.warn({ jobId: doc.id, site: doc.site, holder: taken.holder }, 'shard already taken by another delivery; left to it');
      claim.superseded = true;
      return notStarted(doc, here.id, 'not started: another delivery runs this shard', 'skipped');
    }
    // Before each step touches a host, the shard's claim must be durable (queues/claims.ts).
    const delivery: Delivery = { jobId: doc.id, run, attempt: ledgerAttempt, worker: here.id, startedAt, locked: () => lockedHosts, shard: { site: doc.site } };
    // From here on the shard's progress is written only while this delivery holds it.
    const guard = guardOf(ctx.keys, delivery);
    publisher.guardWith(guard);
    const confirm = (step: string, hosts: readonly string[]): Promise<string | undefined> => claim.confirm(delivery, step, hosts);
    const inventory = await ctx.inventory.current();
    const outcome = await runPlan({
      ...runContextFor(ctx, { jobId: doc.id, attempt, worker: here.id, record, plan, inventory, planContext: ctx.planContext(inventory), publisher, halt, checkpoints, guard }),
      confirmClaim: confirm,
      barrier: async (index, counts) => {
        try {
          return await here.board.arrive(doc.id, doc.site, doc.sites, index, counts, halt.signal);
        } catch (err) {
          if (!(err instanceof ShardHalt)) throw err;
          if (!halt.reason) stop('halt', `stopped because ${err.detail}`);
          return { ...counts, last: false };
        }
      },
    });
    const result: ShardOutcome = { site: doc.site, worker: here.id, hosts: outcome.hosts, steps: outcome.steps, ...(halt.reason ? { stop: { reason: halt.reason, detail: halt.detail } } : {}) };
    if (claim.superseded) {
      // Another delivery holds the shard on the current primary: its outcome is the shard's.
      ctx.logger.warn({ jobId: doc.id, site: doc.site, why: halt.detail }, 'shard claim lost in a Redis failover; left to the delivery that holds it');
      return result;
    }
    await here.board.saveResult(doc.id, doc.site, result, run).catch(() => undefined);
    await keepShardResult(ctx, doc, run, result);
    return result;
  } catch (err) {
    if (err instanceof DeliverySuperseded) {
      // Replaced by another delivery of the shard (a write of its run was refused): that one's
      // outcome is the shard's; this one neither halts the others nor reports anything.
      claim.superseded = true;
      ctx.logger.warn({ jobId: doc.id, site: doc.site, why: err.message }, 'this shard delivery was replaced by another; stopped, leaving the shard to it');
      return notStarted(doc, here.id, 'not started: another delivery runs this shard', 'skipped');
    }
    // Unexpected: what this shard did is in the ledger; the parent reports its hosts unknown.
    ctx.logger.error({ jobId: doc.id, site: doc.site, err: errorMessage(err) }, 'shard failed unexpectedly');
    await here.board.halt(doc.id, `${label}: internal error: ${errorMessage(err)}`).catch(() => undefined);
    const unknown = (await ctx.ledger.unfinished(doc.id)).map((e) => e.host).filter((h) => plan.hosts.includes(h));
    return { ...notStarted(doc, here.id, `internal error: ${errorMessage(err)}`, 'failed', { reason: 'crash', detail: `${label}: internal error: ${errorMessage(err)}` }), unknownHosts: unknown };
  } finally {
    clearTimeout(deadline);
    if (renew) clearInterval(renew);
    // Superseded: the locks (owned by the job) are the delivery's that runs the shard now.
    if (lockedHosts.length && !claim.superseded) await ctx.locks.release(owner, lockedHosts).catch(() => undefined);
    unwatch();
    if (here.running.get(bullId) === stop) here.running.delete(bullId);
    await publisher.drain();
    await Promise.all(checkpoints);
  }
}

/**
 * A shard's outcome on the board, made durable like a job's ending: confirmed on a replica, and
 * written again on a new primary that lost it while this delivery still holds the shard there.
 * (The merge reads BullMQ's child values; a shard redelivered after its completion was lost
 * returns the board's copy instead of reporting its hosts unknown.) Bounded by confirm_within;
 * not confirmed: logged.
 */
async function keepShardResult(ctx: QueueContext, doc: ShardDoc, run: string, result: ShardOutcome): Promise<void> {
  if (!ctx.durable.enabled) return;
  const board = shardBoardKey(ctx.keys, doc.id);
  const assured = await ctx.durable.assert(
    [
      { key: board, field: shardRunField(doc.site), is: [run] },
      { hash: board, has: shardResultField(doc.site) },
    ],
    async (redis, differs) => {
      // Our token lost too: take the shard again only if no other delivery has.
      if (differs.index === 0 && (differs.actual !== '' || (await redis.hsetnx(board, shardRunField(doc.site), run)) !== 1)) return false;
      await redis.hset(board, shardResultField(doc.site), JSON.stringify(result));
      return true;
    },
  );
  if (!assured.ok) ctx.logger.error({ jobId: doc.id, site: doc.site, problem: assured.kind === 'unconfirmed' ? assured.problem : `the current primary holds ${assured.actual || 'nothing'}` }, 'shard finished, but no Redis replica confirmed its outcome: a failover now could lose it');
}

const STOP_WEIGHT: Record<StopReason, number> = { cancel: 5, lock_lost: 4, crash: 4, unconfirmed: 4, shutdown: 3, timeout: 2, halt: 1 };

/** The parent of a split job: every shard has ended (or given up); merge and end the job once. */
async function mergeShards(ctx: QueueContext, job: Job<{ id: string; sites: string[] }>): Promise<{ state: JobState }> {
  const { id, sites } = job.data;
  const record = await ctx.store.get(id);
  if (!record) return { state: 'failed' };
  if (isFinal(record.state)) return { state: record.state };
  const values = Object.values(await job.getChildrenValues<ShardOutcome>()).filter((v): v is ShardOutcome => typeof v === 'object' && v !== null);
  const failures = await job.getIgnoredChildrenFailures().catch(() => ({}));
  const inventory = await ctx.inventory.current();
  const split = splitBySite(record.plan, inventory);
  const parts = [...values];
  const unknown = new Set(values.flatMap((v) => v.unknownHosts ?? []));
  const board = new ShardBoard(ctx.redis, ctx.keys);
  for (const site of sites) {
    if (parts.some((p) => p.site === site)) continue;
    const hosts = split.get(site) ?? [];
    const checked = await board.notes(id, site);
    if (checked) {
      // Its worker is gone and a reconciler checked its hosts on the nodes.
      const why = `the worker running ${shardLabel(site)} is gone`;
      for (const h of checked.unknown) unknown.add(h);
      const unknownHere = new Set(checked.unknown);
      parts.push({
        site,
        worker: '',
        hosts: hosts.map((h) => notRunOutcome(h, unknownHere.has(h) ? `outcome unknown: ${why}` : `not started: ${why}`, unknownHere.has(h) ? 'failed' : 'skipped')),
        steps: [],
        stop: { reason: 'crash', detail: why },
        notes: checked.notes,
      });
      continue;
    }
    // A shard BullMQ gave up on (its worker died twice): its started hosts are unknown.
    const started = new Set((await ctx.ledger.unfinished(id)).map((e) => e.host));
    const why = `${shardLabel(site)} gave up: ${Object.values(failures).join('; ') || 'no result'}`;
    for (const h of hosts) if (started.has(h)) unknown.add(h);
    parts.push({ site, worker: '', hosts: hosts.map((h) => notRunOutcome(h, started.has(h) ? `outcome unknown: ${why}` : `not started: ${why}`, started.has(h) ? 'failed' : 'skipped')), steps: [], stop: { reason: 'crash', detail: why } });
  }
  const merged = mergeOutcomes(record.plan, parts);
  const stops = parts.flatMap((p) => (p.stop ? [p.stop] : []));
  const worst = stops.sort((a, b) => STOP_WEIGHT[b.reason] - STOP_WEIGHT[a.reason])[0];
  const tool = ctx.tools.get(record.tool);
  let data: unknown;
  if (tool?.summarize) {
    const byStep = new Map(merged.steps.map((s) => [s.id, new Map(s.results.map((r) => [r.host, r]))]));
    try {
      data = ctx.redactor.scrubDeep(tool.summarize(record.input as never, byStep, ctx.planContext(inventory)));
    } catch (err) {
      data = { summary_error: errorMessage(err) };
    }
  }
  const unknownHosts = inPlanOrder(record, [...unknown]);
  const result: JobResult = boundResult(
    {
      hosts: merged.hosts,
      steps: merged.steps,
      folded: foldOutputs(merged.hosts.map((h) => ({ host: h.host, status: h.status, text: foldText(h) }))),
      data,
      ...(unknownHosts.length ? { unknownHosts } : {}),
    },
    ctx.settings.limits ?? DEFAULT_LIMITS,
  );
  let state = finalState(result.hosts, worst?.reason);
  const notes = parts.flatMap((p) => p.notes ?? []);
  let reason = worst ? worst.detail : summaryLine(record.plan.hosts, result.hosts);
  if (unknownHosts.length) reason += `; outcome unknown on: ${unknownHosts.join(', ')}`;
  if (notes.length) reason += `. Checked on the nodes: ${notes.join('; ')}`;
  if (record.state === 'queued' && state !== 'cancelled') state = 'failed';
  await endJob(ctx, record, state, { reason, result, from: ['running', 'queued'], durable: true });
  await board.forget(id).catch(() => undefined);
  return { state };
}
