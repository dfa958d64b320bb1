// Audit: who asked for what, who decided, what ran where, filterable, paged by cursor and
// exportable as JSONL. Entries come from the audit indexes through JobService.audit, which
// lists only what the signed-in person may read (auth/policy.ts auditScope).
import { ORIGINS } from '../../../auth/types.js';
import { AUDIT_KINDS, type AuditPage, type AuditQuery } from '../../../queues/audit.js';
import type { AuditScope } from '../../../auth/policy.js';
import { html, inline, time, type Html } from '../../present/render/markup.js';
import { AUDIT_OUTCOMES, auditScopeWords, auditWhat } from '../../present/audit-list.js';
import { page, UI, type Viewer } from '../layout.js';
import { filterForm, isFiltered, type Filter, type FilterField } from '../filters.js';
import { jobLink } from '../../present/render/html.js';

type AuditField = 'subject' | 'origin' | 'host' | 'tool' | 'kind' | 'decision' | 'outcome';
export type AuditFilter = Filter<AuditField>;

export function auditFields(tools: readonly string[]): FilterField<AuditField>[] {
  return [
    { name: 'subject', label: 'Subject', hint: 'alice' },
    { name: 'origin', label: 'Origin', options: [...ORIGINS, 'worker'] },
    { name: 'host', label: 'Host', hint: 'node01' },
    { name: 'tool', label: 'Tool', options: tools },
    { name: 'kind', label: 'Kind', options: AUDIT_KINDS },
    { name: 'decision', label: 'Decision', options: ['approve', 'deny'] },
    { name: 'outcome', label: 'Outcome', options: AUDIT_OUTCOMES },
  ];
}

/** The service's query for the page's filter (choices were checked when the filter was read). */
export function auditQueryOf(filter: AuditFilter, page: { limit: number; after?: string | undefined }): AuditQuery {
  return {
    subject: filter.subject,
    origin: filter.origin,
    host: filter.host,
    tool: filter.tool,
    kind: filter.kind as AuditQuery['kind'],
    decision: filter.decision as AuditQuery['decision'],
    outcome: filter.outcome,
    since: filter.since,
    until: filter.until,
    limit: page.limit,
    after: page.after,
  };
}

export interface AuditPageInput {
  readonly viewer: Viewer;
  readonly result: AuditPage;
  readonly filter: AuditFilter;
  readonly tools: readonly string[];
  /** The filter's query string (without the cursor): links keep it. */
  readonly query: URLSearchParams;
  /** The cursor this page started after (absent on the first page). */
  readonly after?: string | undefined;
  readonly scope: AuditScope;
  readonly pendingApprovals: number;
}

export function auditPage(input: AuditPageInput): Html {
  const { result, filter, query } = input;
  const link = (after?: string): string => {
    const q = new URLSearchParams(query);
    if (after !== undefined) q.set('after', after);
    const qs = q.toString();
    return `${UI}/audit${qs ? `?${qs}` : ''}`;
  };
  const newest = input.after !== undefined ? html`<a class="button" href="${link()}">← Newest</a>` : '';
  const older = result.next !== undefined ? html`<a class="button" href="${link(result.next)}" rel="next">Older →</a>` : '';
  const count = result.total === 0 ? 'No audit entries match.' : `${result.entries.length} shown of ${result.total.toLocaleString('en')} entr${result.total === 1 ? 'y' : 'ies'}${isFiltered(filter) ? ' matching' : ''}, newest first.`;
  const body = html`<div class="title-row"><h1>Audit</h1><a class="button" href="${UI}/audit.jsonl${query.toString() !== '' ? `?${query.toString()}` : ''}" download>Export JSONL</a></div>
<p class="muted small">${auditScopeWords(input.scope)}</p>
${filterForm(`${UI}/audit`, 'audit entries', auditFields(input.tools), filter)}
<p class="muted small" data-total>${count}</p>
<div class="scroll"><table class="audit"><thead><tr><th scope="col">When</th><th scope="col">Kind</th><th scope="col">Who</th><th scope="col">Tool · job</th><th scope="col">What</th></tr></thead>
<tbody>${result.entries.length > 0 ? result.entries.map(
  (r) => html`<tr><td>${time(r.at)}</td><td><span class="kind kind-${r.kind}">${r.kind}</span></td><td>${inline(r.displayName ?? r.subject)}<br><span class="muted small">${inline(r.subject)} · ${r.origin}</span></td>
<td>${inline(r.tool ?? '')}${r.jobId !== undefined ? html`<br>${jobLink(r.jobId)}` : ''}</td><td>${auditWhat(r)}</td></tr>`,
) : html`<tr class="empty"><td colspan="5">No audit entries match.</td></tr>`}</tbody></table></div>
<nav class="pager" aria-label="Pages">${newest} ${older}</nav>`;
  return page({ title: 'Audit', section: '/audit', viewer: input.viewer, body, pendingApprovals: input.pendingApprovals });
}
