// Reading ansible-playbook's event stream. Castellan runs playbooks with the `ansible.posix.jsonl`
// stdout callback (shipped with Debian's `ansible` package): one JSON object per line, each
// named by `_event` (v2_playbook_on_task_start, v2_runner_on_ok/failed/skipped/unreachable,
// v2_playbook_on_stats, …) with the results keyed by host. From it come per-task progress
// lines per host while the run goes, and per-host results at the end.

export type TaskStatus = 'ok' | 'changed' | 'failed' | 'skipped' | 'unreachable';

export interface TaskOutcome {
  readonly task: string;
  readonly status: TaskStatus;
  readonly message?: string | undefined;
  /** Check/diff mode: what would change, as -/+ lines. */
  readonly diff?: string | undefined;
  /** A failed task's own output (a command's stdout and stderr, their last lines): why it failed. */
  readonly output?: string | undefined;
}

export interface HostStats {
  readonly ok: number;
  readonly changed: number;
  readonly failures: number;
  readonly skipped: number;
  readonly unreachable: number;
  readonly rescued: number;
  readonly ignored: number;
}

export interface PlaybookHost {
  readonly host: string;
  readonly tasks: TaskOutcome[];
  stats?: HostStats | undefined;
}

const RUNNER_EVENTS: Readonly<Record<string, TaskStatus>> = {
  v2_runner_on_ok: 'ok',
  v2_runner_on_failed: 'failed',
  v2_runner_on_skipped: 'skipped',
  v2_runner_on_unreachable: 'unreachable',
};

const MAX_DIFF_LINES = 60;
/** Of a failed task's stdout and stderr, the last lines (the cause is usually at the end). */
const MAX_OUTPUT_LINES = 20;
const MAX_LINE_CHARS = 300;

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

/** A small line diff (longest common subsequence) of before/after, as -/+ lines, bounded. */
export function lineDiff(before: string, after: string): string {
  const a = before.split('\n');
  const b = after.split('\n');
  if (a.length * b.length > 250_000) return `(${a.length} lines before, ${b.length} after: too large to show)`;
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      const row = lcs[i] as number[];
      row[j] = a[i] === b[j] ? (lcs[i + 1]?.[j + 1] ?? 0) + 1 : Math.max(lcs[i + 1]?.[j] ?? 0, row[j + 1] ?? 0);
    }
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      i++;
      j++;
    } else if (i < a.length && (j >= b.length || (lcs[i + 1]?.[j] ?? 0) >= (lcs[i]?.[j + 1] ?? 0))) {
      out.push(`-${a[i] ?? ''}`);
      i++;
    } else {
      out.push(`+${b[j] ?? ''}`);
      j++;
    }
  }
  const changed = out.filter((l) => l !== '+' && l !== '-');
  return changed.length > MAX_DIFF_LINES ? [...changed.slice(0, MAX_DIFF_LINES), `… ${changed.length - MAX_DIFF_LINES} more lines`].join('\n') : changed.join('\n');
}

function diffOf(result: Record<string, unknown>): string | undefined {
  const diffs = Array.isArray(result.diff) ? (result.diff as unknown[]) : result.diff ? [result.diff] : [];
  const parts = diffs.map(record).flatMap((d) => {
    if (text(d.prepared)) return [String(d.prepared).trimEnd()];
    if (typeof d.before === 'string' || typeof d.after === 'string') {
      const header = text(d.before_header) ?? text(d.after_header);
      const body = lineDiff(typeof d.before === 'string' ? d.before : '', typeof d.after === 'string' ? d.after : '');
      return body ? [header && !header.includes('/.ansible/tmp/') ? `${header}\n${body}` : body] : [];
    }
    return [];
  });
  return parts.length > 0 ? parts.join('\n') : undefined;
}

function nonEmptyLines(value: unknown): string[] {
  return typeof value === 'string' ? value.split('\n').filter((l) => l.trim() !== '') : [];
}

/**
 * What failed, in one line: the module's msg with a command's return code and, since msg alone
 * says only "non-zero return code", the last line the command wrote to stderr (or stdout).
 */
