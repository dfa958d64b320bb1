// Runs a plan: batches in order, steps in order within a batch, hosts of a step fanned out
// by the executor. What a step does is its kind's business (tools/steps/); this file owns
// what every kind shares:
// - failure is tracked per subject (the node a step is about, else the host it runs on): a
//   failed step skips that subject's later steps in the batch, never another subject's;
// - on-failure steps armed by a subject's successful steps run when a later step of that
//   subject fails, most recent first, and are reported — also when the job is cancelled or
//   hits its deadline with the subject mid-change (bounded by their own timeouts; a second
//   cancel stops them, see queues/job-stop.ts);
// - every dispatch is claimed in the execution ledger first, so a host is never sent the same
//   step twice; every host outcome is published as progress and written to the audit trail;
// - a failure budget counted in failed subjects over the whole plan skips later batches once
//   it is spent.
import type { Plan, PlanContext, PlanStep, StepResults } from '../tools/types.js';
import { GENERIC_CONDITIONS, stepKind, type ExecRequestSpec, type GateObservation, type IpmiRequest, type Observation, type StepIO } from '../tools/steps/index.js';
import type { Redactor } from './redact.js';
import { sleep } from './sleep.js';
import type { BindingSource } from './plan-binding.js';
import { actionArgv } from './plan-commands.js';
import { hostRunId, type ExecEvent, type ExecRequest, type FanoutOptions, type SshTarget } from './execution.js';
import type { HostResult, HostStatus } from '../tools/host-result.js';
import type { AuditHostRun, AuditLog, WrittenAudit } from './audit.js';
import type { ToolCatalogue } from './context.js';
import type { ThrottledPublisher } from './events.js';
import type { ExecutionLedger, LedgerWrite } from './ledger.js';
import type { RunGuard } from './run-guard.js';
import type { HostOutcome, StepReport } from './records.js';

/** What the runner needs from the SSH layer (src/ssh provides it; see src/ssh/plan-executor.ts). */
export interface PlanExecutor extends BindingSource {
  exec(targets: readonly SshTarget[], request: (target: SshTarget) => ExecRequest, options: FanoutOptions): Promise<HostResult[]>;
  upload(targets: readonly SshTarget[], localPath: string, remotePath: string, options: TransferCallOptions & { mode?: number | undefined }): Promise<HostResult[]>;
  download(targets: readonly SshTarget[], remotePath: string, localDir: string, options: TransferCallOptions): Promise<HostResult[]>;
  relay(from: SshTarget, remotePath: string, targets: readonly SshTarget[], destPath: string, options: TransferCallOptions): Promise<HostResult[]>;
  /** ansible-playbook from the server against `hosts` (inventory names), with the config's trust settings. */
  playbook?(hosts: readonly string[], args: readonly string[], options: TransferCallOptions & { timeoutMs: number; abortStatus: () => HostStatus }): Promise<HostResult[]>;
  /**
   * ipmitool about node `about` with the credential's password: on the server (IPMI_PASSWORD),
   * or over SSH on `via` (the password on stdin), tagged `runId` there.
   */
  ipmi?(run: { host: string; about: string; args: readonly string[]; credential: string; timeoutMs: number; via?: SshTarget | undefined; runId: string }, options: TransferCallOptions & { abortStatus: () => HostStatus }): Promise<HostResult>;
  /** Scan each target's host key and pin it when it has exactly `fingerprint`. */
  pinHostKey?(targets: readonly SshTarget[], fingerprint: string): Promise<HostResult[]>;
  /**
   * After a worker stopped: look for run `runId` on the node and stop whatever of it is left.
   * `ended`: nothing of it was running; `stopped`: it was, and is no more; `unknown`: the node
   * could not be asked, or something survived (see error).
   */
  reconcileRun?(target: SshTarget, runId: string, options: { asRoot: boolean }): Promise<RunReconciliation>;
}

export interface RunReconciliation {
  readonly state: 'ended' | 'stopped' | 'unknown';
  /** How many processes of the run were found (stopped). */
  readonly processes?: number | undefined;
  /** terminated (TERM sufficed) or killed (KILL was needed). */
  readonly how?: string | undefined;
  readonly error?: string | undefined;
}

export interface TransferCallOptions {
  readonly signal?: AbortSignal | undefined;
  readonly onEvent?: ((event: ExecEvent) => void) | undefined;
}

