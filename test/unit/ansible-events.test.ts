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
