// Recent log lines of one unit. Every journalctl option value is either an enum, a bounded
// integer or allowlisted text, and values are joined to their option (`--since=…`) so a value
// can never be read as an option of its own.
import { z } from 'zod';
import { targetsOrAll, timeout, unitName } from './fields.js';
import { execStep, resolveHosts, singleBatchPlan, stepTimeout } from './planning.js';
import { reportHosts, hostReportSchema } from './reports.js';
import { answered, notAll, plural, reportRows, type ResultViewDefinition } from './result-view.js';
import { defineTool } from './types.js';

export const PRIORITIES = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'] as const;

/** journalctl time specs we accept: `-1h`, `-30min`, `2025-01-01`, `2025-01-01 10:00[:00]`, keywords. */
const SINCE =
  /^(-\d{1,6}(s|sec|m|min|h|hour|hours|d|day|days|w|week|weeks)|\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2})?)?|today|yesterday|now)$/;

const journalOutput = hostReportSchema({ lines: z.array(z.string()) });
type JournalData = z.output<typeof journalOutput>;
type JournalHost = JournalData['hosts'][number];

/** Log lines read best as journalctl printed them: a count per host, and the folded output under it. */
const journalView: ResultViewDefinition<JournalData, JournalHost> = {
  output: true,
  columns: [{ label: 'lines', cell: (h) => String(h.lines?.length ?? 0), align: 'right' }],
  rows: (data) => reportRows(data.hosts, (h) => (h.lines !== undefined ? [h] : undefined)),
  summary(data) {
    const up = answered(data.hosts, (h) => h.lines !== undefined);
    const lines = up.reduce((n, h) => n + (h.lines?.length ?? 0), 0);
    if (up.length === 0) return `no host answered (${data.hosts.length} asked)`;
    return `${notAll(up.length, data.hosts.length)}${plural(lines, 'line')} from ${plural(up.length, 'host')}`;
  },
};

export const journal = defineTool({
  name: 'journal',
  title: 'Service journal',
  description:
    'Show the most recent journal lines of a systemd unit on each host (as root, so system units are readable). ' +
    'Mirrors `journalctl -u UNIT -n LINES --since SINCE -p PRIORITY --no-pager -o short-iso`.',
  risk: 'read',
  toolset: 'services',
  idempotent: true,
  input: z
    .object({
      targets: targetsOrAll,
      unit: unitName,
      lines: z.number().int().min(1).max(2000).default(100).describe('How many of the most recent lines to show.'),
      since: z
        .string()
        .max(32)
        .regex(SINCE, { error: 'expected -1h, -30min, -2d, 2025-01-01, "2025-01-01 10:00", today, yesterday or now' })
        .optional()
        .describe('Only lines since this time: relative (`-1h`, `-30min`, `-2d`), a date (`2025-01-01`, `2025-01-01 10:00`) or `today`/`yesterday`.'),
      priority: z.enum(PRIORITIES).optional().describe('Only lines at this syslog priority or more severe.'),
      timeout,
    })
    .strict(),
  output: journalOutput,
  view: journalView,
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    const argv = ['journalctl', `--unit=${input.unit}`, `--lines=${input.lines}`];
    if (input.since !== undefined) argv.push(`--since=${input.since}`);
    if (input.priority !== undefined) argv.push(`--priority=${input.priority}`);
    argv.push('--no-pager', '--output=short-iso');
    return singleBatchPlan('journal', hosts, [
      execStep({ id: 'journal', hosts, argv, asRoot: true, timeoutMs: stepTimeout(ctx, input.timeout) }),
    ]);
  },
  summarize(_input, results) {
    // "-- No entries --" is journalctl talking, not a log line.
    return reportHosts(results, 'journal', (stdout) => ({
      lines: stdout.split('\n').filter((line) => line !== '' && line !== '-- No entries --'),
    }));
  },
});
