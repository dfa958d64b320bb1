// Block Kit rendering of a job: the one channel message a Slack request gets (edited in place
// as the job moves) and the approval card. Pure functions of the job record and its progress
// counters, so every instance renders the same bytes and the notifier can compare renders to
// skip edits that would change nothing.
//
// Untrusted text (argv, scripts, node output, host names, reasons, names) goes through
// config/visible.ts, then Slack's own escaping (&, <, >), so output can neither hide characters
// nor ping `<!channel>`. Slack limits: 3000 characters per section, 50 blocks per message.
import type { types } from '@slack/bolt';

type KnownBlock = types.KnownBlock;
import { displayArgv, visibleBlock, visibleInline } from '../../config/visible.js';
import { foldNodeSet } from '../../config/nodeset.js';
import { actionArgv } from '../../queues/plan-commands.js';
import type { JobRecord } from '../../queues/records.js';
import { isFinal, type JobState } from '../../queues/states.js';
import { renderFolded } from '../../queues/fold.js';

export const SECTION_LIMIT = 3000;
/** Text of a thread reply carrying long output; Slack truncates messages past 40k, and reads best well under. */
export const THREAD_OUTPUT_LIMIT = 12_000;
/** Folded result shown inline in the message before it moves to a thread reply. */
export const INLINE_OUTPUT_LIMIT = 1800;

export const ACTION_APPROVE = 'castellan_approve';
export const ACTION_DENY = 'castellan_deny';
export const ACTION_LINK = 'castellan_link';
export const VIEW_DENY = 'castellan_deny_reason';

export interface JobProgress {
  readonly done: number;
  readonly failed: number;
  readonly batch?: { readonly index: number; readonly total: number } | undefined;
}

export type MessageKind = 'request' | 'card';

export interface SlackMessage {
  readonly text: string;
  readonly blocks: KnownBlock[];
}

