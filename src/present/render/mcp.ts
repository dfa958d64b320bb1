// MCP rendering of the job view: `structuredContent` (the tool's `outputSchema`) says where the
// job stands, what it will do or did on which hosts, and what the client should do next; the
// text block is short (summary, folded result, next step) and does not repeat the JSON. Written
// for an AI reader: every non-final answer carries the job id and the next step.
import { z } from 'zod';
import { hostsPhrase } from '../summary.js';
import { visibleBlock, visibleInline } from '../../../config/visible.js';
import type { JobRecord } from '../../../queues/records.js';
import { isFinal, JOB_STATES } from '../../../queues/states.js';
import { RISKS } from '../../../tools/types.js';
import type { AnyTool } from '../../../tools/registry.js';
import {
  jobView,
  type ApprovalPlaces,
  type JobView,
  foldViewSchema,
  foldViews,
  hostViewSchema,
  hostViews,
  viewOfResult,
} from '../job-view.js';
import type { ResultView } from '../result-view.js';
import { viewText } from './text.js';

/** Folded groups and per-host rows included inline; job_output pages through the rest. */
const INLINE_GROUPS = 20;
const INLINE_HOSTS = 200;
const INLINE_CHARS = 4000;

const approvalSchema = z.object({
  required: z.number(),
  approvals: z.number(),
  expires_at: z.string().optional(),
  cli: z.string(),
  api: z.string(),
  slack: z.string().optional(),
  note: z.string(),
});

/** A plan step as an AI client relays it: the command shell-quoted, the whole stdin script. */
const stepSchema = z.object({
  id: z.string(),
  description: z.string(),
  hosts: z.array(z.string()),
  /** 0-based batch (rolling plans run batch after batch). */
  batch: z.number(),
  /** The command as it runs, shell-quoted, invisible characters as escapes. */
  command: z.string(),
  /** As root on hosts logging in as root: what runs there instead of `command` (no sudo). */
  root_login: z.object({ hosts: z.array(z.string()), command: z.string() }).optional(),
  stdin: z.string().optional(),
  stdin_bytes: z.number().optional(),
  stdin_sha256: z.string().optional(),
  /** A rollback: run for a host when this step of it failed. */
  on_failure_of: z.string().optional(),
});

const planSchema = z.object({ hosts: z.array(z.string()), failure_budget: z.number(), stop_rule: z.string().optional().describe('A rolling plan\'s stop rule in words'), steps: z.array(stepSchema) });
type McpPlan = z.infer<typeof planSchema>;

/** Per host; `exit_code` is absent when the command never exited (unreachable, timed out). */
const hostSchema = hostViewSchema.omit({ exit_code: true }).extend({ exit_code: z.number().optional() });

const previewSchema = z.object({
  job_id: z.string(),
  state: z.enum(JOB_STATES),
  finished: z.boolean(),
  reason: z.string().optional(),
  folded: z.array(foldViewSchema),
});

/**
 * structuredContent of every job answer. Every part is spelled out and closed (no loose
 * objects, no `[type, null]` unions: some clients reject both); nested parts are the compact
 * forms an AI client needs, the full job view being the API's.
 */
export const jobOutcomeSchema = z.object({
  job_id: z.string(),
  tool: z.string(),
  risk: z.enum(RISKS),
  state: z.enum(JOB_STATES),
  finished: z.boolean(),
  summary: z.string(),
  plan: planSchema,
  approval: approvalSchema.optional(),
  /** What it would change, from a run that changes nothing (Ansible check mode with diffs). */
  preview: previewSchema.optional(),
  hosts: z.array(hostSchema).optional(),
  folded: z.array(foldViewSchema).optional(),
  /** True when hosts or folded output were cut here; job_output has all of it. */
  more_output: z.boolean().optional(),
  reason: z.string().optional(),
  /** What this caller may not see of the job (policy.visibility), and why. */
  hidden: z.object({ details: z.boolean(), output: z.boolean(), reason: z.string() }).optional(),
  next: z.string().optional(),
});
/**
 * The outcome, and for the text block only the tool's reading of `data` (its table): in
 * structuredContent it would say what `data` says a second time.
 */
