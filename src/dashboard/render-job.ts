// HTML rendering of one job for the dashboard: summary and what happens next, plan card,
// approval card, node × batch grid, folded output with the tool's table view, timeline.
// It reads the API's JSON job view (src/present/job-view.ts), the one picture of a job that the
// API and MCP already share, so the dashboard never re-derives a job from the raw record.
import { createHash } from 'node:crypto';
import type { EventView, JobView, PlanView } from '../present/job-view.js';
import { argv, block, duration, html, inline, time, type Html } from './html.js';
import { UI } from './layout.js';

/** Words and tone for each state: text always says it, colour only repeats it. */
export const STATE_LOOK: Readonly<Record<JobView['state'], { readonly label: string; readonly tone: string }>> = {
  awaiting_approval: { label: 'awaiting approval', tone: 'wait' },
  queued: { label: 'queued', tone: 'wait' },
  waiting_window: { label: 'waiting for its maintenance window', tone: 'wait' },
  running: { label: 'running', tone: 'run' },
  succeeded: { label: 'succeeded', tone: 'ok' },
  failed: { label: 'failed', tone: 'bad' },
  partially_failed: { label: 'partially failed', tone: 'bad' },
  cancelled: { label: 'cancelled', tone: 'off' },
  denied: { label: 'denied', tone: 'off' },
  expired: { label: 'expired', tone: 'off' },
  interrupted: { label: 'interrupted', tone: 'bad' },
};

export function stateBadge(state: JobView['state']): Html {
  const look = STATE_LOOK[state];
  return html`<span class="state tone-${look.tone}" data-state="${state}">${look.label}</span>`;
}

const HOST_TONE: Readonly<Record<string, string>> = { ok: 'ok', failed: 'bad', timed_out: 'bad', unreachable: 'bad', cancelled: 'off', skipped: 'off' };

export function hostBadge(status: string): Html {
  return html`<span class="state tone-${HOST_TONE[status] ?? 'off'}">${status.replaceAll('_', ' ')}</span>`;
}

/** Whole-job duration: start to finish, or start to now while running. */
export function jobDuration(job: Pick<JobView, 'started_at' | 'finished_at'>, now = Date.now()): number | undefined {
  if (job.started_at === undefined) return undefined;
  const end = job.finished_at !== undefined ? Date.parse(job.finished_at) : now;
  return end - Date.parse(job.started_at);
}

export function hostCounts(job: JobView): { ok: number; failed: number; total: number } {
  const hosts = job.result?.hosts ?? [];
  const ok = hosts.filter((h) => h.status === 'ok').length;
  return { ok, failed: hosts.length - ok, total: job.plan.hosts.length };
}

