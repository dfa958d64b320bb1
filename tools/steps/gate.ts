// Gate: poll a read check until a condition holds for the step's subject, or a deadline
// passes. The check is any read tool, embedded as its exact plan (so approvers see the
// commands each poll runs, and the plan hash covers them); the condition is named data
// (`{ name, args }`) that the check's tool declares in `conditions` — or `succeeded`, which
// every tool has. A gate ends `ok` when the condition holds, `failed` when the condition
// says waiting is pointless (a changed host key), `timed_out` at the deadline; either way the
// last observation is in the result. Reachability after a reboot is two ordinary gates on
// `ping` (`unreachable`, then `reachable`).
import { ToolInputError } from '../types.js';
import type { Plan, PlanContext, PlanStep, ToolDefinition } from '../types.js';
import { defineStepKind, notRunResult, type ConditionArgs, type ConditionDefinition, type GateObservation, type Observation } from './kind.js';

export interface GateCheck {
  /** A read tool. */
  readonly tool: string;
  /** Its validated input. */
  readonly input: unknown;
  /** Its plan for that input: exactly what each poll runs. */
  readonly plan: Plan;
}

export interface GateAction {
  readonly kind: 'gate';
  readonly check: GateCheck;
  readonly until: { readonly name: string; readonly args: ConditionArgs };
  /** Shown to people: what the condition means for this subject. */
  readonly condition: string;
  readonly intervalMs: number;
  /** Deadline, from the gate's start. */
  readonly timeoutMs: number;
}

/** Conditions every read tool has. */
export const GENERIC_CONDITIONS: Readonly<Record<string, ConditionDefinition>> = {
  succeeded: {
    describe: (_args, subject) => `the check succeeds${subject ? ` for ${subject}` : ''}`,
    judge(observation, subject) {
      const mine = [...observation.results.values()].flatMap((byHost) => [...byHost.values()]).filter((r) => byHostFilter(observation, r.host, subject));
      if (mine.length === 0) return { state: 'waiting', observed: 'no result yet' };
      const bad = mine.find((r) => r.status !== 'ok');
      return bad ? { state: 'waiting', observed: `${bad.host}: ${bad.status}${bad.error ? ` (${bad.error})` : ''}` } : { state: 'holds', observed: 'check succeeded' };
    },
  },
};

// A subject's own results when the check ran on it; all results when the check ran elsewhere
// (kubectl on a control plane, about node X).
function byHostFilter(observation: Observation, host: string, subject: string): boolean {
  const hosts = new Set([...observation.results.values()].flatMap((m) => [...m.keys()]));
  return hosts.has(subject) ? host === subject : true;
}

export interface GateSpec<T extends ToolDefinition> {
  readonly id: string;
  /** The node the gate is about; absent: each check host is its own subject. */
  readonly subject?: string | undefined;
  readonly check: T;
  /** Raw input for the check tool (validated here). */
  readonly input: unknown;
  readonly until: string;
  readonly args?: ConditionArgs | undefined;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly description?: string | undefined;
}

/**
 * A gate step, planned now: the check's input is validated and planned, the condition must
 * exist. `validate` is the registry's validation (passed in to keep this module free of it).
 */
export function gateStep<T extends ToolDefinition>(spec: GateSpec<T>, ctx: PlanContext, validate: (tool: T, input: unknown) => unknown): PlanStep {
  const tool = spec.check;
  if (tool.risk !== 'read' || !tool.plan) throw new ToolInputError(spec.id, `a gate's check must be a read tool that runs on hosts; ${tool.name} is not`);
  const condition = tool.conditions?.[spec.until] ?? GENERIC_CONDITIONS[spec.until];
  if (!condition) {
    const known = [...Object.keys(tool.conditions ?? {}), ...Object.keys(GENERIC_CONDITIONS)];
    throw new ToolInputError(spec.id, `${tool.name} has no condition '${spec.until}' (it has: ${known.join(', ')})`);
  }
  if (spec.intervalMs < 100 || spec.timeoutMs < spec.intervalMs) throw new ToolInputError(spec.id, 'a gate needs an interval of at least 100ms and a deadline no shorter than it');
  const input = validate(tool, spec.input);
  const plan = tool.plan(input as never, ctx);
  // A tool that may also change things (bmc_power cycle) is a check only with an input that reads.
  if (plan.risk !== undefined && plan.risk !== 'read') throw new ToolInputError(spec.id, `a gate's check must only read; ${tool.name} with this input is ${plan.risk}`);
  const args = spec.args ?? {};
  const hosts = plan.hosts;
  const who = spec.subject ?? (hosts.length === 1 ? hosts[0] : hosts.length <= 8 ? `each of ${hosts.join(', ')}` : `each of the ${hosts.length} hosts`);
  const text = condition.describe(args, who);
  return {
    id: spec.id,
    ...(spec.subject !== undefined ? { subject: spec.subject } : {}),
    description: spec.description ?? `wait until ${text} (${tool.name} every ${seconds(spec.intervalMs)}, up to ${seconds(spec.timeoutMs)})`,
    hosts: [...plan.hosts],
    action: { kind: 'gate', check: { tool: tool.name, input, plan }, until: { name: spec.until, args }, condition: text, intervalMs: spec.intervalMs, timeoutMs: spec.timeoutMs },
    // The step's own bound: the deadline plus one check's worth of time.
    timeoutMs: spec.timeoutMs + Math.max(...plan.batches.flatMap((b) => b.steps.map((s) => s.timeoutMs)), 0),
  };
}