function messageOf(result: Record<string, unknown>): string | undefined {
  const msg = text(result.msg) ?? text(result.reason);
  const rc = typeof result.rc === 'number' ? ` (rc ${result.rc})` : '';
  const last = nonEmptyLines(result.stderr).at(-1) ?? nonEmptyLines(result.stdout).at(-1);
  const head = msg?.split('\n')[0];
  if (head === undefined) return last?.slice(0, 500);
  return `${head}${rc}${last !== undefined && !head.includes(last) ? `: ${last}` : ''}`.slice(0, 500);
}

/** A failed task's stdout and stderr, last lines of each, labelled. */
function outputOf(result: Record<string, unknown>): string | undefined {
  const lines = (['stdout', 'stderr'] as const).flatMap((stream) => {
    const all = nonEmptyLines(result[stream]);
    const kept = all.slice(-MAX_OUTPUT_LINES).map((l) => `${stream}: ${l.length > MAX_LINE_CHARS ? `${l.slice(0, MAX_LINE_CHARS)}…` : l}`);
    return all.length > kept.length ? [`${stream}: … ${all.length - kept.length} earlier lines`, ...kept] : kept;
  });
  return lines.length > 0 ? lines.join('\n') : undefined;
}

function indented(block: string): string {
  return block.split('\n').map((l) => `    ${l}`).join('\n');
}

/** One line per task outcome (with a diff or a failed task's output under it), as shown to people following the run and in per-host results. */
export function taskLine(outcome: TaskOutcome): string {
  const head = `${outcome.status.padEnd(11)} ${outcome.task}${outcome.message ? `: ${outcome.message}` : ''}`;
  const under = [outcome.diff, outcome.output].filter((b): b is string => b !== undefined).map(indented);
  return [head, ...under].join('\n');
}

export type PlaybookProgress =
  | { readonly type: 'task'; readonly task: string }
  | { readonly type: 'host_task'; readonly host: string; readonly outcome: TaskOutcome };

/** Folds jsonl events into per-host outcomes; `push` returns what to show as progress. */
export class PlaybookEvents {
  private readonly byHost = new Map<string, PlaybookHost>();
  /** Lines that were not events (warnings ansible prints to stdout, a broken line). */
  readonly stray: string[] = [];
  statsSeen = false;

  host(name: string): PlaybookHost {
    let h = this.byHost.get(name);
    if (!h) {
      h = { host: name, tasks: [] };
      this.byHost.set(name, h);
    }
    return h;
  }

  hosts(): ReadonlyMap<string, PlaybookHost> {
    return this.byHost;
  }

  push(line: string): PlaybookProgress[] {
    if (line.trim() === '') return [];
    let event: Record<string, unknown>;
    try {
      event = record(JSON.parse(line));
    } catch {
      if (this.stray.length < 50) this.stray.push(line.slice(0, 500));
      return [];
    }
    const name = text(event._event) ?? '';
    if (name === 'v2_playbook_on_task_start') {
      const task = text(record(event.task).name) ?? '(unnamed task)';
      return [{ type: 'task', task }];
    }
    if (name === 'v2_playbook_on_stats') {
      this.statsSeen = true;
      for (const [host, s] of Object.entries(record(event.stats))) {
        const st = record(s);
        this.host(host).stats = {
          ok: count(st.ok),
          changed: count(st.changed),
          failures: count(st.failures),
          skipped: count(st.skipped),
          unreachable: count(st.unreachable),
          rescued: count(st.rescued),
          ignored: count(st.ignored),
        };
      }
      return [];
    }
    const base = RUNNER_EVENTS[name];
    if (!base) return [];
    const task = text(record(event.task).name) ?? '(unnamed task)';
    return Object.entries(record(event.hosts)).map(([host, raw]) => {
      const result = record(raw);
      const status: TaskStatus = base === 'ok' && result.changed === true ? 'changed' : base;
      const failed = status === 'failed' || status === 'unreachable';
      const outcome: TaskOutcome = {
        task,
        status,
        message: failed ? messageOf(result) : undefined,
        diff: status === 'changed' ? diffOf(result) : undefined,
        ...(failed ? { output: outputOf(result) } : {}),
      };
      this.host(host).tasks.push(outcome);
      return { type: 'host_task' as const, host, outcome };
    });
  }
}
