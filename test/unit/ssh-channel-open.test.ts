// Opening a channel while sshd refuses it: only refusals (nothing ran) are retried, within a budget.
import { describe, expect, it } from 'vitest';
import { ChannelOpenCancelled, isOpenRefusal, openRetryingRefusals } from '../../src/ssh/channel-open.js';

/** What ssh2 hands the exec callback for a CHANNEL_OPEN_FAILURE. */
function refusal(): Error {
  return Object.assign(new Error('(SSH) Channel open failure: open failed'), { reason: 1 });
}

describe('openRetryingRefusals', () => {
  it('tells a refused open from other errors', () => {
    expect(isOpenRefusal(refusal())).toBe(true);
    expect(isOpenRefusal(Object.assign(new Error('(SSH) Channel open failure: server closed channel unexpectedly'), { reason: '' }))).toBe(true);
    expect(isOpenRefusal(new Error('Unable to exec'))).toBe(false);
    expect(isOpenRefusal('open failed')).toBe(false);
  });

  it('retries refusals until the open succeeds', async () => {
    let calls = 0;
    const opened = await openRetryingRefusals(async () => {
      calls += 1;
      if (calls < 4) throw refusal();
      return 'channel';
    }, { budgetMs: 10_000 });
    expect(opened).toBe('channel');
    expect(calls).toBe(4);
  });

  it('never retries an error after the open (the command may have started)', async () => {
    let calls = 0;
    const failing = openRetryingRefusals(async () => {
      calls += 1;
      throw new Error('Unable to exec');
    }, { budgetMs: 10_000 });
    await expect(failing).rejects.toThrow('Unable to exec');
    expect(calls).toBe(1);
  });

  it('gives up after the budget, saying how often the node refused', async () => {
    let calls = 0;
    const failing = openRetryingRefusals(async () => {
      calls += 1;
      throw refusal();
    }, { budgetMs: 100 });
    await expect(failing).rejects.toThrow(/open failed \(refused \d+ times over \d+ ms; is the node's MaxSessions below max_channels_per_host \+ 2\?\)/);
    expect(calls).toBeGreaterThan(1);
  });

  it('stops at once when the connection is gone or the caller cancels', async () => {
    let calls = 0;
    await expect(openRetryingRefusals(async () => {
      calls += 1;
      throw refusal();
    }, { budgetMs: 10_000, alive: () => false })).rejects.toThrow('open failed');
    expect(calls).toBe(1);

    const controller = new AbortController();
    const cancelled = openRetryingRefusals(async () => {
      controller.abort();
      throw refusal();
    }, { budgetMs: 10_000, signal: controller.signal });
    await expect(cancelled).rejects.toBeInstanceOf(ChannelOpenCancelled);
  });
});
