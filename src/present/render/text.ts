// Terminal text of a job view. Colour only when writing to a terminal and NO_COLOR is unset
// (https://no-color.org); untrusted text (argv, scripts, output, names, reasons) always goes
// through config/visible.ts so escape sequences cannot repaint what an approver reads.
import { displayArgv, visibleBlock, visibleInline } from '../../../config/visible.js';
import type { StampedEvent } from '../../../queues/events.js';
import { errorsNotFolded, type JobView, type PlanView } from '../job-view.js';
import type { ResultView } from '../result-view.js';
import { notOkWords, rollingBackText } from '../progress.js';
import { durationWords, hostsPhrase, plural } from '../summary.js';

export interface TextStyle {
  readonly color: boolean;
}

export function textStyleFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): TextStyle {
  return { color: Boolean(stream.isTTY) && (env.NO_COLOR === undefined || env.NO_COLOR === '') };
}

const CODES = { dim: '2', bold: '1', red: '31', green: '32', yellow: '33', cyan: '36' } as const;
type Tone = keyof typeof CODES;

function paint(style: TextStyle, tone: Tone, text: string): string {
  return style.color ? `\u001b[${CODES[tone]}m${text}\u001b[0m` : text;
}

function stateTone(state: JobView['state']): Tone {
  switch (state) {
    case 'succeeded':
      return 'green';
    case 'failed':
    case 'partially_failed':
    case 'interrupted':
      return 'red';
    case 'awaiting_approval':
    case 'cancelled':
    case 'denied':
    case 'expired':
      return 'yellow';
    default:
      return 'cyan';
  }
}

const indent = (text: string, by: string): string =>
  text
    .split('\n')
    .map((line) => (line === '' ? '' : by + line))
    .join('\n');

/** The one-line summary, as the CLI prints it last on stderr after a run. */
export function summaryText(view: JobView, style: TextStyle): string {
  return `${paint(style, stateTone(view.state), visibleInline(view.summary))} ${paint(style, 'dim', `[job ${view.id}]`)}`;
}

/** Every step with its hosts, the argv as it runs and the whole stdin script. */
export function planText(plan: PlanView, style: TextStyle): string {
  const lines: string[] = [];
  const rolling = plan.batches.length > 1;
  const head = plan.hosts.length > 0 ? `plan: ${plural(plan.batches.reduce((n, b) => n + b.steps.length, 0), 'step')} on ${visibleInline(hostsPhrase(plan.hosts))}` : 'plan: no hosts (answered from the inventory)';
  lines.push(paint(style, 'bold', head) + (rolling ? `; ${plan.batches.length} batches, failure budget: ${plan.failure_budget}` : ''));
  // The stop rule in words: what an approver agrees the run may lose before it stops itself.
  if (plan.stop_rule !== undefined) lines.push(`  stop rule: ${plan.stop_rule}`);
  for (const batch of plan.batches) {
    if (rolling) lines.push(`  batch ${batch.index + 1}:`);
    const pad = rolling ? '    ' : '  ';
    for (const step of batch.steps) {
      lines.push(...stepText(step, pad, ''));
      for (const rollback of step.on_failure ?? []) lines.push(...stepText(rollback, `${pad}  `, 'on failure: '));
    }
  }
  return lines.join('\n');
}

type StepView = PlanView['batches'][number]['steps'][number];

/**
 * One step as an approver must read it: `id: <exact command> (about X) on <hosts>`, the
 * description as a comment when it says more than the command, and a stdin script whole, with
 * its size and sha256 so what is approved can be compared with what the audit records.
 */
function stepText(step: Omit<StepView, 'on_failure'>, pad: string, prefix: string): string[] {
  const about = step.subject !== undefined ? ` (about ${visibleInline(step.subject)})` : '';
  const said = step.command_display !== '' ? step.command_display : visibleInline(step.description);
  const lines = [`${pad}${prefix}${visibleInline(step.id)}: ${said}${about} on ${visibleInline(hostsPhrase(step.hosts))}`];
  // A gate's own description (`wait until <condition> (…)`) says what its `until` line below says.
  const gateDefault = step.gate !== undefined && step.description.startsWith(`wait until ${step.gate.condition} (`);
  if (step.command_display !== '' && !gateDefault && !step.description.includes(displayArgv(step.command).replace(/^sudo -n -- /, ''))) lines.push(`${pad}  # ${visibleInline(step.description)}`);
  if (step.root_login) lines.push(`${pad}  on ${visibleInline(hostsPhrase(step.root_login.hosts))} (logged in as root, no sudo): ${step.root_login.command_display}`);
  if (step.gate) lines.push(`${pad}  until ${visibleInline(step.gate.condition)}: ${step.gate.check} every ${durationWords(step.gate.interval_ms)}, up to ${durationWords(step.gate.timeout_ms)}`);
  if (step.stdin !== undefined) {
    const size = step.stdin_bytes !== undefined ? ` ${plural(step.stdin_bytes, 'byte')}, ${plural(step.stdin.split('\n').length, 'line')}${step.stdin_sha256 ? `, sha256 ${step.stdin_sha256}` : ''}` : '';
    lines.push(`${pad}  stdin:${size}`, indent(visibleBlock(step.stdin.replace(/\n$/, '')), `${pad}  | `));
  }
  return lines;
}

