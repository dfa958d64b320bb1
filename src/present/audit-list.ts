// The audit trail's filters and words, declared once for every front end that reads it (API
// query string, CLI `castellan audit`, MCP audit_list, the dashboard's Audit page): each
// filter narrows the listing, all read from the audit indexes (queues/audit.ts) through
// JobService.audit, which lists only what the caller may read (auth/policy.ts auditScope).
import { z } from 'zod';
import type { AuditScope } from '../../auth/policy.js';
import { foldNodeSet } from '../../config/nodeset.js';
import { ORIGINS } from '../../config/vocabulary.js';
import { displayArgv, visibleInline } from '../../config/visible.js';
import { AUDIT_ID_PATTERN, AUDIT_KINDS, type AuditHostRun, type AuditKind, type AuditPage, type AuditQuery, type StoredAudit } from '../../queues/audit.js';
import { HOST_STATUSES } from '../../tools/host-result.js';
import { JOB_STATES } from '../../queues/states.js';

const time = z
  .string()
  .max(40)
  .refine((t) => !Number.isNaN(Date.parse(t)), { error: 'expected a time like 2026-11-29T08:00:00Z or 2026-11-29' });

/** What `outcome` can be: a job's final state or a host's status. */
export const AUDIT_OUTCOMES: readonly string[] = [...new Set([...JOB_STATES, ...HOST_STATUSES])];

export const auditFilterShape = {
  subject: z.string().max(200).optional().describe('Only entries of what this subject did (requests, votes, cancels; executions of their jobs).'),
  tool: z.string().max(64).optional().describe('Only entries about this tool.'),
  host: z.string().max(253).optional().describe('Only entries naming this inventory host (plans, executions).'),
  origin: z.enum([...ORIGINS, 'worker']).optional().describe('Only entries from this front end (worker: executions and outcomes).'),
  kind: z.enum(AUDIT_KINDS as [AuditKind, ...AuditKind[]]).optional().describe('Only this kind of entry.'),
  decision: z.enum(['approve', 'deny']).optional().describe('Only approvals or only denials.'),
  outcome: z
    .string()
    .max(40)
    .refine((o) => AUDIT_OUTCOMES.includes(o), { error: `expected a job state or host status: ${AUDIT_OUTCOMES.join(', ')}` })
    .optional()
    .describe('Only jobs that ended so, or host executions with this status (e.g. failed).'),
  job: z.string().max(40).optional().describe('Only entries of this job.'),
  since: time.optional().describe('Only entries at or after this time (ISO 8601, UTC unless a zone is given).'),
  until: time.optional().describe('Only entries at or before this time.'),
};

export const auditFilterSchema = z.object(auditFilterShape).strict();
export type AuditFilterInput = z.output<typeof auditFilterSchema>;

/** What a CLI asks for: the filter as typed (the server or local service parses it) and the page. */
export interface AuditListRequest {
  readonly limit?: number | undefined;
  readonly cursor?: string | undefined;
  readonly filter?: Readonly<Partial<Record<keyof typeof auditFilterShape, string>>> | undefined;
}

/** The cursor of the next page: the id of the last entry shown. */
export const auditCursor = z.string().max(40).regex(AUDIT_ID_PATTERN, 'expected the next_cursor of an earlier page (like 1764403200000-0)');

const instant = (t: string | undefined): number | undefined => (t === undefined ? undefined : Date.parse(/Z$|[+-]\d\d:?\d\d$/.test(t) || !t.includes('T') ? t : `${t}Z`));

/** The service's audit query for a parsed filter and page. */
export function auditQuery(filter: Partial<AuditFilterInput>, page: { limit?: number | undefined; cursor?: string | undefined } = {}): AuditQuery {
  return {
    subject: filter.subject,
    tool: filter.tool,
    host: filter.host,
    origin: filter.origin,
    kind: filter.kind,
    decision: filter.decision,
    outcome: filter.outcome,
    jobId: filter.job,
    since: instant(filter.since),
    until: instant(filter.until),
    limit: page.limit,
    after: page.cursor,
  };
}

