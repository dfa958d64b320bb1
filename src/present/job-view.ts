// The one picture of a job that every front end shows: built once from the job record (and,
// when at hand, its events) into plain snake_case JSON. It says in one line what the job is
// and where it stands (`summary`), what happens next and who must act (`next`), the exact
// plan an approver must see (every step, its hosts, the argv as run, the whole stdin
// script), the approval (votes, M of N, expiry, where to approve), progress, per-host results
// with folded output, and timing. The API returns it as is (the remote CLI renders it
// unchanged); renderers in ./render/ turn it into terminal text, MCP content, Slack Block Kit
// and HTML. The zod schemas are the contract the API's consumers rely on.
import { createHash } from 'node:crypto';
import { displayArgv } from '../../config/visible.js';
import { z } from 'zod';
import { bindingUsers, stepArgv, type LoginUserOf } from '../../queues/plan-commands.js';
import { stepKind } from '../../tools/steps/index.js';
import { walkPlan } from '../../tools/steps/walk.js';
import type { JobRecord } from '../../queues/records.js';
import { isFinal, JOB_STATES } from '../../queues/states.js';
import type { StampedEvent } from '../../queues/events.js';
import { ORIGINS, type Identity } from '../../auth/types.js';
import { RISKS, type Plan, type PlanStep } from '../../tools/types.js';
import { HOST_STATUSES } from '../../tools/host-result.js';
import { catalogue } from '../../tools/index.js';
import { progressFrom } from './progress.js';
import { resultView, resultViewSchema, type ResultView } from './result-view.js';
import { nextStep, summaryLine } from './summary.js';

const stepViewBase = z.object({
  id: z.string(),
  /** Step kind (exec, upload, download, relay, gate). */
  kind: z.string(),
  description: z.string(),
  hosts: z.array(z.string()),
  /** The node the step is about, when it runs on another host (kubectl on a control plane). */
  subject: z.string().optional(),
  /**
   * The argv as it will run (as root: `sudo -n --` prefixed where the login user is not root),
   * the transfer it does, or the gate.
   */
  command: z.array(z.string()),
  /** As root on hosts of different login users: those logging in as root run `command` there, without sudo. */
  root_login: z.object({ hosts: z.array(z.string()), command: z.array(z.string()), command_display: z.string() }).optional(),
  /** Script fed on stdin, shown in full: an approver must see what will run. */
  stdin: z.string().optional(),
  /** Size in bytes and sha256 (hex) of `stdin`, so an approval can be checked against the audit. */
  stdin_bytes: z.number().optional(),
  stdin_sha256: z.string().optional(),
  /** `command` for a person to read: bash-style quoting, invisible characters as escapes. */
  command_display: z.string(),
  /** Gates: the read check each poll runs, the condition, interval and deadline. */
  gate: z
    .object({
      check: z.string(),
      check_input: z.unknown(),
      check_hosts: z.array(z.string()),
      until: z.string(),
      until_args: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
      condition: z.string(),
      interval_ms: z.number(),
      timeout_ms: z.number(),
    })
    .optional(),
  timeout_ms: z.number(),
});

export const stepViewSchema = stepViewBase.extend({
  /** Rollback run for a subject when a later step of it fails (armed by this step or one below). */
  on_failure: z.array(stepViewBase.extend({ armed_by: z.string() })).optional(),
});

export const planViewSchema = z.object({
  hosts: z.array(z.string()),
  failure_budget: z.number(),
  /** A rolling plan's stop rule in words (what an approver agrees the run may lose), for every front end. */
  stop_rule: z.string().optional(),
  window: z.number().optional(),
  batches: z.array(z.object({ index: z.number(), steps: z.array(stepViewSchema) })),
});
export type PlanView = z.infer<typeof planViewSchema>;

export const hostViewSchema = z.object({
  host: z.string(),
  status: z.enum(HOST_STATUSES),
  step: z.string(),
  exit_code: z.number().nullable(),
  duration_ms: z.number(),
  truncated: z.boolean(),
  error: z.string().optional(),
});
export type HostView = z.infer<typeof hostViewSchema>;

