// The words of a job view: its one-line summary and what happens next. Written once here so
// the terminal, MCP, Slack and the dashboard all say the same thing the same way: never the
// same fact twice, never "succeeded: no hosts", never "is succeeded".
import { foldNodeSet } from '../../config/nodeset.js';
import type { JobRecord } from '../../queues/records.js';
import type { JobState } from '../../queues/states.js';
import type { ApprovalPlaces, NextView, ProgressView } from './job-view.js';
import { notOkWords, rollingBackText } from './progress.js';

/** How a state reads after the job's name: "uptime on node[01-05] (5 hosts) succeeded". */
export const STATE_WORDS: Readonly<Record<JobState, string>> = {
  awaiting_approval: 'waits for approval',
  queued: 'is queued',
  waiting_window: 'waits for its maintenance window',
  running: 'is running',
  succeeded: 'succeeded',
  partially_failed: 'partly failed',
  failed: 'failed',
  cancelled: 'was cancelled',
  denied: 'was denied',
  expired: 'expired without a decision',
  interrupted: 'was interrupted',
};

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** `node[01-05] (5 hosts)`, or `node03` for one host. */
export function hostsPhrase(hosts: readonly string[]): string {
  if (hosts.length === 0) return '';
  if (hosts.length === 1) return hosts[0] ?? '';
  return `${foldNodeSet(hosts)} (${plural(hosts.length, 'host')})`;
}

/** `1.2 s`, `3 min 4 s`, `2 h 5 min`. */
export function durationWords(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  if (minutes < 60) return seconds === 0 ? `${minutes} min` : `${minutes} min ${seconds} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** `4 ok, 1 failed, 1 unreachable`: counts per host status, ok first. */
export function statusCounts(statuses: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const s of statuses) counts.set(s, (counts.get(s) ?? 0) + 1);
  const order = [...counts.keys()].sort((a, b) => (a === 'ok' ? -1 : b === 'ok' ? 1 : 0));
  return order.map((s) => `${counts.get(s)} ${s.replaceAll('_', ' ')}`).join(', ');
}

function approvals(job: JobRecord): number {
  return new Set(job.votes.filter((v) => v.decision === 'approve').map((v) => v.subject)).size;
}

export function summaryLine(job: JobRecord, progress: ProgressView | undefined, ranMs: number | undefined): string {
  const on = job.plan.hosts.length > 0 ? ` on ${hostsPhrase(job.plan.hosts)}` : '';
  const what = `${job.tool}${on}`;
  switch (job.state) {
    case 'awaiting_approval':
      return `${what} waits for approval (${approvals(job)} of ${job.approvalsRequired}); nothing has run yet`;
    case 'queued':
      return `${what} is queued`;
    case 'waiting_window':
      return `${what} waits for its maintenance window${job.maintenance?.opensAt ? ` (opens ${job.maintenance.opensAt.replace('T', ' ').slice(0, 16)} UTC)` : ''}; nothing has run yet`;
    case 'running': {
      const rollback = progress?.rolling_back ? rollingBackText(progress.rolling_back) : undefined;
      if (job.cancel !== undefined) {
        // Cancelling a running job signals its hosts; it ends once they stop, after the
        // rollbacks of subjects caught mid-change (which this says while they run).
        if (rollback) return `${what}: cancellation requested; ${rollback}`;
        const left = job.plan.hosts.length - (progress?.hosts_done ?? 0);
        return `${what}: cancellation requested; stopping on ${plural(Math.max(left, 0), 'host')}`;
      }
      if (rollback) return `${what} is running: ${rollback}`;
      if (!progress || progress.hosts_done === 0) return `${what} is running`;
      const failed = notOkWords(progress);
      return `${what} is running: ${progress.hosts_done} of ${plural(progress.hosts_total, 'host')} done${failed}`;
    }
    case 'succeeded':
    case 'partially_failed':
    case 'failed': {
      const took = ranMs !== undefined ? ` in ${durationWords(ranMs)}` : '';
      const hosts = job.result?.hosts ?? [];
      if (job.plan.hosts.length === 0 && job.state === 'succeeded') return `${job.tool} answered from the inventory`;
      const counts = hosts.length > 0 && job.state !== 'succeeded' ? `: ${statusCounts(hosts.map((h) => h.status))}` : '';
      const reason = hosts.length === 0 && job.reason ? `: ${job.reason}` : '';
      return `${what} ${STATE_WORDS[job.state]}${took}${counts}${reason}`;
    }
    default:
      // cancelled, denied, expired, interrupted: the reason says by whom and why.
      return `${what} ${STATE_WORDS[job.state]}${job.reason ? ` (${job.reason})` : ''}`;
  }
}

export function nextStep(job: JobRecord, places: ApprovalPlaces, progress?: ProgressView): NextView {
  switch (job.state) {
    case 'awaiting_approval': {
      const missing = job.approvalsRequired - approvals(job);
      const base = places.publicUrl?.replace(/\/$/, '');
      const via: NonNullable<NextView['approve_via']> = [
        { via: 'cli', how: `castellan approve ${job.id}` },
        ...(places.slackChannel !== undefined ? [{ via: 'slack' as const, how: `the approval request in ${places.slackChannel}` }] : []),
        ...(base !== undefined ? [{ via: 'dashboard' as const, how: `${base}/ui/jobs/${job.id}` }, { via: 'api' as const, how: `POST ${base}/api/v1/jobs/${job.id}/approve` }] : []),
      ];
      return {
        waiting_for: 'approval',
        text: `needs ${plural(missing, 'more approval')} from someone with the approver role ${places.selfApproval === true ? `(${job.requester.displayName} too: self-approval is allowed here)` : `other than ${job.requester.displayName}`}`,
        approve_via: via,
      };
    }
    case 'queued':
      return { waiting_for: 'worker', text: waitingForSite(job) ?? 'starts when a worker is free' };
    case 'waiting_window':
      return { waiting_for: 'window', text: job.maintenance?.detail ?? 'starts when its hosts\' maintenance window opens' };
    case 'running': {
      if (job.cancel !== undefined && progress?.rolling_back) {
        return { waiting_for: 'run', text: `ends as cancelled once the rollback of ${progress.rolling_back.subject} has run (each step within its own timeout); cancel again to stop the rollback too` };
      }
      if (job.cancel !== undefined) return { waiting_for: 'run', text: 'ends as cancelled once the commands on its hosts have stopped' };
      const site = waitingForSite(job);
      return { waiting_for: site ? 'worker' : 'run', text: `${site ? `part of it is ${site}; ` : ''}runs until it ends or its time limit of ${durationWords(job.timeoutMs)}; cancel with castellan cancel ${job.id}` };
    }
    default:
      return { text: 'nothing: the job has ended' };
  }
}

/** A job split by site whose shard has no live worker says so in its reason (queues/worker.ts). */
function waitingForSite(job: JobRecord): string | undefined {
  const at = job.reason?.indexOf('waiting for a worker of ') ?? -1;
  return at >= 0 ? job.reason!.slice(at) : undefined;
}
