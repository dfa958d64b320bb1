// Slack Block Kit rendering of the job view (../job-view.ts): the one channel message a Slack
// request gets (edited in place as the job moves), the approval card, the full plan and long
// output as thread replies, and a job's line in `/castellan jobs`. Slack has no picture of a
// job of its own: everything here reads the shared view, and the plan and result words are
// the terminal renderer's (./text.ts), so Slack, the CLI and MCP say the same thing.
//
// Pure functions of the view (plus where a message stands: plan posted in its thread or not),
// so every Castellan instance renders the same bytes and the notifier can compare renders to
// skip edits that change nothing.
//
// Untrusted text (argv, scripts, node output, host names, reasons, names) is made visible by
// config/visible.ts (via ./text.ts or here), then escaped for mrkdwn (&, <, >) and code fences
// neutralised, so output can neither hide characters nor ping `<!channel>`.
//
// Slack limits kept here: 3000 characters per section text, 50 blocks per message. Nothing is
// cut silently: a plan too long for the card goes whole into thread replies (the buttons come
// only once it is there), output too long for a message is cut with a marker that says how much
// is missing and where the rest is.
import type { types } from '@slack/bolt';
import { visibleBlock, visibleInline } from '../../../config/visible.js';
import type { JobState } from '../../../queues/states.js';
import type { JobView } from '../job-view.js';
import { notOkWords, rollingBackText } from '../progress.js';
import { hostsPhrase, plural } from '../summary.js';
import type { ResultView } from '../result-view.js';
import { planText, resultText, viewTableLines } from './text.js';

export type KnownBlock = types.KnownBlock;

export interface SlackMessage {
  readonly text: string;
  readonly blocks: KnownBlock[];
}

/** Slack's limit on a section's text. */
export const SECTION_LIMIT = 3000;
/** Slack's limit on blocks per message. */
export const BLOCKS_LIMIT = 50;
/** Code block body per section: the limit less the fences, a heading and room for escapes to grow. */
export const CHUNK_LIMIT = 2800;
/** Plan sections shown on the card itself; longer plans go whole into thread replies. */
export const INLINE_PLAN_SECTIONS = 4;
/** Sections per thread reply carrying a plan part or output. */
export const SECTIONS_PER_REPLY = 8;
/** Folded result shown inline in the message before it moves to a thread reply. */
export const INLINE_OUTPUT_LIMIT = 1800;
/** Output shown in thread replies at most (the whole of it is in the CLI/API/dashboard). */
export const THREAD_OUTPUT_LIMIT = 12_000;

export const ACTION_APPROVE = 'castellan_approve';
export const ACTION_DENY = 'castellan_deny';

export type MessageKind = 'request' | 'card';

/** Where the message stands apart from the job: whether the full plan is in its thread yet. */
export interface MessageState {
  /** Plan thread replies: how many were posted (the plan did not fit the card), and of how many. */
  readonly planParts?: { readonly posted: number; readonly total: number } | undefined;
}

const NO_STYLE = { color: false } as const;

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

/** Text already made visible, inert inside a code block (mentions escaped, fences broken). */
function inertBlock(visible: string): string {
  return escapeMrkdwn(visible).replaceAll('```', '\\x60\\x60\\x60');
}

/** Untrusted multi-line text as a code block, cut to `limit` with a marker that says so. */
export function codeBlock(text: string, limit = CHUNK_LIMIT): string {
  let body = inertBlock(visibleBlock(text));
  if (body.length > limit) {
    const rest = body.length - limit;
    body = `${body.slice(0, limit)}\n… [truncated: ${rest} more characters]`;
  }
  return `\`\`\`${body === '' ? ' ' : body}\`\`\``;
}

export function section(text: string): KnownBlock {
  // Callers build sections within the limit; a longer one would be refused by Slack as a whole.
  const cut = text.length > SECTION_LIMIT ? `${text.slice(0, SECTION_LIMIT - 60)}\n… [cut at Slack's section limit]` : text;
  return { type: 'section', text: { type: 'mrkdwn', text: cut } };
}

