// Jobs whose worker is gone. After a worker crash (SIGKILL, power cut) or freeze (SIGSTOP), the
// hosts it had started are unknown: each is checked on the node, where its run is found by
// its run id (CASTELLAN_RUN, see src/ssh/remote-run.ts) and stopped, and the job says per host
// what was found: "its run had already ended", "was still running, stopped" or "could not be
// checked". Nothing is run again. The job then ends `interrupted`, or `cancelled` when someone
// had asked to cancel it (a cancel of an orphaned job must not wait for a worker restart).
//
// Every worker runs `reconcileLoop`: it reads the list of running deliveries, asks the worker
// registry which of their workers are gone, and reconciles those (one reconciler per entry,
// by a short Redis claim). The BullMQ redelivery of a stalled job arrives at the same function
// (worker.ts); whichever ends the job first wins, the other finds it final.
import { errorMessage } from '../config/errors.js';
import type { QueueContext } from './context.js';
import { endJob, type FinalState } from './endings.js';
import { hostRunId } from './execution.js';
import { runningKey, type RunningEntry, type WorkerRegistry } from './heartbeat.js';
import type { LedgerEntry } from './ledger.js';
import type { JobDoc, JobRecord } from './records.js';
import { shardLabel, shardQueueName, type ShardBoard, type ShardDoc } from './shards.js';
import { isFinal } from './states.js';
import { sleep } from './sleep.js';
import type { PlanStep } from '../tools/types.js';

export interface HostCheck {
  readonly unknown: string[];
  /** One phrase per host: "node01: its run had already ended". */
  readonly notes: string[];
}

function findStep(plan: JobDoc['plan'], id: string): PlanStep | undefined {
  const visit = (steps: readonly PlanStep[]): PlanStep | undefined => {
    for (const step of steps) {
      if (step.id === id) return step;
      const inner = visit(step.onFailure ?? []);
      if (inner) return inner;
    }
    return undefined;
  };
  for (const batch of plan.batches) {
    const found = visit(batch.steps);
    if (found) return found;
  }
  return undefined;
}

type RunCheck = { readonly state: 'ended' | 'stopped' | 'unknown'; readonly note: string };

/** Look for one host's run of one step on its node; stop what is left of it. */
async function checkRun(ctx: QueueContext, record: JobDoc, inventory: Awaited<ReturnType<QueueContext['inventory']['current']>>, entry: Pick<LedgerEntry, 'step' | 'host'>): Promise<RunCheck> {
  const step = findStep(record.plan, entry.step);
  if (!step || step.action.kind !== 'exec') return { state: 'unknown', note: `${entry.host}: could not be checked (a ${step?.action.kind ?? 'unknown'} step leaves no run to look for)` };
  if (!ctx.executor.reconcileRun) return { state: 'unknown', note: `${entry.host}: could not be checked (this executor cannot look)` };
  try {
    const target = ctx.targetFor(inventory, entry.host);
    const r = await ctx.executor.reconcileRun(target, hostRunId(`${record.id}.${entry.step}`, entry.host), { asRoot: step.action.asRoot ?? false });
    if (r.state === 'ended') return { state: 'ended', note: `${entry.host}: its run had already ended` };
    if (r.state === 'stopped') return { state: 'stopped', note: `${entry.host}: was still running, stopped (${r.processes ?? '?'} process(es), ${r.how ?? 'stopped'})` };
    return { state: 'unknown', note: `${entry.host}: could not be checked (${r.error ?? 'no answer'})` };
  } catch (err) {
    return { state: 'unknown', note: `${entry.host}: could not be checked (${errorMessage(err)})` };
  }
}

/** Check each unfinished ledger entry on its node; stop what is left of its run. */
export async function checkHosts(ctx: QueueContext, record: JobDoc, entries: readonly LedgerEntry[]): Promise<HostCheck> {
  const inventory = await ctx.inventory.current();
  const order = new Map(record.plan.hosts.map((h, i) => [h, i]));
  const sorted = [...entries].sort((a, b) => (order.get(a.host) ?? 1e9) - (order.get(b.host) ?? 1e9));
  const notes = (await Promise.all(sorted.map((entry) => checkRun(ctx, record, inventory, entry)))).map((c) => c.note);
  return { unknown: [...new Set(sorted.map((e) => e.host))], notes };
}