export type JobOutcome = z.infer<typeof jobOutcomeSchema> & { data?: unknown };
export interface OutcomeAnswer {
  readonly content: JobOutcome;
  readonly view?: ResultView | undefined;
}

/**
 * The outcome schema a tool publishes: `data` typed by the tool's own output schema, and
 * `preview` only for tools that make previews, so tools/list carries no part a tool never sends.
 */
export function outcomeSchemaFor(tool: AnyTool | undefined): z.ZodObject {
  const base = tool !== undefined && tool.preview === undefined ? jobOutcomeSchema.omit({ preview: true }) : jobOutcomeSchema;
  return tool?.output ? base.extend({ data: tool.output.optional() }) : base;
}

type Json = { [key: string]: unknown };

/**
 * The JSON Schema `tools/list` publishes for a zod output schema. Values a tool reports as
 * `null` ("not known") are published as optional instead, and `withoutNulls` drops them from
 * structuredContent: clients reject `type: [number, null]` and `anyOf` with null.
 */
export function publishedSchema(schema: z.ZodType): Json {
  const { $schema: _dialect, ...json } = z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any' }) as Json;
  return stripNull(json) as Json;
}

function isNullSchema(s: unknown): boolean {
  return typeof s === 'object' && s !== null && (s as Json).type === 'null';
}

/** The schema without its null alternative, and whether it had one. */
function nonNull(s: Json): { schema: Json; nullable: boolean } {
  if (Array.isArray(s.type) && s.type.includes('null')) {
    const types = (s.type as string[]).filter((t) => t !== 'null');
    return { schema: { ...s, type: types.length === 1 ? types[0] : types }, nullable: true };
  }
  for (const key of ['anyOf', 'oneOf'] as const) {
    const options = s[key];
    if (Array.isArray(options) && options.some(isNullSchema)) {
      const rest = options.filter((o) => !isNullSchema(o)) as Json[];
      const { [key]: _gone, ...others } = s;
      return { schema: rest.length === 1 ? { ...others, ...rest[0] } : { ...others, [key]: rest }, nullable: true };
    }
  }
  return { schema: s, nullable: false };
}

function stripNull(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripNull);
  if (typeof value !== 'object' || value === null) return value;
  const s = { ...(value as Json) };
  for (const [key, child] of Object.entries(s)) s[key] = stripNull(child);
  if (typeof s.properties === 'object' && s.properties !== null) {
    const properties: Json = {};
    const optional = new Set<string>();
    for (const [name, prop] of Object.entries(s.properties as Json)) {
      const { schema, nullable } = nonNull(prop as Json);
      properties[name] = schema;
      if (nullable) optional.add(name);
    }
    s.properties = properties;
    if (Array.isArray(s.required)) s.required = (s.required as string[]).filter((name) => !optional.has(name));
  }
  return s;
}

/** `data` as structuredContent carries it: object fields that are null (not known) left out. */
export function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).flatMap(([k, v]) => (v === null ? [] : [[k, withoutNulls(v)]])));
}

/** The plan's steps in order, each rollback after the step that arms it. */
function planOf(view: JobView): McpPlan {
  const steps: McpPlan['steps'] = [];
  const stepOf = (step: JobView['plan']['batches'][number]['steps'][number] | NonNullable<JobView['plan']['batches'][number]['steps'][number]['on_failure']>[number], batch: number, armedBy?: string): void => {
    steps.push({
      id: step.id,
      description: step.description,
      hosts: step.hosts,
      batch,
      command: step.command_display,
      ...(step.root_login ? { root_login: { hosts: step.root_login.hosts, command: step.root_login.command_display } } : {}),
      ...(step.stdin !== undefined ? { stdin: step.stdin } : {}),
      ...(step.stdin_bytes !== undefined ? { stdin_bytes: step.stdin_bytes } : {}),
      ...(step.stdin_sha256 !== undefined ? { stdin_sha256: step.stdin_sha256 } : {}),
      ...(armedBy !== undefined ? { on_failure_of: armedBy } : {}),
    });
  };
  for (const batch of view.plan.batches) {
    for (const step of batch.steps) {
      stepOf(step, batch.index);
      for (const rollback of step.on_failure ?? []) stepOf(rollback, batch.index, rollback.armed_by);
    }
  }
  return { hosts: view.plan.hosts, failure_budget: view.plan.failure_budget, ...(view.plan.stop_rule !== undefined ? { stop_rule: view.plan.stop_rule } : {}), steps };
}