export const foldViewSchema = z.object({
  nodeset: z.string(),
  count: z.number(),
  status: z.string(),
  text: z.string(),
  /** True when `text` was cut to keep the answer small (page through job output for all of it). */
  text_truncated: z.boolean().optional(),
});
export type FoldView = z.infer<typeof foldViewSchema>;

export const voteViewSchema = z.object({
  subject: z.string(),
  display_name: z.string(),
  origin: z.enum(ORIGINS),
  decision: z.enum(['approve', 'deny']),
  reason: z.string().optional(),
  at: z.string(),
});

export const requesterViewSchema = z.object({ subject: z.string(), display_name: z.string(), origin: z.enum(ORIGINS) });

/** Where a person can approve (from config), so every front end can say exactly what to do. */
export interface ApprovalPlaces {
  /** Castellan's public URL (the API lives under it). */
  readonly publicUrl?: string | undefined;
  /** Slack channel where approval requests are posted, when Slack is set up. */
  readonly slackChannel?: string | undefined;
  /** policy.approvals.allow_self_approval: the requester may approve their own job. */
  readonly selfApproval?: boolean | undefined;
}

export const nextViewSchema = z.object({
  /** Who or what the job waits for now; absent once it ended. */
  waiting_for: z.enum(['approval', 'window', 'worker', 'run']).optional(),
  /** One sentence for a person: what happens next and who must act. */
  text: z.string(),
  /** Where approval can be given (commands and places), when it waits for approval. */
  approve_via: z.array(z.object({ via: z.enum(['cli', 'api', 'slack', 'dashboard']), how: z.string() })).optional(),
});
export type NextView = z.infer<typeof nextViewSchema>;

export const progressViewSchema = z.object({
  /** 1-based batch being run, of how many (rolling plans). */
  batch: z.object({ index: z.number(), total: z.number() }).optional(),
  /** The step being run: id and description. */
  step: z.object({ id: z.string(), description: z.string() }).optional(),
  hosts_total: z.number(),
  /**
   * Hosts that finished the current step, how many of them failed, how many a stop caught
   * (cancelled, skipped) and how many the job's deadline stopped (timed out).
   */
  hosts_done: z.number(),
  hosts_failed: z.number(),
  hosts_stopped: z.number().optional(),
  hosts_timed_out: z.number().optional(),
  /** A host lock another job holds, while this one waits for it. */
  lock_wait: z.object({ host: z.string(), holder: z.string() }).optional(),
  /**
   * The step running is an on-failure step putting `subject` back (a rollback): after a gate
   * failed, or after a cancel or the deadline (the job reads running until it ends). `text`:
   * what that step does.
   */
  rolling_back: z.object({ subject: z.string(), step: z.string(), text: z.string() }).optional(),
});
export type ProgressView = z.infer<typeof progressViewSchema>;

/** What the viewer may not see of this job (auth/policy.ts jobAccess), and why. */
export const hiddenViewSchema = z.object({ details: z.boolean(), output: z.boolean(), reason: z.string() });