export interface RunContext {
  readonly jobId: string;
  readonly attempt: number;
  readonly worker: string;
  readonly subject: string;
  readonly tool: string;
  /** Approvals the job asked for (its audit entries say so: approvers may read them). */
  readonly approvalsRequired?: number | undefined;
  readonly plan: Plan;
  readonly targetFor: (host: string) => SshTarget;
  readonly executor: PlanExecutor;
  readonly ledger: ExecutionLedger;
  /**
   * This delivery's run token as the ledger checks it (queues/run-guard.ts): its claims and
   * finishes are refused (DeliverySuperseded) once another delivery holds the job.
   */
  readonly guard?: RunGuard | undefined;
  readonly audit: AuditLog;
  readonly publisher: ThrottledPublisher;
  readonly signal: AbortSignal;
  readonly window?: number | undefined;
  /** Scrubs known secret values out of remote output before it is stored anywhere. */
  readonly redactor: Redactor;
  /** Maps an abort to the status hosts in flight get (cancelled, or timed_out for a job deadline). */
  readonly abortStatus: () => HostStatus;
  /**
   * Once `signal` aborted: the signal on-failure steps of subjects stopped mid-change still run
   * under (after a cancel or the deadline; a second cancel aborts it), or undefined when they
   * may not run (shutdown, lost lock). Absent: none run after a stop (queues/job-stop.ts).
   */
  readonly rollbackSignal?: (() => AbortSignal | undefined) | undefined;
  /** Gates: the read tools whose checks they run (summaries and conditions). */
  readonly tools?: ToolCatalogue | undefined;
  readonly planContext?: PlanContext | undefined;
  /**
   * A shard of a job split by site (queues/shards.ts): called at the end of every batch with
   * this shard's counts, resolves once every shard finished the batch, with the counts over
   * all of them (the failure budget is the job's, not the shard's). `last`: this shard
   * announces the batch's end (one line per batch, not one per shard).
   */
  readonly barrier?: ((index: number, counts: BatchCounts) => Promise<BatchCounts & { last: boolean }>) | undefined;
  /**
   * Called after a step's ledger claim, before any host is touched: resolves undefined when
   * the claim is durable (queues/claims.ts), else why not — then the step does not run.
   */
  readonly confirmClaim?: ((step: string, hosts: readonly string[]) => Promise<string | undefined>) | undefined;
  /**
   * The first step's ledger claim, already made by the delivery together with the job's
   * `running` transition (queues/claims.ts startRun): that step takes it instead of claiming
   * again. Hosts it claimed that no step then ran (the job stopped first) are finished in the
   * ledger as not run.
   */
  readonly preclaimed?: PreClaim | undefined;
  /**
   * Called after a step's ledger finishes and execution audit records are written: makes them
   * durable (queues/claims.ts confirmStep). Absent when nothing is confirmed (no replica).
   */
  readonly checkpoint?: ((step: string, finished: LedgerWrite, audit: WrittenAudit) => Promise<void>) | undefined;
  /** Injectable for tests of gates; defaults to Date.now / an abortable sleep. */
  readonly clock?: { now(): number; sleep(ms: number, signal: AbortSignal): Promise<void> } | undefined;
}

/** The step runPlan claims first and on which hosts (firstClaimOf), as a delivery claimed it. */
export interface FirstClaim {
  readonly step: string;
  readonly hosts: readonly string[];
  /** The claim's start time, kept in the ledger entries. */
  readonly claimedAt: string;
}

export interface PreClaim extends FirstClaim {
  /** The hosts the claim got (those already claimed by an earlier delivery are not run). */
  readonly claimed: readonly string[];
}

/** The claim runPlan makes first: the first batch's first step, on all its hosts (none: undefined). */
export function firstClaimOf(plan: Plan, claimedAt = new Date().toISOString()): FirstClaim | undefined {
  const step = plan.batches[0]?.steps[0];
  if (step === undefined || step.hosts.length === 0) return undefined;
  return { step: step.id, hosts: [...step.hosts], claimedAt };
}

/** Pre-made claims a step has taken (each is taken once; rollback contexts share them). */
const takenClaims = new WeakSet<PreClaim>();

export interface RunOutcome {
  readonly hosts: HostOutcome[];
  readonly steps: StepReport[];
}

const subjectsOf = (step: PlanStep): string[] => (step.subject !== undefined ? [step.subject] : [...step.hosts]);