export function context(text: string): KnownBlock {
  return { type: 'context', elements: [{ type: 'mrkdwn', text: text.slice(0, SECTION_LIMIT) }] };
}

/** `<!date^…>` shows the time in the reader's own time zone, with a plain fallback. */
export function slackDate(epochMs: number, format = '{date_short_pretty} {time}'): string {
  const iso = new Date(epochMs).toISOString().replace('T', ' ').slice(0, 16);
  return `<!date^${Math.floor(epochMs / 1000)}^${format}|${iso} UTC>`;
}

/**
 * Split made-visible text into code-block bodies of at most `limit` characters after mrkdwn
 * escaping, at line ends where possible. Nothing is dropped: joining the chunks' raw text gives
 * the input back (tested), so an approver reading them all reads the whole plan.
 */
export function chunkLines(visible: string, limit = CHUNK_LIMIT): string[] {
  const chunks: string[] = [];
  let current = '';
  let size = 0;
  const flush = (): void => {
    if (current !== '') chunks.push(current);
    current = '';
    size = 0;
  };
  for (const line of visible.split(/(?<=\n)/)) {
    let rest = line;
    while (rest !== '') {
      const room = limit - size;
      const cost = inertBlock(rest).length;
      if (cost <= room) {
        current += rest;
        size += cost;
        break;
      }
      if (size > 0 && inertBlock(rest).length <= limit) {
        flush();
        continue;
      }
      // A line longer than a whole chunk: split it, taking as much as fits.
      let take = Math.max(1, Math.min(rest.length, room));
      while (take > 1 && inertBlock(rest.slice(0, take)).length > room) take = Math.floor(take * 0.9);
      current += rest.slice(0, take);
      size += inertBlock(rest.slice(0, take)).length;
      rest = rest.slice(take);
      flush();
    }
  }
  flush();
  return chunks;
}

const fence = (raw: string): string => `\`\`\`${inertBlock(raw) || ' '}\`\`\``;

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

function targets(view: JobView): string {
  const hosts = view.plan.hosts;
  return hosts.length === 0 ? '' : ` on ${code(hostsPhrase(hosts))}`;
}

/** The exact plan as the terminal shows it (every step, hosts, argv as run, whole stdin with size and sha256). */
export function planChunks(view: JobView): string[] {
  return chunkLines(`${planText(view.plan, NO_STYLE)}\nplan hash: ${view.plan_hash}`.replace(/\nplan hash: $/, ''));
}

export type PlanPlacement = { inline: true; chunks: string[] } | { inline: false; chunks: string[]; replies: string[][] };

/** A plan is laid out once per view (a large script is split into many chunks). */
const placements = new WeakMap<JobView['plan'], PlanPlacement>();

/** How the plan goes out: on the card (few sections) or whole in thread replies. */
export function planPlacement(view: JobView): PlanPlacement {
  const known = placements.get(view.plan);
  if (known) return known;
  const chunks = planChunks(view);
  let placement: PlanPlacement;
  if (chunks.length <= INLINE_PLAN_SECTIONS) placement = { inline: true, chunks };
  else {
    const replies: string[][] = [];
    for (let i = 0; i < chunks.length; i += SECTIONS_PER_REPLY) replies.push(chunks.slice(i, i + SECTIONS_PER_REPLY));
    placement = { inline: false, chunks, replies };
  }
  placements.set(view.plan, placement);
  return placement;
}

/** Thread reply `part` (0-based) of a plan too long for the card. */
export function planReply(view: JobView, part: number): SlackMessage {
  const placement = planPlacement(view);
  const replies = placement.inline ? [placement.chunks] : placement.replies;
  const chunks = replies[part] ?? [];
  const head = `*Plan of job ${code(view.id)}, part ${part + 1} of ${replies.length}*${part === 0 ? ` · ${plural(placement.chunks.reduce((n, c) => n + c.length, 0), 'character')} in all` : ''}`;
  return {
    text: `Plan of ${view.tool} · job ${view.id} · part ${part + 1} of ${replies.length}`,
    blocks: [section(head), ...chunks.map((c) => section(fence(c)))],
  };
}

