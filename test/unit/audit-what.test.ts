// What `castellan audit` says an entry did: each fact once, untrusted text made visible.
import { describe, expect, it } from 'vitest';
import type { StoredAudit } from '../../queues/audit.js';
import { auditWhat } from '../../src/present/audit-list.js';

const execution = (fields: Partial<StoredAudit>): StoredAudit =>
  ({ id: '1-0', at: '2026-11-29T21:45:25.000Z', kind: 'execution', jobId: 'j1', subject: 'alice', origin: 'worker', host: 'node01', argv: ['sh', '-c', 'exit 3'], status: 'failed', ...fields });

describe('auditWhat', () => {
  it('says a plain non-zero exit once', () => {
    expect(auditWhat(execution({ exitCode: 3, reason: 'exit code 3' }))).toBe("ran sh -c 'exit 3' on node01: failed (exit 3)");
  });

  it('keeps a reason that says more, with its control characters shown', () => {
    expect(auditWhat(execution({ exitCode: 1, reason: 'sudo needs a password\u001b[2J' }))).toBe("ran sh -c 'exit 3' on node01: failed (exit 1): sudo needs a password\\x1b[2J");
    expect(auditWhat(execution({ exitCode: null, status: 'timed_out', reason: 'command timeout after 1500 ms' }))).toBe("ran sh -c 'exit 3' on node01: timed_out: command timeout after 1500 ms");
  });

  it('an entry of many hosts: folded, counted by status, and the hosts that did not end ok by name', () => {
    const results = Array.from({ length: 12 }, (_x, i) => ({ host: `node${String(i + 1).padStart(2, '0')}`, status: 'ok', exitCode: 0 }));
    results[6] = { host: 'node07', status: 'failed', exitCode: 3 };
    results[10] = { host: 'node11', status: 'failed', exitCode: 3, reason: 'exit code 3' } as never;
    results[8] = { host: 'node09\u001b[2J', status: 'timed_out', exitCode: null, reason: 'command timeout after 1500 ms' } as never;
    const many = execution({ host: undefined, status: undefined, argv: ['uptime'], results });
    expect(auditWhat(many)).toBe("ran uptime on node09\\x1b[2J,node[01-08,10-12] (12 hosts): 9 ok, 2 failed, 1 timed_out; node[07,11]: failed (exit 3); node09\\x1b[2J: timed_out: command timeout after 1500 ms");
    // One host (a listing narrowed to it): as a single-host entry reads.
    expect(auditWhat(execution({ host: undefined, status: undefined, results: [{ host: 'node07', status: 'failed', exitCode: 3, reason: 'exit code 3' }] }))).toBe("ran sh -c 'exit 3' on node07: failed (exit 3)");
  });
});