export async function runPlan(ctx: RunContext): Promise<RunOutcome> {
  const { plan } = ctx;
  const finalBySubject = new Map<string, HostOutcome>();
  const steps: StepReport[] = [];
  let failures = 0;
  let budgetSpent = false;

  const settle = (subject: string, r: HostResult, step: string): void => {
    const previous = finalBySubject.get(subject);
    // A subject keeps the outcome of the step where it failed; otherwise the latest step.
    if (!previous || previous.status === 'ok') finalBySubject.set(subject, outcomeOf(subject, r, step));
  };

  for (const [index, batch] of plan.batches.entries()) {
    const batchHosts = unique(batch.steps.flatMap((s) => s.hosts));
    if (budgetSpent || ctx.signal.aborted) {
      const why = ctx.signal.aborted ? 'not started: job stopped' : 'not started: failure budget spent';
      const status = ctx.signal.aborted ? ctx.abortStatus() : 'skipped';
      for (const step of batch.steps) {
        const results = step.hosts.map((h) => notRun(h, why, status));
        steps.push(report(step, index, results));
        for (const subject of subjectsOf(step)) if (!finalBySubject.has(subject)) finalBySubject.set(subject, outcomeOf(subject, notRun(subject, why, status), step.id));
      }
      continue;
    }
    // A shard may have no host in this batch: it still takes part in the batch's barrier.
    if (batchHosts.length > 0) ctx.publisher.emit({ type: 'batch', index, total: plan.batches.length, hosts: batchHosts });
    const failed = new Set<string>();
    // Per subject, the on-failure lists armed so far (in arming order).
    const armed = new Map<string, { by: string; steps: readonly PlanStep[] }[]>();

    for (const step of batch.steps) {
      const eligible = step.subject !== undefined ? (failed.has(step.subject) ? [] : [...step.hosts]) : step.hosts.filter((h) => !failed.has(h));
      const skippedWhy = 'skipped: its subject failed in an earlier step';
      const ran = await runStep(ctx, step, eligible);
      const results = step.hosts.map((h) => ran.results.get(h) ?? notRun(h, skippedWhy, 'skipped'));
      steps.push(report(step, index, results, ran.observations));

      const newlyFailed: string[] = [];
      // A host's own results, looked up by name: a scan of all results per subject was
      // quadratic (a million comparisons per step at 1000 hosts).
      const byHost = step.subject !== undefined ? undefined : groupByHost(results);
      for (const subject of subjectsOf(step)) {
        if (failed.has(subject)) continue;
        const own = byHost ? (byHost.get(subject) ?? []) : results;
        const worst = own.find((r) => r.status !== 'ok') ?? own[0];
        if (!worst) continue;
        settle(subject, worst, step.id);
        if (worst.status === 'ok') {
          if (step.onFailure?.length) armed.set(subject, [...(armed.get(subject) ?? []), { by: step.id, steps: step.onFailure }]);
        } else {
          // Unknown after a restart: stop the subject where it is; a rollback could be wrong.
          if (own.some((r) => ran.unknown?.has(r.host))) armed.delete(subject);
          else newlyFailed.push(subject);
          failed.add(subject);
        }
      }
      for (const subject of newlyFailed) {
        const lists = armed.get(subject) ?? [];
        armed.delete(subject);
        for (const list of [...lists].reverse()) {
          for (const rollback of list.steps) {
            const hosts = rollback.subject !== undefined || step.subject !== undefined ? [...rollback.hosts] : rollback.hosts.filter((h) => h === subject);
            const under = rollbackContext(ctx);
            const done = under ? await runStep(under, rollback, hosts, subject) : { results: new Map<string, HostResult>(), observations: undefined };
            const rolled = hosts.map((h) => done.results.get(h) ?? notRun(h, 'not started: job stopped', ctx.abortStatus()));
            steps.push({ ...report(rollback, index, rolled, done.observations), onFailure: { subject, armedBy: list.by } });
          }
        }
      }
    }
    // Subjects the job's stop caught (cancelled, timed out at the deadline, skipped by a halt)
    // are counted apart from those that failed: "3 failed" after a cancel read as a fault.
    const stopStatus = ctx.signal.aborted ? ctx.abortStatus() : undefined;
    let stoppedHere = stopStatus === undefined ? 0 : [...failed].filter((s) => finalBySubject.get(s)?.status === stopStatus).length;
    let failedHere = failed.size - stoppedHere;
    let okHere = unique(batch.steps.flatMap(subjectsOf)).length - failed.size;
    let announce = true;
    if (ctx.barrier) {
      const all = await ctx.barrier(index, { ok: okHere, failed: failedHere, stopped: stoppedHere });
      ({ ok: okHere, failed: failedHere, stopped: stoppedHere, last: announce } = all);
    }
    failures += failedHere + stoppedHere;
    budgetSpent = failures > plan.failureBudget;
    if (announce) ctx.publisher.emit({ type: 'state', state: 'running', reason: batchLine(index, plan.batches.length, { ok: okHere, failed: failedHere, stopped: stoppedHere }, stopStatus) });
  }

  // Hosts first in plan order, then subjects that are not plan hosts (nodes named by kubectl
  // steps), in the order they appeared. A relay's source, only read from, has no outcome.
  const hostOrder = plan.hosts.filter((h) => finalBySubject.has(h));
  const planHosts = new Set(plan.hosts);
  const others = [...finalBySubject.keys()].filter((s) => !planHosts.has(s));
  const hosts = [...hostOrder, ...others].map((s) => finalBySubject.get(s)!);
  // A claim made with the `running` transition that no step took (the job stopped before its
  // first step): nothing was sent to its hosts; the ledger says so rather than show them mid-step.
  const pre = ctx.preclaimed;
  if (pre !== undefined && !takenClaims.has(pre)) {
    takenClaims.add(pre);
    const status = ctx.signal.aborted ? ctx.abortStatus() : 'skipped';
    await ctx.ledger.finishMany(ctx.jobId, ctx.attempt, pre.step, pre.claimed.map((host) => ({ host, status, exitCode: null, durationMs: 0, startedAt: pre.claimedAt })), ctx.worker, ctx.guard);
  }
  return { hosts, steps };
}

