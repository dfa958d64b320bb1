// One definition per operation. A tool file declares what the operation is (name, risk,
// typed input) and what it will do (plan). Every front end (MCP, Slack, CLI, dashboard)
// derives its schema, help and validation from this; the job runner executes the plan.
import type { z } from 'zod';
import type { Inventory } from '../config/types.js';
import type { HostResult } from '../src/ssh/types.js';

export const RISKS = ['read', 'change', 'destructive'] as const;
export type Risk = (typeof RISKS)[number];

/** What one step does on each of its hosts. Argv arrays only: the executor does the quoting. */
export type StepAction =
  | { readonly kind: 'exec'; readonly argv: readonly string[]; readonly asRoot: boolean; readonly stdin?: string | undefined }
  /** Local file (on the Castellan server) -> each host. */
  | { readonly kind: 'upload'; readonly localPath: string; readonly remotePath: string; readonly mode?: number | undefined }
  /** Each host -> local directory, saved as `<localDir>/<host>/<basename>`. */
  | { readonly kind: 'download'; readonly remotePath: string; readonly localDir: string }
  /** One source host -> each step host, streamed through the Castellan server. */
  | { readonly kind: 'relay'; readonly fromHost: string; readonly remotePath: string; readonly destPath: string }
  /** After a reboot: wait for each host to go away, then to come back and answer a trivial exec. */
  | { readonly kind: 'wait_reachable'; readonly downTimeoutMs: number; readonly upTimeoutMs: number };

export interface PlanStep {
  /** Short stable id, unique within the plan ("restart", "wait-1"). */
  readonly id: string;
  /** Human-readable, shown in approvals: `systemctl restart nginx`. */
  readonly description: string;
  /** Inventory host names this step runs on (fanned out in parallel within the window). */
  readonly hosts: readonly string[];
  readonly action: StepAction;
  readonly timeoutMs: number;
}

/** Steps of a batch run in order; a host whose step failed is skipped for later steps. */
export interface PlanBatch {
  readonly steps: readonly PlanStep[];
}

export interface Plan {
  readonly tool: string;
  /** Every host the plan touches, in order (for locks, approval display, audit). */
  readonly hosts: readonly string[];
  /** Run in order. Once the failure budget is spent, later batches are skipped. */
  readonly batches: readonly PlanBatch[];
  /** Failed hosts tolerated over the whole plan before later batches are skipped. */
  readonly failureBudget: number;
  /** Fan-out window override; the config default applies when absent. */
  readonly window?: number | undefined;
}

export interface PlanDefaults {
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
}

export interface PlanContext {
  readonly inventory: Inventory;
  /** Resolve a target expression to host names; throws TargetError with a clear message. */
  resolve(expression: string): string[];
  readonly defaults: PlanDefaults;
  /**
   * Local files named by tools (copy_file uploads, downloads) must live under this directory
   * on the Castellan server, so a caller cannot read or write arbitrary server files.
   */
  readonly localRoot: string;
}

/** Results handed to `summarize`, keyed by step id then host. */
export type StepResults = ReadonlyMap<string, ReadonlyMap<string, HostResult>>;

export interface ToolDefinition<S extends z.ZodObject = z.ZodObject> {
  /** [a-z][a-z0-9_]*: the MCP tool name, the CLI subcommand and the Slack verb. */
  readonly name: string;
  readonly title: string;
  /** What it does and which command it mirrors ("Mirrors `systemctl restart`"). */
  readonly description: string;
  readonly risk: Risk;
  /** Typed input. Target expressions are a field named `targets` where the tool fans out. */
  readonly input: S;
  /** Shape of the structured `data` that `summarize` or `answer` returns, if any. */
  readonly output?: z.ZodType | undefined;
  /** Safe to retry (read tools; idempotent change tools). Informs annotations only. */
  readonly idempotent?: boolean | undefined;
  /** Build the exact steps. Pure: no I/O. Throws ToolInputError for semantic problems. */
  plan?(input: z.output<S>, ctx: PlanContext): Plan;
  /** Inventory-only tools (no SSH): answer directly. */
  answer?(input: z.output<S>, ctx: PlanContext): unknown;
  /** Turn raw per-host results into structured data (parsed `wg show`, days to expiry, …). */
  summarize?(input: z.output<S>, results: StepResults, ctx: PlanContext): unknown;
}

/** Identity function that keeps the zod type for inference in tool files. */
export function defineTool<S extends z.ZodObject>(def: ToolDefinition<S>): ToolDefinition<S> {
  return def;
}

/** A semantic input problem found while planning (the schema passed). Names the field. */
export class ToolInputError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'ToolInputError';
  }
}