/**
 * What the job would change, from its preview (a run that changes nothing: Ansible's check
 * mode with diffs), shown with the plan so an approver reads the diff before deciding.
 */
export function previewText(view: JobView, style: TextStyle): string | undefined {
  const p = view.preview;
  if (!p) return undefined;
  const head = `${paint(style, 'bold', 'preview:')} a run that changes nothing (job ${p.job_id}), ${p.state.replaceAll('_', ' ')}`;
  if (!p.finished) return `${head}: what it would change shows here when it ends (castellan job ${view.id})`;
  const lines = [`${head}${p.reason ? `: ${visibleInline(p.reason)}` : ''}`];
  for (const group of p.folded) {
    const status = group.status === 'ok' ? '' : ` ${paint(style, 'red', `[${group.status}]`)}`;
    const text = visibleBlock(group.text.replace(/\r?\n$/, ''));
    lines.push(`  ${paint(style, 'bold', visibleInline(group.nodeset))} (${group.count})${status}:${text === '' ? ' (no output)' : ''}`);
    if (text !== '') lines.push(indent(text, '    '));
  }
  return lines.join('\n');
}

/** Votes so far, M of N, expiry, and where to approve while it waits. */
export function approvalText(view: JobView, style: TextStyle): string | undefined {
  const approval = view.approval;
  if (!approval) return undefined;
  const lines = [`${paint(style, 'bold', 'approval:')} ${approval.approvals} of ${approval.required}${approval.expires_at && view.state === 'awaiting_approval' ? `, expires ${approval.expires_at.replace('T', ' ').slice(0, 16)} UTC` : ''}`];
  for (const v of approval.votes) {
    lines.push(`  ${v.decision === 'approve' ? 'approved' : 'denied'} by ${visibleInline(v.display_name)} via ${v.origin} at ${v.at.replace('T', ' ').slice(0, 19)}${v.reason ? `: ${visibleInline(v.reason)}` : ''}`);
  }
  if (view.state === 'awaiting_approval') {
    lines.push(`  ${visibleInline(view.next.text)}`);
    for (const place of view.next.approve_via ?? []) lines.push(`    ${place.via}: ${visibleInline(place.how)}`);
  }
  return lines.join('\n');
}

const TONE_PAINT = { ok: 'green', warn: 'yellow', bad: 'red' } as const;

/** Display width, so `°C` and `·` do not throw the columns off (control characters are already escaped). */
const width = (text: string): number => [...text].length;

function pad(text: string, to: number, align: 'left' | 'right'): string {
  const fill = ' '.repeat(Math.max(0, to - width(text)));
  return align === 'right' ? fill + text : text + fill;
}

/**
 * The tool's result as a table: `node[01-05] (5) ok  p50 12 ms  max 31 ms`. The first column
 * is the hosts (with their count once folded), then one column per field, two spaces apart;
 * headings when the tool wants them and there is something to head. Problem rows (a host that
 * did not answer) say why across the columns.
 */
