// HTML of a job view (../job-view.ts), for the web dashboard: the same facts the terminal and
// MCP renderers show, from the same model, never re-derived from the job record. Summary and
// next step, facts, plan card, approval card, maintenance window, progress, a node × batch
// grid, the result (the tool's table view and output folded like the CLI) and a timeline.
// Event lines are the terminal's words (./text.ts eventText), so a job reads the same in a
// terminal and a browser. All text goes through ./markup.ts: escaped, and control characters
// shown as escapes.
import { displayArgv } from '../../../config/visible.js';
import type { StampedEvent } from '../../../queues/events.js';
import type { JobState } from '../../../queues/states.js';
import { errorsNotFolded, type JobView, type PlanView } from '../job-view.js';
import type { ResultView } from '../result-view.js';
import { notOkWords, rollingBackText } from '../progress.js';
import { durationWords, hostsPhrase, plural } from '../summary.js';
import { block, clock, duration, html, inline, time, type Html } from './markup.js';
import { eventText } from './text.js';

/** Where the dashboard is mounted: job links point into it. */
export const UI_BASE = '/ui';

/** Words and tone for each state: the text always says it, colour and symbol only repeat it. */
export const STATE_LOOK: Readonly<Record<JobState, { readonly label: string; readonly tone: string }>> = {
  awaiting_approval: { label: 'awaiting approval', tone: 'wait' },
  queued: { label: 'queued', tone: 'wait' },
  waiting_window: { label: 'waiting for its window', tone: 'wait' },
  running: { label: 'running', tone: 'run' },
  succeeded: { label: 'succeeded', tone: 'ok' },
  failed: { label: 'failed', tone: 'bad' },
  partially_failed: { label: 'partially failed', tone: 'bad' },
  cancelled: { label: 'cancelled', tone: 'off' },
  denied: { label: 'denied', tone: 'off' },
  expired: { label: 'expired', tone: 'off' },
  interrupted: { label: 'interrupted', tone: 'bad' },
};

export function stateBadge(state: JobState): Html {
  const look = STATE_LOOK[state];
  return html`<span class="state tone-${look.tone}" data-state="${state}">${look.label}</span>`;
}

/** Tone of a per-host status, including the grid's own "pending", "running" and "not run". */
export const HOST_TONE: Readonly<Record<string, string>> = {
  ok: 'ok',
  failed: 'bad',
  timed_out: 'bad',
  unreachable: 'bad',
  cancelled: 'off',
  skipped: 'off',
  pending: 'wait',
  running: 'run',
  'not run': 'off',
};

export function hostBadge(status: string): Html {
  return html`<span class="state tone-${HOST_TONE[status] ?? 'off'}">${status.replaceAll('_', ' ')}</span>`;
}

export function jobHref(id: string): string {
  return `${UI_BASE}/jobs/${id}`;
}

export function jobLink(id: string): Html {
  return html`<a href="${jobHref(id)}"><code>${id}</code></a>`;
}

/** Run time: the view's once it ended, start to now while it runs. */
export function ranMs(view: Pick<JobView, 'durations' | 'started_at' | 'finished'>, now = Date.now()): number | undefined {
  if (view.durations.ran_ms !== undefined) return view.durations.ran_ms;
  if (view.started_at === undefined || view.finished) return undefined;
  return Math.max(0, now - Date.parse(view.started_at));
}

/** The one-line summary, then what happens next (and where to approve while it waits). */
export function summaryBlock(view: JobView): Html {
  const next = view.finished
    ? ''
    : html`<p class="next" data-next><span class="muted">Next:</span> ${inline(view.next.text)}.</p>${
        view.next.approve_via !== undefined && view.next.approve_via.length > 0
          ? html`<ul class="approve-via">${view.next.approve_via.map((p) => html`<li><span class="muted">${p.via}</span> <code>${inline(p.how)}</code></li>`)}</ul>`
          : ''
      }`;
  return html`<p class="summary-line" data-summary>${inline(view.summary)}</p>${next}`;
}