export const jobViewSchema = z.object({
  id: z.string(),
  tool: z.string(),
  risk: z.enum(RISKS),
  state: z.enum(JOB_STATES),
  finished: z.boolean(),
  /** One line: the tool, its hosts as a node set, and where it stands or how it ended. */
  summary: z.string(),
  next: nextViewSchema,
  requester: requesterViewSchema,
  created_at: z.string(),
  updated_at: z.string(),
  queued_at: z.string().optional(),
  started_at: z.string().optional(),
  finished_at: z.string().optional(),
  reason: z.string().optional(),
  /** Whole-job time limit once it runs. */
  timeout_ms: z.number(),
  /** Time spent waiting (approval and queue) and running, once known. */
  durations: z.object({ waited_ms: z.number().optional(), ran_ms: z.number().optional() }),
  input: z.unknown(),
  plan: planViewSchema,
  /** sha256 of the plan bound to its hosts' keys: what approvals are cast on and the audit records. */
  plan_hash: z.string(),
  approval: z
    .object({
      required: z.number(),
      approvals: z.number(),
      votes: z.array(voteViewSchema),
      expires_at: z.string().optional(),
    })
    .optional(),
  /** Destructive job submitted outside its hosts' maintenance window: it waits for the next opening. */
  maintenance: z.object({ windows: z.array(z.string()), opens_at: z.string().optional(), detail: z.string() }).optional(),
  /**
   * What the job would change, from a run that changes nothing (Ansible's check mode with
   * diffs), made while it waits for approval: its own job, its state, and once ended its output.
   */
  preview: z
    .object({
      job_id: z.string(),
      state: z.enum(JOB_STATES),
      finished: z.boolean(),
      reason: z.string().optional(),
      folded: z.array(foldViewSchema),
    })
    .optional(),
  /** Set on a preview job: the job it previews. */
  preview_of: z.string().optional(),
  progress: progressViewSchema.optional(),
  /** Present when input and plan steps (`details`) or output were withheld from this viewer. */
  hidden: hiddenViewSchema.optional(),
  result: z
    .object({
      hosts: z.array(hostViewSchema),
      folded: z.array(foldViewSchema),
      data: z.unknown().optional(),
      /** The tool's own reading of `data`: summary, columns, rows (alike hosts folded). */
      view: resultViewSchema.optional(),
      unknown_hosts: z.array(z.string()).optional(),
    })
    .optional(),
});
export type JobView = z.infer<typeof jobViewSchema>;

function stepView(step: PlanStep, userOf?: LoginUserOf): z.infer<typeof stepViewBase> {
  const kind = stepKind(step.action);
  const { command, direct } = stepArgv(step, userOf);
  return {
    id: step.id,
    kind: step.action.kind,
    description: step.description,
    hosts: [...step.hosts],
    ...(step.subject !== undefined ? { subject: step.subject } : {}),
    command,
    command_display: displayArgv(command),
    ...(direct ? { root_login: { hosts: direct.rootLogin, command: direct.command, command_display: displayArgv(direct.command) } } : {}),
    ...(kind.details?.(step.action) ?? {}),
    ...(step.action.kind === 'exec' && step.action.stdin !== undefined
      ? { stdin_bytes: Buffer.byteLength(step.action.stdin), stdin_sha256: createHash('sha256').update(step.action.stdin).digest('hex') }
      : {}),
    timeout_ms: step.timeoutMs,
  };
}

/** The runner's rule (queues/runner.ts: failures counted per subject over the whole plan) in words. */
function stopRule(budget: number): string {
  return `once more than ${budget} node(s)/host(s) have failed (rolled-back ones count), the remaining batches are skipped`;
}

/** `userOf`: each host's login user (a job's binding, or the inventory for a preview). */
export function planView(plan: Plan, userOf?: LoginUserOf): PlanView {
  const rollbacksOf = (step: PlanStep): (z.infer<typeof stepViewBase> & { armed_by: string })[] =>
    walkPlan({ ...plan, batches: [{ steps: [step] }] })
      .filter((w) => w.onFailureOf !== undefined)
      .map((w) => ({ ...stepView(w.step, userOf), armed_by: w.onFailureOf ?? '' }));
  return {
    hosts: [...plan.hosts],
    failure_budget: plan.failureBudget,
    ...(plan.batches.length > 1 ? { stop_rule: stopRule(plan.failureBudget) } : {}),
    ...(plan.window !== undefined ? { window: plan.window } : {}),
    batches: plan.batches.map((batch, index) => ({
      index,
      steps: batch.steps.map((step) => {
        const rollbacks = rollbacksOf(step);
        return { ...stepView(step, userOf), ...(rollbacks.length ? { on_failure: rollbacks } : {}) };
      }),
    })),
  };
}

export function hostViews(job: JobRecord): HostView[] {
  return (job.result?.hosts ?? []).map((h) => ({
    host: h.host,
    status: h.status,
    step: h.step,
    exit_code: h.exitCode,
    duration_ms: h.durationMs,
    truncated: h.truncated,
    // "exit code N" says no more than exit_code: every renderer would print "exit 2: exit code 2".
    ...(h.error !== undefined && h.error !== `exit code ${h.exitCode}` ? { error: h.error } : {}),
  }));
}

/**
 * Hosts whose error the folded output does not show. A host's folded text starts with its
 * error (the worker folds error, stderr and stdout together), so most errors are said there
 * already and a renderer lists only these apart, not every failed host's error a second time.
 */
