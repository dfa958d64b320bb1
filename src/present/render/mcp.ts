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
  planViewSchema,
  requesterViewSchema,
  viewOfResult,
  jobViewSchema,
} from '../job-view.js';
import { resultViewSchema } from '../result-view.js';
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

export const jobOutcomeSchema = z.object({
  job_id: z.string(),
  tool: z.string(),
  risk: z.enum(RISKS),
  state: z.enum(JOB_STATES),
  finished: z.boolean(),
  summary: z.string(),
  requester: requesterViewSchema,
  plan: planViewSchema,
  approval: approvalSchema.optional(),
  /** What it would change, from a run that changes nothing (see the job view's preview). */
  preview: jobViewSchema.shape.preview,
  hosts: z.array(hostViewSchema).optional(),
  folded: z.array(foldViewSchema).optional(),
  /** True when hosts or folded output were cut here; job_output has all of it. */
  more_output: z.boolean().optional(),
  data: z.unknown().optional(),
  /** The tool's reading of `data`: summary, columns and rows, alike hosts folded. */
  view: resultViewSchema.optional(),
  reason: z.string().optional(),
  /** What this caller may not see of the job (policy.visibility), and why. */
  hidden: z.object({ details: z.boolean(), output: z.boolean(), reason: z.string() }).optional(),
  next: z.string().optional(),
});
export type JobOutcome = z.infer<typeof jobOutcomeSchema>;

/**
 * What `tools/list` publishes as each tool's outputSchema: the same fields, with the nested
 * parts described in words instead of spelled out. Spelled out for 27 tools the listing
 * weighed ~115 KB, tokens every AI client pays on connect; this keeps it near a third.
 */
const publishedOutcomeSchema = jobOutcomeSchema.extend({
  requester: z.looseObject({}).describe('subject, display_name, origin'),
  plan: z.looseObject({}).describe('The exact plan: hosts, failure_budget, batches[].steps[] with id, description, hosts, command (argv as run), stdin'),
  approval: z.looseObject({}).optional().describe('When people must approve: required, approvals, expires_at, and where to approve (cli, api, slack)'),
  preview: z.looseObject({}).optional().describe('What it would change, from a run that changes nothing (Ansible check mode): job_id, state, folded output with the diff'),
  hosts: z.array(z.looseObject({})).optional().describe('Per host: host, status, step, exit_code, duration_ms, truncated, error'),
  folded: z.array(z.looseObject({})).optional().describe('Hosts with identical output grouped: nodeset, count, status, text'),
});

/** The published outcome schema with `data` typed by the tool's own output schema, when it has one. */
export function outcomeSchemaFor(tool: AnyTool | undefined): z.ZodObject {
  return tool?.output ? publishedOutcomeSchema.extend({ data: tool.output.optional() }) : publishedOutcomeSchema;
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

export function jobOutcome(job: JobRecord, places: ApprovalPlaces, waitedMs?: number): JobOutcome {
  const view = jobView(job, { places });
  const next = nextFor(view, waitedMs);
  const base = (places.publicUrl ?? '').replace(/\/$/, '');
  const hosts = hostViews(job);
  const folded = foldViews(job, INLINE_CHARS);
  const more = hosts.length > INLINE_HOSTS || folded.length > INLINE_GROUPS || folded.some((g) => g.text_truncated === true);
  return {
    job_id: job.id,
    tool: job.tool,
    risk: job.risk,
    state: job.state,
    finished: isFinal(job.state),
    summary: view.summary,
    requester: view.requester,
    plan: view.plan,
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
          hosts: hosts.slice(0, INLINE_HOSTS),
          folded: folded.slice(0, INLINE_GROUPS),
          ...(more ? { more_output: true } : {}),
          ...(job.result.data !== undefined ? { data: job.result.data } : {}),
          ...withView(viewOfResult(job)),
        }
      : {}),
    ...(job.reason !== undefined ? { reason: job.reason } : {}),
    ...(view.hidden !== undefined ? { hidden: view.hidden } : {}),
    ...(next !== undefined ? { next } : more ? { next: `Call job_output with job_id "${job.id}" for the full output.` } : {}),
  };
}

const withView = (view: JobOutcome['view']): { view?: NonNullable<JobOutcome['view']> } => (view ? { view } : {});

/** Folded groups shown in the text block before it points at structuredContent / job_output. */
const TEXT_GROUPS = 10;
const TEXT_CHARS = 1500;
/** Table rows shown in the text block; structuredContent.view has them all. */
const TEXT_ROWS = 30;

/**
 * The text block: summary and job id, the folded result (short), and the next step. The full
 * data is in structuredContent; repeating it here would cost the model its tokens twice.
 */
export function outcomeText(outcome: JobOutcome): string {
  const lines = [`${visibleInline(outcome.summary)} [job ${outcome.job_id}]`];
  if (outcome.reason !== undefined && !outcome.summary.includes(outcome.reason)) lines.push(`reason: ${visibleInline(outcome.reason)}`);
  if (outcome.hidden !== undefined) {
    const what = [outcome.hidden.details ? 'input and commands' : '', outcome.hidden.output ? 'output' : ''].filter(Boolean).join(' and ');
    lines.push(`hidden from this caller: ${what} (${visibleInline(outcome.hidden.reason)})`);
  }
  // Before anything ran, the model relays what will run: each step's exact command, shell-quoted.
  if (outcome.state === 'awaiting_approval' || outcome.state === 'waiting_window') {
    for (const step of outcome.plan.batches.flatMap((b) => b.steps).slice(0, TEXT_GROUPS)) {
      const stdin = step.stdin_bytes !== undefined ? ` (stdin: ${step.stdin_bytes} bytes, sha256 ${step.stdin_sha256 ?? '?'})` : '';
      lines.push(`${step.id} on ${visibleInline(hostsPhrase(step.hosts))}: ${step.command_display || visibleInline(step.description)}${stdin}`);
    }
    const preview = outcome.preview;
    if (preview !== undefined) {
      lines.push(`preview (a run that changes nothing, job ${preview.job_id}): ${preview.state.replaceAll('_', ' ')}${preview.finished ? '' : '; call job_status again to see what it would change'}`);
      for (const group of preview.folded.slice(0, TEXT_GROUPS)) {
        const text = visibleBlock(group.text.replace(/\r?\n$/, ''));
        lines.push(`${group.nodeset} (${group.count})${group.status === 'ok' ? '' : ` [${group.status}]`}:\n${text.length > TEXT_CHARS ? `${text.slice(0, TEXT_CHARS)}…` : text}`);
      }
    }
  }
  const view = outcome.view;
  if (view) {
    // The tool's table (alike hosts folded) says what the raw output would, in fewer tokens.
    const shown = viewText(view, { color: false });
    lines.push(...shown.slice(0, TEXT_ROWS));
    if (shown.length > TEXT_ROWS) lines.push(`… ${shown.length - TEXT_ROWS} more rows in structuredContent.view`);
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
