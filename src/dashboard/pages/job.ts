// One job: summary and what happens next, actions (approve/deny/cancel, the CLI command that
// reproduces it), progress, the node × batch grid, the result (the tool's table, output folded
// like the CLI), a live log while it runs, the plan card, the approval card and the timeline.
// Every part of the job itself is the shared job view rendered by src/present/render/html.ts;
// this page adds only what is the dashboard's: forms, links and what this viewer may see.
import type { StampedEvent } from '../../../queues/events.js';
import type { JobView } from '../../present/job-view.js';
import { displayArgv } from '../../../config/visible.js';
import { block, html, inline, type Html } from '../../present/render/markup.js';
import { approvalCard, factsList, logLines, maintenanceNote, nodeGrid, planSection, progressNote, resultSection, stateBadge, summaryBlock, timeline } from '../../present/render/html.js';
import { csrfField, page, UI, type Viewer } from '../layout.js';

export interface JobPageInput {
  readonly viewer: Viewer;
  readonly job: JobView;
  readonly events: readonly StampedEvent[];
  /** CLI words that reproduce the request. */
  readonly cli: readonly string[];
  /** Whether the viewer may vote (and, when not, why). */
  readonly vote: { readonly ok: true } | { readonly ok: false; readonly reason: string };
  readonly mayCancel: boolean;
  readonly pendingApprovals: number;
  readonly notice?: string | undefined;
  readonly error?: string | undefined;
}

export function decisionForms(viewer: Viewer, job: JobView, vote: JobPageInput['vote']): Html {
  if (job.state !== 'awaiting_approval') return html``;
  if (!vote.ok) return html`<p class="muted">You cannot decide this request: ${inline(vote.reason)}.</p>`;
  return html`<div class="decide">
<a class="button primary" href="${UI}/jobs/${job.id}/approve">Approve…</a>
<form method="post" action="${UI}/jobs/${job.id}/deny" class="deny">${csrfField(viewer)}
<label for="deny-${job.id}">Reason for denying</label>
<input id="deny-${job.id}" name="reason" required maxlength="1000" placeholder="why not">
<button type="submit" class="danger">Deny</button></form>
</div>`;
}

export function jobPage(input: JobPageInput): Html {
  const { job, viewer } = input;
  // The service cut the record to what this viewer may see; the view says what it left out.
  const details = job.hidden?.details !== true;
  const output = job.hidden?.output !== true;
  const lastEvent = input.events.at(-1)?.id ?? '0';
  const cli = `castellan ${displayArgv(input.cli)}`;
  const body = html`<nav class="crumbs" aria-label="Breadcrumb"><a href="${UI}/jobs">Jobs</a> / <code>${job.id}</code></nav>
<div class="title-row"><h1>${inline(job.tool)} ${stateBadge(job.state)} <span class="risk risk-${job.risk}">${job.risk}</span></h1></div>
${input.notice !== undefined ? html`<p class="notice" role="status">${inline(input.notice)}</p>` : ''}
${input.error !== undefined ? html`<p class="error" role="alert">${inline(input.error)}</p>` : ''}
<section class="card summary" data-job-page="${job.id}" data-after="${lastEvent}" data-final="${job.finished ? 'yes' : 'no'}">
<div data-summary-block>${summaryBlock(job)}${progressNote(job)}${maintenanceNote(job)}</div>
${factsList(job)}
${details ? html`<div class="cli"><label for="cli-${job.id}">Run it again from a terminal</label>
<div class="copy-row"><input id="cli-${job.id}" readonly value="${cli}"><button type="button" data-copy="cli-${job.id}">Copy</button></div>
<p class="small muted">Follow it from a terminal: <code>castellan job ${job.id}</code>${job.finished ? html` · whole output: <code>castellan job ${job.id} --log</code>` : ''}</p></div>` : ''}
${decisionForms(viewer, job, input.vote)}
${input.mayCancel && !job.finished
  ? html`<form method="post" action="${UI}/jobs/${job.id}/cancel" class="cancel">${csrfField(viewer)}<label for="cancel-${job.id}" class="sr-only">Reason for cancelling (optional)</label><input id="cancel-${job.id}" name="reason" maxlength="1000" placeholder="reason (optional)"> <button type="submit" class="danger" data-confirm="Cancel ${job.tool} on ${job.plan.hosts.length} host(s)? Hosts already running are stopped.">Cancel job</button></form>`
  : ''}
</section>
<div class="columns">
<section class="card"><h2>Hosts</h2>${nodeGrid(job, input.events)}</section>
<section class="card"><h2>Timeline</h2>${timeline(input.events)}</section>
</div>
<section class="card"><h2>Result</h2>${resultSection(job)}
${!job.finished && output ? html`<details class="live-log" open><summary>Live log</summary><pre class="output" data-live-log aria-live="off"><code>${block(logLines(input.events))}</code></pre></details>` : ''}
</section>
<section class="card"><h2>Plan</h2>${planSection(job)}</section>
<section class="card"><h2>Approval</h2>${approvalCard(job)}</section>`;
  return page({ title: `${job.tool} ${job.id}`, section: '/jobs', viewer, body, pendingApprovals: input.pendingApprovals });
}