/** One sentence on what happens next, in the operator's words. */
export function nextStep(job: JobView): string {
  switch (job.state) {
    case 'awaiting_approval': {
      const a = job.approval;
      const left = a ? a.required - a.approvals : 1;
      return `Waits for ${left} more approval${left === 1 ? '' : 's'} from someone with the approver role (not the requester), in the Approvals inbox, Slack or the CLI.`;
    }
    case 'queued':
      return 'Queued: a worker picks it up next.';
    case 'waiting_window':
      return `Approved, and waits for its maintenance window${job.reason !== undefined ? ` (${job.reason})` : ''}; it starts by itself when the window opens.`;
    case 'running':
      return 'Running now; this page updates as hosts finish.';
    case 'succeeded':
      return 'Finished: every host succeeded.';
    case 'partially_failed':
      return 'Finished: some hosts failed; their output is below.';
    case 'failed':
      return 'Finished with a failure; see the reason and output below.';
    default:
      return `Ended (${STATE_LOOK[job.state].label}); nothing more will run.`;
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function planCard(plan: PlanView): Html {
  if (plan.batches.length === 0) return html`<p class="muted">This tool answers from Castellan's own data; it runs nothing on hosts.</p>`;
  const batches = plan.batches.map(
    (batch) => html`<li><h4>Batch ${batch.index + 1} of ${plan.batches.length}</h4>
<ol class="steps">${batch.steps.map(
      (step) => html`<li>
<p>${inline(step.description)} <span class="muted">on ${step.hosts.length} host${step.hosts.length === 1 ? '' : 's'}: ${inline(step.hosts.join(', '))} · timeout ${duration(step.timeout_ms)}</span></p>
<pre class="command"><code>${argv(step.command)}</code></pre>
${step.stdin !== undefined
  ? html`<details open><summary>Script fed on stdin · ${Buffer.byteLength(step.stdin)} bytes · sha256 <code>${sha256(step.stdin).slice(0, 16)}</code></summary><pre class="script"><code>${block(step.stdin)}</code></pre></details>`
  : ''}
</li>`,
    )}</ol></li>`,
  );
  return html`<p>${plan.hosts.length} host${plan.hosts.length === 1 ? '' : 's'} in ${plan.batches.length} batch${plan.batches.length === 1 ? '' : 'es'}; stops after ${plan.failure_budget} failure${plan.failure_budget === 1 ? '' : 's'}${plan.window !== undefined ? html`, ${plan.window} at a time` : ''}.</p>
<ol class="batches">${batches}</ol>`;
}

export function approvalCard(job: JobView): Html {
  const a = job.approval;
  if (a === undefined) return html`<p class="muted">No approval needed for this request.</p>`;
  const votes = a.votes.length === 0
    ? html`<p class="muted">No votes yet.</p>`
    : html`<ul class="votes">${a.votes.map(
        (v) => html`<li><span class="state tone-${v.decision === 'approve' ? 'ok' : 'bad'}">${v.decision === 'approve' ? 'approved' : 'denied'}</span> by ${inline(v.display_name)} <span class="muted">(${v.origin}) ${time(v.at)}</span>${v.reason !== undefined ? html` — “${inline(v.reason)}”` : ''}</li>`,
      )}</ul>`;
  const expiry = a.expires_at !== undefined && job.state === 'awaiting_approval'
    ? html`<p>Expires <span data-countdown="${a.expires_at}">${time(a.expires_at)}</span>.</p>`
    : '';
  return html`<p><strong>${a.approvals} of ${a.required}</strong> approval${a.required === 1 ? '' : 's'}.</p>${expiry}${votes}`;
}

/** Which batch each host is in (a host in several batches takes its first). */
function batchOf(plan: PlanView): Map<string, number> {
  const out = new Map<string, number>();
  for (const batch of plan.batches) for (const step of batch.steps) for (const host of step.hosts) if (!out.has(host)) out.set(host, batch.index);
  return out;
}

/** Per-host status so far: the result when finished, else what the events said. */
export function hostStatuses(job: JobView, events: readonly EventView[]): Map<string, string> {
  const status = new Map<string, string>();
  for (const host of job.plan.hosts) status.set(host, job.finished ? 'not run' : 'pending');
  for (const e of events) {
    const ev = e.event as { type?: string; host?: string; status?: string };
    if (ev.type === 'host_started' && typeof ev.host === 'string') status.set(ev.host, 'running');
    if (ev.type === 'host_finished' && typeof ev.host === 'string' && typeof ev.status === 'string') status.set(ev.host, ev.status);
  }
  for (const h of job.result?.hosts ?? []) status.set(h.host, h.status);
  return status;
}

const CELL_TONE: Readonly<Record<string, string>> = { ...HOST_TONE, pending: 'wait', running: 'run', 'not run': 'off' };

/** Nodes down, batches across; each cell coloured and labelled with the host's status. */
export function nodeGrid(job: JobView, events: readonly EventView[]): Html {
  if (job.plan.hosts.length === 0) return html`<p class="muted">No hosts.</p>`;
  const batches = job.plan.batches.length;
  const where = batchOf(job.plan);
  const status = hostStatuses(job, events);
  const heads = Array.from({ length: batches }, (_, i) => html`<th scope="col">Batch ${i + 1}</th>`);
  const rows = job.plan.hosts.map((host) => {
    const s = status.get(host) ?? 'pending';
    const cells = Array.from({ length: batches }, (_, i) =>
      where.get(host) === i
        ? html`<td class="cell tone-${CELL_TONE[s] ?? 'off'}" data-host="${host}" data-status="${s}">${s.replaceAll('_', ' ')}</td>`
        : html`<td class="cell empty" aria-label="not in this batch"></td>`,
    );
    return html`<tr><th scope="row">${inline(host)}</th>${cells}</tr>`;
  });
  return html`<div class="scroll"><table class="grid" data-grid><thead><tr><th scope="col">Host</th>${heads}</tr></thead><tbody>${rows}</tbody></table></div>`;
}

/** The tool's structured result as a table when it is a list of flat records. */
export function dataTable(data: unknown): Html {
  const rows = Array.isArray(data) ? data : data !== null && typeof data === 'object' ? firstArray(data as Record<string, unknown>) : undefined;
  if (rows === undefined || rows.length === 0 || !rows.every((r) => r !== null && typeof r === 'object' && !Array.isArray(r))) return html``;
  const records = rows as Array<Record<string, unknown>>;
  const columns = [...new Set(records.flatMap((r) => Object.keys(r)))].slice(0, 12);
  const cell = (value: unknown): Html => (value === undefined || value === null ? html`<span class="muted">—</span>` : inline(cellText(value)));
  return html`<div class="scroll"><table class="data"><thead><tr>${columns.map((c) => html`<th scope="col">${inline(c.replaceAll('_', ' '))}</th>`)}</tr></thead>
<tbody>${records.slice(0, 500).map((r) => html`<tr>${columns.map((c) => html`<td>${cell(r[c])}</td>`)}</tr>`)}</tbody></table></div>`;
}

/** A nested value in one cell: `one 0.42 · five 0.38`, lists comma-separated. */
function cellText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(2);
  if (Array.isArray(value)) return value.map(cellText).join(', ');
  if (value !== null && typeof value === 'object') {
    return Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${k.replaceAll('_', ' ')} ${cellText(v)}`)
      .join(' · ');
  }
  return String(value);
}

function firstArray(record: Record<string, unknown>): unknown[] | undefined {
  for (const value of Object.values(record)) if (Array.isArray(value)) return value as unknown[];
  return undefined;
}

/** Output folded like the CLI: one block per group of hosts that said the same thing. */
export function foldedOutput(job: JobView): Html {
  const groups = job.result?.folded ?? [];
  if (groups.length === 0) return html`<p class="muted">${job.finished ? 'No output.' : 'Output appears here as hosts finish.'}</p>`;
  return html`${groups.map(
    (g, i) => html`<details class="fold"${i < 3 ? html` open` : ''}><summary>${hostBadge(g.status)} <code>${inline(g.nodeset)}</code> <span class="muted">(${g.count} host${g.count === 1 ? '' : 's'})</span></summary>
<pre class="output"><code>${g.text === '' ? html`<span class="muted">(no output)</span>` : block(g.text)}</code></pre></details>`,
  )}`;
}

const EVENT_WORDS: Readonly<Record<string, (e: Record<string, unknown>) => string>> = {
  state: (e) => `state → ${String(e['state']).replaceAll('_', ' ')}${typeof e['reason'] === 'string' ? `: ${e['reason']}` : ''}`,
  batch: (e) => `batch ${Number(e['index']) + 1} of ${String(e['total'])} starts`,
  step: (e) => `step ${String(e['description'] ?? e['step'])}`,
  host_finished: (e) => `${String(e['host'])} finished: ${String(e['status'])}${typeof e['exitCode'] === 'number' ? ` (exit ${e['exitCode']})` : ''}`,
  lock_wait: (e) => `${String(e['host'])} waits for job ${String(e['holder'])}`,
  vote: (e) => `${String(e['subject'])} voted ${String(e['decision'])} (${String(e['count'])} of ${String(e['required'])})`,
};

/** Events worth a line in the timeline (not every output chunk or host start). */
export function timelineText(e: EventView): string | undefined {
  const type = String(e.event['type']);
  return EVENT_WORDS[type]?.(e.event);
}

export function timeline(events: readonly EventView[]): Html {
  const items = events.flatMap((e) => {
    const text = timelineText(e);
    return text === undefined ? [] : [html`<li>${time(e.at)} ${inline(text)}</li>`];
  });
  return html`<ol class="timeline" data-timeline>${items.length > 0 ? items : html`<li class="muted">Nothing yet.</li>`}</ol>`;
}

export function jobLink(id: string): Html {
  return html`<a href="${UI}/jobs/${id}"><code>${id}</code></a>`;
}
