// A job's output as lines per host, for reading and paging (MCP job_output, the API's
// /jobs/:id/lines, `castellan output`). Raw output arrives as chunks cut anywhere (mid-word,
// mid-line); a reader wants lines, each with its host, step and stream, control characters
// made visible, and a page that says where to go on.
//
// A host's lines are, for each step in plan order, its stdout lines then its stderr lines.
// That order only ever grows at the end while the job runs (a running step shows its complete
// stdout lines; the rest of its stdout and its stderr follow once the step ends on that host),
// so a cursor "host:line" stays valid from one page to the next. Once the job ended, hosts
// whose lines are all equal fold into one node set, like the folded result.
import { z } from 'zod';
import { expandNodeSet, foldNodeSet } from '../../config/nodeset.js';
import { visibleInline } from '../../config/visible.js';
import { CastellanError } from '../../config/errors.js';
import type { StampedEvent } from '../../queues/events.js';
import type { JobRecord } from '../../queues/records.js';
import { isFinal, JOB_STATES } from '../../queues/states.js';
import { walkPlan } from '../../tools/steps/walk.js';
import type { Identity } from '../../auth/types.js';
import type { EventSource } from './job-view.js';

/** Longest line returned whole; longer ones are cut and say by how much. */
export const MAX_LINE_CHARS = 500;
export const MAX_PAGE_LINES = 500;

const lineSchema = z.object({
  /** 1-based line number within this host's (or node set's) output. */
  n: z.number(),
  step: z.string(),
  stream: z.enum(['stdout', 'stderr']),
  /** The line, control and invisible characters as escapes (\x1b, \t, \u{202e}). */
  text: z.string(),
});
export type OutputLine = z.infer<typeof lineSchema>;

export const outputLinesSchema = z.object({
  job_id: z.string(),
  state: z.enum(JOB_STATES),
  finished: z.boolean(),
  /** Per host, or per node set of hosts whose output is identical (ended jobs). */
  hosts: z.array(
    z.object({
      hosts: z.string(),
      count: z.number(),
      /** How the host ended; absent while it runs. */
      status: z.string().optional(),
      /** Lines this host has so far (what `n` counts up to). */
      total_lines: z.number(),
      lines: z.array(lineSchema),
    }),
  ),
  /** Pass as `after` for the next page; absent once the job ended and everything was returned. */
  next_after: z.string().optional(),
  /** Why no output is shown to this caller (policy.visibility). */
  output_hidden: z.string().optional(),
});
export type OutputLines = z.infer<typeof outputLinesSchema>;

export interface LinesOptions {
  /** Hosts of the job to show (a node set like node[01-03] or a comma list); default all. */
  readonly hosts?: string | undefined;
  /** A cursor from `next_after`. */
  readonly after?: string | undefined;
  readonly maxLines: number;
}

interface Source {
  readonly hosts: string[];
  readonly status?: string;
  /** No more lines will come for these hosts. */
  readonly complete: boolean;
  readonly lines: OutputLine[];
}

/** `f:node03:40` (made on an ended job: folded) or `r:node03:40` (made while it ran: per host). */
const CURSOR = /^([fr]):([^:]{1,255}):(\d{1,9})$/;

function parseCursor(after: string): { folded: boolean; host: string; line: number } {
  const match = CURSOR.exec(after);
  if (!match) throw new CastellanError('invalid_input', `after: '${visibleInline(after.slice(0, 60))}' is not a cursor from next_after (like f:node03:40)`, 'after');
  return { folded: match[1] === 'f', host: match[2]!, line: Number(match[3]) };
}

function cutLine(text: string): string {
  const shown = visibleInline(text);
  return shown.length > MAX_LINE_CHARS ? `${shown.slice(0, MAX_LINE_CHARS)}… (${shown.length - MAX_LINE_CHARS} more characters)` : shown;
}

/** Split into lines; a last line without newline counts only when `whole` (the step ended). */
function splitLines(text: string, whole: boolean): string[] {
  const parts = text.split(/\r?\n/);
  const last = parts.pop() ?? '';
  if (whole && last !== '') parts.push(last);
  return parts;
}

interface StepOutput {
  stdout: string;
  stderr: string;
  ended: boolean;
}

/** Per host, per step id: the text so far and whether the step ended there. */
type HostSteps = Map<string, Map<string, StepOutput>>;

