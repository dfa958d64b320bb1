// The Jobs page: every job newest first with filters, id search and paging; rows update live
// over SSE (dashboard.js swaps in rows the server renders, so escaping stays server-side).
import { ORIGINS } from '../../../auth/types.js';
import type { JobRecord } from '../../../queues/records.js';
import { JOB_STATES } from '../../../queues/states.js';
import { jobView } from '../../present/job-view.js';
import { duration, html, inline, time, type Html } from '../html.js';
import { page, UI, type Viewer } from '../layout.js';
import type { JobFilter, JobPage } from '../listing.js';
import { hostCounts, jobDuration, stateBadge, STATE_LOOK } from '../render-job.js';

export function jobRow(record: JobRecord): Html {
  const job = jobView(record);
  const counts = hostCounts(job);
  const hosts = job.plan.hosts;
  const targets = hosts.length <= 3 ? hosts.join(', ') : `${hosts.slice(0, 3).join(', ')} +${hosts.length - 3}`;
  const outcome = job.result !== undefined
    ? html`<span class="ok-count">${counts.ok} ok</span>${counts.failed > 0 ? html` · <span class="bad-count">${counts.failed} failed</span>` : ''}`
    : html`<span class="muted">${counts.total} planned</span>`;
  return html`<tr id="row-${job.id}" data-job="${job.id}" data-updated="${job.updated_at}">
<td>${stateBadge(job.state)}</td>
<td><a href="${UI}/jobs/${job.id}"><strong>${inline(job.tool)}</strong></a><br><code class="muted small">${job.id}</code></td>
<td>${inline(targets)}</td>
<td>${inline(job.requester.display_name)}<br><span class="muted small">${job.requester.origin}</span></td>
<td>${time(job.created_at)}</td>
<td>${duration(jobDuration(job))}</td>
<td>${outcome}</td>
</tr>`;
}

export function jobTable(jobs: readonly JobRecord[], live: boolean): Html {
  return html`<div class="scroll"><table class="jobs"${live ? html` data-live-jobs` : ''}>
<caption class="sr-only">Jobs, newest first</caption>
<thead><tr><th scope="col">State</th><th scope="col">Tool</th><th scope="col">Targets</th><th scope="col">Requester</th><th scope="col">Started</th><th scope="col">Duration</th><th scope="col">Hosts</th></tr></thead>
<tbody>${jobs.length > 0 ? jobs.map(jobRow) : html`<tr class="empty"><td colspan="7">No jobs match.</td></tr>`}</tbody>
</table></div>`;
}

function select(name: string, label: string, options: readonly string[], current: string | undefined, words: (v: string) => string = (v) => v): Html {
  return html`<label>${label}<select name="${name}"><option value="">any</option>${options.map((o) => html`<option value="${o}"${o === current ? html` selected` : ''}>${words(o)}</option>`)}</select></label>`;
}

function dateValue(ms: number | undefined): string {
  return ms === undefined ? '' : new Date(ms).toISOString().slice(0, 16);
}

export interface JobsPageInput {
  readonly viewer: Viewer;
  readonly filter: JobFilter;
  readonly page: JobPage;
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
<form class="filters" method="get" action="${UI}/jobs" aria-label="Filter jobs">
${select('state', 'State', JOB_STATES, filter.state, (s) => STATE_LOOK[s as keyof typeof STATE_LOOK].label)}
${select('tool', 'Tool', input.tools, filter.tool)}
<label>Requester<input name="requester" value="${filter.requester ?? ''}" placeholder="subject or name"></label>
${select('origin', 'Origin', ORIGINS, filter.origin)}
<label>Host<input name="host" value="${filter.host ?? ''}" placeholder="node01"></label>
<label>From<input type="datetime-local" name="since" value="${dateValue(filter.since)}"></label>
<label>To<input type="datetime-local" name="until" value="${dateValue(filter.until)}"></label>
<div class="actions"><button type="submit">Filter</button> <a href="${UI}/jobs">Clear</a></div>
</form>
${result.truncated ? html`<p class="notice">Looked at ${result.next !== undefined ? result.next - result.offset : 0} jobs without filling the page; use “Older” to keep searching.</p>` : ''}
${jobTable(result.jobs, live)}
<nav class="pager" aria-label="Pages">${prev} ${next}</nav>
<p class="muted small" data-live-status aria-live="polite">${live ? 'Live: rows update as jobs change.' : ''}</p>`;
  return page({ title: 'Jobs', section: '/jobs', viewer: input.viewer, body, pendingApprovals: input.pendingApprovals });
}