export function viewTableLines(view: ResultView, style: TextStyle): string[] {
  const keyOf = (r: ResultView['rows'][number]): string => visibleInline(r.count > 1 ? `${r.key} (${r.count})` : r.key);
  const rows = view.rows;
  const plain = rows.filter((r) => r.problem === undefined);
  const showHeader = view.header && plain.length > 0 && view.columns.length > 0;
  const keyWidth = Math.max(...rows.map((r) => width(keyOf(r))), showHeader ? width(view.key) : 0);
  const widths = view.columns.map((c, i) => Math.max(showHeader ? width(c.label) : 0, ...plain.map((r) => width(visibleInline(r.cells[i] ?? '')))));
  const lines: string[] = [];
  const last = view.columns.length - 1;
  if (showHeader) {
    const heads = view.columns.map((c, i) => (i === last && c.align === 'left' ? c.label : pad(c.label, widths[i] ?? 0, c.align)));
    lines.push(paint(style, 'dim', `${pad(view.key, keyWidth, 'left')} ${heads.join('  ')}`.trimEnd()));
  }
  for (const row of rows) {
    const key = paint(style, 'bold', pad(keyOf(row), keyWidth, 'left'));
    if (row.problem) {
      lines.push(`${key} ${paint(style, 'red', row.problem.status.replaceAll('_', ' '))}: ${visibleInline(row.problem.text)}`);
      continue;
    }
    const cells = view.columns.map((c, i) => {
      const text = visibleInline(row.cells[i] ?? '');
      const shown = i === last && c.align === 'left' ? text : pad(text, widths[i] ?? 0, c.align);
      const tone = row.tones?.[i];
      return tone ? paint(style, TONE_PAINT[tone], shown) : shown;
    });
    lines.push(`${key} ${cells.join('  ')}`.trimEnd());
  }
  return lines;
}

/** The result view as text: the summary when there is more than one row to sum up, then the table. */
export function viewText(view: ResultView, style: TextStyle): string[] {
  const summary = visibleInline(view.summary);
  if (view.output) return summary ? [summary] : [];
  const table = viewTableLines(view, style);
  // One row says all the summary would: never the same fact twice.
  return view.rows.length > 1 && summary ? [summary, ...table] : table;
}

export interface ResultTextOptions {
  /** Each host's own output, folded, instead of the tool's table (`--raw`). */
  readonly raw?: boolean | undefined;
}

/**
 * What the hosts said: the tool's result view (a table, alike hosts folded), or for tools
 * without one (and with `raw`) the folded output (`node[01-03] (3): text`).
 */
