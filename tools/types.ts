// One definition per operation. A tool file declares what the operation is (name, risk,
// typed input) and what it will do (plan). Every front end (MCP, Slack, CLI, dashboard)
// derives its schema, help and validation from this; the job runner executes the plan.
import type { z } from 'zod';
import type { PlaybookSettings } from '../config/ansible.js';
import type { Inventory } from '../config/types.js';
import type { HostResult } from './host-result.js';
import type { ConditionDefinition, StepAction } from './steps/index.js';
import type { ResultViewDefinition } from './result-view.js';

import type { Risk, Toolset } from '../config/vocabulary.js';

export { RISKS, type Risk } from '../config/vocabulary.js';

/** What one step does; one module per kind in tools/steps/ (exec, upload, download, relay, gate). */
export type { StepAction } from './steps/index.js';

export interface PlanStep {
  /** Short stable id, unique within the plan, on-failure steps included ("restart", "wait-1"). */
  readonly id: string;
  /** Human-readable, shown in approvals: `systemctl restart nginx`. */
  readonly description: string;
  /** Inventory host names this step runs on (fanned out in parallel within the window). */
  readonly hosts: readonly string[];
  /**
   * The node this step is about, when it runs elsewhere (kubectl on a control plane about
   * node X). Failure is tracked per subject: a failed step skips its subject's later steps
   * in the batch, not those of the host it ran on. Absent: each host is its own subject.
   */
  readonly subject?: string | undefined;
  readonly action: StepAction;
  readonly timeoutMs: number;
  /**
   * Rollback, armed once this step succeeds for a subject: if a later step (or gate) of the
   * same subject in the batch fails, these run for that subject only — the most recently
   * armed first — and are reported as on-failure steps. The subject stays failed.
   */
  readonly onFailure?: readonly PlanStep[] | undefined;
}

/** Steps of a batch run in order; a subject whose step failed is skipped for later steps. */
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
  /**
   * After a worker restart, run on instead of stopping: steps the ledger shows finished are
   * not repeated (their recorded outcome stands), a gate that was polling polls again, and a
   * subject whose other step was mid-flight stops there, unknown, without its rollback.
   */
  readonly resumable?: boolean | undefined;
  /**
   * The risk this plan carries when it depends on the input (a configured playbook's). The
   * server enforces the higher of this and the tool's own; it never lowers it.
   */
  readonly risk?: Risk | undefined;
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
  /** The Ansible playbooks requests may name (config ansible.playbooks); none when absent. */
  readonly playbooks?: Readonly<Record<string, PlaybookSettings>> | undefined;
}

/** Results handed to `summarize`, keyed by step id then host. */
export type StepResults = ReadonlyMap<string, ReadonlyMap<string, HostResult>>;

export interface ToolDefinition<S extends z.ZodObject = z.ZodObject, O extends z.ZodType = z.ZodType> {
  /** [a-z][a-z0-9_]*: the MCP tool name, the CLI subcommand and the Slack verb. */
  readonly name: string;
  readonly title: string;
  /** What it does and which command it mirrors ("Mirrors `systemctl restart`"). */
  readonly description: string;
  readonly risk: Risk;
  /** Which MCP toolset serves it (`mcp.toolsets`). */
  readonly toolset: Toolset;
  /**
   * The highest risk a plan of this tool can carry when its plan raises it by input (bmc_power:
   * status is read, off is destructive). Only MCP hints read it; the server enforces plan.risk.
   */
  readonly maxRisk?: Risk | undefined;
  /** Typed input. Target expressions are a field named `targets` where the tool fans out. */
  readonly input: S;
  /** Shape of the structured `data` that `summarize` or `answer` returns, if any. */
  readonly output?: O | undefined;
  /**
   * How the structured result reads to a person (columns, rows, one-line summary), over the
   * data `output` describes. Tools without one show their hosts' folded output.
   */
  readonly view?: ResultViewDefinition<z.output<O>, unknown> | undefined;
  /** Safe to retry (read tools; idempotent change tools). Informs annotations only. */
  readonly idempotent?: boolean | undefined;
  /** Build the exact steps. Pure: no I/O. Throws ToolInputError for semantic problems. */
  plan?(input: z.output<S>, ctx: PlanContext): Plan;
  /** Inventory-only tools (no SSH): answer directly. */
  answer?(input: z.output<S>, ctx: PlanContext): unknown;
  /**
   * A request of this same tool that changes nothing and shows what this one would change
   * (Ansible's check mode with diffs). When the job waits for approval, the server runs it at
   * once, as a read job of the same requester, and every approval card shows its output with
   * the plan, so approvers see the diff before they decide. Undefined: no preview for this input.
   */
  preview?(input: z.output<S>): z.output<S> | undefined;
  /** Turn raw per-host results into structured data (parsed `wg show`, days to expiry, …). */
  summarize?(input: z.output<S>, results: StepResults, ctx: PlanContext): unknown;
  /**
   * Read tools: named predicates over `summarize`'s data that gate steps wait on
   * (`node_ready`, `healthy`). Every read tool also has `succeeded` (tools/steps/gate.ts).
   */
  readonly conditions?: Readonly<Record<string, ConditionDefinition>> | undefined;
}

/** Identity function that keeps the zod type for inference in tool files. */
export function defineTool<S extends z.ZodObject, O extends z.ZodType = z.ZodType>(def: ToolDefinition<S, O>): ToolDefinition<S, O> {
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