/**
 * Before a new delivery takes over the host locks an earlier delivery of the same job left
 * (its worker gone: queues/worker.ts), whatever that delivery may still have running on
 * `hosts` is found and stopped: its unfinished ledger entries (and, when no Redis replica
 * confirms the ledger, the exec steps with no finished entry) are looked for on the nodes.
 * `unchecked`: hosts an exec run could not be looked for on (unreachable): taking their locks
 * is not safe yet. `notes`: what was found, for the log and the job's events.
 */
export async function reconcileDelivery(ctx: QueueContext, record: JobDoc, worker: string, hosts: readonly string[]): Promise<{ unchecked: string[]; notes: string[] }> {
  const mine = new Set(hosts);
  const entries = await ctx.ledger.entries(record.id);
  const claimed = entries.filter((e) => e.finishedAt === undefined && e.worker === worker && mine.has(e.host));
  const finished = new Set(entries.filter((e) => e.finishedAt !== undefined).map((e) => `${e.step}|${e.host}`));
  const unledgered = ctx.durable.enabled
    ? []
    : execSteps(record.plan)
        .flatMap((step) => step.hosts.filter((h) => mine.has(h) && !finished.has(`${step.id}|${h}`)).map((host) => ({ step: step.id, host })))
        .filter((c) => !claimed.some((e) => e.step === c.step && e.host === c.host))
        .slice(0, UNLEDGERED_CHECKS);
  const looked = [...claimed.map((e) => ({ step: e.step, host: e.host, claimed: true })), ...unledgered.map((c) => ({ ...c, claimed: false }))];
  if (looked.length === 0) return { unchecked: [], notes: [] };
  const inventory = await ctx.inventory.current();
  const checks = await Promise.all(looked.map(async (c) => ({ ...c, exec: findStep(record.plan, c.step)?.action.kind === 'exec', check: await checkRun(ctx, record, inventory, c) })));
  // Only an exec step leaves a run on the node; a gate or a transfer ended with its worker.
  const unchecked = [...new Set(checks.filter((c) => c.exec && c.check.state === 'unknown').map((c) => c.host))];
  // Every claimed entry is said; of the unledgered looks, only a run found (or not looked for).
  const notes = checks.filter((c) => c.exec && (c.claimed || c.check.state !== 'ended')).map((c) => `${c.step} on ${c.check.note}`);
  return { unchecked, notes };
}

/** Exec steps × hosts looked for on the nodes when the ledger cannot be trusted; more are not checked. */
const UNLEDGERED_CHECKS = 32;

function execSteps(plan: JobDoc['plan']): PlanStep[] {
  const out: PlanStep[] = [];
  const visit = (steps: readonly PlanStep[]): void => {
    for (const step of steps) {
      if (step.action.kind === 'exec') out.push(step);
      visit(step.onFailure ?? []);
    }
  };
  for (const batch of plan.batches) visit(batch.steps);
  return out;
}

/**
 * The ledger shows no host mid-step. With redis.confirm_replicas > 0 that is known: every claim
 * was confirmed on a replica before its step ran (queues/claims.ts). Without, Redis may have
 * lost its last writes (a restart from the AOF, a failover with nothing confirmed), the claim
 * of a step that ran among them: look on the nodes for runs of the exec steps that have no
 * finished ledger entry, and stop any still there. Returns the phrase for the job's reason.
 */