/**
 * The line a batch's end announces: `batch 2/5 done: 10 ok, 1 failed`, or once the job's stop
 * caught some of its subjects `batch 2/5 stopped: 4 ok, 7 cancelled` (the word is this worker's
 * abort status; a count from other shards only, stopped before this one, reads "stopped").
 */
export function batchLine(index: number, total: number, counts: BatchCounts, stopStatus: HostStatus | undefined): string {
  const head = `batch ${index + 1}/${total}`;
  if (counts.stopped === 0) return `${head} done: ${counts.ok} ok, ${counts.failed} failed`;
  const word = stopStatus !== undefined ? stopStatus.replaceAll('_', ' ') : 'stopped';
  return `${head} stopped: ${counts.ok} ok, ${counts.stopped} ${word}${counts.failed > 0 ? `, ${counts.failed} failed` : ''}`;
}

/** A batch's subjects by how they ended: ok, failed, or caught by the job's stop. */
export interface BatchCounts {
  readonly ok: number;
  readonly failed: number;
  readonly stopped: number;
}

/**
 * What an on-failure step runs under: the job's own context while it runs; after a cancel or
 * the deadline, the same context on the rollback signal (a subject stopped mid-change is put
 * back, each step bounded by its own timeout); undefined when nothing may run any more.
 */
function rollbackContext(ctx: RunContext): RunContext | undefined {
  if (!ctx.signal.aborted) return ctx;
  const signal = ctx.rollbackSignal?.();
  if (!signal) return undefined;
  let under = rollbackContexts.get(ctx);
  if (!under) rollbackContexts.set(ctx, (under = { ...ctx, signal }));
  return under;
}
const rollbackContexts = new WeakMap<RunContext, RunContext>();

interface StepOutcome {
  readonly results: Map<string, HostResult>;
  readonly observations?: readonly GateObservation[] | undefined;
  /** Hosts whose outcome is unknown after a worker restart (resumable plans). */
  readonly unknown?: ReadonlySet<string> | undefined;
}

/**
 * Per run of a resumable plan: subjects whose latest step was taken from the ledger (done by
 * the worker before a restart) and nothing was run for since. A "went down" gate claimed
 * fresh for such a subject may come after the reboot is long over (the takeover took longer
 * than the node's reboot): it is passed with a note, and the gates after it decide.
 */
const resumedSubjects = new WeakMap<RunContext, Set<string>>();

