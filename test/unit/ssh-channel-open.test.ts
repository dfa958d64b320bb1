// Opening a channel while sshd refuses it: only refusals (nothing ran) are retried, within a budget.
import { describe, expect, it } from 'vitest';
import { ChannelOpenCancelled, isExecRefusal, isOpenRefusal, openRetryingRefusals } from '../../src/ssh/channel-open.js';

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
    expect(isExecRefusal(new Error('Unable to exec'))).toBe(true);
    expect(isExecRefusal(refusal())).toBe(false);
    expect(isExecRefusal(new Error('No response from server'))).toBe(false);
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

  it('retries an exec request the server refused (it started nothing), and says so when it gives up', async () => {
    let calls = 0;
    const opened = await openRetryingRefusals(async () => {
      calls += 1;
      if (calls < 3) throw new Error('Unable to exec');
      return 'channel';
    }, { budgetMs: 10_000 });
    expect(opened).toBe('channel');
    expect(calls).toBe(3);
    const failing = openRetryingRefusals(async () => {
      throw new Error('Unable to exec');
    }, { budgetMs: 100 });
    await expect(failing).rejects.toThrow(/^Unable to exec \(the node refused to start the command \d+ times over \d+ ms\)$/);
  });

  it('never retries any other error (the command may have started)', async () => {
    let calls = 0;
    const failing = openRetryingRefusals(async () => {
      calls += 1;
      throw new Error('No response from server');
    }, { budgetMs: 10_000 });
    await expect(failing).rejects.toThrow('No response from server');
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
