// Who sees what of a job, applied once where every front end reads jobs: JobService's read
// methods hand out records and events already cut to the viewer (auth/policy.ts jobAccess
// decides; this file only cuts). The dashboard, Slack, the API, MCP and the CLI therefore
// cannot show more than the rule allows, even if a renderer forgets to check.
import { jobAccess, type JobAccess } from '../auth/policy.js';
import type { AuthConfig } from '../auth/settings.js';
import type { Identity } from '../auth/types.js';
import type { StampedEvent } from './events.js';
import type { HiddenParts, JobRecord } from './records.js';

export function accessOf(viewer: Pick<Identity, 'subject' | 'roles'>, job: JobRecord, auth: AuthConfig): JobAccess {
  return jobAccess(viewer, { risk: job.risk, requester: job.requester, approvalsRequired: job.approvalsRequired, votes: job.votes }, auth);
}

/**
 * The record as `viewer` may see it. Hidden details: no input, no plan steps (the hosts stay),
 * no vote reasons. Hidden output: host stdout/stderr, folded text and the tool's data are
 * emptied (statuses, exit codes and timing stay, so the summary still reads true). Either
 * one empties a preview's output (its diffs show what would be written).
 */
export function recordFor(job: JobRecord, access: JobAccess): JobRecord {
  if (access.details && access.output) return job;
  const hidden: HiddenParts = { details: !access.details, output: !access.output, reason: access.hidden ?? 'not visible to you' };
  let cut: JobRecord = job;
  if (!access.details) {
    cut = {
      ...cut,
      input: {},
      plan: { ...cut.plan, batches: [] },
      binding: undefined,
      votes: cut.votes.map(({ reason: _reason, ...vote }) => vote),
    };
  }
  if (!access.output && cut.result !== undefined) {
    const result = cut.result;
    cut = {
      ...cut,
      result: {
        hosts: result.hosts.map((h) => ({ ...h, stdout: '', stderr: '' })),
        steps: result.steps.map((s) => ({ ...s, results: s.results.map((r) => ({ ...r, stdout: '', stderr: '' })), observations: undefined })),
        folded: result.folded.map((g) => ({ ...g, text: '' })),
        ...(result.unknownHosts !== undefined ? { unknownHosts: result.unknownHosts } : {}),
      },
    };
  }
  // A preview's output is what the job would change (file contents in diffs): output and detail both.
  if (cut.preview?.folded !== undefined) cut = { ...cut, preview: { ...cut.preview, folded: cut.preview.folded.map((g) => ({ ...g, text: '' })) } };
  return { ...cut, hidden };
}

/** Event kinds that carry what a node printed (or a gate observed): output, not a summary. */
const OUTPUT_EVENTS = new Set(['output', 'gate']);

/**
 * The events `access` lets a viewer read: output events go when output is hidden, and a step's
 * description (often the command itself, `echo …`) is withheld when details are.
 */
export function eventsFor(events: readonly StampedEvent[], access: JobAccess): StampedEvent[] {
  if (access.output && access.details) return [...events];
  const shown: StampedEvent[] = [];
  for (const e of events) {
    if (!access.output && OUTPUT_EVENTS.has(e.event.type)) continue;
    shown.push(!access.details && e.event.type === 'step' ? { ...e, event: { ...e.event, description: '(hidden)' } } : e);
  }
  return shown;
}