/** Claim, dispatch to the step's kind, scrub, record in ledger and audit. */
async function runStep(ctx: RunContext, step: PlanStep, eligible: readonly string[], rollbackFor?: string): Promise<StepOutcome> {
  const results = new Map<string, HostResult>();
  if (eligible.length === 0) return { results };
  if (ctx.signal.aborted) {
    for (const h of eligible) results.set(h, notRun(h, 'not started: job stopped', ctx.abortStatus()));
    return { results };
  }
  ctx.publisher.emit({
    type: 'step',
    step: step.id,
    description: rollbackFor !== undefined ? `on failure of ${rollbackFor}: ${step.description}` : step.description,
    hosts: eligible,
    ...(rollbackFor !== undefined ? { rollbackFor } : {}),
  });
  // The first step's claim may have been made with the job's `running` transition: taken once.
  const pre = ctx.preclaimed;
  const taken = pre !== undefined && rollbackFor === undefined && !takenClaims.has(pre) && pre.step === step.id && sameHosts(pre.hosts, eligible) ? pre : undefined;
  if (taken) takenClaims.add(taken);
  // The claim's start time is kept: recording the outcomes then need not read the claims back.
  const claimedAt = taken?.claimedAt ?? new Date().toISOString();
  const claimedNow = taken ? [...taken.claimed] : await ctx.ledger.claim(ctx.jobId, ctx.attempt, step.id, eligible, ctx.worker, claimedAt, ctx.guard);
  const claimedSet = new Set(claimedNow);
  const refused = eligible.filter((h) => !claimedSet.has(h));
  let claimed = claimedNow;
  if (claimed.length > 0 && ctx.confirmClaim) {
    // A claim a failover could still lose must not send anything to a host: a later delivery
    // would find the step unclaimed and run it again.
    const problem = await ctx.confirmClaim(step.id, claimed);
    if (problem !== undefined) {
      for (const h of claimed) results.set(h, notRun(h, `not started: ${problem}`, 'skipped'));
      claimed = [];
    }
  }
  const resumed = ctx.plan.resumable === true && refused.length > 0 ? await resumeFromLedger(ctx, step, refused) : { results: new Map<string, HostResult>(), rerun: [], unknown: new Set<string>(), settled: [] };
  for (const h of refused) {
    const prior = resumed.results.get(h);
    if (prior) results.set(h, prior);
    else if (!resumed.rerun.includes(h)) results.set(h, notRun(h, 'refused: the ledger shows this step already started on this host', 'skipped'));
  }
  const finishes: LedgerWrite[] = [];
  if (resumed.settled.length > 0) {
    finishes.push(await ctx.ledger.finishMany(ctx.jobId, ctx.attempt, step.id, resumed.settled.map((r) => ({ host: r.host, status: r.status, exitCode: r.exitCode, durationMs: r.durationMs, output: r.stdout })), ctx.worker, ctx.guard));
  }
  let resumedHere = resumedSubjects.get(ctx);
  if (!resumedHere) resumedSubjects.set(ctx, (resumedHere = new Set()));
  const subjectOf = (h: string): string => step.subject ?? h;
  for (const h of refused) if (resumed.results.has(h)) resumedHere.add(subjectOf(h));
  let fresh = [...claimed];
  if (ctx.plan.resumable === true && step.action.kind === 'gate' && step.action.until.name === 'unreachable') {
    const passed = fresh.filter((h) => resumedHere.has(subjectOf(h)));
    if (passed.length > 0) {
      const settled = passed.map((h) => ({ ...notRun(h, '', 'ok'), stdout: 'going down was not observed: the worker restarted after the step before was sent; the next gates decide\n' }));
      for (const r of settled) {
        results.set(r.host, r);
        emitFinished(ctx, step.id, r);
      }
      finishes.push(await ctx.ledger.finishMany(ctx.jobId, ctx.attempt, step.id, settled.map((r) => ({ host: r.host, status: r.status, exitCode: r.exitCode, durationMs: r.durationMs, output: r.stdout })), ctx.worker, ctx.guard));
      fresh = fresh.filter((h) => !passed.includes(h));
    }
  }
  for (const h of fresh) resumedHere.delete(subjectOf(h));
  const toRun = [...fresh, ...resumed.rerun];
  // Every host's finish and its own audit record, batched: at N = 1000 one round trip per
  // host (three, with the ledger read) added ~0.3 s after every fan-out. The two writes are
  // independent: sent together, the worker waits for Redis once, not twice.
  const claimedHere = new Set(fresh);
  // What ran on each host: as root, `sudo -n --` only where the login user is not root.
  const argvByUser = new Map<string, string[]>();
  const argvOn = (host: string): string[] => {
    const user = ctx.targetFor(host).user;
    let argv = argvByUser.get(user);
    if (!argv) argvByUser.set(user, (argv = actionArgv(step.action, user)));
    return argv;
  };
  const record = (batch: readonly HostResult[]): Promise<[PromiseSettledResult<LedgerWrite>, PromiseSettledResult<WrittenAudit>]> => {
    const finished = ctx.ledger.finishMany(ctx.jobId, ctx.attempt, step.id, batch.map((r) => ({ host: r.host, status: r.status, exitCode: r.exitCode, durationMs: r.durationMs, ...(claimedHere.has(r.host) ? { startedAt: claimedAt } : {}), ...(ctx.plan.resumable === true ? { output: r.stdout.slice(0, LEDGER_OUTPUT_CHARS) } : {}) })), ctx.worker, ctx.guard);
    // One execution entry per write and command: the hosts of the batch that ran the same argv
    // (one argv per login user), each with its own outcome (queues/audit.ts `results`).
    const byArgv = new Map<string[], AuditHostRun[]>();
    for (const r of batch) {
      const argv = argvOn(r.host);
      let runs = byArgv.get(argv);
      if (!runs) byArgv.set(argv, (runs = []));
      runs.push({ host: r.host, status: r.status, exitCode: r.exitCode, durationMs: r.durationMs, ...(r.error !== undefined ? { reason: r.error } : {}) });
    }
    const audited = ctx.audit.appendMany([...byArgv].map(([argv, results]) => ({
      kind: 'execution' as const,
      jobId: ctx.jobId,
      subject: ctx.subject,
      origin: 'worker' as const,
      tool: ctx.tool,
      step: step.id,
      argv,
      results,
      ...((ctx.approvalsRequired ?? 0) > 0 ? { approvalsRequired: ctx.approvalsRequired } : {}),
    })));
    // Settled together (allSettled handles a rejection at once): an audit write is never left
    // in flight, and a failed batch is reported once all are settled.
    return Promise.allSettled([finished, audited]);
  };
  // An exec step's hosts that finish while others still run are recorded at once, in batches,
  // so Redis writes them during the fan-out instead of after it. Only a finish that cannot
  // change any more: an exec step returns the executor's results as they were announced, and
  // after an abort (a cancel becomes timed_out at the deadline) everything is left to the end.
  const early = new Map<string, HostResult>();
  const earlyWrites: Array<Promise<[PromiseSettledResult<LedgerWrite>, PromiseSettledResult<WrittenAudit>]>> = [];
  let pending: Array<{ raw: HostResult; clean: HostResult }> = [];
  // Each result scrubbed once: a host recorded early keeps its clean copy for the step's result.
  const cleaned = new Map<HostResult, HostResult>();
  const onFinished = step.action.kind !== 'exec' ? undefined : (raw: HostResult): void => {
    if (ctx.signal.aborted || raw.status === 'cancelled' || early.has(raw.host)) return;
    const clean = scrubResult(ctx.redactor, raw);
    cleaned.set(raw, clean);
    pending.push({ raw, clean });
    if (pending.length >= EARLY_BATCH) {
      for (const p of pending) early.set(p.raw.host, p.raw);
      earlyWrites.push(record(pending.map((p) => p.clean)));
      pending = [];
    }
  };
  const announced = new Set<string>();
  const io = stepIO(ctx, step, announced, false, onFinished);
  let observations: readonly GateObservation[] | undefined;
  let ran: HostResult[] = [];
  let late: HostResult[] = [];
  if (toRun.length > 0) {
    // A failed run still waits for the writes already sent: none is left in flight.
    const run = await stepKind(step.action).run(step.action, step, toRun, io).finally(() => Promise.all(earlyWrites));
    observations = run.observations;
    // Scrubbed once, here: everything downstream (result, summary, audit) sees clean text.
    ran = run.results.map((r) => cleaned.get(r) ?? scrubResult(ctx.redactor, r));
    // The executor reads any abort as a cancel; at the job's deadline hosts in flight timed out.
    if (ctx.signal.aborted && ctx.abortStatus() === 'timed_out') ran = ran.map(caughtByDeadline);
    // Left for this last write: hosts not yet sent, and any result that is not the very one
    // announced (not expected from an exec step): recorded again as returned, a second
    // record, never only a wrong one.
    late = ran.filter((_, i) => early.get(run.results[i]!.host) !== run.results[i]);
  }
  for (const r of ran) {
    results.set(r.host, r);
    // Kinds that do not go through the executor's events (gates) are announced here.
    if (!announced.has(r.host)) emitFinished(ctx, step.id, r);
  }
  // The step's progress goes out with its last record write, not a linger later.
  ctx.publisher.send();
  const settled = await Promise.all([...earlyWrites, record(late)]);
  for (const [ledgerDone, auditDone] of settled) {
    if (ledgerDone.status === 'rejected') throw ledgerDone.reason;
    if (auditDone.status === 'rejected') throw auditDone.reason;
  }
  for (const [ledgerDone] of settled) if (ledgerDone.status === 'fulfilled') finishes.push(ledgerDone.value);
  if (ctx.checkpoint && (ran.length > 0 || finishes.some((f) => Object.keys(f.values).length > 0))) {
    const values = Object.assign({}, ...finishes.map((f) => f.values)) as Record<string, string>;
    const written = settled.flatMap(([, a]) => (a.status === 'fulfilled' ? [a.value] : []));
    await ctx.checkpoint(step.id, { key: finishes[0]?.key ?? '', values }, { ids: written.flatMap((w) => w.ids), entries: written.flatMap((w) => w.entries) });
  }
  return { results, observations, unknown: resumed.unknown };
}