function planBlocks(view: JobView, state: MessageState): KnownBlock[] {
  const placement = planPlacement(view);
  const hash = `plan ${code(view.plan_hash)}`;
  if (placement.inline) {
    return [
      ...placement.chunks.map((c, i) => section(`${i === 0 ? '*Will run*\n' : ''}${fence(c)}`)),
    ];
  }
  const parts = placement.replies.length;
  const posted = state.planParts?.posted ?? 0;
  const where =
    posted >= parts
      ? `:scroll: *The plan is long* (${plural(placement.chunks.reduce((n, c) => n + c.length, 0), 'character')}): it is shown whole, nothing left out, in the ${plural(parts, 'reply')} in this message's thread. Read them before deciding. ${hash}`
      : `:scroll: *The plan is long*: posting it whole in this message's thread (${posted} of ${plural(parts, 'part')} so far); the buttons appear once it is all there. ${hash}`;
  // The first lines still say what kind of run it is; the rest is in the thread.
  return [section(`*Will run* (start; all of it in the thread)\n${fence(placement.chunks[0] ?? '')}`), section(where)];
}

/** The preview run's state, and once it ended its folded output (the diff), cut to fit the card. */
function previewBlocks(view: JobView): KnownBlock[] {
  const p = view.preview;
  if (p === undefined) return [];
  const head = `*Preview* (a run that changes nothing, job ${code(p.job_id)}): ${p.state.replaceAll('_', ' ')}`;
  if (!p.finished) return [context(`${head} · what it would change shows here when it ends`)];
  const text = p.folded.map((g) => `${g.nodeset} (${g.count})${g.status === 'ok' ? '' : ` [${g.status}]`}:\n${g.text.replace(/\r?\n$/, '')}`).join('\n');
  if (text === '') return [section(`${head}${p.reason !== undefined ? ` · ${plain(p.reason)}` : ''}`)];
  const cut = text.length > INLINE_OUTPUT_LIMIT ? `${text.slice(0, INLINE_OUTPUT_LIMIT)}\n… [cut: all of it in castellan job ${p.job_id}]` : text;
  return [section(`${head}\n${fence(cut)}`)];
}

function voteLines(view: JobView): string[] {
  return (view.approval?.votes ?? []).map(
    (v) => `${v.decision === 'approve' ? ':white_check_mark: Approved' : ':no_entry: Denied'} by ${plain(v.display_name)} via ${v.origin} at ${slackDate(Date.parse(v.at), '{time}')}${v.reason ? `: ${code(v.reason)}` : ''}`,
  );
}

function statusLine(view: JobView): string {
  const label = `*${STATE_LABEL[view.state]}*`;
  switch (view.state) {
    case 'awaiting_approval': {
      const a = view.approval;
      const expires = a?.expires_at !== undefined ? ` · expires ${slackDate(Date.parse(a.expires_at), '{time}')}` : '';
      return `${label} — ${a?.approvals ?? 0} of ${plural(a?.required ?? 0, 'approval')}${expires}\n${plain(view.next.text)}`;
    }
    case 'running': {
      const p = view.progress;
      if (!p) return label;
      const batch = p.batch ? ` · batch ${p.batch.index}/${p.batch.total}` : '';
      const step = p.step ? ` · step ${code(p.step.id)}` : '';
      const failed = notOkWords(p);
      const lock = p.lock_wait ? ` · waiting for ${code(p.lock_wait.host)} (locked by job ${code(p.lock_wait.holder)})` : '';
      const rollback = p.rolling_back ? `\n*${plain(rollingBackText(p.rolling_back))}*` : '';
      return `${label}${batch}${step} · ${p.hosts_done}/${plural(p.hosts_total, 'host')} done${failed}${lock}${rollback}`;
    }
    case 'queued':
    case 'waiting_window':
      return `${label}\n${plain(view.next.text)}`;
    default: {
      const hosts = view.result?.hosts ?? [];
      const ok = hosts.filter((h) => h.status === 'ok').length;
      const counts = hosts.length > 0 ? ` · ${ok}/${hosts.length} hosts ok` : '';
      return `${label}${counts}\n${plain(view.summary)}`;
    }
  }
}