export function errorsNotFolded(result: { readonly hosts: readonly HostView[]; readonly folded: readonly FoldView[] }): HostView[] {
  return result.hosts.filter((h) => {
    const error = h.error;
    return error !== undefined && h.status !== 'ok' && !result.folded.some((group) => group.text.includes(error));
  });
}

/** Folded groups, each text cut at `maxChars` (0 = uncut). */
export function foldViews(job: JobRecord, maxChars = 0): FoldView[] {
  return (job.result?.folded ?? []).map((g) => {
    const cut = maxChars > 0 && g.text.length > maxChars;
    return { nodeset: g.nodeset, count: g.count, status: g.status, text: cut ? `${g.text.slice(0, maxChars)}…` : g.text, ...(cut ? { text_truncated: true } : {}) };
  });
}

/** The tool's result view of the job's data, when the tool declares one and the data fits it. */
export function viewOfResult(job: JobRecord): ResultView | undefined {
  if (job.result?.data === undefined) return undefined;
  return resultView(catalogue.find((t) => t.name === job.tool), job.result.data);
}

const withView = (view: ResultView | undefined): { view?: ResultView } => (view ? { view } : {});

export function approvalCount(job: JobRecord): number {
  return new Set(job.votes.filter((v) => v.decision === 'approve').map((v) => v.subject)).size;
}

export interface ViewOptions {
  /** The job's events so far: progress comes from them (a running job's view without them has none). */
  readonly events?: readonly StampedEvent[] | undefined;
  /** Where approval can be given, from config. */
  readonly places?: ApprovalPlaces | undefined;
}

