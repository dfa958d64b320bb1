// The Jobs page: every job newest first with filters, id search and paging; rows update live
// over SSE (dashboard.js swaps in rows the server renders, so escaping stays server-side).
import type { JobView } from '../../present/job-view.js';
import { html, inline, type Html } from '../../present/render/markup.js';
import { jobRow } from '../../present/render/html.js';
import { page, UI, type Viewer } from '../layout.js';
import type { JobPage } from '../../../queues/service.js';
import { jobFields, type JobFilter } from '../listing.js';
import { filterForm, isFiltered } from '../filters.js';

/** The jobs table; with `feedAfter`, dashboard.js keeps it live from that feed position. */
export function jobTable(jobs: readonly JobView[], feedAfter?: string): Html {
  return html`<div class="scroll"><table class="jobs"${feedAfter !== undefined ? html` data-live-jobs data-feed-after="${feedAfter}"` : ''}>
<caption class="sr-only">Jobs, newest first</caption>
<thead><tr><th scope="col">State</th><th scope="col">Tool</th><th scope="col">Targets</th><th scope="col">Requester</th><th scope="col">Requested</th><th scope="col">Duration</th><th scope="col">Hosts</th></tr></thead>
<tbody>${jobs.length > 0 ? jobs.map((job) => jobRow(job)) : html`<tr class="empty"><td colspan="7">No jobs match.</td></tr>`}</tbody>
</table></div>`;
}

export interface JobsPageInput {
  readonly viewer: Viewer;
  readonly filter: JobFilter;
  readonly page: JobPage;
  /** The page's jobs as job views (the page's records, in order). */
  readonly jobs: readonly JobView[];
  /** Position in the all-jobs feed when the page was read: live updates resume from there. */
  readonly feedAfter: string;
  readonly tools: readonly string[];
  readonly query: URLSearchParams;
  readonly pendingApprovals: number;
  readonly notice?: string | undefined;
}

export function jobsPage(input: JobsPageInput): Html {
  const { filter, page: result } = input;
  const pageLink = (offset: number): string => {
    const q = new URLSearchParams(input.query);
    q.set('offset', String(offset));
    return `${UI}/jobs?${q.toString()}`;
  };
  const prev = result.offset > 0 ? html`<a class="button" href="${pageLink(Math.max(0, result.offset - 50))}" rel="prev">← Newer</a>` : '';
  const next = result.next !== undefined ? html`<a class="button" href="${pageLink(result.next)}" rel="next">Older →</a>` : '';
  const live = result.offset === 0;
  const body = html`<div class="title-row"><h1>Jobs</h1>
<form class="search" role="search" method="get" action="${UI}/jobs"><label for="job-id" class="sr-only">Job id</label><input id="job-id" name="id" placeholder="Go to job id (j…)" autocomplete="off"><button type="submit">Open</button></form></div>
${input.notice !== undefined ? html`<p class="notice" role="status">${inline(input.notice)}</p>` : ''}
${filterForm(`${UI}/jobs`, 'jobs', jobFields(input.tools), filter)}
<p class="muted small" data-total>${result.total === 0 ? 'No jobs match.' : html`${result.offset + 1}–${result.offset + input.jobs.length} of ${result.total.toLocaleString('en')} job${result.total === 1 ? '' : 's'}${isFiltered(filter) ? ' matching' : ''}, newest first.`}</p>
${jobTable(input.jobs, live ? input.feedAfter : undefined)}
<nav class="pager" aria-label="Pages">${prev} ${next}</nav>
<p class="muted small" data-live-status aria-live="polite">${live ? 'Live: rows update as jobs change.' : ''}</p>`;
  return page({ title: 'Jobs', section: '/jobs', viewer: input.viewer, body, pendingApprovals: input.pendingApprovals });
}