/** The result as the CLI prints it (the tool's table with its summary, or folded output), made visible. */
export function slackResultText(view: JobView): string {
  return resultText(view, NO_STYLE).replace(/\n$/, '');
}

/** A tool's table with its one-line summary said outside the code block. */
function tableOf(view: JobView): ResultView | undefined {
  const table = view.result?.view;
  return table !== undefined && !table.output && table.rows.length > 0 ? table : undefined;
}

/** What goes in the message's code block: the tool's table, or the folded output. */
function inlineResult(view: JobView): string {
  const table = tableOf(view);
  return table ? viewTableLines(table, NO_STYLE).join('\n') : slackResultText(view);
}

/** True when the result does not fit the message and goes to a thread reply. */
export function needsOutputReply(view: JobView): boolean {
  return view.finished && inlineResult(view).length > INLINE_OUTPUT_LIMIT;
}

const TONE_MARK = { bad: ':red_circle:', warn: ':large_yellow_circle:', ok: '' } as const;

/**
 * Rows that need a look, as Slack cannot colour a code block: hosts that did not answer, and
 * cells the tool marks bad or warn (`:red_circle: node03 · 95 %`). At most `limit`, then a count.
 */
function attentionLines(table: ResultView, limit = 10): string[] {
  const lines: string[] = [];
  for (const row of table.rows) {
    const key = row.count > 1 ? `${row.key} (${row.count})` : row.key;
    if (row.problem) {
      lines.push(`:x: ${code(key)} ${plain(row.problem.status.replaceAll('_', ' '))}: ${plain(row.problem.text)}`);
      continue;
    }
    const marked = (row.tones ?? []).map((tone, i) => ({ tone, cell: row.cells[i] ?? '', label: table.columns[i]?.label ?? '' })).filter((c) => c.tone === 'bad' || c.tone === 'warn');
    if (marked.length === 0) continue;
    const worst = marked.some((c) => c.tone === 'bad') ? 'bad' : 'warn';
    lines.push(`${TONE_MARK[worst]} ${code(key)} ${marked.map((c) => `${plain(c.label)} ${code(c.cell)}`).join(' · ')}`);
  }
  return lines.length > limit ? [...lines.slice(0, limit), `… and ${lines.length - limit} more in the table`] : lines;
}

function resultBlocks(view: JobView, kind: MessageKind): KnownBlock[] {
  const blocks: KnownBlock[] = [];
  const table = tableOf(view);
  if (table && table.summary !== '') blocks.push(section(`*${plain(table.title)}:* ${plain(table.summary)}`));
  const body = inlineResult(view);
  if (body !== '' && body.length <= INLINE_OUTPUT_LIMIT) blocks.push(section(fence(body)));
  else if (body !== '') blocks.push(context(`${table ? `The table has ${plural(table.rows.length, 'row')}` : `Output is long (${plural(body.length, 'character')})`}: see the thread reply${kind === 'card' ? ' on the request' : ''}, or \`castellan job ${view.id}\`.`));
  if (table) {
    const attention = attentionLines(table);
    if (attention.length > 0) blocks.push(section(attention.join('\n')));
    blocks.push(context(`\`castellan job ${view.id} --raw\` shows each host's own output.`));
  }
  return blocks;
}

/**
 * The message for a job. `request`: the channel message of a Slack request; `card`: the
 * approval card in the approvals channel. Buttons only while the job awaits approval and the
 * whole plan is on the card or in its thread.
 */