/** Who asked, how risky, and when it waited and ran. */
export function factsList(view: JobView): Html {
  const fact = (term: string, value: Html | string): Html => html`<div><dt>${term}</dt><dd>${value}</dd></div>`;
  return html`<dl class="facts">
${fact('Requested by', html`${inline(view.requester.display_name)} <span class="muted">(${inline(view.requester.subject)}, ${view.requester.origin})</span>`)}
${fact('Risk', html`<span class="risk risk-${view.risk}">${view.risk}</span>`)}
${fact('Created', time(view.created_at))}
${view.started_at !== undefined ? fact('Started', time(view.started_at)) : ''}
${view.finished_at !== undefined ? fact('Finished', time(view.finished_at)) : ''}
${view.durations.waited_ms !== undefined && view.durations.waited_ms >= 1000 ? fact('Waited', durationWords(view.durations.waited_ms)) : ''}
${view.state === 'running' && view.started_at !== undefined
  ? html`<div><dt>Running for</dt><dd data-running-since="${view.started_at}">${duration(ranMs(view))}</dd></div>`
  : view.durations.ran_ms !== undefined ? fact('Ran', durationWords(view.durations.ran_ms)) : ''}
${fact('Time limit', durationWords(view.timeout_ms))}
</dl>`;
}

type StepView = PlanView['batches'][number]['steps'][number];

/**
 * One step as an approver must read it, like the terminal's plan card: the exact command,
 * who it is about, where it runs, its gate, and a stdin script whole with size and sha256.
 */
function stepItem(step: Omit<StepView, 'on_failure'>, rollbacks: readonly (Omit<StepView, 'on_failure'> & { armed_by: string })[]): Html {
  // command_display is already made visible (bash quoting, $'…' escapes): only escape it for HTML.
  const direct = step.root_login
    ? html`<p class="small">On ${inline(hostsPhrase(step.root_login.hosts))} (logged in as root, no sudo):</p><pre class="command"><code>${step.root_login.command_display}</code></pre>`
    : '';
  const shown = step.command_display !== '' ? html`<pre class="command"><code>${step.command_display}</code></pre>${direct}` : '';
  const gate = step.gate
    ? html`<p class="small">Until <strong>${inline(step.gate.condition)}</strong>: runs <code>${inline(step.gate.check)}</code> on ${inline(hostsPhrase(step.gate.check_hosts))} every ${durationWords(step.gate.interval_ms)}, for up to ${durationWords(step.gate.timeout_ms)}.</p>`
    : '';
  const stdin =
    step.stdin !== undefined
      ? html`<details open><summary>Script fed on stdin · ${plural(step.stdin_bytes ?? step.stdin.length, 'byte')}, ${plural(step.stdin.split('\n').length, 'line')}${step.stdin_sha256 !== undefined ? html` · sha256 <code title="${step.stdin_sha256}">${step.stdin_sha256.slice(0, 16)}…</code>` : ''}</summary><pre class="script"><code>${block(step.stdin.replace(/\n$/, ''))}</code></pre></details>`
      : '';
  const undo = rollbacks.length > 0
    ? html`<div class="rollback"><p class="small muted">If a later step fails for a host, this runs for it:</p><ul>${rollbacks.map((r) => html`<li>${stepItem(r, [])}</li>`)}</ul></div>`
    : '';
  // The description only when it says more than the command (as the terminal's plan card does).
  const says = step.command_display === '' || !step.description.includes(displayArgv(step.command).replace(/^sudo -n -- /, ''));
  return html`<p><code class="step-id">${inline(step.id)}</code>${says ? html` ${inline(step.description)}` : ''}${step.subject !== undefined ? html` <span class="muted">(about ${inline(step.subject)})</span>` : ''} <span class="muted">on ${inline(hostsPhrase(step.hosts) || 'no hosts')} · time limit ${durationWords(step.timeout_ms)}</span></p>
${shown}${gate}${stdin}${undo}`;
}

/** What this viewer may not see (the view's `hidden`), said once where it is missing. */
export function hiddenNote(view: JobView, part: 'details' | 'output'): Html {
  return html`<p class="muted">${part === 'details' ? 'Input and commands' : 'Output'} hidden from you: ${inline(view.hidden?.reason ?? 'not visible to you')}.</p>`;
}

