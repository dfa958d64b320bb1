// A job's output as lines per host (src/present/output-lines.ts), on recorded jobs: chunks cut
// mid-word become whole lines, control characters are visible, alike hosts fold once the job
// ended, and paging with the cursor returns every line once, while the job runs and after.
import { describe, expect, it } from 'vitest';
import type { JobEvent, StampedEvent } from '../../queues/events.js';
import type { HostResult } from '../../tools/host-result.js';
import type { JobRecord } from '../../queues/records.js';
import { outputLines, outputLinesText, type OutputLines } from '../../src/present/output-lines.js';

const HOSTS = ['node01', 'node02', 'node03'];

const base: JobRecord = {
  id: 'jlines0001',
  tool: 'exec',
  risk: 'destructive',
  input: { targets: 'node[01-03]' },
  plan: {
    tool: 'exec',
    hosts: HOSTS,
    failureBudget: 0,
    batches: [{ steps: [{ id: 'exec', description: 'run', hosts: HOSTS, timeoutMs: 60_000, action: { kind: 'exec', asRoot: false, argv: ['sh', '-c', 'x'] } }] }],
  },
  planHash: 'abc',
  requester: { subject: 'oscar', displayName: 'Oscar', groups: [], roles: ['operator'], origin: 'cli' },
  replyTo: { kind: 'cli' },
  createdAt: '2026-11-29T05:00:00.000Z',
  approvalsRequired: 0,
  timeoutMs: 600_000,
  state: 'running',
  votes: [],
  updatedAt: '2026-11-29T05:00:00.000Z',
  attempt: 1,
};

const OUT: Record<string, { stdout: string; stderr: string; ok: boolean }> = {
  node01: { stdout: 'Linux node01\nkernel 6.1\n', stderr: '', ok: true },
  node02: { stdout: 'Linux node01\nkernel 6.1\n', stderr: '', ok: true },
  node03: { stdout: 'col\tumn \u001b[31mred\u001b[0m\nno newline at end', stderr: 'warning: disk\n', ok: false },
};

function result(host: string): HostResult {
  const o = OUT[host]!;
  return { host, status: o.ok ? 'ok' : 'failed', exitCode: o.ok ? 0 : 1, signal: null, stdout: o.stdout, stderr: o.stderr, truncated: false, startedAt: base.createdAt, durationMs: 5, connectMs: 1 };
}

const ended: JobRecord = {
  ...base,
  state: 'partially_failed',
  result: {
    hosts: HOSTS.map((h) => ({ ...result(h), step: 'exec' })),
    steps: [{ id: 'exec', description: 'run', batch: 0, results: HOSTS.map(result) }],
    folded: [],
  },
};

/** The same output as the worker streams it: chunks of 3 characters, cut anywhere. */
function chunkedEvents(upTo: number): StampedEvent[] {
  const events: JobEvent[] = [];
  for (const host of HOSTS) {
    const o = OUT[host]!;
    for (const stream of ['stdout', 'stderr'] as const) {
      for (let i = 0; i < o[stream].length; i += 3) events.push({ type: 'output', step: 'exec', host, stream, text: o[stream].slice(i, i + 3) });
    }
    events.push({ type: 'host_finished', step: 'exec', host, status: o.ok ? 'ok' : 'failed', exitCode: o.ok ? 0 : 1, durationMs: 5 });
  }
  return events.slice(0, upTo).map((event, i) => ({ id: `1-${i}`, at: 1, event }));
}

const texts = (page: OutputLines): string[] => page.hosts.flatMap((h) => h.lines.map((l) => `${h.hosts} ${l.n} ${l.stream} ${l.text}`));

describe('job output as lines', () => {
  it('folds alike hosts of an ended job, makes control characters visible and marks stderr', () => {
    const page = outputLines(ended, undefined, { maxLines: 100 });
    expect(page.next_after).toBeUndefined();
    expect(texts(page)).toEqual([
      'node[01-02] 1 stdout Linux node01',
      'node[01-02] 2 stdout kernel 6.1',
      'node03 1 stdout col\\tumn \\x1b[31mred\\x1b[0m',
      'node03 2 stdout no newline at end',
      'node03 3 stderr warning: disk',
    ]);
    expect(page.hosts.map((h) => [h.hosts, h.count, h.status])).toEqual([
      ['node[01-02]', 2, 'ok'],
      ['node03', 1, 'failed'],
    ]);
    const text = outputLinesText(page, (after) => `more after ${after}`).join('\n');
    expect(text).toBe(
      ['node[01-02] (2): lines 1-2 of 2', '  1 │ Linux node01', '  2 │ kernel 6.1', 'node03 [failed]: lines 1-3 of 3', '  1 │ col\\tumn \\x1b[31mred\\x1b[0m', '  2 │ no newline at end', '  3 ! warning: disk'].join('\n'),
    );
    expect(text).not.toContain('\u001b');
  });

  it('pages an ended job with the cursor, every line once, and narrows to hosts', () => {
    const seen: string[] = [];
    let after: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = outputLines(ended, undefined, { maxLines: 2, after });
      seen.push(...texts(page));
      after = page.next_after;
      if (after === undefined) break;
    }
    expect(seen).toEqual(texts(outputLines(ended, undefined, { maxLines: 100 })));
    expect(texts(outputLines(ended, undefined, { maxLines: 100, hosts: 'node[02-03]' }))[0]).toBe('node02 1 stdout Linux node01');
    expect(() => outputLines(ended, undefined, { maxLines: 10, hosts: 'node09' })).toThrow(/hosts: node09 not in job jlines0001 \(its hosts: node\[01-03\]\)/);
    expect(() => outputLines(ended, undefined, { maxLines: 10, after: 'garbage' })).toThrow(/after: 'garbage' is not a cursor/);
  });

  it('while the job runs, returns whole lines only and a cursor that continues without gap or repeat into the ended job', () => {
    const all = chunkedEvents(Number.MAX_SAFE_INTEGER);
    const seen: string[] = [];
    let after: string | undefined;
    // Follow as the chunks arrive, 5 events at a time, then once more after the job ended.
    for (let n = 5; n < all.length + 5; n += 5) {
      const page = outputLines(base, chunkedEvents(n), { maxLines: 100, after });
      for (const h of page.hosts) for (const l of h.lines) seen.push(`${h.hosts} ${l.n} ${l.text}`);
      after = page.next_after ?? after;
      // A line cut mid-word is never returned half.
      expect(page.hosts.flatMap((h) => h.lines.map((l) => l.text))).not.toContain('Lin');
    }
    const last = outputLines(ended, undefined, { maxLines: 100, after });
    for (const h of last.hosts) for (const l of h.lines) seen.push(`${h.hosts} ${l.n} ${l.text}`);
    expect(last.next_after).toBeUndefined();
    expect(seen).toEqual([
      'node01 1 Linux node01',
      'node01 2 kernel 6.1',
      'node02 1 Linux node01',
      'node02 2 kernel 6.1',
      'node03 1 col\\tumn \\x1b[31mred\\x1b[0m',
      'node03 2 no newline at end',
      'node03 3 warning: disk',
    ]);
  });

  it('says why output is hidden instead of showing it', () => {
    const page = outputLines({ ...ended, hidden: { details: true, output: true, reason: 'only the requester and approvers see output' } }, undefined, { maxLines: 10 });
    expect(page.hosts).toEqual([]);
    expect(outputLinesText(page)).toEqual(['output hidden from this caller: only the requester and approvers see output']);
  });
});
