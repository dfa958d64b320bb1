// Maintenance windows judged at fixed instants (a fake clock): days and hours in a time zone,
// spans across midnight and DST, the next opening when several windows must be open at once,
// and configuration errors that name the bad value.
import { describe, expect, it } from 'vitest';
import { describeWindow, isOpen, openings, parseDays, parseHours, type MaintenanceWindow } from '../../config/maintenance.js';
import { settingsSchema } from '../../config/schema.js';
import { windowDecision } from '../../queues/maintenance.js';

function win(name: string, targets: string, days: string, hours: string, timeZone: string): MaintenanceWindow {
  const d = parseDays(days);
  const h = parseHours(hours);
  return { name, targets, days: d, start: h.start, end: h.end, timeZone, text: describeWindow(d, h.start, h.end, timeZone) };
}

const at = (iso: string): number => Date.parse(iso);
// Saturday 5 Dec 2026; Berlin is UTC+1 in winter.
const weekendNight = win('weekend-night', 'rack=left', 'sat,sun', '22:00-04:00', 'Europe/Berlin');
const groups: Record<string, string[]> = { 'rack=left': ['w1', 'w2'], storage: ['s1'], broken: [] };
const resolve = (e: string): string[] => {
  const hosts = groups[e];
  if (!hosts) throw new Error(`unknown group '${e}'`);
  return hosts;
};

describe('maintenance window parts', () => {
  it('reads days, ranges that wrap the week, and hour spans', () => {
    expect(parseDays('mon-fri')).toEqual([1, 2, 3, 4, 5]);
    expect(parseDays('fri-mon')).toEqual([1, 5, 6, 7]);
    expect(parseDays('sat, sun')).toEqual([6, 7]);
    expect(parseDays('*')).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(() => parseDays('mon-fryday')).toThrow("'mon-fryday' is not a day or day range");
    expect(parseHours('22:00-04:00')).toEqual({ start: 1320, end: 240 });
    expect(parseHours('00:00-24:00')).toEqual({ start: 0, end: 1440 });
    expect(() => parseHours('25:00-26:00')).toThrow('out of range');
    expect(() => parseHours('02:00-02:00')).toThrow('empty');
    expect(() => parseHours('2am-4am')).toThrow('not an hour span');
  });

  it('is open on its days and hours in its own zone, including the tail after midnight', () => {
    expect(isOpen(weekendNight, at('2026-12-05T09:00:00Z'))).toBe(false); // Sat 10:00 Berlin
    expect(isOpen(weekendNight, at('2026-12-05T21:00:00Z'))).toBe(true); // Sat 22:00 Berlin
    expect(isOpen(weekendNight, at('2026-12-06T02:59:00Z'))).toBe(true); // Sun 03:59, tail of Saturday's
    expect(isOpen(weekendNight, at('2026-12-07T02:30:00Z'))).toBe(true); // Mon 03:30, tail of Sunday's
    expect(isOpen(weekendNight, at('2026-12-07T21:30:00Z'))).toBe(false); // Mon 22:30: not a window day
    expect(isOpen(weekendNight, at('2026-12-05T21:00:00Z') - 1)).toBe(false);
  });

  it('follows the zone across a DST change (Berlin springs forward on 29 Mar 2026)', () => {
    const nightly = win('nightly', 'storage', '*', '01:00-05:00', 'Europe/Berlin');
    // 01:00 CET is 00:00Z on the 28th and 29th; from the 30th, 01:00 CEST is 23:00Z the day before.
    expect(openings(nightly, at('2026-03-28T00:00:00Z'), 3)).toEqual([at('2026-03-28T00:00:00Z'), at('2026-03-29T00:00:00Z'), at('2026-03-29T23:00:00Z'), at('2026-03-30T23:00:00Z')]);
    expect(isOpen(nightly, at('2026-03-29T02:30:00Z'))).toBe(true); // 04:30 CEST
    expect(isOpen(nightly, at('2026-03-29T03:30:00Z'))).toBe(false); // 05:30 CEST
  });
});