/** Slack mrkdwn control characters; always escaped in untrusted text. */
export function escapeMrkdwn(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/** Untrusted one-line text as inline code: visible escapes, no formatting, no mentions. */
export function code(text: string): string {
  return `\`${escapeMrkdwn(visibleInline(text)).replaceAll('`', '\\x60')}\``;
}

/** Untrusted one-line text as plain words (names): visible escapes, no mentions. */
export function plain(text: string): string {
  return escapeMrkdwn(visibleInline(text));
}

/** Untrusted multi-line text as a code block, cut to `limit` with a marker that says so. */
export function codeBlock(text: string, limit = SECTION_LIMIT - 200): string {
  let body = escapeMrkdwn(visibleBlock(text)).replaceAll('```', '\\x60\\x60\\x60');
  if (body.length > limit) {
    const rest = body.length - limit;
    body = `${body.slice(0, limit)}\n… [truncated: ${rest} more characters]`;
  }
  return `\`\`\`${body === '' ? ' ' : body}\`\`\``;
}

function section(text: string): KnownBlock {
  const cut = text.length > SECTION_LIMIT ? `${text.slice(0, SECTION_LIMIT - 40)}\n… [truncated]` : text;
  return { type: 'section', text: { type: 'mrkdwn', text: cut } };
}

function context(text: string): KnownBlock {
  return { type: 'context', elements: [{ type: 'mrkdwn', text: text.slice(0, SECTION_LIMIT) }] };
}

/** `<!date^…>` shows the time in the reader's own time zone, with a plain fallback. */
export function slackDate(epochMs: number, format = '{date_short_pretty} {time}'): string {
  const iso = new Date(epochMs).toISOString().replace('T', ' ').slice(0, 16);
  return `<!date^${Math.floor(epochMs / 1000)}^${format}|${iso} UTC>`;
}

const STATE_LABEL: Readonly<Record<JobState, string>> = {
  awaiting_approval: ':hourglass_flowing_sand: Awaiting approval',
  queued: ':inbox_tray: Queued',
  waiting_window: ':calendar: Waiting for its maintenance window',
  running: ':gear: Running',
  succeeded: ':white_check_mark: Succeeded',
  partially_failed: ':warning: Partly failed',
  failed: ':x: Failed',
  cancelled: ':no_entry_sign: Cancelled',
  denied: ':no_entry: Denied',
  expired: ':alarm_clock: Expired (nobody decided in time)',
  interrupted: ':zap: Interrupted',
};

/** A job's hosts never change, and folding a thousand names on every render adds up. */
const foldedTargets = new Map<string, string>();

function targetsOf(job: JobRecord): string {
  const hosts = job.plan.hosts;
  if (hosts.length === 0) return '';
  let folded = foldedTargets.get(job.id);
  if (folded === undefined) {
    folded = foldNodeSet(hosts);
    if (foldedTargets.size >= 1000) foldedTargets.delete(foldedTargets.keys().next().value ?? '');
    foldedTargets.set(job.id, folded);
  }
  return ` on ${code(folded)} (${hosts.length} host${hosts.length === 1 ? '' : 's'})`;
}

function decisionLine(job: JobRecord): string | undefined {
  const approvals = job.votes.filter((v) => v.decision === 'approve');
  const denial = job.votes.find((v) => v.decision === 'deny');
  if (denial) {
    return `:no_entry: Denied by ${plain(denial.displayName)} at ${slackDate(Date.parse(denial.at), '{time}')}${denial.reason ? `: ${code(denial.reason)}` : ''}`;
  }
  if (job.state === 'awaiting_approval') return undefined;
  if (approvals.length >= job.approvalsRequired && approvals.length > 0) {
    const last = approvals[approvals.length - 1];
    const names = approvals.map((v) => plain(v.displayName)).join(', ');
    return `:white_check_mark: Approved by ${names} at ${slackDate(Date.parse(last?.at ?? job.updatedAt), '{time}')}`;
  }
  return undefined;
}

function statusLine(job: JobRecord, progress: JobProgress): string {
  const label = STATE_LABEL[job.state];
  const total = job.plan.hosts.length;
  switch (job.state) {
    case 'awaiting_approval': {
      const approvals = new Set(job.votes.filter((v) => v.decision === 'approve').map((v) => v.subject)).size;
      const expires = job.expiresAt !== undefined ? ` · expires ${slackDate(job.expiresAt, '{time}')}` : '';
      return `*${label}* — ${approvals} of ${job.approvalsRequired} approval${job.approvalsRequired === 1 ? '' : 's'}${expires}`;
    }
    case 'running': {
      const batch = progress.batch && progress.batch.total > 1 ? ` · batch ${progress.batch.index + 1}/${progress.batch.total}` : '';
      const hosts = total > 0 ? ` · ${progress.done + progress.failed}/${total} hosts done${progress.failed > 0 ? `, ${progress.failed} failed` : ''}` : '';
      return `*${label}*${batch}${hosts}`;
    }
    case 'queued':
      return `*${label}*`;
    default: {
      const hosts = job.result?.hosts ?? [];
      const ok = hosts.filter((h) => h.status === 'ok').length;
      const counts = hosts.length > 0 ? ` · ${ok}/${hosts.length} hosts ok` : '';
      const took = job.startedAt && job.finishedAt ? ` · ${seconds(Date.parse(job.finishedAt) - Date.parse(job.startedAt))}` : '';
      const why = job.reason && job.state !== 'succeeded' ? `\n${code(job.reason)}` : '';
      return `*${label}*${counts}${took}${why}`;
    }
  }
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`;
}

/** The exact plan an approver decides on: every step's hosts, argv and script. */
function planBlocks(job: JobRecord): KnownBlock[] {
  const lines: string[] = [];
  for (const [i, batch] of job.plan.batches.entries()) {
    for (const step of batch.steps) {
      const where = job.plan.batches.length > 1 ? `batch ${i + 1}, ` : '';
      lines.push(`${where}${step.id} on ${foldNodeSet(step.hosts)}:\n  ${displayArgv(actionArgv(step.action))}`);
      if (step.action.kind === 'exec' && step.action.stdin !== undefined) lines.push(`  stdin:\n${step.action.stdin}`);
    }
  }
  const blocks: KnownBlock[] = [];
  if (lines.length > 0) blocks.push(section(`*Will run*\n${codeBlock(lines.join('\n'), 2400)}`));
  blocks.push(context(`plan ${code(job.planHash.slice(0, 16))}${job.plan.batches.length > 1 ? ` · ${job.plan.batches.length} batches, failure budget ${job.plan.failureBudget}` : ''}`));
  return blocks;
}

/** The folded result table (`node[01-03] (3): …`), as the CLI prints it. */
export function resultText(job: JobRecord): string {
  const result = job.result;
  if (!result) return '';
  if (result.data !== undefined && result.hosts.length === 0) return typeof result.data === 'string' ? result.data : JSON.stringify(result.data, null, 2);
  return result.folded.length > 0 ? renderFolded(result.folded) : '';
}

/** True when the result does not fit the message and goes to a thread reply. */
export function needsThreadReply(job: JobRecord): boolean {
  return isFinal(job.state) && resultText(job).length > INLINE_OUTPUT_LIMIT;
}

/**
 * The message for a job. `request`: the channel message of a Slack request; `card`: the
 * approval card in the approvals channel. Buttons only while the job awaits approval.
 */
export function renderJob(job: JobRecord, progress: JobProgress, kind: MessageKind, publicUrl: string): SlackMessage {
  const blocks: KnownBlock[] = [];
  const title = `${kind === 'card' && job.state === 'awaiting_approval' ? ':raising_hand: *Approval needed:* ' : ''}*${plain(job.tool)}*${targetsOf(job)} · job ${code(job.id)}`;
  blocks.push(section(title));
  blocks.push(context(`${job.risk} · asked by ${plain(job.requester.displayName)} (${code(job.requester.subject)}) via ${job.requester.origin} · ${slackDate(Date.parse(job.createdAt))}`));
  const decided = decisionLine(job);
  blocks.push(section(decided ? `${decided}\n${statusLine(job, progress)}` : statusLine(job, progress)));

  if (job.maintenance !== undefined && (job.state === 'awaiting_approval' || job.state === 'waiting_window')) {
    blocks.push(context(`:calendar: ${escapeMrkdwn(job.maintenance.detail)}`));
  }
  if (job.state === 'awaiting_approval') {
    blocks.push(...planBlocks(job));
    blocks.push({
      type: 'actions',
      block_id: 'decide',
      elements: [
        {
          type: 'button',
          action_id: ACTION_APPROVE,
          value: job.id,
          style: 'primary',
          text: { type: 'plain_text', text: 'Approve' },
          confirm: {
            title: { type: 'plain_text', text: 'Approve this run?' },
            text: { type: 'mrkdwn', text: `${plain(job.tool)} will run on ${job.plan.hosts.length} host(s) as ${plain(job.requester.displayName)} asked.` },
            confirm: { type: 'plain_text', text: 'Approve' },
            deny: { type: 'plain_text', text: 'Back' },
          },
        },
        { type: 'button', action_id: ACTION_DENY, value: job.id, style: 'danger', text: { type: 'plain_text', text: 'Deny…' } },
      ],
    });
  } else if (isFinal(job.state)) {
    const text = resultText(job);
    if (text !== '' && text.length <= INLINE_OUTPUT_LIMIT) blocks.push(section(codeBlock(text)));
    else if (text !== '') blocks.push(context(`Output is long (${text.length} characters): see the thread reply${kind === 'card' ? ' on the request' : ''}, or \`castellan job ${job.id}\`.`));
    const truncatedHosts = (job.result?.hosts ?? []).filter((h) => h.truncated).length;
    if (truncatedHosts > 0) blocks.push(context(`Output was capped on ${truncatedHosts} host(s) (ssh.max_output_bytes).`));
  }
  blocks.push(context(`\`castellan job ${job.id}\` · <${new URL(`/api/v1/jobs/${job.id}`, publicUrl).href}|API>`));
  const fallback = `${job.tool} · job ${job.id} · ${job.state.replaceAll('_', ' ')}`;
  return { text: fallback, blocks };
}