function sameHosts(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((h, i) => h === b[i]);
}

/**
 * Hosts recorded (ledger finish and audit entry) per write while a fan-out still runs. 64, not
 * 128, since the audit wrote one entry per write instead of per host: −3 to −5 % client CPU at
 * 1000 hosts in interleaved runs (bench/README.md, session 9); 512 was +11 %.
 */
const EARLY_BATCH = 64;

/** Output a resumable plan keeps per step and host in the ledger (what its report reads back). */
const LEDGER_OUTPUT_CHARS = 1024;

/**
 * A resumed run (after a worker restart) meets steps an earlier delivery claimed. Finished:
 * their recorded outcome stands and nothing is repeated. Unfinished gates: polled again (a
 * gate only reads). Any other unfinished step: its outcome is unknown, so its subject stops
 * here, without rollback, for a person to look at.
 */
async function resumeFromLedger(ctx: RunContext, step: PlanStep, hosts: readonly string[]): Promise<{ results: Map<string, HostResult>; rerun: string[]; unknown: Set<string>; settled: HostResult[] }> {
  const entries = new Map((await ctx.ledger.entries(ctx.jobId)).filter((e) => e.attempt === ctx.attempt && e.step === step.id).map((e) => [e.host, e]));
  const results = new Map<string, HostResult>();
  const rerun: string[] = [];
  const unknown = new Set<string>();
  // Outcomes decided here for unfinished entries (a "went down" gate): the ledger records them.
  const settled: HostResult[] = [];
  for (const host of hosts) {
    const entry = entries.get(host);
    if (!entry) continue;
    if (entry.finishedAt !== undefined) {
      const status = (entry.status ?? 'failed') as HostStatus;
      results.set(host, {
        ...notRun(host, status === 'ok' ? '' : `${status} before the worker restart`, status),
        exitCode: entry.exitCode ?? null,
        stdout: entry.output ?? '',
        durationMs: entry.durationMs ?? 0,
      });
    } else if (step.action.kind === 'gate' && step.action.until.name === 'unreachable') {
      // "Went down" is an event, not a state: after the restart it may be long over. The gates
      // that follow (answers again, Ready, units) still decide whether the node is healthy.
      const passed = { ...notRun(host, '', 'ok'), stdout: 'going down was not observed before the worker restart; the next gates decide\n' };
      results.set(host, passed);
      settled.push(passed);
    } else if (step.action.kind === 'gate') {
      rerun.push(host);
    } else {
      unknown.add(host);
      results.set(host, notRun(host, 'outcome unknown: the worker stopped while this step ran; not repeated and not rolled back', 'failed'));
    }
  }
  if (results.size > 0 || rerun.length > 0) {
    ctx.publisher.emit({ type: 'gate', step: step.id, subject: step.subject ?? hosts.join(','), text: `resumed after a worker restart: ${results.size} outcome(s) from the ledger, ${rerun.length} gate(s) polled again` });
  }
  return { results, rerun, unknown, settled };
}