describe('windowDecision', () => {
  it('lets hosts no window names run any time', () => {
    expect(windowDecision(['other'], [weekendNight], resolve, at('2026-12-05T09:00:00Z'))).toEqual({ kind: 'any_time' });
  });

  it('is open inside the window and closed outside it, with the next opening in the window\'s zone', () => {
    expect(windowDecision(['w1'], [weekendNight], resolve, at('2026-12-05T22:30:00Z'))).toEqual({ kind: 'open', windows: ['weekend-night'] });
    const closed = windowDecision(['w1', 'other'], [weekendNight], resolve, at('2026-12-05T09:00:00Z'));
    expect(closed).toEqual({
      kind: 'closed',
      windows: ['weekend-night'],
      opensAt: at('2026-12-05T21:00:00Z'),
      detail: "w1 may only be changed in maintenance window 'weekend-night' (sat,sun 22:00-04:00 Europe/Berlin); next opening Sat 5 Dec 22:00 GMT+1",
    });
    // Monday morning after the tail closed: the next one is Saturday.
    expect(windowDecision(['w2'], [weekendNight], resolve, at('2026-12-07T05:00:00Z'))).toMatchObject({ kind: 'closed', opensAt: at('2026-12-12T21:00:00Z') });
  });

  it('waits until every governed host is open at once', () => {
    const storageMornings = win('storage-am', 'storage', 'sun', '03:00-06:00', 'UTC');
    // w1 is open Sat 22:00-Sun 04:00 Berlin (21:00Z-03:00Z); s1 Sun 03:00-06:00Z: they never overlap.
    const never = windowDecision(['w1', 's1'], [weekendNight, storageMornings], resolve, at('2026-12-05T09:00:00Z'));
    expect(never).toMatchObject({ kind: 'closed', opensAt: undefined });
    expect(never.kind === 'closed' && never.detail).toMatch(/no time within 8 days when they are all open/);
    const early = win('storage-early', 'storage', 'sun', '01:00-06:00', 'UTC');
    expect(windowDecision(['w1', 's1'], [weekendNight, early], resolve, at('2026-12-05T09:00:00Z'))).toMatchObject({ kind: 'closed', opensAt: at('2026-12-06T01:00:00Z') });
  });

  it('is closed, not open, when a window\'s targets do not resolve', () => {
    const bad = win('bad', 'nosuch', '*', '00:00-24:00', 'UTC');
    const d = windowDecision(['w1'], [bad], resolve, at('2026-12-05T09:00:00Z'));
    expect(d).toMatchObject({ kind: 'closed', windows: ['bad'] });
    expect(d.kind === 'closed' && d.detail).toContain("unknown group 'nosuch'");
  });
});

describe('policy.maintenance_windows in castellan.yaml', () => {
  const parse = (policy: unknown) => settingsSchema('/etc/castellan').safeParse({ inventory: ['inv.yaml'], known_hosts: 'known_hosts', policy });

  it('reads windows with defaults and the outside_window choice', () => {
    const r = parse({ maintenance_windows: [{ name: 'nightly', targets: 'storage', hours: '01:00-05:00', time_zone: 'Europe/Berlin' }], outside_window: 'refuse' });
    expect(r.success).toBe(true);
    const policy = r.success ? r.data.policy : undefined;
    expect(policy?.outsideWindow).toBe('refuse');
    expect(policy?.maintenanceWindows[0]).toMatchObject({ name: 'nightly', days: [1, 2, 3, 4, 5, 6, 7], start: 60, end: 300, text: 'every day 01:00-05:00 Europe/Berlin' });
    expect(parse({}).success && parse({}).data?.policy.outsideWindow).toBe('wait');
  });

  it('names a bad zone, bad days and a duplicate name', () => {
    const r = parse({
      maintenance_windows: [
        { name: 'a', targets: 'x', time_zone: 'Mars/Olympus' },
        { name: 'a', targets: 'x', days: 'someday' },
      ],
    });
    expect(r.success).toBe(false);
    const text = r.success ? '' : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');
    expect(text).toContain('policy.maintenance_windows.0.time_zone: expected an IANA time zone');
    expect(text).toContain("policy.maintenance_windows.1.days: 'someday' is not a day or day range");
  });
});
