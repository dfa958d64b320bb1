// The line a batch's end announces (queues/runner.ts batchLine): a stop is not a failure.
import { describe, expect, it } from 'vitest';
import { batchLine } from '../../queues/runner.js';

describe('batchLine', () => {
  it('a batch that ran to its end counts ok and failed', () => {
    expect(batchLine(0, 2, { ok: 3, failed: 1, stopped: 0 }, undefined)).toBe('batch 1/2 done: 3 ok, 1 failed');
    // Stopped after every subject had ended: the batch is done all the same.
    expect(batchLine(1, 2, { ok: 4, failed: 0, stopped: 0 }, 'cancelled')).toBe('batch 2/2 done: 4 ok, 0 failed');
  });

  it('a batch the stop caught says stopped, with the stop status, and failures apart', () => {
    expect(batchLine(0, 1, { ok: 0, failed: 0, stopped: 3 }, 'cancelled')).toBe('batch 1/1 stopped: 0 ok, 3 cancelled');
    expect(batchLine(2, 5, { ok: 4, failed: 1, stopped: 2 }, 'timed_out')).toBe('batch 3/5 stopped: 4 ok, 2 timed out, 1 failed');
    expect(batchLine(0, 2, { ok: 1, failed: 0, stopped: 1 }, 'skipped')).toBe('batch 1/2 stopped: 1 ok, 1 skipped');
  });

  it('another shard stopped, this one not: the count reads stopped', () => {
    expect(batchLine(0, 2, { ok: 2, failed: 0, stopped: 2 }, undefined)).toBe('batch 1/2 stopped: 2 ok, 2 stopped');
  });
});
