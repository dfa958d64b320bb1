// Audit: who asked for what, who decided, what ran where, filterable and exportable as JSONL.
import { ORIGINS } from '../../../auth/types.js';
import type { StoredAudit } from '../../../queues/audit.js';
import { argv, html, inline, time, type Html } from '../../present/render/markup.js';
import { page, UI, type Viewer } from '../layout.js';
import { filterForm, inRange, type Filter, type FilterField } from '../filters.js';
import { jobLink } from '../../present/render/html.js';

type AuditField = 'subject' | 'origin' | 'host' | 'tool' | 'decision' | 'kind';
export type AuditFilter = Filter<AuditField>;

export const AUDIT_FIELDS: readonly FilterField<AuditField>[] = [
  { name: 'subject', label: 'Subject', hint: 'alice' },
  { name: 'origin', label: 'Origin', options: [...ORIGINS, 'worker'] },
  { name: 'host', label: 'Host', hint: 'node01' },
  { name: 'tool', label: 'Tool', hint: 'exec' },
  { name: 'decision', label: 'Decision', options: ['approve', 'deny'] },
  { name: 'kind', label: 'Kind', options: ['request', 'decision', 'execution', 'outcome', 'cancel', 'refused'] },
];

export function auditMatches(r: StoredAudit, f: AuditFilter): boolean {
  if (f.subject !== undefined && r.subject !== f.subject && r.displayName !== f.subject) return false;
  if (f.origin !== undefined && r.origin !== f.origin) return false;
  if (f.host !== undefined && r.host !== f.host && !(r.hosts ?? []).includes(f.host)) return false;
  if (f.tool !== undefined && r.tool !== f.tool) return false;
  if (f.decision !== undefined && r.decision !== f.decision) return false;
  if (f.kind !== undefined && r.kind !== f.kind) return false;
  return inRange(f, Date.parse(r.at));
}

function what(r: StoredAudit): Html {
  if (r.kind === 'decision') return html`${r.decision === 'approve' ? 'approved' : 'denied'}${r.reason !== undefined ? html`: ${inline(r.reason)}` : ''}`;
  if (r.kind === 'execution') return html`<code>${argv(r.argv ?? [])}</code> on ${inline(r.host ?? '')} → ${r.status ?? ''}${typeof r.exitCode === 'number' ? ` (exit ${r.exitCode})` : ''}`;
  if (r.kind === 'request') return html`${(r.commands ?? []).slice(0, 3).map((c) => html`<code>${argv(c)}</code> `)}on ${inline((r.hosts ?? []).join(', '))}`;
  if (r.kind === 'outcome') return html`${r.state ?? ''}${r.reason !== undefined ? html`: ${inline(r.reason)}` : ''}`;
  return html`${r.reason !== undefined ? inline(r.reason) : ''}`;
}

export function auditPage(viewer: Viewer, records: readonly StoredAudit[], filter: AuditFilter, query: URLSearchParams, pendingApprovals: number): Html {
  const body = html`<div class="title-row"><h1>Audit</h1><a class="button" href="${UI}/audit.jsonl?${query.toString()}" download>Export JSONL</a></div>
${filterForm(`${UI}/audit`, 'audit records', AUDIT_FIELDS, filter)}
<div class="scroll"><table class="audit"><thead><tr><th scope="col">When</th><th scope="col">Kind</th><th scope="col">Who</th><th scope="col">Tool · job</th><th scope="col">What</th></tr></thead>
<tbody>${records.length > 0 ? records.map(
  (r) => html`<tr><td>${time(r.at)}</td><td><span class="kind kind-${r.kind}">${r.kind}</span></td><td>${inline(r.displayName ?? r.subject)}<br><span class="muted small">${inline(r.subject)} · ${r.origin}</span></td>
<td>${inline(r.tool ?? '')}${r.jobId !== undefined ? html`<br>${jobLink(r.jobId)}` : ''}</td><td>${what(r)}</td></tr>`,
) : html`<tr class="empty"><td colspan="5">No audit records match.</td></tr>`}</tbody></table></div>
<p class="muted small">Showing the newest ${records.length} matching records.</p>`;
  return page({ title: 'Audit', section: '/audit', viewer, body, pendingApprovals });
}