/** What an entry says happened, in words (untrusted text with its control characters shown). */
export function auditWhat(r: StoredAudit): string {
  // "exit code 3" after "(exit 3)" says nothing more.
  const said = r.reason !== undefined && !(typeof r.exitCode === 'number' && r.reason === `exit code ${r.exitCode}`);
  const reason = said ? `: ${visibleInline(r.reason ?? '')}` : '';
  switch (r.kind) {
    case 'request': {
      const commands = (r.commands ?? []).slice(0, 3).map((c) => displayArgv(c));
      const more = (r.commands?.length ?? 0) > 3 ? ` (+${(r.commands?.length ?? 0) - 3} more)` : '';
      return `requested ${commands.join('; ') || r.tool || 'a job'}${more} on ${hostList(r.hosts)}${r.state === 'awaiting_approval' ? ', waiting for approval' : ''}`;
    }
    case 'decision':
      return `${r.decision === 'approve' ? 'approved' : 'denied'}${reason}`;
    case 'execution':
      if (r.results !== undefined && r.results.length !== 1) return `ran ${displayArgv(r.argv ?? [])} on ${ranOnMany(r.results)}`;
      return `ran ${displayArgv(r.argv ?? [])} on ${hostRun(r.results?.[0] ?? { host: r.host ?? '?', status: r.status ?? '?', exitCode: r.exitCode, reason: r.reason })}`;
    case 'outcome':
      return `ended ${(r.state ?? '?').replaceAll('_', ' ')}${reason}`;
    case 'cancel':
      return `cancelled${reason}`;
    case 'refused':
      return `refused${r.decision !== undefined ? ` (${r.decision})` : ''}${reason}`;
    case 'pruned':
      return `job record pruned${reason}`;
  }
}

/** `node07: failed (exit 3): no space left`: one host's part of an execution entry. */
function hostRun(run: AuditHostRun): string {
  return `${visibleInline(run.host)}: ${runOutcome(run)}`;
}

/** `failed (exit 3): no space left`: a plain non-zero exit said once. */
function runOutcome(run: Omit<AuditHostRun, 'host'>): string {
  const said = run.reason !== undefined && !(typeof run.exitCode === 'number' && run.reason === `exit code ${run.exitCode}`);
  return `${run.status}${typeof run.exitCode === 'number' ? ` (exit ${run.exitCode})` : ''}${said ? `: ${visibleInline(run.reason ?? '')}` : ''}`;
}

/**
 * An execution entry of many hosts in one line: the hosts folded, the count per status, and
 * the hosts that did not end ok, those that ended alike folded together (five outcomes at
 * most): `node[001-064] (64 hosts): 62 ok, 2 failed; node[007,019]: failed (exit 3)`.
 */
function ranOnMany(results: readonly AuditHostRun[]): string {
  if (results.length === 0) return 'no hosts';
  const counts = new Map<string, number>();
  const alike = new Map<string, string[]>();
  for (const run of results) {
    counts.set(run.status, (counts.get(run.status) ?? 0) + 1);
    if (run.status === 'ok') continue;
    const outcome = runOutcome(run);
    const hosts = alike.get(outcome);
    if (hosts) hosts.push(run.host);
    else alike.set(outcome, [run.host]);
  }
  const tally = [...counts].map(([status, n]) => `${n} ${status}`).join(', ');
  const named = [...alike].slice(0, 5).map(([outcome, hosts]) => `${visibleInline(foldNodeSet(hosts))}: ${outcome}`).join('; ');
  const more = alike.size > 5 ? `; +${alike.size - 5} other outcomes` : '';
  return `${hostSet(results.map((run) => run.host))}: ${tally}${named !== '' ? `; ${named}${more}` : ''}`;
}

/** `node[01-06] (6 hosts)`; one host by its name. */
function hostSet(hosts: readonly string[]): string {
  return hosts.length === 1 ? visibleInline(hosts[0] ?? '') : `${visibleInline(foldNodeSet(hosts))} (${hosts.length} hosts)`;
}

function hostList(hosts: readonly string[] | undefined): string {
  if (hosts === undefined || hosts.length === 0) return 'no hosts';
  return hostSet(hosts);
}

/** One line of the trail for a terminal or an AI client: time, kind, who (origin), tool · job, what. */
export function auditLine(r: StoredAudit): string {
  const who = `${visibleInline(r.subject)} (${r.origin})`;
  const about = [r.tool, r.jobId].filter((x): x is string => x !== undefined).map(visibleInline).join(' ');
  return `${r.at.replace('T', ' ').slice(0, 19)}  ${r.kind.padEnd(9)} ${who.padEnd(20)} ${about.padEnd(26)} ${auditWhat(r)}`;
}

/** The API's answer for a page of the trail (and what the remote CLI reads back). */
export interface AuditListAnswer {
  readonly entries: StoredAudit[];
  readonly total: number;
  readonly next_cursor?: string | undefined;
}

export function auditAnswer(page: AuditPage): AuditListAnswer {
  return { entries: page.entries, total: page.total, ...(page.next !== undefined ? { next_cursor: page.next } : {}) };
}

/** What part of the trail a caller reads, in words (shown above listings). */
export function auditScopeWords(scope: AuditScope): string {
  if (scope.all) return 'You read the whole audit trail (admin).';
  return `You read what you did and what was done on jobs you requested${scope.gated ? ', and every entry of jobs that asked for approval (approver)' : ''}; admins read the whole trail.`;
}