export function slackJobMessage(view: JobView, kind: MessageKind, publicUrl: string, state: MessageState = {}): SlackMessage {
  const blocks: KnownBlock[] = [];
  const waiting = view.state === 'awaiting_approval';
  const title = `${kind === 'card' && waiting ? ':raising_hand: *Approval needed:* ' : ''}*${plain(view.tool)}*${targets(view)} · job ${code(view.id)}`;
  blocks.push(section(title));
  blocks.push(context(`${view.risk} · asked by ${plain(view.requester.display_name)} (${code(view.requester.subject)}) via ${view.requester.origin} · ${slackDate(Date.parse(view.created_at))}`));
  const votes = voteLines(view);
  blocks.push(section([...votes, statusLine(view)].join('\n')));
  if (view.maintenance !== undefined && (waiting || view.state === 'waiting_window')) blocks.push(context(`:calendar: ${plain(view.maintenance.detail)}`));

  if (waiting) {
    blocks.push(...planBlocks(view, state));
    // What the run would change (Ansible's check mode with diffs), read before the buttons.
    blocks.push(...previewBlocks(view));
    const placement = planPlacement(view);
    const planShown = placement.inline || (state.planParts?.posted ?? 0) >= placement.replies.length;
    if (planShown) {
      blocks.push({
        type: 'actions',
        block_id: 'decide',
        elements: [
          {
            type: 'button',
            action_id: ACTION_APPROVE,
            value: view.id,
            style: 'primary',
            text: { type: 'plain_text', text: 'Approve' },
            confirm: {
              title: { type: 'plain_text', text: 'Approve this run?' },
              text: { type: 'mrkdwn', text: `${plain(view.tool)} will run on ${plural(view.plan.hosts.length, 'host')} as ${plain(view.requester.display_name)} asked (plan ${code((view.plan_hash).slice(0, 16))}).` },
              confirm: { type: 'plain_text', text: 'Approve' },
              deny: { type: 'plain_text', text: 'Back' },
            },
          },
          { type: 'button', action_id: ACTION_DENY, value: view.id, style: 'danger', text: { type: 'plain_text', text: 'Deny…' } },
        ],
      });
    }
  } else if (view.finished) {
    blocks.push(...resultBlocks(view, kind));
  }
  blocks.push(context(`\`castellan job ${view.id}\` · <${new URL(`/api/v1/jobs/${view.id}`, publicUrl).href}|API> · <${new URL(`/ui/jobs/${view.id}`, publicUrl).href}|dashboard>`));
  return { text: `${view.tool} · job ${view.id} · ${view.state.replaceAll('_', ' ')}`, blocks: blocks.slice(0, BLOCKS_LIMIT) };
}

/** The thread reply with long output, cut with a marker that says how much is missing and where it is. */
export function slackOutputReply(view: JobView): SlackMessage {
  const text = slackResultText(view);
  const shown = text.length > THREAD_OUTPUT_LIMIT ? text.slice(0, THREAD_OUTPUT_LIMIT) : text;
  const chunks = chunkLines(shown);
  const marker =
    text.length > THREAD_OUTPUT_LIMIT
      ? `… [truncated: ${text.length - THREAD_OUTPUT_LIMIT} more characters — the full output: \`castellan job ${view.id}\` or GET /api/v1/jobs/${view.id}/output]`
      : '';
  const head = `Output of ${plain(view.tool)} · job \`${view.id}\``;
  const blocks = [section(head), ...chunks.slice(0, SECTIONS_PER_REPLY).map((c) => section(fence(c))), ...(marker ? [context(marker)] : [])];
  // The fallback text carries the output too (notifications, clients without blocks), within Slack's 40k.
  return { text: `${head}\n\`\`\`${inertBlock(shown)}\`\`\`${marker ? `\n${marker}` : ''}`, blocks };
}

/** A short line per job for `/castellan jobs`. */
export function slackJobLine(view: JobView): string {
  return `${code(view.id)} ${STATE_LABEL[view.state]} · *${plain(view.tool)}*${targets(view)} · ${plain(view.requester.display_name)} via ${view.requester.origin} · ${slackDate(Date.parse(view.created_at))}`;
}
