// Runs a plan: batches in order, steps in order within a batch, hosts of a step fanned out
// by the executor. Every dispatch is claimed in the execution ledger first, so a host is
// never sent the same step twice; every host outcome is published as progress and written
// to the audit trail. A failure budget counted over the whole plan skips later batches
// once it is spent.
import type { Plan, PlanStep } from '../tools/types.js';
import type { Redactor } from '../src/redact.js';
import { sleep } from '../src/sleep.js';
import { actionArgv } from './plan-commands.js';
import type { ExecEvent, ExecRequest, FanoutOptions, HostResult, HostStatus, SshTarget } from '../src/ssh/types.js';
import type { AuditLog } from './audit.js';
import type { ThrottledPublisher } from './events.js';
import type { ExecutionLedger } from './ledger.js';
import type { HostOutcome, StepReport } from './records.js';

/** What the runner needs from the SSH layer (src/ssh provides it; see src/ssh/plan-executor.ts). */
export interface PlanExecutor {
  exec(targets: readonly SshTarget[], request: (target: SshTarget) => ExecRequest, options: FanoutOptions): Promise<HostResult[]>;
  upload(targets: readonly SshTarget[], localPath: string, remotePath: string, options: TransferCallOptions & { mode?: number | undefined }): Promise<HostResult[]>;
  download(targets: readonly SshTarget[], remotePath: string, localDir: string, options: TransferCallOptions): Promise<HostResult[]>;
  relay(from: SshTarget, remotePath: string, targets: readonly SshTarget[], destPath: string, options: TransferCallOptions): Promise<HostResult[]>;
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
  readonly plan: Plan;
  readonly targetFor: (host: string) => SshTarget;
  readonly executor: PlanExecutor;
  readonly ledger: ExecutionLedger;
  readonly audit: AuditLog;
  readonly publisher: ThrottledPublisher;
  readonly signal: AbortSignal;
  readonly window?: number | undefined;
  /** Scrubs known secret values out of remote output before it is stored anywhere. */
  readonly redactor: Redactor;
  /** Maps an abort to the status hosts in flight get (cancelled, or timed_out for a job deadline). */
  readonly abortStatus: () => HostStatus;
}

export interface RunOutcome {
  readonly hosts: HostOutcome[];
  readonly steps: StepReport[];
}

export async function runPlan(ctx: RunContext): Promise<RunOutcome> {
  const { plan } = ctx;
  const finalByHost = new Map<string, HostOutcome>();
  const steps: StepReport[] = [];
  // Failures are counted per batch and host: kubectl tools run every batch on the same
  // control-plane host, and each failed drain counts against the budget.
  let failures = 0;
  let budgetSpent = false;

  for (const [index, batch] of plan.batches.entries()) {
    const batchHosts = unique(batch.steps.flatMap((s) => s.hosts));
    if (budgetSpent || ctx.signal.aborted) {
      const why = ctx.signal.aborted ? 'not started: job stopped' : 'not started: failure budget spent';
      for (const step of batch.steps) {
        steps.push({ id: step.id, description: step.description, batch: index, results: step.hosts.map((h) => notRun(h, why, ctx.signal.aborted ? ctx.abortStatus() : 'skipped')) });
      }
      for (const host of batchHosts) if (!finalByHost.has(host)) finalByHost.set(host, outcomeOf(notRun(host, why, ctx.signal.aborted ? ctx.abortStatus() : 'skipped'), batch.steps[0]?.id ?? ''));
      continue;
    }
    ctx.publisher.emit({ type: 'batch', index, total: plan.batches.length, hosts: batchHosts });
    // A host that failed a step is skipped for the rest of this batch's steps.
    const failedHosts = new Set<string>();

    for (const step of batch.steps) {
      const eligible = step.hosts.filter((h) => !failedHosts.has(h));
      const results = new Map<string, HostResult>();
      for (const h of step.hosts) if (failedHosts.has(h)) results.set(h, notRun(h, 'skipped: failed in an earlier step', 'skipped'));

      if (ctx.signal.aborted) {
        for (const h of eligible) results.set(h, notRun(h, 'not started: job stopped', ctx.abortStatus()));
      } else {
        ctx.publisher.emit({ type: 'step', step: step.id, description: step.description, hosts: eligible });
        const claimed = await ctx.ledger.claim(ctx.jobId, ctx.attempt, step.id, eligible, ctx.worker);
        const claimedSet = new Set(claimed);
        for (const h of eligible) {
          if (!claimedSet.has(h)) results.set(h, notRun(h, 'refused: the ledger shows this step already started on this host', 'skipped'));
        }
        // Scrubbed once, here: everything downstream (result, summary, audit) sees clean text.
        const ran = (await dispatch(ctx, step, claimed)).map((r) => scrubResult(ctx.redactor, r));
        for (const r of ran) results.set(r.host, r);
        // Every host's finish and its own audit record, batched: at N = 1000 one round trip per
        // host (three, with the ledger read) added ~0.3 s after every fan-out.
        await ctx.ledger.finishMany(ctx.jobId, ctx.attempt, step.id, ran.map((r) => ({ host: r.host, status: r.status, exitCode: r.exitCode, durationMs: r.durationMs })), ctx.worker);
        const argv = actionArgv(step.action);
        await ctx.audit.appendMany(ran.map((r) => ({
          kind: 'execution' as const,
          jobId: ctx.jobId,
          subject: ctx.subject,
          origin: 'worker' as const,
          tool: ctx.tool,
          host: r.host,
          step: step.id,
          argv,
          status: r.status,
          exitCode: r.exitCode,
          durationMs: r.durationMs,
          reason: r.error,
        })));
      }

      const ordered = step.hosts.map((h) => results.get(h) ?? notRun(h, 'no result', 'skipped'));
      for (const r of ordered) {
        if (r.status !== 'ok') failedHosts.add(r.host);
        const previous = finalByHost.get(r.host);
        // A host keeps the outcome of the step where it failed; otherwise the latest step.
        if (!previous || previous.status === 'ok') finalByHost.set(r.host, outcomeOf(r, step.id));
      }
      steps.push({ id: step.id, description: step.description, batch: index, results: ordered });
    }
    const failed = failedHosts.size;
    failures += failed;
    budgetSpent = failures > plan.failureBudget;
    ctx.publisher.emit({ type: 'state', state: 'running', reason: `batch ${index + 1}/${plan.batches.length} done: ${batchHosts.length - failed} ok, ${failed} failed` });
  }

  // Hosts the plan only reads from (a relay's source) have no step of their own.
  const hosts = plan.hosts.flatMap((h) => {
    const outcome = finalByHost.get(h);
    return outcome ? [outcome] : [];
  });
  return { hosts, steps };
}