/** What the AI client should do next: its own words, since it can never approve. */
function nextFor(view: JobView, waitedMs: number | undefined): string | undefined {
  switch (view.state) {
    case 'awaiting_approval':
      return (
        `Tell the user that job ${view.id} ${view.next.text} (see approval.cli / approval.api${view.next.approve_via?.some((p) => p.via === 'slack') ? ' / approval.slack' : ''}). ` +
        `You cannot approve it yourself. Then call job_status with job_id "${view.id}" (wait_seconds up to the wait budget) to follow it.`
      );
    case 'queued':
    case 'running':
      if (view.state === 'running' && view.summary.includes('cancellation requested')) {
        return `Cancellation is requested; the job ${view.next.text}. Call job_status with job_id "${view.id}" (wait_seconds) to see it end.`;
      }
      return `${waitedMs !== undefined ? `Still ${view.state} after ${Math.round(waitedMs / 1000)} s; it keeps going in the background. ` : ''}Call job_status with job_id "${view.id}" (optionally wait_seconds) to follow it, job_output for the output so far, or job_cancel to stop it.`;
    default:
      return undefined;
  }
}

export function jobOutcome(job: JobRecord, places: ApprovalPlaces, waitedMs?: number): OutcomeAnswer {
  const view = jobView(job, { places });
  const next = nextFor(view, waitedMs);
  const base = (places.publicUrl ?? '').replace(/\/$/, '');
  const hosts = hostViews(job);
  const folded = foldViews(job, INLINE_CHARS);
  const more = hosts.length > INLINE_HOSTS || folded.length > INLINE_GROUPS || folded.some((g) => g.text_truncated === true);
  const content: JobOutcome = {
    job_id: job.id,
    tool: job.tool,
    risk: job.risk,
    state: job.state,
    finished: isFinal(job.state),
    summary: view.summary,
    plan: planOf(view),
    ...(view.approval
      ? {
          approval: {
            required: view.approval.required,
            approvals: view.approval.approvals,
            ...(view.approval.expires_at !== undefined ? { expires_at: view.approval.expires_at } : {}),
            cli: `castellan approve ${job.id}`,
            api: `POST ${base}/api/v1/jobs/${job.id}/approve`,
            ...(places.slackChannel !== undefined ? { slack: `the approval request posted in Slack channel ${places.slackChannel}` } : {}),
            note: 'Approvals come from people, never from an MCP client; the requester cannot approve their own request.',
          },
        }
      : {}),
    ...(view.preview !== undefined ? { preview: { ...view.preview, folded: view.preview.folded.slice(0, INLINE_GROUPS).map((g) => (g.text.length > INLINE_CHARS ? { ...g, text: `${g.text.slice(0, INLINE_CHARS)}…`, text_truncated: true } : g)) } } : {}),
    ...(job.result !== undefined
      ? {
          hosts: hosts.slice(0, INLINE_HOSTS).map(({ exit_code, ...host }) => (exit_code === null ? host : { ...host, exit_code })),
          folded: folded.slice(0, INLINE_GROUPS),
          ...(more ? { more_output: true } : {}),
          ...(job.result.data !== undefined ? { data: withoutNulls(job.result.data) } : {}),
        }
      : {}),
    ...(job.reason !== undefined ? { reason: job.reason } : {}),
    ...(view.hidden !== undefined ? { hidden: view.hidden } : {}),
    ...(next !== undefined ? { next } : more ? { next: `Call job_output with job_id "${job.id}" for the full output.` } : {}),
  };
  const result = job.result !== undefined ? viewOfResult(job) : undefined;
  return result !== undefined ? { content, view: result } : { content };
}