/** The plan card, or where it runs and why the commands are hidden from this viewer. */
export function planSection(view: JobView): Html {
  if (view.hidden?.details) return html`<p>Runs on ${inline(hostsPhrase(view.plan.hosts) || 'no hosts')}.</p>${hiddenNote(view, 'details')}`;
  return planCard(view.plan);
}

/** Every batch and step with its hosts, the exact commands and whole scripts. */
export function planCard(plan: PlanView): Html {
  if (plan.batches.length === 0) return html`<p class="muted">This tool answers from Castellan's own data; it runs nothing on hosts.</p>`;
  const steps = plan.batches.reduce((n, b) => n + b.steps.length, 0);
  const rolling = plan.batches.length > 1;
  const list = (steps: readonly StepView[]): Html => html`<ol class="steps">${steps.map((s) => html`<li>${stepItem(s, s.on_failure ?? [])}</li>`)}</ol>`;
  return html`<p>${plural(steps, 'step')} on ${inline(hostsPhrase(plan.hosts))}${rolling ? html` in ${plan.batches.length} batches${plan.window !== undefined ? html` of ${plan.window}` : ''}, failure budget ${plan.failure_budget}` : ''}.</p>
${plan.stop_rule !== undefined ? html`<p class="stop-rule"><strong>Stop rule:</strong> ${plan.stop_rule}.</p>` : ''}
${rolling ? html`<ol class="batches">${plan.batches.map((b) => html`<li><h4>Batch ${b.index + 1} of ${plan.batches.length}: ${inline(hostsPhrase([...new Set(b.steps.flatMap((s) => s.hosts))]))}</h4>${list(b.steps)}</li>`)}</ol>` : list(plan.batches[0]?.steps ?? [])}`;
}

/** Votes so far, M of N, and the expiry while it waits. */
export function approvalCard(view: JobView): Html {
  const a = view.approval;
  if (a === undefined) return html`<p class="muted">No approval needed: ${view.risk} tools run when asked.</p>`;
  const votes = a.votes.length === 0
    ? html`<p class="muted">No votes yet.</p>`
    : html`<ul class="votes">${a.votes.map(
        (v) => html`<li><span class="state tone-${v.decision === 'approve' ? 'ok' : 'bad'}">${v.decision === 'approve' ? 'approved' : 'denied'}</span> by ${inline(v.display_name)} <span class="muted">via ${v.origin}, ${time(v.at)}</span>${v.reason !== undefined ? html` — “${inline(v.reason)}”` : ''}</li>`,
      )}</ul>`;
  const expiry = a.expires_at !== undefined && view.state === 'awaiting_approval'
    ? html`<p>Expires <span data-countdown="${a.expires_at}">${time(a.expires_at)}</span> if not decided.</p>`
    : '';
  return html`<p><strong>${a.approvals} of ${a.required}</strong> approval${a.required === 1 ? '' : 's'}.</p>${expiry}${votes}${previewBlock(view)}`;
}

/** What the job would change, from its preview run (Ansible's check mode with diffs), next to the votes. */
function previewBlock(view: JobView): Html {
  const p = view.preview;
  if (p === undefined) return html``;
  const head = html`<h3>Preview</h3><p>A run that changes nothing (${jobLink(p.job_id)}): ${stateBadge(p.state)}${p.reason !== undefined ? html` <span class="muted">${inline(p.reason)}</span>` : ''}</p>`;
  if (!p.finished) return html`${head}<p class="muted">What it would change shows here when it ends.</p>`;
  return html`${head}${p.folded.map(
    (g) => html`<details class="fold" open><summary>${hostBadge(g.status)} <code>${inline(g.nodeset)}</code> <span class="muted">(${plural(g.count, 'host')})</span></summary>
<pre class="output"><code>${g.text === '' ? html`<span class="muted">(no output)</span>` : block(g.text.replace(/\r?\n$/, ''))}</code></pre></details>`,
  )}`;
}

