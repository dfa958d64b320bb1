// Run a plan straight through the job runner (queues/runner.ts) with a test Castellan's real
// parts: SSH executor, Redis ledger, audit and events, tool catalogue. For plan-model tests
// that build plans by hand rather than through a tool.
import { randomBytes } from 'node:crypto';
import { ThrottledPublisher, type JobEvent } from '../../queues/events.js';
import { abortStatusOf, JobStop } from '../../queues/job-stop.js';
import { runPlan, type PreClaim, type RunOutcome } from '../../queues/runner.js';
import type { Plan, PlanContext } from '../../tools/types.js';
import type { CastellanHandle } from './castellan.js';

/** A fresh id for runPlanOn, for tests that watch the run's events while it runs. */
export function planJobId(): string {
  return `jplan${randomBytes(5).toString('hex')}`;
}

/**
 * `halt`: the job's stop, as the worker has it (cancel or deadline it to see what a stopped job
 * does). `preclaimed`: the first step's claim, made beforehand as a delivery makes it with its
 * `running` transition (queues/claims.ts startRun).
 */
export async function runPlanOn(c: CastellanHandle, plan: Plan, jobId = planJobId(), halt = new JobStop(), preclaimed?: PreClaim): Promise<{ outcome: RunOutcome; events: JobEvent[]; jobId: string }> {
  const { ctx } = c.runtime;
  const publisher = new ThrottledPublisher(ctx.events, jobId);
  const inventory = await ctx.inventory.current();
  const outcome = await runPlan({
    jobId,
    attempt: 0,
    worker: 'test',
    subject: 'tester',
    tool: plan.tool,
    plan,
    targetFor: (h) => ctx.targetFor(inventory, h),
    executor: ctx.executor,
    ledger: ctx.ledger,
    audit: ctx.audit,
    publisher,
    signal: halt.signal,
    redactor: ctx.redactor,
    abortStatus: () => abortStatusOf(halt.reason),
    rollbackSignal: () => halt.rollbackSignal(),
    tools: ctx.tools,
    planContext: ctx.planContext(inventory),
    preclaimed,
  });
  await publisher.drain();
  return { outcome, events: (await ctx.events.read(jobId)).map((e) => e.event), jobId };
}

export async function planContextOf(c: CastellanHandle): Promise<PlanContext> {
  return c.runtime.ctx.planContext(await c.runtime.ctx.inventory.current());
}
