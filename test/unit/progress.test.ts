// A running job's progress counts hosts a stop caught (cancelled, skipped) and hosts the job's
// deadline stopped (timed out) apart from failures, in the same words on every front end.
import { describe, expect, it } from 'vitest';
import type { StampedEvent } from '../../queues/events.js';
import { notOkWords, progressFrom } from '../../src/present/progress.js';

const at = (i: number, event: StampedEvent['event']): StampedEvent => ({ id: `${i}-0`, at: i, event });
const finished = (i: number, host: string, status: 'ok' | 'failed' | 'cancelled' | 'timed_out' | 'skipped'): StampedEvent =>
  at(i, { type: 'host_finished', step: 'run', host, status, exitCode: status === 'ok' ? 0 : null, durationMs: 10 });

describe('progress', () => {
  it('counts stopped hosts apart from failed ones', () => {
    const events = [
      at(1, { type: 'step', step: 'run', description: 'run', hosts: ['a', 'b', 'c', 'd', 'e'] }),
      finished(2, 'a', 'ok'),
      finished(3, 'b', 'failed'),
      finished(4, 'c', 'cancelled'),
      finished(5, 'd', 'skipped'),
      // A host's own command timeout is a failure, as in the batch line.
      finished(6, 'e', 'timed_out'),
    ];
    const p = progressFrom(events, 5);
    expect(p).toMatchObject({ hosts_total: 5, hosts_done: 5, hosts_failed: 2, hosts_stopped: 2 });
    expect(notOkWords(p)).toBe(', 2 failed, 2 stopped');
  });

  it('counts hosts the job deadline stopped as timed out, apart from failures and cancels', () => {
    const stoppedBy = (i: number, host: string, status: 'timed_out' | 'cancelled'): StampedEvent => at(i, { type: 'host_finished', step: 'run', host, status, exitCode: null, durationMs: 10, stopped: true });
    const events = [
      at(1, { type: 'step', step: 'run', description: 'run', hosts: ['a', 'b', 'c', 'd'] }),
      finished(2, 'a', 'failed'),
      // Its own command timeout: a failure.
      finished(3, 'b', 'timed_out'),
      stoppedBy(4, 'c', 'timed_out'),
      stoppedBy(5, 'd', 'timed_out'),
    ];
    const p = progressFrom(events, 4);
    expect(p).toMatchObject({ hosts_done: 4, hosts_failed: 2, hosts_timed_out: 2 });
    expect(p.hosts_stopped).toBeUndefined();
    expect(notOkWords(p)).toBe(', 2 failed, 2 timed out');
    expect(notOkWords({ hosts_failed: 0, hosts_stopped: 1, hosts_timed_out: 3 })).toBe(', 1 stopped, 3 timed out');
  });

  it('says nothing more while every host so far is ok, and no stopped field without stops', () => {
    const p = progressFrom([at(1, { type: 'step', step: 'run', description: 'run', hosts: ['a', 'b'] }), finished(2, 'a', 'ok')], 2);
    expect(p.hosts_stopped).toBeUndefined();
    expect(notOkWords(p)).toBe('');
    expect(notOkWords({ hosts_failed: 0, hosts_stopped: 3 })).toBe(', 3 stopped');
  });
});