function seconds(ms: number): string {
  return ms % 60_000 === 0 && ms >= 60_000 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

export const gateKind = defineStepKind<GateAction>({
  kind: 'gate',
  command: (a) => ['gate', a.check.tool, 'until', a.until.name, ...Object.entries(a.until.args).map(([k, v]) => `${k}=${String(v)}`)],
  details: (a) => ({
    gate: {
      check: a.check.tool,
      check_input: a.check.input,
      check_hosts: [...a.check.plan.hosts],
      until: a.until.name,
      until_args: a.until.args,
      condition: a.condition,
      interval_ms: a.intervalMs,
      timeout_ms: a.timeoutMs,
    },
  }),
  async run(a, step, hosts, io) {
    const started = io.now();
    const subjects = step.subject !== undefined ? [step.subject] : [...hosts];
    const condition = io.condition(a.check.tool, a.until.name);
    if (!condition) {
      return { results: hosts.map((h) => notRunResult(h, `the check ${a.check.tool} has no condition '${a.until.name}' on this worker`, 'failed')) };
    }
    const pending = new Set(subjects);
    const last = new Map<string, GateObservation>();
    let polls = 0;
    for (;;) {
      if (io.signal.aborted) {
        for (const s of pending) last.set(s, { subject: s, state: 'stopped', observed: last.get(s)?.observed ?? 'not polled', polls, waitedMs: io.now() - started });
        break;
      }
      polls += 1;
      let observation: Observation | undefined;
      let problem = '';
      try {
        observation = await io.observe(a.check, step.subject !== undefined ? undefined : [...pending]);
      } catch (err) {
        problem = `check could not run: ${err instanceof Error ? err.message : String(err)}`;
      }
      for (const s of [...pending]) {
        const verdict = observation ? condition.judge(observation, s, a.until.args) : { state: 'waiting' as const, observed: problem };
        const previous = last.get(s);
        last.set(s, { subject: s, state: verdict.state, observed: verdict.observed, polls, waitedMs: io.now() - started, data: observation?.data });
        if (previous?.observed !== verdict.observed || verdict.state !== 'waiting') io.progress(s, `${a.condition}: ${verdict.state === 'holds' ? 'holds' : verdict.state} — ${verdict.observed}`);
        if (verdict.state !== 'waiting') pending.delete(s);
      }
      if (pending.size === 0) break;
      const elapsed = io.now() - started;
      if (elapsed >= a.timeoutMs) {
        for (const s of pending) {
          const seen = last.get(s);
          last.set(s, { subject: s, state: 'timed_out', observed: seen?.observed ?? 'not polled', polls, waitedMs: elapsed, data: seen?.data });
        }
        break;
      }
      // The last poll lands on the deadline, so a condition that holds just in time counts.
      await io.sleep(Math.min(a.intervalMs, a.timeoutMs - elapsed));
    }

    const observations = subjects.map((s) => last.get(s) ?? { subject: s, state: 'stopped' as const, observed: 'not polled', polls, waitedMs: 0 });
    const bySubject = new Map(observations.map((o) => [o.subject, o]));
    const results = hosts.map((host) => {
      const o = bySubject.get(step.subject ?? host);
      const waited = `${Math.round((o?.waitedMs ?? 0) / 1000)}s, ${o?.polls ?? 0} poll(s)`;
      const base = notRunResult(host, '', 'ok');
      const line = `${a.condition}: ${o?.observed ?? 'not polled'}`;
      switch (o?.state) {
        case 'holds':
          return { ...base, stdout: `${line} (after ${waited})\n`, durationMs: o.waitedMs };
        case 'failed':
          return { ...base, status: 'failed' as const, stdout: `${line}\n`, durationMs: o.waitedMs, error: `gave up: ${o.observed}` };
        case 'timed_out':
          return { ...base, status: 'timed_out' as const, stdout: `${line}\n`, durationMs: o.waitedMs, error: `condition did not hold within ${seconds(a.timeoutMs)} (${waited}); last seen: ${o.observed}` };
        default:
          return { ...base, status: io.abortStatus(), stdout: `${line}\n`, durationMs: o?.waitedMs ?? 0, error: 'stopped while waiting' };
      }
    });
    return { results, observations };
  },
});
