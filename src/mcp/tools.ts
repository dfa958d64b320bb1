// The tools Castellan offers over MCP: every catalogue operation (one MCP tool each, schema
// and annotations derived from its definition) plus the job tools an AI client needs to follow
// what it started. A tool call here submits a job through JobService like every other front
// end; policy (roles, approvals, read-only mode) is decided there, not here.
import { jobFilterShape, listOptions } from '../present/job-list.js';
import { auditCursor, auditFilterShape, auditLine, auditQuery, auditWhat } from '../present/audit-list.js';
import { AUDIT_KINDS, type AuditKind } from '../../queues/audit.js';
import { visibleInline } from '../../config/visible.js';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { canonicalJson } from '../../config/canonical-json.js';
import { visibleRisks } from '../../auth/policy.js';
import type { AuthConfig } from '../../auth/settings.js';
import type { Identity, Requester } from '../../auth/types.js';
import type { StampedEvent } from '../../queues/events.js';
import type { JobRecord } from '../../queues/records.js';
import { isFinal, JOB_STATES } from '../../queues/states.js';
import { annotations, inputJsonSchema, type AnyTool, type ToolAnnotations } from '../../tools/registry.js';
import type { JsonSchema } from '../../tools/schema-info.js';
import { CastellanError } from '../../config/errors.js';
import type { Toolset } from '../../config/vocabulary.js';
import type { Runtime } from '../runtime.js';
import { jobView, requesterViewSchema } from '../present/job-view.js';
import { linesOfJob, MAX_PAGE_LINES, outputLinesSchema, outputLinesText } from '../present/output-lines.js';
import type { RequestId } from './calls.js';
import { jobOutcome, outcomeSchemaFor, outcomeText, publishedSchema } from '../present/render/mcp.js';
import type { ApprovalPlaces } from '../present/job-view.js';

/** What a tool needs to know about the call it is serving. */
export interface McpCall {
  readonly runtime: Runtime;
  readonly requester: Requester;
  readonly places: ApprovalPlaces;
  readonly requestId: RequestId;
  /** Aborts when the client cancels or disconnects: stop waiting, not necessarily the job. */
  readonly signal: AbortSignal;
  /** The reason given in `notifications/cancelled`, once the client sent one. */
  cancelReason(): string | undefined;
  /** One step of progress (no-op when the client sent no progressToken). */
  progress(message: string, total?: number): void;
}

export interface McpTool {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly inputSchema: JsonSchema;
  readonly outputSchema: JsonSchema;
  readonly annotations: ToolAnnotations;
  /** Whether `tools/list` shows it to this identity (a hidden tool still answers, with the reason). */
  visibleTo(identity: Identity, auth: AuthConfig): boolean;
  run(args: Record<string, unknown>, call: McpCall): Promise<CallToolResult>;
}

/** An idempotency key window: a client re-sending the same request within it gets the same job. */
const RETRY_WINDOW_MS = 5 * 60_000;

/**
 * JSON-RPC ids restart at 0 in every client session, so the id alone would make a new
 * session's first call "the same" as an old one; the tool, its arguments and a time window
 * narrow the key to what a real retry of one request looks like.
 */
export function mcpIdempotencyKey(subject: string, requestId: RequestId, tool: string, args: unknown, now = Date.now()): string {
  const window = Math.floor(now / RETRY_WINDOW_MS);
  const digest = createHash('sha256')
    .update(canonicalJson([subject, typeof requestId, String(requestId), tool, args, window]))
    .digest('base64url')
    .slice(0, 43);
  return `mcp.${digest}`;
}

export function structured(content: Record<string, unknown>, text: string): CallToolResult {
  return { content: [{ type: 'text', text }], structuredContent: content };
}

export function toolError(message: string): CallToolResult {
  // Error messages quote what the caller or a node sent (names, paths): made visible.
  return { isError: true, content: [{ type: 'text', text: visibleInline(message) }] };
}