/**
 * A host the executor reports cancelled (it reads every abort as a cancel) that the job's
 * deadline stopped: timed out, and its error says what stopped it, not "cancelled" (nobody did).
 */
export function caughtByDeadline(r: HostResult): HostResult {
  if (r.status !== 'cancelled') return r;
  const error = r.error === 'cancelled before start' ? "not started: the job's deadline was reached" : r.error?.replace(/^cancelled\b/, "the job's deadline was reached");
  return { ...r, status: 'timed_out', ...(error !== undefined ? { error } : {}) };
}

function emitFinished(ctx: RunContext, step: string, r: HostResult): void {
  // Caught by the job's stop: the executor reads every abort as a cancel, and at the job's
  // deadline that is timed_out, as in the step's result; gates and other kinds already say the
  // stop's own status. Marked, so progress counts it apart from hosts that failed.
  const stop = ctx.signal.aborted ? ctx.abortStatus() : undefined;
  const caught = stop !== undefined && (r.status === stop || r.status === 'cancelled');
  const said = caught && stop === 'timed_out' ? caughtByDeadline(r) : r;
  ctx.publisher.emit({ type: 'host_finished', step, host: r.host, status: caught ? stop : r.status, exitCode: r.exitCode, durationMs: r.durationMs, error: said.error, ...(caught ? { stopped: true } : {}) });
}

/** Kinds a gate's check may run: they only run a program and read what it says. */
const CHECK_KINDS: ReadonlySet<string> = new Set(['exec', 'ipmi']);

/**
 * The runner's side of StepIO: the executor, with progress and the job's signal wired in.
 * `quiet`: a gate check's own runs (tagged `<job>.<step>.c`), no per-host progress.
 */
