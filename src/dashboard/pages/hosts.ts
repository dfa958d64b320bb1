// Hosts: the inventory with groups, labels, pinned host-key fingerprints and each host's last
// known reachability and jobs (from the newest job results).
import { html, inline, time, type Html } from '../../present/render/markup.js';
import { page, UI, type Viewer } from '../layout.js';
import { hostBadge, jobHref, stateBadge } from '../../present/render/html.js';
import type { JobState } from '../../../queues/states.js';

export interface HostRow {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly user: string;
  readonly groups: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly fingerprints: readonly { readonly type: string; readonly fingerprint: string }[];
  readonly last?: { readonly status: string; readonly at: string; readonly jobId: string; readonly tool: string } | undefined;
  readonly recentJobs: readonly { readonly id: string; readonly tool: string; readonly state: JobState; readonly at: string }[];
}

/** Whether the host answered the last time a job reached for it: a failed command still answered. */
function reach(status: string): Html {
  if (status === 'ok' || status === 'failed') return html`<span class="state tone-ok">reachable</span>`;
  if (status === 'unreachable' || status === 'timed_out') return hostBadge(status);
  return html`<span class="state tone-off">not tried</span>`;
}

export function hostsPage(viewer: Viewer, rows: readonly HostRow[], groups: ReadonlyMap<string, readonly string[]>, pendingApprovals: number): Html {
  const groupList = [...groups.entries()].filter(([name]) => name !== 'all' && name !== 'ungrouped');
  const body = html`<div class="title-row"><h1>Hosts <span class="muted">(${rows.length})</span></h1></div>
<section class="card"><h2>Groups</h2>
${groupList.length > 0 ? html`<ul class="chips">${groupList.map(([name, hosts]) => html`<li><span class="chip" title="${hosts.join(', ')}">${inline(name)} <span class="muted">${hosts.length}</span></span></li>`)}</ul>` : html`<p class="muted">No groups.</p>`}
</section>
<div class="scroll"><table class="hosts">
<thead><tr><th scope="col">Host</th><th scope="col">Address</th><th scope="col">Groups and labels</th><th scope="col">Pinned host keys</th><th scope="col">Last contact</th><th scope="col">Recent jobs</th></tr></thead>
<tbody>${rows.map(
  (h) => html`<tr id="host-${h.name}"><th scope="row">${inline(h.name)}</th>
<td><code>${inline(h.user)}@${inline(h.address)}:${h.port}</code></td>
<td>${h.groups.filter((g) => g !== 'all').map((g) => html`<span class="chip">${inline(g)}</span> `)}${Object.entries(h.labels).map(([k, v]) => html`<span class="chip label">${inline(k)}=${inline(v)}</span> `)}</td>
<td>${h.fingerprints.length > 0 ? h.fingerprints.map((f) => html`<div><span class="muted small">${f.type}</span> <code class="small">${f.fingerprint}</code></div>`) : html`<span class="state tone-bad">not pinned</span>`}</td>
<td>${h.last !== undefined ? html`${reach(h.last.status)} ${time(h.last.at)}<br><span class="muted small">${inline(h.last.tool)}: ${h.last.status.replaceAll('_', ' ')}</span>` : html`<span class="muted">no jobs yet</span>`}</td>
<td>${h.recentJobs.length > 0 ? html`<ul class="recent">${h.recentJobs.map((j) => html`<li>${stateBadge(j.state)} <a href="${jobHref(j.id)}">${inline(j.tool)}</a> <span class="muted small">${time(j.at)}</span></li>`)}</ul>` : html`<span class="muted">—</span>`}<a class="small" href="${UI}/jobs?host=${encodeURIComponent(h.name)}">all jobs on ${inline(h.name)}</a></td>
</tr>`,
)}</tbody></table></div>`;
  return page({ title: 'Hosts', section: '/hosts', viewer, body, pendingApprovals });
}
