// Terminal rendering: live progress on stderr, results on stdout, exit codes that reflect
// the outcome. Kept apart from argument parsing so the remote mode (HTTP API) renders the
// same records the same way.
import type { StampedEvent } from '../../queues/events.js';
import type { JobRecord } from '../../queues/records.js';
import type { JobState } from '../../queues/states.js';
import { renderFolded } from '../../queues/fold.js';

/** Exit codes: 0 all ok; 1 some host not ok; 2 the job did not run to the end; 3 still pending. */
export function exitCodeFor(state: JobState): number {
  switch (state) {
    case 'succeeded':
      return 0;
    case 'failed':
    case 'partially_failed':
      return 1;
    case 'cancelled':
    case 'denied':
    case 'expired':
    case 'interrupted':
      return 2;
    case 'awaiting_approval':
    case 'queued':
    case 'waiting_window':
    case 'running':
      return 3;
  }
}

const useColor = (stream: NodeJS.WriteStream): boolean => Boolean(stream.isTTY) && process.env.NO_COLOR === undefined;
const paint = (on: boolean, code: string, text: string): string => (on ? `\u001b[${code}m${text}\u001b[0m` : text);

export function progressLine(event: StampedEvent, stream: NodeJS.WriteStream = process.stderr): string | undefined {
  const c = useColor(stream);
  const e = event.event;
  switch (e.type) {
    case 'state':
      return paint(c, '36', `» ${e.state}${e.reason ? `: ${e.reason}` : ''}`);
    case 'batch':
      return e.total > 1 ? paint(c, '36', `» batch ${e.index + 1}/${e.total}: ${e.hosts.length} host(s)`) : undefined;
    case 'step':
      return paint(c, '2', `» ${e.step}: ${e.description} on ${e.hosts.length} host(s)`);
    case 'host_finished': {
      const ok = e.status === 'ok';
      const detail = ok ? '' : ` ${e.exitCode !== null ? `exit ${e.exitCode}` : ''}${e.error ? ` ${e.error}` : ''}`;
      return `${paint(c, ok ? '32' : '31', `${e.host}: ${e.status}`)}${detail} (${e.durationMs} ms)`;
    }
    case 'lock_wait':
      return paint(c, '33', `» waiting for ${e.host}: locked by job ${e.holder}`);
    case 'vote':
      return paint(c, '36', `» ${e.decision} by ${e.subject} (${e.count}/${e.required})`);
    default:
      return undefined;
  }
}

/** Folded results for stdout: `node[01-03] (3): text`, like clubak -b. */
export function renderResult(job: JobRecord): string {
  const lines: string[] = [];
  const result = job.result;
  if (result?.data !== undefined && result.hosts.length === 0) {
    lines.push(typeof result.data === 'string' ? result.data : JSON.stringify(result.data, null, 2));
    return lines.join('\n') + '\n';
  }
  if (result?.folded.length) lines.push(renderFolded(result.folded));
  const truncated = (result?.hosts ?? []).filter((h) => h.truncated).map((h) => h.host);
  if (truncated.length) lines.push(`(output truncated on: ${truncated.join(', ')})`);
  return lines.length ? lines.join('\n') + '\n' : '';
}

export function renderSummary(job: JobRecord): string {
  const who = `${job.requester.displayName} via ${job.requester.origin}`;
  return `job ${job.id} ${job.tool} ${job.state}${job.reason ? `: ${job.reason}` : ''} (${who})`;
}

export function renderPlan(job: JobRecord): string {
  const lines = [`plan for ${job.tool} on ${job.plan.hosts.length} host(s): ${job.plan.hosts.join(', ')}`];
  for (const [i, batch] of job.plan.batches.entries()) {
    if (job.plan.batches.length > 1) lines.push(`  batch ${i + 1}:`);
    for (const step of batch.steps) {
      lines.push(`    ${step.id}: ${step.description}${step.subject !== undefined ? ` (about ${step.subject})` : ''} on ${step.hosts.join(', ')}`);
      for (const rollback of step.onFailure ?? []) lines.push(`      on failure: ${rollback.id}: ${rollback.description} on ${rollback.hosts.join(', ')}`);
    }
  }
  if (job.plan.batches.length > 1) lines.push(`  failure budget: ${job.plan.failureBudget} host(s)`);
  if (job.maintenance) lines.push(`  maintenance window: ${job.maintenance.detail}`);
  return lines.join('\n');
}

export function renderJobLine(job: JobRecord): string {
  const hosts = job.plan.hosts.length;
  return `${job.id}  ${job.state.padEnd(17)} ${job.tool.padEnd(16)} ${String(hosts).padStart(4)} host(s)  ${job.requester.displayName} (${job.requester.origin})  ${job.createdAt}`;
}
