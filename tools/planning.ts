// Small builders shared by tool plans: resolving targets into a clear field error, cutting
// hosts into rolling batches, and writing exec steps with a human description. Pure: no I/O.
import type { BatchSize } from './host-result.js';
import { ToolInputError } from './types.js';
import type { Plan, PlanBatch, PlanContext, PlanStep } from './types.js';

/** Resolve a target expression; a failure or an empty result names the input field. */
export function resolveHosts(ctx: PlanContext, expression: string, field = 'targets'): string[] {
  let hosts: string[];
  try {
    hosts = ctx.resolve(expression);
  } catch (error: unknown) {
    throw new ToolInputError(field, error instanceof Error ? error.message : String(error));
  }
  if (hosts.length === 0) throw new ToolInputError(field, `'${expression}' matched no hosts`);
  return hosts;
}

/** Cut hosts into consecutive batches of `size` hosts (or `N%` of them, at least one). */
export function rollingBatches(hosts: readonly string[], size: BatchSize): string[][] {
  const perBatch =
    typeof size === 'number' ? size : Math.max(1, Math.floor((hosts.length * Number.parseInt(size, 10)) / 100));
  const batches: string[][] = [];
  for (let i = 0; i < hosts.length; i += perBatch) batches.push(hosts.slice(i, i + perBatch));
  return batches;
}

// Only for display in approvals and logs: the executor quotes argv itself.
const SAFE_WORD = /^[A-Za-z0-9@%+=:,./_-]+$/;

/** Render argv as an operator would type it (POSIX single quotes where needed). */
export function showArgv(argv: readonly string[]): string {
  return argv.map((word) => (SAFE_WORD.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`)).join(' ');
}

export interface ExecStepSpec {
  readonly id: string;
  readonly hosts: readonly string[];
  readonly argv: readonly string[];
  readonly asRoot: boolean;
  readonly timeoutMs: number;
  readonly stdin?: string | undefined;
  /** Defaults to the argv as typed, prefixed with `sudo` when run as root. */
  readonly description?: string | undefined;
  /** The node the step is about when it runs elsewhere (see PlanStep.subject). */
  readonly subject?: string | undefined;
  readonly onFailure?: readonly PlanStep[] | undefined;
}

export function execStep(spec: ExecStepSpec): PlanStep {
  return {
    id: spec.id,
    description: spec.description ?? `${spec.asRoot ? 'sudo ' : ''}${showArgv(spec.argv)}`,
    hosts: [...spec.hosts],
    ...(spec.subject !== undefined ? { subject: spec.subject } : {}),
    action: { kind: 'exec', argv: [...spec.argv], asRoot: spec.asRoot, stdin: spec.stdin },
    timeoutMs: spec.timeoutMs,
    ...(spec.onFailure?.length ? { onFailure: [...spec.onFailure] } : {}),
  };
}

/** A plan with every step in one batch: all hosts at once (within the fan-out window). */
export function singleBatchPlan(tool: string, hosts: readonly string[], steps: readonly PlanStep[], failureBudget?: number): Plan {
  return {
    tool,
    hosts: [...hosts],
    batches: [{ steps: [...steps] }],
    // Without rolling there is nothing later to protect: every host runs regardless.
    failureBudget: failureBudget ?? hosts.length,
  };
}

export function batchedPlan(tool: string, hosts: readonly string[], batches: readonly PlanBatch[], failureBudget: number): Plan {
  return { tool, hosts: [...hosts], batches: [...batches], failureBudget };
}

/** The timeout a step gets: the caller's, else the configured default. */
export function stepTimeout(ctx: PlanContext, requestedMs: number | undefined): number {
  return requestedMs ?? ctx.defaults.commandTimeoutMs;
}