/** Tool arguments checked against a job tool's schema; the first problem names its field. */
function argsOf<S extends z.ZodObject>(schema: S, args: Record<string, unknown>): z.output<S> {
  const parsed = schema.safeParse(args);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (issue?.code === 'unrecognized_keys') {
    throw new CastellanError('invalid_input', `unknown parameter(s) ${issue.keys.join(', ')}; allowed: ${Object.keys(schema.shape).join(', ')}`, issue.keys[0]);
  }
  const field = issue?.path.map(String).join('.') || undefined;
  throw new CastellanError('invalid_input', `${field ?? 'arguments'}: ${issue?.message ?? 'invalid'}`, field);
}

function outcomeResult(job: JobRecord, call: McpCall, waitedMs?: number): CallToolResult {
  const answer = jobOutcome(job, call.places, waitedMs);
  return structured(answer.content, outcomeText(answer));
}

/** Steps × hosts: one progress unit per host finishing one step. */
function progressTotal(job: JobRecord): number {
  return job.plan.batches.reduce((n, batch) => n + batch.steps.reduce((m, step) => m + step.hosts.length, 0), 0);
}

/**
 * Follow a job up to `budgetMs`, reporting each finished host as progress. An explicit
 * cancellation from the client cancels the job; a dropped connection only stops the wait.
 */
async function follow(job: JobRecord, budgetMs: number, call: McpCall): Promise<CallToolResult> {
  const { service } = call.runtime;
  const total = progressTotal(job);
  const started = Date.now();
  let lastSent = Date.now();
  let stage = job.state === 'awaiting_approval' ? awaitingText(job, call) : job.state.replaceAll('_', ' ');
  const tell = (message: string): void => {
    lastSent = Date.now();
    call.progress(message, total > 0 ? total : undefined);
  };
  // Every stage is a notification, so a client shows where the job is, not only finished hosts.
  const onEvent = (stamped: StampedEvent): void => {
    const e = stamped.event;
    if (e.type === 'host_finished') {
      const detail = e.status === 'ok' ? 'ok' : `${e.status}${e.exitCode !== null ? ` (exit ${e.exitCode})` : ''}${e.error ? `: ${e.error}` : ''}`;
      tell(`${e.host} ${e.step}: ${detail}`);
    } else if (e.type === 'state') {
      stage = e.state === 'awaiting_approval' ? awaitingText(job, call) : `${e.state.replaceAll('_', ' ')}${e.reason ? `: ${e.reason}` : ''}`;
      tell(stage);
    } else if (e.type === 'vote') {
      tell(`${e.decision === 'approve' ? 'approved' : 'denied'} by ${e.subject} (${e.count} of ${e.required})`);
    } else if (e.type === 'batch') {
      stage = `running batch ${e.index + 1}/${e.total}`;
      tell(`${stage}: ${e.hosts.length} hosts`);
    }
  };
  // A heartbeat at most every HEARTBEAT_MS while nothing else is said, so clients do not time out.
  const heartbeat = setInterval(() => {
    if (Date.now() - lastSent >= HEARTBEAT_MS - 500) tell(`still ${stage} (${Math.round((Date.now() - started) / 1000)} s)`);
  }, 1000);
  let current: JobRecord;
  try {
    current = await service.wait(job.id, call.requester, budgetMs, onEvent, call.signal);
  } finally {
    clearInterval(heartbeat);
  }
  const reason = call.cancelReason();
  if (reason !== undefined && !isFinal(current.state)) {
    current = await service.cancel(job.id, call.requester, reason === '' ? 'cancelled by the MCP client' : reason);
  }
  return outcomeResult(current, call, isFinal(current.state) ? undefined : Date.now() - started);
}

/** Progress says something at least this often while a call waits (clients time out on silence). */
const HEARTBEAT_MS = 10_000;

/** `awaiting approval: needs 1 more approval from …; cli: castellan approve j…; slack: …` */
function awaitingText(job: JobRecord, call: McpCall): string {
  const next = jobView(job, { places: call.places }).next;
  return `awaiting approval: ${next.text}${(next.approve_via ?? []).map((p) => `; ${p.via}: ${p.how}`).join('')}`;
}

