// The execution side. A BullMQ worker takes a job id, and the job record decides what
// happens: an approval that ran out becomes `expired`; a queued job is re-planned, its plan
// hash checked against the approved one, its hosts locked, then run; a job found `running`
// is a redelivery after a worker crash or stall — `read` jobs may run again, `change` and
// `destructive` jobs are reported `interrupted` with the hosts whose outcome is unknown,
// never silently re-run.
import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { DelayedError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { checkRecordedApprovals } from '../auth/policy.js';
import { metrics } from './metrics.js';
import { errorMessage } from '../config/errors.js';
import type { HostStatus } from '../tools/host-result.js';
import type { QueueContext } from './context.js';
import { ThrottledPublisher } from './events.js';
import { foldOutputs } from './fold.js';
import { bindPlan, boundPlanHash, describeChanges } from './plan-binding.js';
import type { HostOutcome, JobDoc, JobRecord, JobResult } from './records.js';
import { runPlan } from './runner.js';
import { endJob, type FinalState } from './endings.js';
import { windowDecision } from './maintenance.js';
import { isFinal, type JobState } from './states.js';

export interface WorkerHandle {
  readonly id: string;
  readonly worker: Worker;
  /** Graceful: stop taking jobs, let running ones finish within the grace, then interrupt them. */
  close(): Promise<void>;
}

type StopReason = 'cancel' | 'timeout' | 'shutdown' | 'lock_lost';

export async function startWorker(ctx: QueueContext, connection: Redis): Promise<WorkerHandle> {
  const id = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const running = new Map<string, (reason: StopReason, detail?: string) => void>();
  await ctx.cancel.listen();

  const worker = new Worker<JobDoc>(
    ctx.queueName,
    async (job, token, signal) => {
      const stopHere = (reason: StopReason, detail?: string): void => running.get(job.data.id)?.(reason, detail);
      signal?.addEventListener('abort', () => stopHere('cancel', 'cancelled by worker'), { once: true });
      return processJob(ctx, id, job, running, token);
    },
    {
      connection,
      prefix: `${ctx.keys.prefix}:bull`,
      concurrency: ctx.settings.worker.concurrency,
      lockDuration: ctx.settings.worker.lockDurationMs,
      stalledInterval: ctx.settings.worker.stalledIntervalMs,
      // One redelivery after a stall: that delivery is how a crash gets noticed and reported
      // (`interrupted`), never re-executed (see processJob).
      maxStalledCount: 1,
      removeOnComplete: { age: ctx.settings.retention.completedAgeS, count: ctx.settings.retention.completedCount },
      removeOnFail: { age: ctx.settings.retention.failedAgeS, count: ctx.settings.retention.failedCount },
    },
  );
  worker.on('lockRenewalFailed', (jobIds: string[]) => {
    // Another worker may take these jobs: stop ours rather than run beside it.
    for (const jobId of jobIds) running.get(jobId)?.('lock_lost', 'this worker lost the job lock');
  });
  worker.on('failed', (job, err) => {
    // BullMQ gave up on a job (for example "stalled more than allowable limit") without our
    // processor finishing it: make sure the record does not stay `running` forever.
    if (!job) return;
    void finalizeOrphan(ctx, job.data.id, errorMessage(err));
  });
  worker.on('error', (err) => ctx.logger.warn({ err: errorMessage(err) }, 'worker error'));
  await worker.waitUntilReady();

  return {
    id,
    worker,
    async close() {
      const closing = worker.close();
      const grace = setTimeout(() => {
        for (const stop of running.values()) stop('shutdown', 'worker shutting down');
      }, ctx.settings.worker.shutdownGraceMs);
      await closing;
      clearTimeout(grace);
      await ctx.cancel.close();
    },
  };
}

async function finalizeOrphan(ctx: QueueContext, jobId: string, why: string): Promise<void> {
  const record = await ctx.store.get(jobId);
  if (!record || isFinal(record.state)) return;
  const unknown = inPlanOrder(record, (await ctx.ledger.unfinished(jobId)).map((e) => e.host));
  const to: FinalState = record.state === 'running' ? 'interrupted' : 'failed';
  const reason = `${why}${unknown.length ? `; outcome unknown on: ${unknown.join(', ')}` : ''}`;
  await endJob(ctx, record, to, { reason, from: [record.state] });
}

async function processJob(
  ctx: QueueContext,
  workerId: string,
  job: Job<JobDoc>,
  running: Map<string, (reason: StopReason, detail?: string) => void>,
  token?: string,
): Promise<{ state: JobState }> {
  const jobId = job.data.id;
  const record = await ctx.store.get(jobId);
  if (!record) return { state: 'failed' };
  const runNow = async (current: JobRecord): Promise<{ state: JobState }> => {
    const held = await holdForWindow(ctx, current, job, token);
    return held ?? execute(ctx, workerId, (await ctx.store.get(jobId)) ?? current, running, false);
  };

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
      return redelivered(ctx, workerId, record, running);
    default:
      // Denied, cancelled, expired…: already final; the delivery only closes the BullMQ job.
      return { state: record.state };
  }
}