export function maintenanceNote(view: JobView): Html {
  if (view.maintenance === undefined) return html``;
  return html`<p class="notice">Maintenance window: ${inline(view.maintenance.detail)}${view.maintenance.opens_at !== undefined ? html` (opens ${time(view.maintenance.opens_at)})` : ''}.</p>`;
}

/** Batch k/n, step, hosts done, failed and stopped, a lock it waits for. */
export function progressNote(view: JobView): Html {
  const p = view.progress;
  if (p === undefined) return html``;
  const notOk = notOkWords(p).replace(/^, /, '');
  return html`<p class="progress" data-progress>${p.batch !== undefined ? html`Batch ${p.batch.index} of ${p.batch.total} · ` : ''}${p.step !== undefined ? html`step <code>${inline(p.step.id)}</code> · ` : ''}<strong>${p.hosts_done} of ${plural(p.hosts_total, 'host')}</strong> done${notOk !== '' ? html`, <span class="bad-count">${notOk}</span>` : ''}${p.lock_wait !== undefined ? html` · waiting for ${inline(p.lock_wait.host)} (locked by ${jobLink(p.lock_wait.holder)})` : ''}${p.rolling_back !== undefined ? html` · <strong class="bad-count" data-rolling-back>${inline(rollingBackText(p.rolling_back))}</strong>` : ''}</p>`;
}

/** Per-host status so far: the result once there is one, else what the events said. */
export function hostStatuses(view: JobView, events: readonly StampedEvent[]): Map<string, string> {
  const status = new Map<string, string>();
  for (const host of view.plan.hosts) status.set(host, view.finished ? 'not run' : 'pending');
  for (const { event } of events) {
    if (event.type === 'host_started') status.set(event.host, 'running');
    if (event.type === 'host_finished') status.set(event.host, event.status);
  }
  for (const h of view.result?.hosts ?? []) status.set(h.host, h.status);
  return status;
}

/** Which batch each host is in (a host in several batches takes its first). */
function batchOf(plan: PlanView): Map<string, number> {
  const out = new Map<string, number>();
  for (const batch of plan.batches) for (const step of batch.steps) for (const host of [...step.hosts, ...(step.subject !== undefined ? [step.subject] : [])]) if (!out.has(host)) out.set(host, batch.index);
  return out;
}

/** Hosts down, batches across; each cell says the host's status in words and colours it. */
export function nodeGrid(view: JobView, events: readonly StampedEvent[]): Html {
  if (view.plan.hosts.length === 0) return html`<p class="muted">No hosts: answered from the inventory.</p>`;
  const batches = Math.max(1, view.plan.batches.length);
  const where = batchOf(view.plan);
  const status = hostStatuses(view, events);
  const counts = new Map<string, number>();
  for (const s of status.values()) counts.set(s, (counts.get(s) ?? 0) + 1);
  const legend = html`<p class="legend" data-legend>${[...counts.entries()].map(([s, n]) => html`${hostBadge(s)} ${n} `)}</p>`;
  const heads = Array.from({ length: batches }, (_, i) => html`<th scope="col">Batch ${i + 1}</th>`);
  const rows = view.plan.hosts.map((host) => {
    const s = status.get(host) ?? 'pending';
    const cells = Array.from({ length: batches }, (_, i) =>
      (where.get(host) ?? 0) === i
        ? html`<td class="cell tone-${HOST_TONE[s] ?? 'off'}" data-host="${host}" data-status="${s}">${s.replaceAll('_', ' ')}</td>`
        : html`<td class="cell empty"><span class="sr-only">not in this batch</span></td>`,
    );
    return html`<tr><th scope="row">${inline(host)}</th>${cells}</tr>`;
  });
  return html`${legend}<div class="scroll"><table class="grid" data-grid><caption class="sr-only">Hosts by batch and status</caption><thead><tr><th scope="col">Host</th>${heads}</tr></thead><tbody>${rows}</tbody></table></div>`;
}

const CELL_TONE: Readonly<Record<string, string>> = { ok: 'ok', warn: 'wait', bad: 'bad' };