async function noHostMidStep(ctx: QueueContext, record: JobDoc): Promise<{ phrase: string; unknown: string[] }> {
  if (ctx.durable.enabled) return { phrase: 'no host was mid-step (the ledger, confirmed on a Redis replica before every step, shows none)', unknown: [] };
  const finished = new Set((await ctx.ledger.entries(record.id)).filter((e) => e.finishedAt !== undefined).map((e) => `${e.step}|${e.host}`));
  const candidates = execSteps(record.plan).flatMap((step) => step.hosts.filter((h) => !finished.has(`${step.id}|${h}`)).map((host) => ({ step: step.id, host })));
  const looked = candidates.slice(0, UNLEDGERED_CHECKS);
  const inventory = await ctx.inventory.current();
  const checks = await Promise.all(looked.map(async (c) => ({ ...c, check: await checkRun(ctx, record, inventory, c) })));
  // A run found and stopped, or a node that could not be asked: that host's outcome is unknown.
  const unknown = [...new Set(checks.filter((c) => c.check.state !== 'ended').map((c) => c.host))];
  const found = checks.filter((c) => c.check.state !== 'ended').map((c) => `${c.step} on ${c.check.note}`);
  const skipped = candidates.length - looked.length;
  const phrase =
    'the ledger shows no host mid-step, but it cannot be sure (no Redis replica confirms its entries: redis.confirm_replicas is 0, so a Redis restart or failover may have lost the last ones); ' +
    (looked.length === 0 ? 'no step is left to look for on the nodes' : found.length === 0 ? `no run of its ${looked.length} unfinished step(s) × host(s) is on the nodes` : `looked on the nodes: ${found.join('; ')}`) +
    (skipped > 0 ? ` (${skipped} more not checked)` : '');
  return { phrase, unknown };
}

/**
 * End a job whose (unsplit) run lost its worker: check its unfinished hosts, then `cancelled`
 * if a cancel was asked for, else `interrupted`. Returns the state the job is in afterwards.
 */
export async function reconcileOrphan(ctx: QueueContext, record: JobRecord, why: string): Promise<JobRecord['state']> {
  // One checker per job: a second one (the BullMQ redelivery racing the reconcile loop) would
  // find the runs the first just stopped and report them "already ended".
  if (!(await exclusive(ctx, `job:${record.id}`))) {
    for (let i = 0; i < 240; i++) {
      const state = await ctx.store.state(record.id);
      if (state && isFinal(state)) return state;
      await sleep(500);
    }
    return (await ctx.store.state(record.id)) ?? 'failed';
  }
  const checked = await checkHosts(ctx, record, await ctx.ledger.unfinished(record.id));
  const current = await ctx.store.get(record.id);
  if (!current || isFinal(current.state)) return current?.state ?? 'failed';
  const to: FinalState = current.cancel ? 'cancelled' : 'interrupted';
  const none = checked.unknown.length === 0 ? await noHostMidStep(ctx, current) : undefined;
  const unknownHosts = none ? none.unknown : checked.unknown;
  const reason =
    `${to === 'cancelled' ? `${current.cancel?.reason ?? 'cancelled'}; ` : ''}${why}; ` +
    (none ? `${none.phrase}${none.unknown.length ? `; outcome unknown on: ${none.unknown.join(', ')}` : ''}` : `outcome unknown on: ${checked.unknown.join(', ')}`) +
    (checked.notes.length ? `. Checked on the nodes: ${checked.notes.join('; ')}` : '') +
    '. Not re-run automatically: check the hosts, then submit again if needed.';
  const result = { hosts: [], steps: [], folded: [], unknownHosts };
  const t = await endJob(ctx, current, to, { reason, result, from: ['running'] });
  return t.ended ? to : (t.current ?? 'failed');
}

/** A shard's unfinished hosts, checked (the notes are kept for its redelivery to report). */
export async function reconcileShardHosts(ctx: QueueContext, record: JobRecord, doc: ShardDoc, board: ShardBoard): Promise<HostCheck> {
  const mine = new Set(doc.plan.hosts);
  const entries = (await ctx.ledger.unfinished(record.id)).filter((e) => mine.has(e.host));
  const noted = await board.notes(record.id, doc.site);
  if (noted) return noted;
  if (!(await exclusive(ctx, `shard:${record.id}:${doc.site}`))) {
    for (let i = 0; i < 240; i++) {
      const later = await board.notes(record.id, doc.site);
      if (later) return later;
      await sleep(500);
    }
  }
  const checked = await checkHosts(ctx, record, entries);
  await board.saveNotes(record.id, doc.site, checked);
  return checked;
}