async function redelivered(
  ctx: QueueContext,
  workerId: string,
  record: JobRecord,
  running: Map<string, (reason: StopReason, detail?: string) => void>,
): Promise<{ state: JobState }> {
  const unknownHosts = inPlanOrder(record, (await ctx.ledger.unfinished(record.id)).map((e) => e.host));
  if (record.risk === 'read' && record.attempt <= ctx.settings.worker.readRetries) {
    ctx.logger.info({ jobId: record.id, attempt: record.attempt + 1 }, 'read job redelivered after a stall: running it again');
    return execute(ctx, workerId, record, running, true);
  }
  if (record.plan.resumable === true) {
    // Orchestrations resume per subject: the runner reuses what the ledger shows finished.
    ctx.logger.info({ jobId: record.id, unknownHosts }, 'resumable job redelivered after a stall: resuming from the ledger');
    return execute(ctx, workerId, record, running, true);
  }
  const reason =
    `the worker running this job (${record.worker ?? 'unknown'}) stopped before it finished; ` +
    (unknownHosts.length ? `outcome unknown on: ${unknownHosts.join(', ')}` : 'no host was mid-step') +
    '. Not re-run automatically: check the hosts, then submit again if needed.';
  const result: JobResult = { hosts: [], steps: [], folded: [], unknownHosts };
  await endJob(ctx, record, 'interrupted', { reason, result, from: ['running'] });
  return { state: 'interrupted' };
}

async function execute(
  ctx: QueueContext,
  workerId: string,
  record: JobRecord,
  running: Map<string, (reason: StopReason, detail?: string) => void>,
  isRetry: boolean,
): Promise<{ state: JobState }> {
  const m = metrics();
  const tool = ctx.tools.get(record.tool);
  const publisher = new ThrottledPublisher(ctx.events, record.id);
  const controller = new AbortController();
  // Every host in flight listens on this signal (a 64-host window exceeds the default 10).
  setMaxListeners(0, controller.signal);
  let stopReason: StopReason | undefined;
  let stopDetail = '';
  const stop = (reason: StopReason, detail?: string): void => {
    if (stopReason) return;
    stopReason = reason;
    stopDetail = detail ?? reason;
    controller.abort(new Error(stopDetail));
  };
  running.set(record.id, stop);
  const unwatch = ctx.cancel.watch(record.id, (reason) => stop('cancel', reason));
  const deadline = setTimeout(() => stop('timeout', `job timed out after ${Math.round(record.timeoutMs / 1000)}s`), record.timeoutMs);
  let lockedHosts: readonly string[] = [];
  let renew: NodeJS.Timeout | undefined;
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

    if (record.risk !== 'read' && plan.hosts.length > 0) {
      const owner = record.id;
      const got = await ctx.locks.acquire(owner, plan.hosts, controller.signal, (host, holder) => {
        publisher.emit({ type: 'lock_wait', host, holder });
      });
      if (!got) return await finishStopped(ctx, record, stopReason, stopDetail, isRetry);
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
    if (!isRetry) {
      const t = await ctx.store.transition(record.id, 'running', { startedAt, worker: workerId, attempt }, ['queued']);
      if (!t.ok) return { state: t.current ?? 'failed' };
      if (record.queuedAt) m.queueWait.observe((Date.now() - Date.parse(record.queuedAt)) / 1000);
    } else {
      await ctx.store.update(record.id, { worker: workerId, attempt });
    }
    publisher.emit({ type: 'state', state: 'running' });

    let result: JobResult;
    if (tool.answer) {
      const data = ctx.redactor.scrubDeep(tool.answer(record.input as never, planCtx));
      result = { hosts: [], steps: [], folded: [], data };
    } else {
      const outcome = await runPlan({
        jobId: record.id,
        attempt,
        worker: workerId,
        subject: record.requester.subject,
        tool: record.tool,
        plan,
        targetFor: (host) => ctx.targetFor(inventory, host),
        executor: ctx.executor,
        ledger: ctx.ledger,
        audit: ctx.audit,
        publisher,
        signal: controller.signal,
        window: plan.window ?? ctx.settings.window,
        redactor: ctx.redactor,
        abortStatus: () => (stopReason === 'timeout' ? 'timed_out' : 'cancelled'),
        tools: ctx.tools,
        planContext: planCtx,
      });
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
      result = {
        hosts,
        steps: outcome.steps,
        folded: foldOutputs(hosts.map((h) => ({ host: h.host, status: h.status, text: foldText(h) }))),
        data,
      };
    }

    const state = finalState(result.hosts, stopReason);
    const reason = stopReason ? stopDetail : summaryLine(result.hosts);
    await publisher.drain();
    const t = await endJob(ctx, record, state, { reason, result, from: ['running'] });
    if (t.ended) m.jobDuration.observe({ tool: record.tool }, (Date.now() - Date.parse(startedAt)) / 1000);
    return { state };
  } catch (err) {
    ctx.logger.error({ jobId: record.id, err: errorMessage(err) }, 'job failed unexpectedly');
    await publisher.drain();
    const current = await ctx.store.state(record.id);
    if (current === 'running') {
      const unknown = inPlanOrder(record, (await ctx.ledger.unfinished(record.id)).map((e) => e.host));
      const reason = `internal error: ${errorMessage(err)}${unknown.length ? `; outcome unknown on: ${unknown.join(', ')}` : ''}`;
      await endJob(ctx, record, 'interrupted', { reason, from: ['running'] });
      return { state: 'interrupted' };
    }
    if (current === 'queued') return fail(ctx, record, `internal error: ${errorMessage(err)}`);
    return { state: current ?? 'failed' };
  } finally {
    clearTimeout(deadline);
    if (renew) clearInterval(renew);
    if (lockedHosts.length) await ctx.locks.release(record.id, lockedHosts).catch(() => undefined);
    unwatch();
    running.delete(record.id);
    m.activeJobs.dec();
    await publisher.drain();
  }
}