async function dispatch(ctx: RunContext, step: PlanStep, hosts: readonly string[]): Promise<HostResult[]> {
  if (hosts.length === 0) return [];
  const targets = hosts.map(ctx.targetFor);
  const onEvent = (event: ExecEvent): void => {
    switch (event.type) {
      case 'host_started':
        ctx.publisher.emit({ type: 'host_started', step: step.id, host: event.host });
        break;
      case 'output':
        ctx.publisher.emit({ type: 'output', step: step.id, host: event.host, stream: event.stream, text: event.chunk });
        break;
      case 'host_finished':
        ctx.publisher.emit({
          type: 'host_finished',
          step: step.id,
          host: event.host,
          status: event.result.status,
          exitCode: event.result.exitCode,
          durationMs: event.result.durationMs,
          error: event.result.error,
        });
        break;
      default:
        break;
    }
  };
  const action = step.action;
  const common = { signal: ctx.signal, onEvent };
  switch (action.kind) {
    case 'exec':
      return ctx.executor.exec(
        targets,
        () => ({ argv: action.argv, asRoot: action.asRoot, stdin: action.stdin, runId: `${ctx.jobId}.${step.id}` }),
        { ...common, commandTimeoutMs: step.timeoutMs, window: ctx.window },
      );
    case 'upload':
      return ctx.executor.upload(targets, action.localPath, action.remotePath, { ...common, mode: action.mode });
    case 'download':
      return ctx.executor.download(targets, action.remotePath, action.localDir, common);
    case 'relay':
      return ctx.executor.relay(ctx.targetFor(action.fromHost), action.remotePath, targets, action.destPath, common);
    case 'wait_reachable':
      return Promise.all(targets.map((t) => waitReachable(ctx, t, action.downTimeoutMs, action.upTimeoutMs, onEvent)));
  }
}

/** After a reboot: wait for the host to stop answering, then to answer a trivial exec again. */
async function waitReachable(
  ctx: RunContext,
  target: SshTarget,
  downTimeoutMs: number,
  upTimeoutMs: number,
  onEvent: (e: ExecEvent) => void,
): Promise<HostResult> {
  const started = Date.now();
  onEvent({ type: 'host_started', host: target.name });
  const probe = async (): Promise<HostResult | undefined> =>
    (await ctx.executor.exec([target], () => ({ argv: ['true'], runId: `${ctx.jobId}.probe` }), { signal: ctx.signal, connectTimeoutMs: 3000, commandTimeoutMs: 5000 }))[0];
  const finish = (status: HostStatus, error?: string): HostResult => {
    const result = { ...notRun(target.name, error ?? '', status), durationMs: Date.now() - started, error };
    onEvent({ type: 'host_finished', host: target.name, result });
    return result;
  };
  let wentDown = false;
  while (Date.now() - started < downTimeoutMs) {
    if (ctx.signal.aborted) return finish(ctx.abortStatus(), 'stopped while waiting for the host to go down');
    const r = await probe();
    if (r && r.status !== 'ok') {
      wentDown = true;
      break;
    }
    await sleep(1000, ctx.signal);
  }
  if (!wentDown) return finish('failed', `host still answered ${Math.round(downTimeoutMs / 1000)}s after the reboot was scheduled`);
  const upStarted = Date.now();
  while (Date.now() - upStarted < upTimeoutMs) {
    if (ctx.signal.aborted) return finish(ctx.abortStatus(), 'stopped while waiting for the host to come back');
    const r = await probe();
    if (r?.status === 'ok') return finish('ok');
    if (r?.status === 'host_key_rejected') return finish('host_key_rejected', r.error);
    await sleep(2000, ctx.signal);
  }
  return finish('timed_out', `host did not come back within ${Math.round(upTimeoutMs / 1000)}s`);
}

function scrubResult(redactor: Redactor, r: HostResult): HostResult {
  return { ...r, stdout: redactor.scrub(r.stdout), stderr: redactor.scrub(r.stderr), error: r.error === undefined ? undefined : redactor.scrub(r.error) };
}

export function notRun(host: string, error: string, status: HostStatus): HostResult {
  return { host, status, exitCode: null, signal: null, stdout: '', stderr: '', truncated: false, startedAt: new Date().toISOString(), durationMs: 0, connectMs: 0, error: error || undefined };
}

function outcomeOf(r: HostResult, step: string): HostOutcome {
  return {
    host: r.host,
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

function unique<T>(items: readonly T[]): T[] {
  return [...new Set(items)];
}
