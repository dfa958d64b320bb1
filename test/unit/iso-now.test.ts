// isoNow: what `new Date().toISOString()` gives, the string kept only for its millisecond.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isoNow } from '../../src/ssh/executor.js';

describe('isoNow', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is the ISO time of the current millisecond, and moves with the clock', () => {
    vi.useFakeTimers();
    vi.setSystemTime(Date.UTC(2026, 10, 29, 23, 59, 59, 998));
    expect(isoNow()).toBe('2026-11-29T23:59:59.998Z');
    expect(isoNow()).toBe(new Date().toISOString());
    vi.setSystemTime(Date.UTC(2026, 10, 29, 23, 59, 59, 999));
    expect(isoNow()).toBe('2026-11-29T23:59:59.999Z');
    vi.setSystemTime(Date.UTC(2026, 10, 30, 0, 0, 0, 0));
    expect(isoNow()).toBe('2026-11-30T00:00:00.000Z');
    // The clock set back (NTP): the earlier time, not the string kept.
    vi.setSystemTime(Date.UTC(2026, 10, 29, 12, 0, 0, 0));
    expect(isoNow()).toBe('2026-11-29T12:00:00.000Z');
  });

  it('on the real clock, agrees with toISOString', () => {
    const before = Date.now();
    const text = isoNow();
    const after = Date.now();
    expect(text).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(Date.parse(text)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(text)).toBeLessThanOrEqual(after);
  });
});
