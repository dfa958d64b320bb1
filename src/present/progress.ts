// Progress of a running job, read from its events: which batch and step, how many hosts of
// the step finished and how many of those failed, a host lock it waits for, and whether the
// step is an on-failure step putting a subject back (a rollback, also after a cancel or the
// deadline: the job still reads running then, and this says what it is doing).
import type { StampedEvent } from '../../queues/events.js';
import type { ProgressView } from './job-view.js';

export function progressFrom(events: readonly StampedEvent[], hostsTotal: number): ProgressView {
  let batch: ProgressView['batch'];
  let step: ProgressView['step'];
  let stepHosts = new Set<string>();
  let done = new Set<string>();
  let failed = new Set<string>();
  let stopped = new Set<string>();
  let timedOut = new Set<string>();
  let lockWait: ProgressView['lock_wait'];
  let rollingBack: ProgressView['rolling_back'];
  for (const { event } of events) {
    switch (event.type) {
      case 'batch':
        batch = { index: event.index + 1, total: event.total };
        rollingBack = undefined;
        break;
      case 'state':
        // A batch's end (or any state change) closes its rollbacks.
        rollingBack = undefined;
        break;
      case 'step':
        // The shards of a job split by site each announce their part of the same step: one
        // step, their hosts together.
        if (step?.id === event.step) {
          for (const h of event.hosts) stepHosts.add(h);
          break;
        }
        step = { id: event.step, description: event.description };
        rollingBack = event.rollbackFor !== undefined ? { subject: event.rollbackFor, step: event.step, text: rollbackText(event.rollbackFor, event.description) } : undefined;
        stepHosts = new Set(event.hosts);
        done = new Set();
        failed = new Set();
        stopped = new Set();
        timedOut = new Set();
        lockWait = undefined;
        break;
      case 'host_finished':
        done.add(event.host);
        // A host a cancel (or a halt) caught did not fail: it was stopped; one the job's
        // deadline stopped timed out. A host's own command timeout is a failure.
        if (event.stopped === true && event.status === 'timed_out') timedOut.add(event.host);
        else if (STOPPED.has(event.status)) stopped.add(event.host);
        else if (event.status !== 'ok') failed.add(event.host);
        break;
      case 'lock_wait':
        lockWait = { host: event.host, holder: event.holder };
        break;
      case 'host_started':
        lockWait = undefined;
        break;
      default:
        break;
    }
  }
  return {
    ...(batch && batch.total > 1 ? { batch } : {}),
    ...(step ? { step } : {}),
    hosts_total: step ? stepHosts.size : hostsTotal,
    hosts_done: done.size,
    hosts_failed: failed.size,
    ...(stopped.size > 0 ? { hosts_stopped: stopped.size } : {}),
    ...(timedOut.size > 0 ? { hosts_timed_out: timedOut.size } : {}),
    ...(lockWait ? { lock_wait: lockWait } : {}),
    ...(rollingBack ? { rolling_back: rollingBack } : {}),
  };
}

const STOPPED: ReadonlySet<string> = new Set(['cancelled', 'skipped']);

/**
 * ", 2 failed, 3 stopped, 1 timed out" after a progress count (empty when every host so far is
 * ok): one wording for every front end (the terminal, Slack, the dashboard, the summary).
 */
export function notOkWords(p: Pick<ProgressView, 'hosts_failed' | 'hosts_stopped' | 'hosts_timed_out'>): string {
  const count = (n: number | undefined, word: string): string[] => ((n ?? 0) > 0 ? [`${n} ${word}`] : []);
  const parts = [...count(p.hosts_failed, 'failed'), ...count(p.hosts_stopped, 'stopped'), ...count(p.hosts_timed_out, 'timed out')];
  return parts.length > 0 ? `, ${parts.join(', ')}` : '';
}

/** `boot pre-upgrade-… next: sudo kbe activate …` from `on failure of node10: roll back: boot …`. */
function rollbackText(subject: string, description: string): string {
  const own = description.startsWith(`on failure of ${subject}: `) ? description.slice(`on failure of ${subject}: `.length) : description;
  return own.replace(/^roll back: /, '');
}

/** The phase line every front end shows while a rollback runs: `rolling back node10: boot pre-upgrade-… next`. */
export function rollingBackText(p: NonNullable<ProgressView['rolling_back']>): string {
  return `rolling back ${p.subject}: ${p.text}`;
}