/**
 * The tool's own result view as a table: its summary line, then one row per group of hosts
 * that read alike (`node[01-05] (5)`), cells in the tool's words and units, toned cells
 * coloured (the words already say it), hosts that did not answer last with the reason.
 */
export function resultTable(result: ResultView): Html {
  const summary = result.summary !== '' ? html`<p class="result-summary" data-result-summary>${inline(result.summary)}</p>` : html``;
  if (result.output || result.rows.length === 0) return summary;
  // One row says all the summary would (as in the terminal): never the same fact twice.
  const span = Math.max(1, result.columns.length);
  const head = result.header
    ? html`<thead><tr><th scope="col">${inline(result.key)}</th>${result.columns.map((c) => html`<th scope="col"${c.align === 'right' ? html` class="num"` : ''}>${inline(c.label)}</th>`)}</tr></thead>`
    : '';
  const rows = result.rows.map((row) => {
    const key = html`<th scope="row"><code>${inline(row.key)}</code>${row.count > 1 ? html` <span class="muted">(${row.count})</span>` : ''}</th>`;
    if (row.problem !== undefined) return html`<tr class="problem">${key}<td colspan="${span}">${hostBadge(row.problem.status)} ${inline(row.problem.text)}</td></tr>`;
    const cells = row.cells.map((cell, i) => {
      const tone = CELL_TONE[row.tones?.[i] ?? ''];
      const classes = [result.columns[i]?.align === 'right' ? 'num' : '', tone !== undefined ? `tone-${tone}` : ''].filter((c) => c !== '').join(' ');
      return html`<td${classes !== '' ? html` class="${classes}"` : ''}>${cell === '' ? html`<span class="muted">—</span>` : inline(cell)}</td>`;
    });
    return html`<tr>${key}${cells}</tr>`;
  });
  return html`${result.rows.length > 1 ? summary : ''}<div class="scroll"><table class="result" data-result-table><caption class="sr-only">${inline(result.title)}</caption>${head}<tbody>${rows}</tbody></table></div>`;
}

/** Output folded like the CLI: one block per group of hosts that said the same thing. */
export function foldedOutput(view: JobView): Html {
  const groups = view.result?.folded ?? [];
  if (groups.length === 0) return html`<p class="muted">${view.finished ? 'No output.' : 'Output appears here as hosts finish.'}</p>`;
  return html`${groups.map(
    (g, i) => html`<details class="fold"${i < 3 ? html` open` : ''}><summary>${hostBadge(g.status)} <code>${inline(g.nodeset)}</code> <span class="muted">(${plural(g.count, 'host')})</span></summary>
<pre class="output"><code>${g.text === '' ? html`<span class="muted">(no output)</span>` : block(g.text.replace(/\r?\n$/, ''))}</code></pre>${g.text_truncated === true ? html`<p class="muted small">Cut here; the whole output is in <code>castellan job --log</code>.</p>` : ''}</details>`,
  )}`;
}

/**
 * What the hosts said, as the terminal says it: the tool's result view (a table, alike hosts
 * folded) with each host's raw output folded away beneath it; for tools without a view (or a
 * view that is the output itself, like logs), the output folded like the CLI.
 */
export function resultSection(view: JobView): Html {
  if (view.hidden?.output) return hiddenNote(view, 'output');
  const result = view.result;
  if (result === undefined) return foldedOutput(view);
  const table = result.view;
  const errors = errorsNotFolded(result);
  const cut = result.hosts.filter((h) => h.truncated).map((h) => h.host);
  const answer = table === undefined && result.hosts.length === 0 && result.data !== undefined
    ? html`<pre class="output"><code>${block(typeof result.data === 'string' ? result.data : JSON.stringify(result.data, null, 2))}</code></pre>`
    : '';
  const output = table === undefined || table.output
    ? html`${foldedOutput(view)}${errors.length > 0 ? html`<ul class="host-errors">${errors.map((h) => html`<li>${hostBadge(h.status)} <strong>${inline(h.host)}</strong>${h.exit_code !== null ? html` exit ${h.exit_code}` : ''}${h.error !== undefined ? html`: ${inline(h.error)}` : ''}</li>`)}</ul>` : ''}`
    : result.folded.length > 0
      ? html`<details class="raw"><summary>Raw output, folded (${plural(result.folded.length, 'group')})</summary>${foldedOutput(view)}</details>`
      : '';
  return html`${table !== undefined ? resultTable(table) : ''}${answer}${output}
${cut.length > 0 ? html`<p class="muted small">Output cut at the size limit on ${inline(hostsPhrase(cut))}.</p>` : ''}
${result.unknown_hosts !== undefined && result.unknown_hosts.length > 0 ? html`<p class="notice">Outcome unknown on ${inline(hostsPhrase(result.unknown_hosts))}: the worker stopped while they ran.</p>` : ''}`;
}