/** The thread reply with long output, cut with a marker that says where the rest is. */
export function renderOutputReply(job: JobRecord): string {
  const text = resultText(job);
  const marker = `\n… [truncated: ${text.length - THREAD_OUTPUT_LIMIT} more characters — the full output: \`castellan job ${job.id}\` or GET /api/v1/jobs/${job.id}]`;
  const body = text.length > THREAD_OUTPUT_LIMIT ? escapeMrkdwn(visibleBlock(text.slice(0, THREAD_OUTPUT_LIMIT))).replaceAll('```', '\\x60\\x60\\x60') + marker : escapeMrkdwn(visibleBlock(text)).replaceAll('```', '\\x60\\x60\\x60');
  return `Output of ${plain(job.tool)} · job \`${job.id}\`\n\`\`\`${body}\`\`\``;
}

/** A short line per job for `/castellan jobs`. */
export function jobLine(job: JobRecord): string {
  return `${code(job.id)} ${STATE_LABEL[job.state]} · *${plain(job.tool)}*${targetsOf(job)} · ${plain(job.requester.displayName)} via ${job.requester.origin} · ${slackDate(Date.parse(job.createdAt))}`;
}

export function ephemeral(text: string): SlackMessage {
  return { text: text.replace(/[*`]/g, '').slice(0, 300), blocks: [section(text)] };
}

export function linkPrompt(url: string, why: string): SlackMessage {
  return {
    text: `${why} Link your Slack account to your Castellan identity: ${url}`,
    blocks: [
      section(`:link: ${why}\nCastellan runs everything as the person who asked, so link your Slack account to your sign-in first. The link is yours alone and expires in 10 minutes.`),
      { type: 'actions', elements: [{ type: 'button', action_id: ACTION_LINK, url, style: 'primary', text: { type: 'plain_text', text: 'Link your account' } }] },
    ],
  };
}

export function denyReasonModal(jobId: string, tool: string): Record<string, unknown> {
  return {
    type: 'modal',
    callback_id: VIEW_DENY,
    private_metadata: jobId,
    title: { type: 'plain_text', text: 'Deny this run' },
    submit: { type: 'plain_text', text: 'Deny' },
    close: { type: 'plain_text', text: 'Back' },
    blocks: [
      section(`Deny ${code(tool)} · job ${code(jobId)}? The requester sees your reason.`),
      { type: 'input', block_id: 'reason', label: { type: 'plain_text', text: 'Reason' }, element: { type: 'plain_text_input', action_id: 'reason', multiline: true, max_length: 500 } },
    ],
  };
}
