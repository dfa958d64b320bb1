// What an MCP client gets back for a job: one structured object (the tool's `outputSchema`)
// that says where the job stands, what it will do or did on which hosts, and what the client
// should do next, plus the same as text for clients that ignore structured content. Written
// for an AI reader: every non-final answer carries the job id and the next step.
import { visibleInline, visibleJson } from '../../config/visible.js';
import { z } from 'zod';
import type { JobRecord } from '../../queues/records.js';
import { isFinal, JOB_STATES } from '../../queues/states.js';
import { RISKS } from '../../tools/types.js';
import type { AnyTool } from '../../tools/registry.js';
import {
  approvalCount,
  foldViewSchema,
  foldViews,
  hostViewSchema,
  hostViews,
  planView,
  planViewSchema,
  requesterViewSchema,
} from '../http/job-view.js';

/** Folded groups and per-host rows included inline; job_output pages through the rest. */
const INLINE_GROUPS = 20;
const INLINE_HOSTS = 200;
const INLINE_CHARS = 4000;

/** Where a person can approve, so the AI client can tell its user exactly what to do. */
export interface ApprovalPlaces {
  /** Castellan's public URL (the API lives under it). */
  readonly publicUrl: string;
  /** Slack channel where approval requests are posted, when Slack is set up. */
  readonly slackChannel?: string | undefined;
}

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
  hosts: z.array(hostViewSchema).optional(),
  folded: z.array(foldViewSchema).optional(),
  /** True when hosts or folded output were cut here; job_output has all of it. */
  more_output: z.boolean().optional(),
  data: z.unknown().optional(),
  reason: z.string().optional(),
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
  hosts: z.array(z.looseObject({})).optional().describe('Per host: host, status, step, exit_code, duration_ms, truncated, error'),
  folded: z.array(z.looseObject({})).optional().describe('Hosts with identical output grouped: nodeset, count, status, text'),
});

/** The published outcome schema with `data` typed by the tool's own output schema, when it has one. */
export function outcomeSchemaFor(tool: AnyTool | undefined): z.ZodObject {
  return tool?.output ? publishedOutcomeSchema.extend({ data: tool.output.optional() }) : publishedOutcomeSchema;
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(1)}s`;
}

function summaryOf(job: JobRecord, waitedMs: number | undefined): { summary: string; next?: string } {
  const hosts = job.plan.hosts.length;
  const on = hosts > 0 ? ` on ${hosts} host(s)` : '';
  switch (job.state) {
    case 'awaiting_approval': {
      const missing = job.approvalsRequired - approvalCount(job);
      return {
        summary: `${job.tool}${on} is waiting for ${missing} human approval(s); nothing has run yet.`,
        next:
          `Tell the user that job ${job.id} needs approval by someone with the approver role other than the requester ` +
          `(see approval.cli / approval.api). You cannot approve it yourself. Then call job_status with job_id "${job.id}" ` +
          `(wait_seconds up to the wait budget) to follow it.`,
      };
    }
    case 'queued':
    case 'running':
      return {
        summary: `${job.tool}${on} is ${job.state}${waitedMs !== undefined ? ` after waiting ${seconds(waitedMs)}` : ''}; it keeps going in the background.`,
        next: `Call job_status with job_id "${job.id}" (optionally wait_seconds) to follow it, job_output for the output so far, or job_cancel to stop it.`,
      };
    default:
      return { summary: `${job.tool}${on} ${job.state.replace('_', ' ')}${job.reason ? `: ${job.reason}` : ''}` };
  }
}

export function jobOutcome(job: JobRecord, places: ApprovalPlaces, waitedMs?: number): JobOutcome {
  const { summary, next } = summaryOf(job, waitedMs);
  const base = places.publicUrl.replace(/\/$/, '');
  const hosts = hostViews(job);
  const folded = foldViews(job, INLINE_CHARS);
  const more = hosts.length > INLINE_HOSTS || folded.length > INLINE_GROUPS || folded.some((g) => g.text_truncated === true);
  return {
    job_id: job.id,
    tool: job.tool,
    risk: job.risk,
    state: job.state,
    finished: isFinal(job.state),
    summary,
    requester: { subject: job.requester.subject, display_name: job.requester.displayName, origin: job.requester.origin },
    plan: planView(job.plan),
    ...(job.approvalsRequired > 0
      ? {
          approval: {
            required: job.approvalsRequired,
            approvals: approvalCount(job),
            ...(job.expiresAt !== undefined && job.expiresAt > 0 ? { expires_at: new Date(job.expiresAt).toISOString() } : {}),
            cli: `castellan approve ${job.id}`,
            api: `POST ${base}/api/v1/jobs/${job.id}/approve`,
            ...(places.slackChannel !== undefined ? { slack: `the approval request posted in Slack channel ${places.slackChannel}` } : {}),
            note: 'Approvals come from people, never from an MCP client; the requester cannot approve their own request.',
          },
        }
      : {}),
    ...(job.result !== undefined
      ? {
          hosts: hosts.slice(0, INLINE_HOSTS),
          folded: folded.slice(0, INLINE_GROUPS),
          ...(more ? { more_output: true } : {}),
          ...(job.result.data !== undefined ? { data: job.result.data } : {}),
        }
      : {}),
    ...(job.reason !== undefined ? { reason: job.reason } : {}),
    ...(next !== undefined ? { next } : more ? { next: `Call job_output with job_id "${job.id}" for the full output.` } : {}),
  };
}

/**
 * Text form for clients that ignore structured content (MCP 2025-11-25 asks for the JSON in a
 * text block too): the summary and next step first, so a reader skimming sees them.
 */
export function outcomeText(outcome: JobOutcome): string {
  // The summary carries reasons and host names from nodes and requests: made visible, as is the JSON.
  const head = [`${visibleInline(outcome.summary)} [job ${outcome.job_id}]`, ...(outcome.next !== undefined ? [visibleInline(outcome.next)] : [])];
  return `${head.join('\n')}\n${visibleJson(outcome)}`;
}
