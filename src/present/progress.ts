// Progress of a running job, read from its events: which batch and step, how many hosts of
// the step finished and how many of those failed, and a host lock it waits for.
import type { StampedEvent } from '../../queues/events.js';
import type { ProgressView } from './job-view.js';

export function progressFrom(events: readonly StampedEvent[], hostsTotal: number): ProgressView {
  let batch: ProgressView['batch'];
  let step: ProgressView['step'];
  let stepHosts = new Set<string>();
  let done = new Set<string>();
  let failed = new Set<string>();
  let lockWait: ProgressView['lock_wait'];
  for (const { event } of events) {
    switch (event.type) {
      case 'batch':
        batch = { index: event.index + 1, total: event.total };
        break;
      case 'step':
        // The shards of a job split by site each announce their part of the same step: one
        // step, their hosts together.
        if (step?.id === event.step) {
          for (const h of event.hosts) stepHosts.add(h);
          break;
        }
        step = { id: event.step, description: event.description };
        stepHosts = new Set(event.hosts);
        done = new Set();
        failed = new Set();
        lockWait = undefined;
        break;
      case 'host_finished':
        done.add(event.host);
        if (event.status !== 'ok') failed.add(event.host);
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
    ...(lockWait ? { lock_wait: lockWait } : {}),
  };
}