/** Output events as log lines, `host: line` (`host (stderr): line`), as the live log shows them. */
export function logLines(events: readonly StampedEvent[]): string {
  // Output comes in chunks that can end mid-line: a line is shown once it is whole (the rest
  // of each host's stream at the end), so hosts' lines never splice into each other.
  const lines: string[] = [];
  const partial = new Map<string, string>();
  for (const { event } of events) {
    if (event.type !== 'output') continue;
    const prefix = `${event.host}${event.stream === 'stderr' ? ' (stderr)' : ''}: `;
    const parts = ((partial.get(prefix) ?? '') + event.text).split('\n');
    partial.set(prefix, parts.pop() ?? '');
    for (const line of parts) lines.push(prefix + line);
  }
  for (const [prefix, rest] of partial) if (rest !== '') lines.push(prefix + rest);
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/** One timeline line for an event, in the terminal's words; undefined for events not worth one. */
export function timelineText(event: StampedEvent): string | undefined {
  return eventText(event, { color: false })?.replace(/^» /, '');
}

export function timeline(events: readonly StampedEvent[]): Html {
  const items = events.flatMap((e) => {
    const text = timelineText(e);
    return text === undefined ? [] : [html`<li>${clock(e.at)} ${inline(text)}</li>`];
  });
  return html`<ol class="timeline" data-timeline>${items.length > 0 ? items : html`<li class="muted">Nothing yet.</li>`}</ol>`;
}

/** Hosts per status once there is a result (`2 ok · 1 unreachable`), else how many are planned. */
export function hostTally(view: JobView): Html {
  const hosts = view.result?.hosts;
  if (hosts === undefined || hosts.length === 0) return html`<span class="muted">${view.plan.hosts.length > 0 ? `${view.plan.hosts.length} planned` : '—'}</span>`;
  const counts = new Map<string, number>();
  for (const h of hosts) counts.set(h.status, (counts.get(h.status) ?? 0) + 1);
  const order = [...counts.keys()].sort((a, b) => (a === 'ok' ? -1 : b === 'ok' ? 1 : 0));
  return html`${order.map((status, i) => html`${i > 0 ? ' · ' : ''}<span class="count tone-text-${HOST_TONE[status] ?? 'off'}">${counts.get(status) ?? 0} ${status.replaceAll('_', ' ')}</span>`)}`;
}

/** One row of the jobs table. */
export function jobRow(view: JobView, now = Date.now()): Html {
  return html`<tr id="row-${view.id}" data-job="${view.id}" data-updated="${view.updated_at}">
<td class="c-state">${stateBadge(view.state)}</td>
<td class="c-tool"><a href="${jobHref(view.id)}"><strong>${inline(view.tool)}</strong></a><br><code class="muted small">${view.id}</code></td>
<td class="c-targets">${view.plan.hosts.length > 0 ? inline(hostsPhrase(view.plan.hosts)) : html`<span class="muted">inventory</span>`}</td>
<td class="c-who">${inline(view.requester.display_name)}<br><span class="muted small">${view.requester.origin}</span></td>
<td class="c-when">${time(view.created_at, now)}</td>
<td class="c-took"${view.state === 'running' && view.started_at !== undefined ? html` data-running-since="${view.started_at}"` : ''}>${duration(ranMs(view, now))}</td>
<td class="c-hosts">${hostTally(view)}</td>
</tr>`;
}
