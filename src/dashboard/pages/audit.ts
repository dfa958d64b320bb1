// Audit: who asked for what, who decided, what ran where, filterable and exportable as JSONL.
import { ORIGINS } from '../../../auth/types.js';
import type { StoredAudit } from '../../../queues/audit.js';
import { argv, html, inline, time, type Html } from '../html.js';
import { page, UI, type Viewer } from '../layout.js';
import { jobLink } from '../render-job.js';

export interface AuditFilter {
  readonly subject?: string | undefined;
  readonly origin?: string | undefined;
  readonly host?: string | undefined;
  readonly tool?: string | undefined;
  readonly decision?: string | undefined;
  readonly kind?: string | undefined;
  readonly since?: number | undefined;
  readonly until?: number | undefined;
}

export function auditMatches(r: StoredAudit, f: AuditFilter): boolean {
  if (f.subject !== undefined && r.subject !== f.subject && r.displayName !== f.subject) return false;
  if (f.origin !== undefined && r.origin !== f.origin) return false;
  if (f.host !== undefined && r.host !== f.host && !(r.hosts ?? []).includes(f.host)) return false;
  if (f.tool !== undefined && r.tool !== f.tool) return false;
  if (f.decision !== undefined && r.decision !== f.decision) return false;
  if (f.kind !== undefined && r.kind !== f.kind) return false;
  const at = Date.parse(r.at);
  if (f.since !== undefined && at < f.since) return false;
  if (f.until !== undefined && at > f.until) return false;
  return true;
}

function dateValue(ms: number | undefined): string {
  return ms === undefined ? '' : new Date(ms).toISOString().slice(0, 16);
}

function what(r: StoredAudit): Html {
  if (r.kind === 'decision') return html`${r.decision === 'approve' ? 'approved' : 'denied'}${r.reason !== undefined ? html`: ${inline(r.reason)}` : ''}`;
  if (r.kind === 'execution') return html`<code>${argv(r.argv ?? [])}</code> on ${inline(r.host ?? '')} → ${r.status ?? ''}${typeof r.exitCode === 'number' ? ` (exit ${r.exitCode})` : ''}`;
  if (r.kind === 'request') return html`${(r.commands ?? []).slice(0, 3).map((c) => html`<code>${argv(c)}</code> `)}on ${inline((r.hosts ?? []).join(', '))}`;
  if (r.kind === 'outcome') return html`${r.state ?? ''}${r.reason !== undefined ? html`: ${inline(r.reason)}` : ''}`;
  return html`${r.reason !== undefined ? inline(r.reason) : ''}`;
}

export function auditPage(viewer: Viewer, records: readonly StoredAudit[], filter: AuditFilter, query: URLSearchParams, pendingApprovals: number): Html {
  const text = (name: keyof AuditFilter, label: string, hint: string): Html =>
    html`<label>${label}<input name="${name}" value="${typeof filter[name] === 'string' ? filter[name] : ''}" placeholder="${hint}"></label>`;
  const choice = (name: keyof AuditFilter, label: string, options: readonly string[]): Html =>
    html`<label>${label}<select name="${name}"><option value="">any</option>${options.map((o) => html`<option${filter[name] === o ? html` selected` : ''}>${o}</option>`)}</select></label>`;
  const body = html`<div class="title-row"><h1>Audit</h1><a class="button" href="${UI}/audit.jsonl?${query.toString()}" download>Export JSONL</a></div>
<form class="filters" method="get" action="${UI}/audit" aria-label="Filter audit records">
${text('subject', 'Subject', 'alice')}${choice('origin', 'Origin', [...ORIGINS, 'worker'])}${text('host', 'Host', 'node01')}${text('tool', 'Tool', 'exec')}
${choice('decision', 'Decision', ['approve', 'deny'])}${choice('kind', 'Kind', ['request', 'decision', 'execution', 'outcome', 'cancel', 'refused'])}
<label>From<input type="datetime-local" name="since" value="${dateValue(filter.since)}"></label><label>To<input type="datetime-local" name="until" value="${dateValue(filter.until)}"></label>
<div class="actions"><button type="submit">Filter</button> <a href="${UI}/audit">Clear</a></div></form>
<div class="scroll"><table class="audit"><thead><tr><th scope="col">When</th><th scope="col">Kind</th><th scope="col">Who</th><th scope="col">Tool · job</th><th scope="col">What</th></tr></thead>
<tbody>${records.length > 0 ? records.map(
  (r) => html`<tr><td>${time(r.at)}</td><td><span class="kind kind-${r.kind}">${r.kind}</span></td><td>${inline(r.displayName ?? r.subject)}<br><span class="muted small">${inline(r.subject)} · ${r.origin}</span></td>
<td>${inline(r.tool ?? '')}${r.jobId !== undefined ? html`<br>${jobLink(r.jobId)}` : ''}</td><td>${what(r)}</td></tr>`,
) : html`<tr class="empty"><td colspan="5">No audit records match.</td></tr>`}</tbody></table></div>
<p class="muted small">Showing the newest ${records.length} matching records.</p>`;
  return page({ title: 'Audit', section: '/audit', viewer, body, pendingApprovals });
}