function stepIO(ctx: RunContext, step: PlanStep, announced: Set<string>, quiet = false, onFinished?: (result: HostResult) => void): StepIO {
  const runId = quiet ? `${ctx.jobId}.${step.id}.c` : `${ctx.jobId}.${step.id}`;
  const onEvent = (event: ExecEvent): void => {
    if (quiet) return;
    switch (event.type) {
      case 'host_started':
        ctx.publisher.emit({ type: 'host_started', step: step.id, host: event.host });
        break;
      case 'output':
        ctx.publisher.emit({ type: 'output', step: step.id, host: event.host, stream: event.stream, text: event.chunk });
        break;
      case 'host_finished':
        announced.add(event.host);
        emitFinished(ctx, step.id, event.result);
        onFinished?.(event.result);
        break;
      default:
        break;
    }
  };
  const common = { signal: ctx.signal, onEvent };
  const targets = (hosts: readonly string[]): SshTarget[] => hosts.map(ctx.targetFor);
  const execWith = (hosts: readonly string[], r: ExecRequestSpec, id: string, events: boolean): Promise<HostResult[]> =>
    ctx.executor.exec(targets(hosts), (target) => ({ argv: r.argv, asRoot: r.asRoot, stdin: r.stdin, runId: hostRunId(id, target.name) }), {
      signal: ctx.signal,
      onEvent: events ? onEvent : undefined,
      commandTimeoutMs: r.commandTimeoutMs,
      ...(r.connectTimeoutMs !== undefined ? { connectTimeoutMs: r.connectTimeoutMs } : {}),
      window: ctx.window,
    });
  const clock = ctx.clock ?? { now: () => Date.now(), sleep };
  return {
    runId,
    signal: ctx.signal,
    abortStatus: ctx.abortStatus,
    loginUser: (host) => ctx.targetFor(host).user,
    exec: (hosts, r) => execWith(hosts, r, runId, !quiet && r.quiet !== true),
    upload: (hosts, localPath, remotePath, mode) => ctx.executor.upload(targets(hosts), localPath, remotePath, { ...common, mode }),
    download: (hosts, remotePath, localDir) => ctx.executor.download(targets(hosts), remotePath, localDir, common),
    relay: (fromHost, remotePath, hosts, destPath) => ctx.executor.relay(ctx.targetFor(fromHost), remotePath, targets(hosts), destPath, common),
    ...(ctx.executor.playbook
      ? { playbook: (hosts: readonly string[], args: readonly string[], timeoutMs: number) => ctx.executor.playbook!(hosts, args, { ...common, timeoutMs, abortStatus: ctx.abortStatus }) }
      : {}),
    ...(ctx.executor.ipmi
      ? { ipmi: (r: IpmiRequest) => ctx.executor.ipmi!({ ...r, via: r.via ? ctx.targetFor(r.host) : undefined, runId }, { ...common, abortStatus: ctx.abortStatus }).then((res) => scrubResult(ctx.redactor, res)) }
      : {}),
    ...(ctx.executor.pinHostKey ? { pinHostKey: (hosts: readonly string[], fingerprint: string) => ctx.executor.pinHostKey!(targets(hosts), fingerprint) } : {}),
    async observe(check, only) {
      // A check's own steps run quietly (a gate reports each poll as one progress line), and
      // only kinds that run a program and read it (a command, ipmitool): a read check never
      // transfers files or waits on other gates. Being reads, a check's steps run at once: a
      // poll of etcd_health with a member down waits out etcdctl's dial timeout once, not per
      // command (each of its three reads was ~3 s of waiting, one after the other).
      const checkIO = stepIO(ctx, step, new Set(), true);
      const inners = check.plan.batches.flatMap((b) => b.steps);
      for (const inner of inners) if (!CHECK_KINDS.has(inner.action.kind)) throw new Error(`a gate check may only run commands or ipmitool; step ${inner.id} is ${inner.action.kind}`);
      const got = await Promise.all(inners.map(async (inner) => {
        // Only the subjects still waited for: a step about one (ipmitool on a jump host) by its subject, else by its hosts.
        const hosts = !only ? inner.hosts : inner.subject !== undefined ? (only.includes(inner.subject) ? inner.hosts : []) : inner.hosts.filter((h) => only.includes(h));
        return hosts.length > 0 ? (await stepKind(inner.action).run(inner.action, inner, hosts, checkIO)).results : [];
      }));
      const results: StepResults = new Map(inners.map((inner, i) => [inner.id, new Map((got[i] ?? []).map((r) => [r.host, scrubResult(ctx.redactor, r)]))]));
      const tool = ctx.tools?.get(check.tool);
      let data: unknown;
      if (tool?.summarize && ctx.planContext) data = ctx.redactor.scrubDeep(tool.summarize(check.input as never, results, ctx.planContext));
      return { tool: check.tool, data, results } satisfies Observation;
    },
    condition: (tool, name) => ctx.tools?.get(tool)?.conditions?.[name] ?? GENERIC_CONDITIONS[name],
    progress: (subject, text) => ctx.publisher.emit({ type: 'gate', step: step.id, subject, text }),
    sleep: (ms) => clock.sleep(ms, ctx.signal),
    now: () => clock.now(),
  };
}

function report(step: PlanStep, batch: number, results: readonly HostResult[], observations?: readonly GateObservation[]): StepReport {
  return {
    id: step.id,
    description: step.description,
    batch,
    results,
    ...(step.subject !== undefined ? { subject: step.subject } : {}),
    ...(observations ? { observations } : {}),
  };
}

function scrubResult(redactor: Redactor, r: HostResult): HostResult {
  return { ...r, stdout: redactor.scrub(r.stdout), stderr: redactor.scrub(r.stderr), error: r.error === undefined ? undefined : redactor.scrub(r.error) };
}

export function notRun(host: string, error: string, status: HostStatus): HostResult {
  return { host, status, exitCode: null, signal: null, stdout: '', stderr: '', truncated: false, startedAt: new Date().toISOString(), durationMs: 0, connectMs: 0, error: error || undefined };
}

function outcomeOf(subject: string, r: HostResult, step: string): HostOutcome {
  return {
    host: subject,
    status: r.status,
    step,
    exitCode: r.exitCode,
    signal: r.signal,
    stdout: r.stdout,
    stderr: r.stderr,
    truncated: r.truncated,
    durationMs: r.durationMs,
    error: r.error,
  };
}

function groupByHost(results: readonly HostResult[]): Map<string, HostResult[]> {
  const byHost = new Map<string, HostResult[]>();
  for (const r of results) {
    const list = byHost.get(r.host);
    if (list) list.push(r);
    else byHost.set(r.host, [r]);
  }
  return byHost;
}

function unique<T>(items: readonly T[]): T[] {
  return [...new Set(items)];
}