/**
 * A catalogue tool over MCP. One outside the configured toolsets (`mcp.toolsets`) is not
 * listed, and a call to it is refused naming the setting, before anything is submitted.
 */
function catalogueTool(tool: AnyTool, toolsets: readonly Toolset[]): McpTool {
  const served = toolsets.includes(tool.toolset);
  const outputSchema = publishedSchema(outcomeSchemaFor(tool)) as JsonSchema;
  return {
    name: tool.name,
    title: tool.title,
    description: `${tool.description} Risk: ${tool.risk}.${tool.risk === 'read' ? '' : ' Returns "awaiting approval" with the exact plan when a human must approve first.'}`,
    inputSchema: inputJsonSchema(tool),
    outputSchema,
    annotations: annotations(tool),
    visibleTo: (identity, auth) => served && visibleRisks(identity, auth).includes(tool.risk),
    async run(args, call) {
      if (!served) {
        return toolError(`${tool.name} is in toolset '${tool.toolset}', which this server does not offer over MCP (mcp.toolsets: ${toolsets.join(', ')}); nothing was run. Ask a person to run it with the CLI or Slack.`);
      }
      const { service, ctx } = call.runtime;
      const { job } = await service.submit({
        tool: tool.name,
        input: args,
        requester: call.requester,
        replyTo: { kind: 'mcp' },
        idempotencyKey: mcpIdempotencyKey(call.requester.subject, call.requestId, tool.name, args),
      });
      // Awaiting approval answers at once: waiting would only run into the client's timeout.
      if (job.state === 'awaiting_approval' || isFinal(job.state)) return outcomeResult(job, call);
      return follow(job, ctx.settings.waitBudgetMs, call);
    },
  };
}

const jobId = z.string().min(1).max(64).describe('The job id returned by a tool call (starts with "j").');
const reason = z.string().max(500).optional().describe('Why, for the audit log.');

interface JobToolSpec<S extends z.ZodObject> {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly input: S;
  readonly output: z.ZodObject;
  readonly readOnly: boolean;
  /** Who sees it in tools/list beyond having a role at all. */
  readonly shownTo?: (identity: Identity, auth: AuthConfig) => boolean;
  run(args: z.output<S>, call: McpCall): Promise<CallToolResult>;
}