/** Folded groups shown in the text block before it points at structuredContent / job_output. */
const TEXT_GROUPS = 10;
const TEXT_CHARS = 1500;
/** Table rows shown in the text block; structuredContent.data has the facts behind all of them. */
const TEXT_ROWS = 30;

/**
 * The text block: summary and job id, the folded result (short), and the next step. The full
 * data is in structuredContent; repeating it here would cost the model its tokens twice.
 */
export function outcomeText({ content: outcome, view }: OutcomeAnswer): string {
  const lines = [`${visibleInline(outcome.summary)} [job ${outcome.job_id}]`];
  if (outcome.reason !== undefined && !outcome.summary.includes(outcome.reason)) lines.push(`reason: ${visibleInline(outcome.reason)}`);
  if (outcome.hidden !== undefined) {
    const what = [outcome.hidden.details ? 'input and commands' : '', outcome.hidden.output ? 'output' : ''].filter(Boolean).join(' and ');
    lines.push(`hidden from this caller: ${what} (${visibleInline(outcome.hidden.reason)})`);
  }
  // Before anything ran, the model relays what will run: each step's exact command, shell-quoted.
  if (outcome.state === 'awaiting_approval' || outcome.state === 'waiting_window') {
    for (const step of outcome.plan.steps.slice(0, TEXT_GROUPS)) {
      const stdin = step.stdin_bytes !== undefined ? ` (stdin: ${step.stdin_bytes} bytes, sha256 ${step.stdin_sha256 ?? '?'})` : '';
      const rollback = step.on_failure_of !== undefined ? ` (if ${step.on_failure_of} fails)` : '';
      lines.push(`${step.id}${rollback} on ${visibleInline(hostsPhrase(step.hosts))}: ${step.command || visibleInline(step.description)}${stdin}`);
      if (step.root_login) lines.push(`  on ${visibleInline(hostsPhrase(step.root_login.hosts))} (logged in as root, no sudo): ${step.root_login.command}`);
    }
    if (outcome.plan.stop_rule !== undefined) lines.push(`stop rule: ${outcome.plan.stop_rule}`);
    const preview = outcome.preview;
    if (preview !== undefined) {
      lines.push(`preview (a run that changes nothing, job ${preview.job_id}): ${preview.state.replaceAll('_', ' ')}${preview.finished ? '' : '; call job_status again to see what it would change'}`);
      for (const group of preview.folded.slice(0, TEXT_GROUPS)) {
        const text = visibleBlock(group.text.replace(/\r?\n$/, ''));
        lines.push(`${group.nodeset} (${group.count})${group.status === 'ok' ? '' : ` [${group.status}]`}:\n${text.length > TEXT_CHARS ? `${text.slice(0, TEXT_CHARS)}…` : text}`);
      }
    }
  }
  if (view) {
    // The tool's table (alike hosts folded) says what the raw output would, in fewer tokens.
    const shown = viewText(view, { color: false });
    lines.push(...shown.slice(0, TEXT_ROWS));
    if (shown.length > TEXT_ROWS) lines.push(`… ${shown.length - TEXT_ROWS} more rows (structuredContent.data has them all)`);
  }
  for (const group of view && !view.output ? [] : (outcome.folded ?? []).slice(0, TEXT_GROUPS)) {
    const status = group.status === 'ok' ? '' : ` [${group.status}]`;
    const text = visibleBlock(group.text.replace(/\r?\n$/, ''));
    const shown = text.length > TEXT_CHARS ? `${text.slice(0, TEXT_CHARS)}…` : text;
    lines.push(shown.includes('\n') ? `${group.nodeset} (${group.count})${status}:\n${shown}` : `${group.nodeset} (${group.count})${status}: ${shown || (outcome.hidden?.output ? '(output hidden)' : '(no output)')}`);
  }
  if ((!view || view.output) && (outcome.folded?.length ?? 0) > TEXT_GROUPS) lines.push(`… ${(outcome.folded?.length ?? 0) - TEXT_GROUPS} more groups in structuredContent.folded`);
  if (!view && outcome.folded === undefined && outcome.data !== undefined) lines.push('The answer is in structuredContent.data.');
  if (outcome.next !== undefined) lines.push(visibleInline(outcome.next));
  return lines.join('\n');
}
