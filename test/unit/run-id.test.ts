// Run ids name one host's run of a step, and are always valid for the remote wrapper.
import { describe, expect, it } from 'vitest';
import { RUN_ID_PATTERN, hostRunId } from '../../queues/execution.js';
import { wrapCommand } from '../../src/ssh/remote-run.js';

describe('hostRunId', () => {
  it('is <base>.<host> when that fits', () => {
    expect(hostRunId('jmab12cd34ef.exec', 'node01')).toBe('jmab12cd34ef.exec.node01');
    expect(hostRunId('jmab12cd34ef.exec.c', 'rack-a.node01.lan')).toBe('jmab12cd34ef.exec.c.rack-a.node01.lan');
  });

  it('differs per host, so two names for one machine never share a run', () => {
    expect(hostRunId('j1.exec', 'node01')).not.toBe(hostRunId('j1.exec', 'node02'));
  });

  it('stays valid, stable and distinct for host names that do not fit', () => {
    const long = 'a'.repeat(80);
    const odd = ['node 01', 'nöde', long, `${long}b`, 'ipv6:[fe80::1]'];
    const ids = odd.map((host) => hostRunId('jmab12cd34ef.rb-activate-node01', host));
    for (const id of ids) {
      expect(id).toMatch(RUN_ID_PATTERN);
      expect(id.startsWith('jmab12cd34ef.rb-activate-node01.')).toBe(true);
      expect(() => wrapCommand(['true'], { runId: id, asRoot: false, loginUser: 'u', deadlineMs: 1000, killGraceMs: 100, stdinBytes: 0 })).not.toThrow();
    }
    expect(new Set(ids).size).toBe(odd.length);
    expect(hostRunId('jmab12cd34ef.rb-activate-node01', long)).toBe(ids[2]);
  });
});