function slot(byHost: HostSteps, host: string, step: string): StepOutput {
  let steps = byHost.get(host);
  if (!steps) byHost.set(host, (steps = new Map<string, StepOutput>()));
  let out = steps.get(step);
  if (!out) steps.set(step, (out = { stdout: '', stderr: '', ended: false }));
  return out;
}

function fromResult(job: JobRecord): HostSteps {
  const byHost: HostSteps = new Map();
  for (const report of job.result?.steps ?? []) {
    for (const r of report.results) {
      const out = slot(byHost, r.host, report.id);
      out.stdout += r.stdout;
      out.stderr += r.stderr;
      out.ended = true;
    }
  }
  return byHost;
}

function fromEvents(events: readonly StampedEvent[]): { byHost: HostSteps; ended: Set<string> } {
  const byHost: HostSteps = new Map();
  const ended = new Set<string>();
  for (const { event: e } of events) {
    if (e.type === 'output') slot(byHost, e.host, e.step)[e.stream] += e.text;
    else if (e.type === 'host_finished') {
      slot(byHost, e.host, e.step).ended = true;
      // A host that did not finish a step ok runs no further step of this job.
      if (e.status !== 'ok') ended.add(e.host);
    }
  }
  return { byHost, ended };
}

function linesOf(steps: Map<string, StepOutput> | undefined, order: readonly string[]): OutputLine[] {
  const lines: OutputLine[] = [];
  if (!steps) return lines;
  const ids = [...order.filter((id) => steps.has(id)), ...[...steps.keys()].filter((id) => !order.includes(id))];
  for (const step of ids) {
    const out = steps.get(step)!;
    for (const text of splitLines(out.stdout, out.ended)) lines.push({ n: lines.length + 1, step, stream: 'stdout', text: cutLine(text) });
    if (!out.ended) break; // later lines of this host wait for this step to end
    for (const text of splitLines(out.stderr, true)) lines.push({ n: lines.length + 1, step, stream: 'stderr', text: cutLine(text) });
  }
  return lines;
}

function chosenHosts(job: JobRecord, expression: string | undefined): string[] {
  if (expression === undefined || expression.trim() === '') return [...job.plan.hosts];
  let wanted: string[];
  try {
    wanted = expandNodeSet(expression.trim(), { limit: 100_000 });
  } catch (error) {
    throw new CastellanError('invalid_input', `hosts: ${error instanceof Error ? error.message : String(error)}`, 'hosts');
  }
  const inJob = new Set(job.plan.hosts);
  const missing = wanted.filter((h) => !inJob.has(h));
  if (missing.length > 0) {
    throw new CastellanError('invalid_input', `hosts: ${visibleInline(missing.slice(0, 5).join(', '))}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''} not in job ${job.id} (its hosts: ${foldNodeSet(job.plan.hosts) || 'none'})`, 'hosts');
  }
  const set = new Set(wanted);
  return job.plan.hosts.filter((h) => set.has(h));
}

/** Equal line lists fold together (ended jobs), in the order of each group's first host. */
function fold(sources: Source[]): Source[] {
  const groups = new Map<string, { hosts: string[]; status?: string; lines: OutputLine[] }>();
  for (const s of sources) {
    const key = JSON.stringify([s.status, s.lines]);
    const group = groups.get(key);
    if (group) group.hosts.push(...s.hosts);
    else groups.set(key, { hosts: [...s.hosts], ...(s.status !== undefined ? { status: s.status } : {}), lines: s.lines });
  }
  return [...groups.values()].map((g) => ({ ...g, complete: true }));
}

/**
 * One page of a job's output as lines. `events` are the job's events (needed while it runs;
 * an ended job reads its result).
 */
