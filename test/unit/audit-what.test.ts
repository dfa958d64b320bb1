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
});