export function resultText(view: JobView, style: TextStyle, options: ResultTextOptions = {}): string {
  const result = view.result;
  if (!result) return '';
  const lines: string[] = [];
  const table = options.raw ? undefined : result.view;
  if (table) lines.push(...viewText(table, style));
  else if (result.hosts.length === 0 && result.data !== undefined) {
    lines.push(typeof result.data === 'string' ? visibleBlock(result.data) : visibleBlock(JSON.stringify(result.data, null, 2)));
  }
  if (!table || table.output) {
    for (const group of result.folded) {
      const status = group.status === 'ok' ? '' : ` ${paint(style, 'red', `[${group.status}]`)}`;
      const header = `${paint(style, 'bold', visibleInline(group.nodeset))} (${group.count})${status}:`;
      const text = visibleBlock(group.text.replace(/\r?\n$/, ''));
      if (text === '') lines.push(`${header} ${view.hidden?.output ? '(output hidden)' : '(no output)'}`);
      else if (!text.includes('\n')) lines.push(`${header} ${text}`);
      else lines.push(header, indent(text, '    '));
    }
    for (const h of errorsNotFolded(result)) lines.push(paint(style, 'dim', `${visibleInline(h.host)}: ${visibleInline(h.error ?? '')}`));
  }
  const truncated = result.hosts.filter((h) => h.truncated).map((h) => h.host);
  if (truncated.length) lines.push(`(output cut at the size limit on ${visibleInline(hostsPhrase(truncated))})`);
  if (result.unknown_hosts?.length) lines.push(`(outcome unknown on ${visibleInline(hostsPhrase(result.unknown_hosts))}: the worker stopped while they ran)`);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/** `castellan job <id>`: the whole card, each fact once. */
export function jobText(view: JobView, style: TextStyle, options: ResultTextOptions = {}): string {
  const timing = [
    `requested by ${visibleInline(view.requester.display_name)} via ${view.requester.origin} at ${view.created_at.replace('T', ' ').slice(0, 19)} UTC`,
    ...(view.durations.waited_ms !== undefined && view.durations.waited_ms >= 1000 ? [`waited ${durationWords(view.durations.waited_ms)}`] : []),
    ...(view.durations.ran_ms !== undefined ? [`ran ${durationWords(view.durations.ran_ms)}`] : []),
  ].join(', ');
  const parts = [summaryText(view, style), paint(style, 'dim', timing), planText(view.plan, style)];
  if (view.hidden) parts.push(paint(style, 'yellow', `hidden from you: ${[view.hidden.details ? 'input and commands' : '', view.hidden.output ? 'output' : ''].filter(Boolean).join(' and ')}: ${visibleInline(view.hidden.reason)}`));
  if (view.preview_of !== undefined) parts.push(paint(style, 'dim', `preview of job ${view.preview_of}: changes nothing`));
  const preview = previewText(view, style);
  if (preview) parts.push(preview);
  const approval = approvalText(view, style);
  if (approval) parts.push(approval);
  if (view.maintenance) parts.push(`${paint(style, 'bold', 'maintenance window:')} ${visibleInline(view.maintenance.detail)}`);
  if (view.progress) parts.push(progressText(view, style));
  if (!view.finished && view.state !== 'awaiting_approval') parts.push(paint(style, 'dim', `next: ${visibleInline(view.next.text)}`));
  const result = resultText(view, style, options);
  if (result) parts.push(`${paint(style, 'bold', 'result:')}\n${result.replace(/\n$/, '')}`);
  return `${parts.join('\n')}\n`;
}

function progressText(view: JobView, style: TextStyle): string {
  const p = view.progress;
  if (!p) return '';
  const batch = p.batch ? `batch ${p.batch.index}/${p.batch.total}, ` : '';
  const step = p.step ? `step ${p.step.id}, ` : '';
  const failed = notOkWords(p);
  const lock = p.lock_wait ? `; waiting for ${visibleInline(p.lock_wait.host)} (locked by job ${p.lock_wait.holder})` : '';
  const line = `${paint(style, 'bold', 'progress:')} ${batch}${step}${p.hosts_done}/${p.hosts_total} hosts done${failed}${lock}`;
  return p.rolling_back ? `${paint(style, 'bold', 'phase:')} ${paint(style, 'yellow', visibleInline(rollingBackText(p.rolling_back)))}\n${line}` : line;
}

/** One live progress line for stderr, or undefined for events not worth a line. */
export function eventText(event: StampedEvent, style: TextStyle): string | undefined {
  const e = event.event;
  switch (e.type) {
    case 'state':
      return paint(style, 'cyan', `» ${e.state.replaceAll('_', ' ')}${e.reason ? `: ${visibleInline(e.reason)}` : ''}`);
    case 'batch':
      return e.total > 1 ? paint(style, 'cyan', `» batch ${e.index + 1}/${e.total}: ${visibleInline(hostsPhrase(e.hosts))}`) : undefined;
    case 'step':
      return paint(style, 'dim', `» ${e.step}: ${visibleInline(e.description)} on ${visibleInline(hostsPhrase(e.hosts))}`);
    case 'host_finished': {
      const ok = e.status === 'ok';
      const status = e.status.replaceAll('_', ' ');
      // Errors often start with the status itself ("cancelled; remote run stopped"): not twice.
      // Nor "exit 2: exit code 2".
      const said = e.error === `exit code ${e.exitCode}` ? undefined : e.error;
      const error = said?.startsWith(status) ? said.slice(status.length).replace(/^[;:,]?\s*/, '') : said;
      const detail = ok ? '' : `${e.exitCode !== null ? ` exit ${e.exitCode}` : ''}${error ? `: ${visibleInline(error)}` : ''}`;
      return `${paint(style, ok ? 'green' : 'red', `${visibleInline(e.host)}: ${status}`)}${detail} (${durationWords(e.durationMs)})`;
    }
    case 'lock_wait':
      return paint(style, 'yellow', `» waiting for ${visibleInline(e.host)}: locked by job ${e.holder}`);
    case 'gate':
      return paint(style, 'dim', `» ${e.step}: ${visibleInline(e.subject)} ${visibleInline(e.text)}`);
    case 'vote':
      return paint(style, 'cyan', `» ${e.decision === 'approve' ? 'approved' : 'denied'} by ${visibleInline(e.subject)} (${e.count} of ${e.required})`);
    default:
      return undefined;
  }
}

/** One row of `castellan jobs`. */
export function jobRowText(view: JobView, style: TextStyle): string {
  const hosts = view.plan.hosts.length;
  return `${view.id}  ${paint(style, stateTone(view.state), view.state.replaceAll('_', ' ').padEnd(17))} ${view.tool.padEnd(18)} ${String(hosts).padStart(4)} ${hosts === 1 ? 'host ' : 'hosts'}  ${visibleInline(view.requester.display_name)} (${view.requester.origin})  ${view.created_at.replace('T', ' ').slice(0, 19)}`;
}