/** Hosts in the order the plan lists them (the ledger's order is Redis hash order). */
function inPlanOrder(record: JobDoc, hosts: readonly string[]): string[] {
  const set = new Set(hosts);
  const ordered = record.plan.hosts.filter((h) => set.has(h));
  return [...ordered, ...[...set].filter((h) => !ordered.includes(h))];
}

function foldText(h: HostOutcome): string {
  const out = h.stdout.replace(/\s+$/, '');
  if (h.status === 'ok') return out;
  const detail = [h.error, h.stderr.replace(/\s+$/, ''), out].filter((s) => s).join('\n');
  return h.exitCode !== null ? `exit ${h.exitCode}${detail ? `: ${detail}` : ''}` : detail;
}

function finalState(hosts: readonly HostOutcome[], stop: StopReason | undefined): FinalState {
  if (stop === 'cancel') return 'cancelled';
  if (stop === 'shutdown' || stop === 'lock_lost') return 'interrupted';
  if (stop === 'timeout') return 'failed';
  if (hosts.length === 0) return 'succeeded';
  const ok = hosts.filter((h) => h.status === 'ok').length;
  if (ok === hosts.length) return 'succeeded';
  return ok === 0 ? 'failed' : 'partially_failed';
}

function summaryLine(hosts: readonly HostOutcome[]): string {
  const counts = new Map<HostStatus, number>();
  for (const h of hosts) counts.set(h.status, (counts.get(h.status) ?? 0) + 1);
  return [...counts].map(([s, n]) => `${n} ${s}`).join(', ') || 'no hosts';
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

async function finishStopped(ctx: QueueContext, record: JobRecord, stop: StopReason | undefined, detail: string, isRetry: boolean): Promise<{ state: JobState }> {
  if (stop === 'cancel') return finishCancelled(ctx, record, detail);
  const to: FinalState = isRetry ? 'interrupted' : 'failed';
  await endJob(ctx, record, to, { reason: detail });
  return { state: to };
}

/**
 * Destructive jobs run only inside the maintenance windows of their hosts. Outside: `refuse`
 * ends the job denied; `wait` parks it as `waiting_window` and moves the BullMQ job back to
 * delayed until the next opening (looking again at least every `recheckMs`, since the config
 * or the clock may change). Returns undefined when the job may run now (a parked job is put
 * back to `queued` first).
 */
async function holdForWindow(ctx: QueueContext, record: JobRecord, job: Job<JobDoc>, token: string | undefined): Promise<{ state: JobState } | undefined> {
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