function between(from: string | undefined, to: string | undefined): number | undefined {
  if (from === undefined || to === undefined) return undefined;
  const ms = Date.parse(to) - Date.parse(from);
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

/** The job view: built once per answer from the record (and its events, when at hand). */
export function jobView(job: JobRecord, options: ViewOptions = {}): JobView {
  const result = job.result;
  const progress = job.state === 'running' && options.events ? progressFrom(options.events, job.plan.hosts.length) : undefined;
  const waited = between(job.createdAt, job.startedAt);
  const ran = between(job.startedAt, job.finishedAt);
  return {
    id: job.id,
    tool: job.tool,
    risk: job.risk,
    state: job.state,
    finished: isFinal(job.state),
    summary: summaryLine(job, progress, ran),
    next: nextStep(job, options.places ?? {}, progress),
    requester: { subject: job.requester.subject, display_name: job.requester.displayName, origin: job.requester.origin },
    created_at: job.createdAt,
    updated_at: job.updatedAt,
    ...(job.queuedAt !== undefined ? { queued_at: job.queuedAt } : {}),
    ...(job.startedAt !== undefined ? { started_at: job.startedAt } : {}),
    ...(job.finishedAt !== undefined ? { finished_at: job.finishedAt } : {}),
    ...(job.reason !== undefined ? { reason: job.reason } : {}),
    timeout_ms: job.timeoutMs,
    durations: { ...(waited !== undefined ? { waited_ms: waited } : {}), ...(ran !== undefined ? { ran_ms: ran } : {}) },
    input: job.input,
    plan: planView(job.plan, bindingUsers(job.binding)),
    plan_hash: job.planHash,
    ...(job.approvalsRequired > 0
      ? {
          approval: {
            required: job.approvalsRequired,
            approvals: approvalCount(job),
            votes: job.votes.map((v) => ({
              subject: v.subject,
              display_name: v.displayName,
              origin: v.origin,
              decision: v.decision,
              ...(v.reason !== undefined ? { reason: v.reason } : {}),
              at: v.at,
            })),
            ...(job.expiresAt !== undefined && job.expiresAt > 0 ? { expires_at: new Date(job.expiresAt).toISOString() } : {}),
          },
        }
      : {}),
    ...(job.maintenance !== undefined
      ? { maintenance: { windows: [...job.maintenance.windows], ...(job.maintenance.opensAt !== undefined ? { opens_at: job.maintenance.opensAt } : {}), detail: job.maintenance.detail } }
      : {}),
    ...(job.preview !== undefined
      ? {
          preview: {
            job_id: job.preview.jobId,
            state: job.preview.state,
            finished: isFinal(job.preview.state),
            ...(job.preview.reason !== undefined ? { reason: job.preview.reason } : {}),
            folded: (job.preview.folded ?? []).map((g) => ({ nodeset: g.nodeset, count: g.count, status: g.status, text: g.text })),
          },
        }
      : {}),
    ...(job.previewOf !== undefined ? { preview_of: job.previewOf } : {}),
    ...(progress ? { progress } : {}),
    ...(job.hidden !== undefined ? { hidden: { ...job.hidden } } : {}),
    ...(result !== undefined
      ? {
          result: {
            hosts: hostViews(job),
            folded: foldViews(job),
            ...(result.data !== undefined ? { data: result.data } : {}),
            ...withView(viewOfResult(job)),
            ...(result.unknownHosts !== undefined && result.unknownHosts.length > 0 ? { unknown_hosts: [...result.unknownHosts] } : {}),
          },
        }
      : {}),
  };
}

/** One page of a job's output: folded groups and per-host output, both by position. */
export const outputPageSchema = z.object({
  job_id: z.string(),
  state: z.enum(JOB_STATES),
  finished: z.boolean(),
  offset: z.number(),
  total_groups: z.number(),
  total_hosts: z.number(),
  folded: z.array(foldViewSchema),
  hosts: z.array(
    hostViewSchema.extend({
      stdout: z.string(),
      stderr: z.string(),
      output_truncated: z.boolean().optional(),
    }),
  ),
  /** Offset of the next page, absent on the last one. */
  next_offset: z.number().optional(),
  /** Why stdout/stderr and folded text are empty for this caller (policy.visibility). */
  output_hidden: z.string().optional(),
});
export type OutputPage = z.infer<typeof outputPageSchema>;

export interface PageOptions {
  readonly offset: number;
  readonly limit: number;
  /** Cap per text field (folded text, stdout, stderr). */
  readonly maxChars: number;
}

function cut(text: string, max: number): { text: string; cut: boolean } {
  return text.length > max ? { text: `${text.slice(0, max)}…`, cut: true } : { text, cut: false };
}

export function outputPage(job: JobRecord, options: PageOptions): OutputPage {
  const { offset, limit, maxChars } = options;
  const groups = foldViews(job, maxChars);
  const views = hostViews(job);
  const raw = job.result?.hosts ?? [];
  const hosts = views.slice(offset, offset + limit).map((view, i) => {
    const full = raw[offset + i];
    const stdout = cut(full?.stdout ?? '', maxChars);
    const stderr = cut(full?.stderr ?? '', maxChars);
    return { ...view, stdout: stdout.text, stderr: stderr.text, ...(stdout.cut || stderr.cut ? { output_truncated: true } : {}) };
  });
  const end = offset + limit;
  const more = end < Math.max(groups.length, views.length);
  return {
    job_id: job.id,
    state: job.state,
    finished: isFinal(job.state),
    offset,
    total_groups: groups.length,
    total_hosts: views.length,
    folded: groups.slice(offset, end),
    hosts,
    ...(more ? { next_offset: end } : {}),
    ...(job.hidden?.output ? { output_hidden: job.hidden.reason } : {}),
  };
}

export const eventViewSchema = z.object({ id: z.string(), at: z.string(), event: z.record(z.string(), z.unknown()) });
export type EventView = z.infer<typeof eventViewSchema>;

export function eventView(e: StampedEvent): EventView {
  return { id: e.id, at: new Date(e.at).toISOString(), event: { ...e.event } };
}

/** What `viewOfJob` needs from the job service: the job's events. */
export interface EventSource {
  events(jobId: string, viewer: Identity, afterId?: string, count?: number): Promise<StampedEvent[]>;
}

/** The view of one job, with progress read from its events while it runs. */
export async function viewOfJob(service: EventSource, job: JobRecord, viewer: Identity, places: ApprovalPlaces): Promise<JobView> {
  const events = job.state === 'running' ? await service.events(job.id, viewer, '0', 5000) : undefined;
  return jobView(job, { events, places });
}
