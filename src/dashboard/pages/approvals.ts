// The approvals inbox: requests waiting for a decision (with the full plan, votes so far,
// M of N and an expiry countdown), the ones this person may decide first; then recently
// decided requests. The confirmation page shows exactly what will run before the vote.
import type { JobView } from '../../present/job-view.js';
import { html, inline, time, type Html } from '../../present/render/markup.js';
import { csrfField, page, UI, type Viewer } from '../layout.js';
import { approvalCard, jobLink, planCard, planSection, stateBadge } from '../../present/render/html.js';
import { hostsPhrase } from '../../present/summary.js';
import { decisionForms } from './job.js';

export interface InboxItem {
  readonly job: JobView;
  readonly vote: { readonly ok: true } | { readonly ok: false; readonly reason: string };
}

function item(viewer: Viewer, entry: InboxItem): Html {
  const { job } = entry;
  return html`<article class="card approval" id="approval-${job.id}" data-approval="${job.id}">
<header><h2>${inline(job.tool)} on ${inline(hostsPhrase(job.plan.hosts) || 'no hosts')} <span class="risk risk-${job.risk}">${job.risk}</span></h2>
<p class="muted">${jobLink(job.id)} · asked by ${inline(job.requester.display_name)} (${job.requester.origin}) ${time(job.created_at)}</p></header>
${approvalCard(job)}
${job.hidden?.details ? planSection(job) : html`<details${entry.vote.ok ? html` open` : ''}><summary>Full plan: what will run</summary>${planCard(job.plan)}</details>`}
${decisionForms(viewer, job, entry.vote)}
</article>`;
}

export function approvalsPage(viewer: Viewer, waiting: readonly InboxItem[], decided: readonly JobView[], notice?: string): Html {
  const mine = waiting.filter((w) => w.vote.ok);
  const others = waiting.filter((w) => !w.vote.ok);
  const body = html`<div class="title-row"><h1>Approvals</h1></div>
${notice !== undefined ? html`<p class="notice" role="status">${inline(notice)}</p>` : ''}
<h2 class="section">Waiting for you <span class="muted">(${mine.length})</span></h2>
${mine.length > 0 ? mine.map((w) => item(viewer, w)) : html`<p class="muted">Nothing waits for your decision.</p>`}
${others.length > 0 ? html`<h2 class="section">Waiting for someone else <span class="muted">(${others.length})</span></h2>${others.map((w) => item(viewer, w))}` : ''}
<h2 class="section">Recently decided</h2>
${decided.length > 0
  ? html`<div class="scroll"><table class="jobs"><thead><tr><th scope="col">State</th><th scope="col">Job</th><th scope="col">Decided by</th><th scope="col">When</th></tr></thead><tbody>${decided.map(
      (job) => html`<tr><td>${stateBadge(job.state)}</td><td>${inline(job.tool)} ${jobLink(job.id)}</td><td>${inline((job.approval?.votes ?? []).map((v) => `${v.display_name} (${v.decision})`).join(', ') || '—')}</td><td>${time(job.approval?.votes.at(-1)?.at ?? job.updated_at)}</td></tr>`,
    )}</tbody></table></div>`
  : html`<p class="muted">No decisions yet.</p>`}`;
  return page({ title: 'Approvals', section: '/approvals', viewer, body, pendingApprovals: mine.length });
}

/** Approving is deliberate: this page shows the whole plan and asks once more. */
export function confirmApprovalPage(viewer: Viewer, job: JobView, pendingApprovals: number): Html {
  const body = html`<nav class="crumbs" aria-label="Breadcrumb"><a href="${UI}/approvals">Approvals</a> / ${jobLink(job.id)}</nav>
<h1>Approve ${inline(job.tool)}?</h1>
<section class="card"><p>Requested by <strong>${inline(job.requester.display_name)}</strong> (${job.requester.origin}) ${time(job.created_at)}. Risk: <span class="risk risk-${job.risk}">${job.risk}</span>.</p>
${approvalCard(job)}</section>
<section class="card"><h2>This will run</h2>${planCard(job.plan)}</section>
<form method="post" action="${UI}/jobs/${job.id}/approve" class="card confirm">${csrfField(viewer)}
<label for="approve-reason">Note (optional)</label><input id="approve-reason" name="reason" maxlength="1000">
<p><button type="submit" class="primary" data-confirm="Approve ${job.tool} on ${job.plan.hosts.length} host(s)?">Yes, approve</button> <a href="${UI}/jobs/${job.id}">Back</a></p>
</form>`;
  return page({ title: `Approve ${job.tool}`, section: '/approvals', viewer, body, pendingApprovals });
}
