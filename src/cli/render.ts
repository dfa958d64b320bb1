// Terminal rendering: live progress on stderr, results on stdout, exit codes that reflect
// the outcome. Kept apart from argument parsing so the remote mode (HTTP API) renders the
// same records the same way.
import type { StampedEvent } from '../../queues/events.js';
import type { JobRecord } from '../../queues/records.js';
import type { JobState } from '../../queues/states.js';
import { renderFolded } from '../../queues/fold.js';
import { actionArgv } from '../../queues/plan-commands.js';
import type { PlanStep } from '../../tools/types.js';
import { displayArgv, visibleBlock, visibleInline } from '../../config/visible.js';
import { createHash } from 'node:crypto';

// Everything below that came from a request or a node (host names, reasons, argv, output)
// passes through config/visible.ts: a terminal would act on ESC, CR or backspace, and an
// approver could read one command while another runs.
const v = visibleInline;
const hostList = (hosts: readonly string[]): string => hosts.map(v).join(', ');

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
      return paint(c, '36', `» ${e.state}${e.reason ? `: ${v(e.reason)}` : ''}`);
    case 'batch':
      return e.total > 1 ? paint(c, '36', `» batch ${e.index + 1}/${e.total}: ${e.hosts.length} host(s)`) : undefined;
    case 'step':
      return paint(c, '2', `» ${v(e.step)}: ${v(e.description)} on ${e.hosts.length} host(s)`);
    case 'host_finished': {
      const ok = e.status === 'ok';
      const detail = ok ? '' : ` ${e.exitCode !== null ? `exit ${e.exitCode}` : ''}${e.error ? ` ${v(e.error)}` : ''}`;
      return `${paint(c, ok ? '32' : '31', `${v(e.host)}: ${e.status}`)}${detail} (${e.durationMs} ms)`;
    }
    case 'lock_wait':
      return paint(c, '33', `» waiting for ${v(e.host)}: locked by job ${v(e.holder)}`);
    case 'vote':
      return paint(c, '36', `» ${e.decision} by ${v(e.subject)} (${e.count}/${e.required})`);
    default:
      return undefined;
  }
}

/** Folded results for stdout: `node[01-03] (3): text`, like clubak -b. */
export function renderResult(job: JobRecord): string {
  const lines: string[] = [];
  const result = job.result;
  if (result?.data !== undefined && result.hosts.length === 0) {
    lines.push(visibleBlock(typeof result.data === 'string' ? result.data : JSON.stringify(result.data, null, 2)));
    return lines.join('\n') + '\n';
  }
  if (result?.folded.length) {
    lines.push(renderFolded(result.folded.map((g) => ({ ...g, nodeset: v(g.nodeset), text: visibleBlock(g.text) }))));
  }
  const truncated = (result?.hosts ?? []).filter((h) => h.truncated).map((h) => h.host);
  if (truncated.length) lines.push(`(output truncated on: ${hostList(truncated)})`);
  return lines.length ? lines.join('\n') + '\n' : '';
}

export function renderSummary(job: JobRecord): string {
  const who = `${v(job.requester.displayName)} via ${job.requester.origin}`;
  return `job ${job.id} ${job.tool} ${job.state}${job.reason ? `: ${v(job.reason)}` : ''} (${who})`;
}

/**
 * One step as an approver must read it: the exact argv (bash-style quoting, invisible
 * characters as `$'\e…'` escapes) and, when it feeds stdin, the whole script with its size and
 * sha256 so what is approved can be compared with what the audit log later records.
 */
function renderStep(step: PlanStep, indent: string, prefix = ''): string[] {
  const command = displayArgv(actionArgv(step.action));
  const about = step.subject !== undefined ? ` (about ${v(step.subject)})` : '';
  const lines = [`${indent}${prefix}${v(step.id)}: ${command}${about} on ${hostList(step.hosts)}`];
  if (step.action.kind !== 'exec') lines.push(`${indent}  # ${v(step.description)}`);
  if (step.action.kind === 'exec' && step.action.stdin !== undefined) {
    const stdin = step.action.stdin;
    const digest = createHash('sha256').update(stdin).digest('hex');
    lines.push(`${indent}  stdin: ${Buffer.byteLength(stdin)} bytes, ${stdin.split('\n').length} line(s), sha256 ${digest}`);
    for (const line of visibleBlock(stdin).split('\n')) lines.push(`${indent}  | ${line}`);
  }
  return lines;
}

export function renderPlan(job: JobRecord): string {
  const lines = [`plan for ${job.tool} on ${job.plan.hosts.length} host(s): ${hostList(job.plan.hosts)}`];
  for (const [i, batch] of job.plan.batches.entries()) {
    if (job.plan.batches.length > 1) lines.push(`  batch ${i + 1}:`);
    for (const step of batch.steps) {
      lines.push(...renderStep(step, '    '));
      for (const rollback of step.onFailure ?? []) lines.push(...renderStep(rollback, '      ', 'on failure: '));
    }
  }
  if (job.plan.batches.length > 1) lines.push(`  failure budget: ${job.plan.failureBudget} host(s)`);
  if (job.maintenance) lines.push(`  maintenance window: ${job.maintenance.detail}`);
  return lines.join('\n');
}

export function renderJobLine(job: JobRecord): string {
  const hosts = job.plan.hosts.length;
  return `${job.id}  ${job.state.padEnd(17)} ${job.tool.padEnd(16)} ${String(hosts).padStart(4)} host(s)  ${v(job.requester.displayName)} (${job.requester.origin})  ${job.createdAt}`;
}

export function renderVotes(job: JobRecord): string {
  return job.votes.map((vote) => `  ${vote.decision} by ${v(vote.displayName)} via ${vote.origin} at ${vote.at}${vote.reason ? `: ${v(vote.reason)}` : ''}`).join('\n');
}
