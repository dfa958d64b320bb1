// One job: summary and what happens next, actions (approve/deny/cancel, CLI command), the
// node × batch grid, folded output with the tool's table view, a live log while it runs, the
// plan card, the approval card and the timeline.
import type { JobAccess } from '../../../auth/policy.js';
import type { EventView, JobView } from '../../present/job-view.js';
import { displayArgv } from '../../../config/visible.js';
import { duration, html, inline, time, type Html } from '../html.js';
import { csrfField, page, UI, type Viewer } from '../layout.js';
import { approvalCard, dataTable, foldedOutput, jobDuration, nextStep, nodeGrid, planCard, stateBadge, timeline } from '../render-job.js';

export interface JobPageInput {
  readonly viewer: Viewer;
  readonly job: JobView;
  readonly events: readonly EventView[];
  /** CLI words that reproduce the request. */
  readonly cli: readonly string[];
  /** Whether the viewer may vote (and, when not, why). */
  readonly vote: { readonly ok: true } | { readonly ok: false; readonly reason: string };
  readonly mayCancel: boolean;
  /** What of this job the viewer may see (auth/policy.ts jobAccess). */
  readonly access: JobAccess;
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
  const { job, viewer, access } = input;
  const hidden = html`<p class="muted">Hidden: ${inline(access.hidden ?? 'not yours to see')}.</p>`;
  const lastEvent = input.events.at(-1)?.id ?? '0';
  const data = job.result?.data;
  const body = html`<nav class="crumbs" aria-label="Breadcrumb"><a href="${UI}/jobs">Jobs</a> / <code>${job.id}</code></nav>
<div class="title-row"><h1>${inline(job.tool)} ${stateBadge(job.state)}</h1></div>
${input.notice !== undefined ? html`<p class="notice" role="status">${inline(input.notice)}</p>` : ''}
${input.error !== undefined ? html`<p class="error" role="alert">${inline(input.error)}</p>` : ''}
<section class="card summary" data-job-page="${job.id}" data-after="${lastEvent}" data-final="${job.finished ? 'yes' : 'no'}">
<p class="next" data-next>${nextStep(job)}</p>
${job.reason !== undefined ? html`<p><strong>Reason:</strong> ${inline(job.reason)}</p>` : ''}
<dl class="facts">
<div><dt>Requested by</dt><dd>${inline(job.requester.display_name)} <span class="muted">(${inline(job.requester.subject)}, ${job.requester.origin})</span></dd></div>
<div><dt>Risk</dt><dd><span class="risk risk-${job.risk}">${job.risk}</span></dd></div>
<div><dt>Created</dt><dd>${time(job.created_at)}</dd></div>
<div><dt>Started</dt><dd>${time(job.started_at)}</dd></div>
<div><dt>Finished</dt><dd>${time(job.finished_at)}</dd></div>
<div><dt>Duration</dt><dd>${duration(jobDuration(job))}</dd></div>
</dl>
${access.details ? html`<div class="cli"><label for="cli-${job.id}">Run it again from a terminal</label>
<div class="copy-row"><input id="cli-${job.id}" readonly value="castellan ${displayArgv(input.cli)}"><button type="button" data-copy="cli-${job.id}">Copy</button></div></div>` : ''}
${decisionForms(viewer, job, input.vote)}
${input.mayCancel && !job.finished
  ? html`<form method="post" action="${UI}/jobs/${job.id}/cancel" class="cancel">${csrfField(viewer)}<button type="submit" class="danger">Cancel job</button></form>`
  : ''}
</section>
<section class="card"><h2>Hosts</h2>${nodeGrid(job, input.events)}</section>
<section class="card"><h2>Output</h2>${access.output ? html`${dataTable(data)}${foldedOutput(job)}` : hidden}
${!job.finished && access.output ? html`<details class="live-log" open><summary>Live log</summary><pre class="output" data-live-log aria-live="off"><code></code></pre></details>` : ''}
</section>
<section class="card"><h2>Plan</h2>${access.details ? planCard(job.plan) : html`<p>Runs on ${job.plan.hosts.length} host${job.plan.hosts.length === 1 ? '' : 's'}: ${inline(job.plan.hosts.join(', '))}.</p>${hidden}`}</section>
<section class="card"><h2>Approval</h2>${approvalCard(job)}</section>
<section class="card"><h2>Timeline</h2>${timeline(input.events)}</section>`;
  return page({ title: `${job.tool} ${job.id}`, section: '/jobs', viewer, body, pendingApprovals: input.pendingApprovals });
}