function jobTool<S extends z.ZodObject>(spec: JobToolSpec<S>): McpTool {
  return {
    name: spec.name,
    title: spec.title,
    description: spec.description,
    inputSchema: z.toJSONSchema(spec.input, { io: 'input', unrepresentable: 'any' }) as JsonSchema,
    outputSchema: publishedSchema(spec.output),
    annotations: { title: spec.title, readOnlyHint: spec.readOnly, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    // Anyone with a role may follow jobs; JobService checks each call again.
    visibleTo: (identity, auth) => identity.roles.length > 0 && (spec.shownTo?.(identity, auth) ?? true),
    run: (args, call) => spec.run(argsOf(spec.input, args), call),
  };
}

const outcomeOutput = outcomeSchemaFor(undefined);

/** A viewer's requests are reads that never wait for approval: the approval tools would be noise in its list. */
const canRequestChanges = (identity: Identity, auth: AuthConfig): boolean => visibleRisks(identity, auth).some((risk) => risk !== 'read');

/** Why job_approve / job_deny exist at all: so an AI client learns where approvals happen. */
async function vote(decision: 'approve' | 'deny', id: string, why: string | undefined, call: McpCall): Promise<CallToolResult> {
  const { service } = call.runtime;
  try {
    const job = decision === 'approve' ? await service.approve(id, call.requester, why) : await service.deny(id, call.requester, why);
    return outcomeResult(job, call);
  } catch (error) {
    if (!(error instanceof CastellanError) || error.code !== 'forbidden') throw error;
    const base = (call.places.publicUrl ?? '').replace(/\/$/, '');
    return toolError(
      `${error.message}. A person with the approver role (not the requester) can ${decision} job ${id} with ` +
        `\`castellan ${decision} ${id}\`, with POST ${base}/api/v1/jobs/${id}/${decision}` +
        `${call.places.slackChannel !== undefined ? `, or with the buttons in Slack channel ${call.places.slackChannel}` : ''}.`,
    );
  }
}

export const JOB_TOOLS: readonly McpTool[] = [
  jobTool({
    name: 'job_status',
    title: 'Job status',
    description:
      'Where a job stands: state, plan, approvals, per-host status and folded output once finished. ' +
      'With wait_seconds, waits up to that long for it to finish (sending progress) before answering.',
    input: z.object({ job_id: jobId, wait_seconds: z.number().int().min(0).max(300).optional().describe('Wait up to this many seconds for the job to finish (capped at the server\'s wait budget).') }).strict(),
    output: outcomeOutput,
    readOnly: true,
    async run(args, call) {
      const job = await call.runtime.service.get(args.job_id, call.requester);
      const waitMs = Math.min((args.wait_seconds ?? 0) * 1000, call.runtime.ctx.settings.waitBudgetMs);
      if (waitMs <= 0 || isFinal(job.state)) return outcomeResult(job, call);
      return follow(job, waitMs, call);
    },
  }),
  jobTool({
    name: 'job_output',
    title: 'Job output',
    description:
      'A job\'s output as numbered lines per host (stderr marked, control characters escaped); hosts with identical ' +
      'output are grouped once the job ended. Page with `after` (the answer\'s next_after); narrow with `hosts`.',
    input: z
      .object({
        job_id: jobId,
        hosts: z.string().max(1000).optional().describe('Only these hosts of the job: a node set like node[01-03], or names separated by commas.'),
        after: z.string().max(300).optional().describe('Continue after this point: next_after from the previous answer.'),
        max_lines: z.number().int().min(1).max(MAX_PAGE_LINES).default(100).describe('Lines in this page, over all hosts.'),
      })
      .strict(),
    output: outputLinesSchema,
    readOnly: true,
    async run(args, call) {
      const { service } = call.runtime;
      const job = await service.get(args.job_id, call.requester);
      const page = await linesOfJob(service, job, call.requester, { hosts: args.hosts, after: args.after, maxLines: args.max_lines });
      const head = `job ${job.id} ${job.state.replaceAll('_', ' ')}`;
      const more = (after: string): string => `more: call job_output with job_id "${job.id}"${args.hosts !== undefined ? `, hosts "${visibleInline(args.hosts)}"` : ''} and after "${after}"`;
      return structured(page, [head, ...outputLinesText(page, more)].join('\n'));
    },
  }),
  jobTool({
    name: 'job_cancel',
    title: 'Cancel a job',
    description: 'Cancel a job that has not finished: a queued or awaiting job never runs; a running one is stopped on its hosts.',
    input: z.object({ job_id: jobId, reason }).strict(),
    output: outcomeOutput,
    readOnly: false,
    async run(args, call) {
      const job = await call.runtime.service.cancel(args.job_id, call.requester, args.reason);
      return outcomeResult(job, call);
    },
  }),
  jobTool({
    name: 'jobs_list',
    title: 'List jobs',
    description: 'Jobs newest first, filtered by state (e.g. awaiting_approval), tool, requester, host, origin and time.',
    input: z
      .object({
        limit: z.number().int().min(1).max(100).default(20),
        offset: z.number().int().min(0).default(0).describe('Skip this many (the answer says the next offset).'),
        ...jobFilterShape,
      })
      .strict(),
    output: z.object({
      jobs: z.array(
        z.object({
          job_id: z.string(),
          tool: z.string(),
          state: z.enum(JOB_STATES),
          requester: requesterViewSchema,
          created_at: z.string(),
          hosts: z.number(),
          reason: z.string().optional(),
        }),
      ),
      total: z.number(),
      next_offset: z.number().optional(),
    }),
    readOnly: true,
    async run(args, call) {
      const page = await call.runtime.service.page(call.requester, listOptions(args, args));
      const jobs = page.jobs;
      const rows = jobs.map((j) => ({
        job_id: j.id,
        tool: j.tool,
        state: j.state,
        requester: { subject: j.requester.subject, display_name: j.requester.displayName, origin: j.requester.origin },
        created_at: j.createdAt,
        hosts: j.plan.hosts.length,
        ...(j.reason !== undefined ? { reason: j.reason } : {}),
      }));
      const text = rows.map((r) => `${r.job_id} ${r.tool} ${r.state.replaceAll('_', ' ')} (${visibleInline(r.requester.display_name)} via ${r.requester.origin}, ${r.created_at})`).join('\n');
      const more = page.next !== undefined ? `\n${rows.length} of ${page.total}; call jobs_list with offset ${page.next} for more.` : '';
      return structured({ jobs: rows, total: page.total, ...(page.next !== undefined ? { next_offset: page.next } : {}) }, `${text || 'no jobs match'}${more}`);
    },
  }),
  jobTool({
    name: 'audit_list',
    title: 'Read the audit trail',
    description: 'Audit entries newest first (requests, decisions, executions, outcomes, cancels, refusals): only your own, approvers also those of jobs that asked for approval, admins all.',
    input: z
      .object({
        limit: z.number().int().min(1).max(200).default(30),
        cursor: auditCursor.optional().describe('next_cursor of the previous answer.'),
        ...auditFilterShape,
      })
      .strict(),
    output: z.object({
      entries: z.array(
        z.object({
          id: z.string(),
          at: z.string(),
          kind: z.enum(AUDIT_KINDS as [AuditKind, ...AuditKind[]]),
          subject: z.string(),
          origin: z.string(),
          tool: z.string().optional(),
          job_id: z.string().optional(),
          what: z.string(),
        }),
      ),
      total: z.number(),
      next_cursor: z.string().optional(),
    }),
    readOnly: true,
    async run(args, call) {
      const page = await call.runtime.service.audit(call.requester, auditQuery(args, args));
      const entries = page.entries.map((e) => ({
        id: e.id,
        at: e.at,
        kind: e.kind,
        subject: e.subject,
        origin: e.origin,
        ...(e.tool !== undefined ? { tool: e.tool } : {}),
        ...(e.jobId !== undefined ? { job_id: e.jobId } : {}),
        what: auditWhat(e),
      }));
      const text = page.entries.map(auditLine).join('\n');
      const more = page.next !== undefined ? `\n${entries.length} of ${page.total}; call audit_list with cursor ${page.next} for more.` : '';
      return structured({ entries, total: page.total, ...(page.next !== undefined ? { next_cursor: page.next } : {}) }, `${text || 'no audit entries match'}${more}`);
    },
  }),
  jobTool({
    name: 'job_approve',
    title: 'Approve a job (humans only)',
    description:
      'Listed so AI clients learn how approvals work: approvals are never accepted through MCP. ' +
      'The answer says where a person with the approver role can approve (CLI, HTTP API, Slack).',
    input: z.object({ job_id: jobId, reason }).strict(),
    output: outcomeOutput,
    readOnly: false,
    shownTo: canRequestChanges,
    run: (args, call) => vote('approve', args.job_id, args.reason, call),
  }),
  jobTool({
    name: 'job_deny',
    title: 'Deny a job (humans only)',
    description: 'Like job_approve: denials are decided by people, not through MCP; the answer says where. To stop your own request, use job_cancel.',
    input: z.object({ job_id: jobId, reason }).strict(),
    output: outcomeOutput,
    readOnly: false,
    shownTo: canRequestChanges,
    run: (args, call) => vote('deny', args.job_id, args.reason, call),
  }),
];

/** Catalogue tools then job tools, in the catalogue's order; only `toolsets`' tools are served. */
export function mcpTools(catalogue: readonly AnyTool[], toolsets: readonly Toolset[]): McpTool[] {
  return [...catalogue.map((tool) => catalogueTool(tool, toolsets)), ...JOB_TOOLS];
}