export function outputLines(job: JobRecord, events: readonly StampedEvent[] | undefined, options: LinesOptions): OutputLines {
  const head = { job_id: job.id, state: job.state, finished: isFinal(job.state) };
  if (job.hidden?.output) return { ...head, hosts: [], output_hidden: job.hidden.reason };
  const cursor = options.after !== undefined && options.after !== '' ? parseCursor(options.after) : undefined;
  const hosts = chosenHosts(job, options.hosts);
  const order = walkPlan(job.plan).map((w) => w.step.id);
  const ended = isFinal(job.state);
  const status = new Map((job.result?.hosts ?? []).map((h) => [h.host, h.status.replaceAll('_', ' ')]));
  const live = ended ? undefined : fromEvents(events ?? []);
  const byHost = live?.byHost ?? fromResult(job);
  let sources: Source[] = hosts.map((host) => {
    const steps = byHost.get(host);
    const lastStep = order.filter((id) => job.plan.batches.some((b) => b.steps.some((s) => s.id === id && s.hosts.includes(host)))).at(-1);
    const complete = ended || (live?.ended.has(host) ?? false) || (lastStep !== undefined && steps?.get(lastStep)?.ended === true);
    return { hosts: [host], ...(status.has(host) ? { status: status.get(host)! } : {}), complete, lines: linesOf(steps, order) };
  });
  const folded = ended && (cursor === undefined || cursor.folded);
  if (folded) sources = fold(sources);

  let start = 0;
  let from = 0;
  if (cursor) {
    start = sources.findIndex((s) => s.hosts.includes(cursor.host));
    if (start < 0) throw new CastellanError('invalid_input', `after: host ${visibleInline(cursor.host)} is not among the hosts asked for`, 'after');
    from = cursor.line;
  }
  const page: OutputLines['hosts'] = [];
  let budget = Math.min(Math.max(options.maxLines, 1), MAX_PAGE_LINES);
  let next: string | undefined;
  for (let i = start; i < sources.length; i++) {
    const s = sources[i]!;
    const skip = i === start ? from : 0;
    const lines = s.lines.slice(skip, skip + budget);
    budget -= lines.length;
    page.push({ hosts: foldNodeSet(s.hosts), count: s.hosts.length, ...(s.status !== undefined ? { status: s.status } : {}), total_lines: s.lines.length, lines });
    const at = skip + lines.length;
    // A host still running may say more: the page ends with it, and the cursor waits there.
    if (at < s.lines.length || !s.complete) {
      next = `${folded ? 'f' : 'r'}:${s.hosts[0]}:${at}`;
      break;
    }
    if (budget === 0 && i + 1 < sources.length) {
      next = `${folded ? 'f' : 'r'}:${sources[i + 1]!.hosts[0]}:0`;
      break;
    }
  }
  // A job that has not ended may still say more (a rollback, the last host's end): keep the place.
  const last = sources.at(-1);
  if (next === undefined && !ended && last !== undefined) next = `r:${last.hosts[0]}:${last.lines.length}`;
  return { ...head, hosts: page, ...(next !== undefined ? { next_after: next } : {}) };
}

/**
 * The page for a person or a model: a heading per host or node set, numbered lines, stderr
 * marked. `more`, when given, says how to ask for the next page in the reader's own terms.
 */
export function outputLinesText(page: OutputLines, more?: (after: string) => string): string[] {
  const out: string[] = [];
  if (page.output_hidden !== undefined) return [`output hidden from this caller: ${visibleInline(page.output_hidden)}`];
  const steps = new Set(page.hosts.flatMap((h) => h.lines.map((l) => l.step)));
  for (const h of page.hosts) {
    const status = h.status !== undefined && h.status !== 'ok' ? ` [${h.status}]` : h.status === undefined ? ' [running]' : '';
    const [first, last] = [h.lines[0]?.n, h.lines.at(-1)?.n];
    const range = first !== undefined ? `${first === last ? `line ${first}` : `lines ${first}-${last}`} of ${h.total_lines}` : h.total_lines === 0 ? 'no output' : `no new lines (${h.total_lines} before)`;
    out.push(`${visibleInline(h.hosts)}${h.count > 1 ? ` (${h.count})` : ''}${status}: ${range}`);
    const width = String(h.lines.at(-1)?.n ?? 0).length;
    let step: string | undefined;
    for (const line of h.lines) {
      if (steps.size > 1 && line.step !== step) out.push(`  ${visibleInline(line.step)}:`);
      step = line.step;
      out.push(`${String(line.n).padStart(width + 2)} ${line.stream === 'stderr' ? '!' : '│'} ${line.text}`);
    }
  }
  if (page.hosts.length === 0) out.push('no output');
  if (page.next_after !== undefined && more) out.push(more(page.next_after));
  return out;
}

/** The page for `viewer`, reading the job's events only while it runs. */
export async function linesOfJob(service: EventSource, job: JobRecord, viewer: Identity, options: LinesOptions): Promise<OutputLines> {
  const events = isFinal(job.state) ? undefined : await service.events(job.id, viewer, '0', 5000);
  return outputLines(job, events, options);
}