/** True for the first caller within two minutes: the one that checks the nodes. */
async function exclusive(ctx: QueueContext, what: string): Promise<boolean> {
  return (await ctx.redis.set(`${ctx.keys.prefix}:reconcile:${what}`, '1', 'PX', 120_000, 'NX')) === 'OK';
}

export interface Reconciler {
  stop(): Promise<void>;
}

/** Every `intervalMs`: reconcile what runs on workers that are gone. */
export function reconcileLoop(ctx: QueueContext, registry: WorkerRegistry, board: ShardBoard, self: string, intervalMs: number): Reconciler {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let pass: Promise<void> = Promise.resolve();
  const once = async (): Promise<void> => {
    const raw = await ctx.redis.hgetall(runningKey(ctx.keys));
    const entries = Object.entries(raw).flatMap(([bullId, json]) => {
      try {
        return [{ bullId, ...(JSON.parse(json) as RunningEntry) }];
      } catch {
        return [];
      }
    });
    const others = [...new Set(entries.map((e) => e.worker).filter((w) => w !== self))];
    if (others.length === 0) return;
    const liveness = await registry.liveness(others);
    for (const entry of entries) {
      if (stopped) return;
      if (entry.worker === self || liveness.get(entry.worker) !== 'gone') continue;
      await reconcileEntry(ctx, board, self, entry).catch((err: unknown) => ctx.logger.warn({ jobId: entry.job, err: errorMessage(err) }, 'reconcile failed; retrying'));
    }
  };
  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      pass = once()
        .catch((err: unknown) => ctx.logger.debug({ err: errorMessage(err) }, 'reconcile pass failed'))
        .finally(schedule);
    }, intervalMs);
  };
  schedule();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await pass;
    },
  };
}

async function reconcileEntry(ctx: QueueContext, board: ShardBoard, self: string, entry: RunningEntry & { bullId: string }): Promise<void> {
  const claim = `${ctx.keys.prefix}:reconciling:${entry.bullId}`;
  if ((await ctx.redis.set(claim, self, 'PX', 60_000, 'NX')) !== 'OK') return;
  const forget = (): Promise<unknown> => ctx.redis.hdel(runningKey(ctx.keys), entry.bullId);
  const record = await ctx.store.get(entry.job);
  if (!record || isFinal(record.state)) {
    await forget();
    return;
  }
  const why = `the worker running this job (${entry.worker}) is gone`;
  if (entry.site !== undefined) {
    // A shard: check its hosts now (its commands must not run on unobserved) and stop the
    // other shards at their next barrier. Its BullMQ redelivery reports it to the merge.
    const shardHosts = new Set(record.plan.hosts);
    const entries = (await ctx.ledger.unfinished(record.id)).filter((e) => shardHosts.has(e.host) && e.worker === entry.worker);
    if ((await board.notes(record.id, entry.site)) === undefined && (await exclusive(ctx, `shard:${record.id}:${entry.site}`))) {
      await board.saveNotes(record.id, entry.site, await checkHosts(ctx, record, entries));
    }
    await board.halt(record.id, `the worker running ${shardLabel(entry.site)} (${entry.worker}) is gone`);
    // Its site may have no other worker to redeliver it: release the parent from waiting for
    // it, so the job ends once the other shards have (the merge reports this shard from the
    // notes just written).
    await releaseShard(ctx, entry.site, entry.bullId);
    await forget();
    return;
  }
  // Resumable and read jobs are picked up again by their BullMQ redelivery (resumed, re-read),
  // unless a cancel is waiting: then nothing will resume them, so end them here.
  if ((record.plan.resumable === true || record.risk === 'read') && !record.cancel) return;
  ctx.logger.info({ jobId: record.id, worker: entry.worker }, 'reconciling a job whose worker is gone');
  await reconcileOrphan(ctx, record, why);
  await forget();
}

async function releaseShard(ctx: QueueContext, site: string, bullId: string): Promise<void> {
  const { Queue, Job } = await import('bullmq');
  const queue = new Queue(shardQueueName(ctx.queueName, site), { connection: ctx.redis, prefix: `${ctx.keys.prefix}:bull` });
  try {
    const child = await Job.fromId(queue, bullId);
    if (child?.parentKey) await child.removeChildDependency();
  } finally {
    await queue.close();
  }
}
