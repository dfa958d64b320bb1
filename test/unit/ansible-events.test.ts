// Folding recorded ansible-playbook jsonl events into per-host outcomes and progress lines.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PlaybookEvents, lineDiff, taskLine } from '../../src/ansible/events.js';

const RECORDED = readFileSync(new URL('../fixtures/ansible/check-diff-run.jsonl', import.meta.url), 'utf8').split('\n');

describe('ansible jsonl events', () => {
  it('folds a recorded check/diff run per host', () => {
    const events = new PlaybookEvents();
    const progress = RECORDED.flatMap((line) => events.push(line));
    expect(progress.filter((p) => p.type === 'task').map((p) => (p.type === 'task' ? p.task : ''))).toEqual(['write a file', 'fail on b']);
    const a = events.hosts().get('a')!;
    const b = events.hosts().get('b')!;
    expect(a.tasks.map((t) => t.status)).toEqual(['changed', 'skipped']);
    expect(a.tasks[0]!.diff).toBe('+hello x');
    expect(b.tasks[1]).toEqual({ task: 'fail on b', status: 'failed', message: 'boom', diff: undefined });
    expect(b.stats).toMatchObject({ ok: 1, changed: 1, failures: 1 });
    expect(events.statsSeen).toBe(true);
    expect(taskLine(b.tasks[1]!)).toBe('failed      fail on b: boom');
  });

  it('a failed command says why: its return code and last stderr line, its stdout and stderr under the task', () => {
    const events = new PlaybookEvents();
    for (const line of readFileSync(new URL('../fixtures/ansible/command-failed.jsonl', import.meta.url), 'utf8').split('\n')) events.push(line);
    const failed = events.hosts().get('a')!.tasks[0]!;
    expect(failed).toMatchObject({ task: 'join etcd', status: 'failed', message: 'non-zero return code (rc 1): Error: etcdserver: unhealthy cluster' });
    expect(taskLine(failed)).toBe([
      'failed      join etcd: non-zero return code (rc 1): Error: etcdserver: unhealthy cluster',
      '    stdout: added',
      '    stderr: {"level":"warn"}',
      '    stderr: Error: etcdserver: unhealthy cluster',
    ].join('\n'));
  });

  it('keeps the last lines of a long failed output', () => {
    const events = new PlaybookEvents();
    const stderr = Array.from({ length: 30 }, (_, i) => `line ${i}`).join('\n');
    events.push(JSON.stringify({ _event: 'v2_runner_on_failed', task: { name: 't' }, hosts: { h: { msg: 'non-zero return code', rc: 2, stdout: '', stderr } } }));
    const lines = taskLine(events.hosts().get('h')!.tasks[0]!).split('\n');
    expect(lines[0]).toBe('failed      t: non-zero return code (rc 2): line 29');
    expect(lines[1]).toBe('    stderr: … 10 earlier lines');
    expect(lines.slice(2)).toEqual(Array.from({ length: 20 }, (_, i) => `    stderr: line ${i + 10}`));
  });

  it('keeps stray lines aside and never throws on garbage', () => {
    const events = new PlaybookEvents();
    expect(events.push('[WARNING]: provided hosts list is empty')).toEqual([]);
    expect(events.push('{"_event": "v2_runner_on_ok", "hosts": "nonsense"}')).toEqual([]);
    expect(events.stray).toEqual(['[WARNING]: provided hosts list is empty']);
  });

  it('diffs lines', () => {
    expect(lineDiff('a\nb\nc\n', 'a\nB\nc\n')).toBe('-b\n+B');
  });
});
