// Uptime and load from /proc, read directly so the output format does not depend on the
// distribution's `uptime` binary or locale.
import { z } from 'zod';
import { targetsOrAll, timeout } from './fields.js';
import { execStep, resolveHosts, singleBatchPlan, stepTimeout } from './planning.js';
import { OutputFormatError, hostReportSchema, humanSeconds, reportHosts } from './reports.js';
import { defineTool } from './types.js';
import { ageText, answered, largest, notAll, reportRows, type ResultViewDefinition } from './result-view.js';

export interface LoadAverage {
  one: number;
  five: number;
  fifteen: number;
}

/** `/proc/loadavg`: "0.52 0.58 0.59 1/389 12345". */
export function parseLoadavg(line: string): LoadAverage {
  const [one, five, fifteen] = line.trim().split(/\s+/).map(Number);
  if (one === undefined || five === undefined || fifteen === undefined || [one, five, fifteen].some(Number.isNaN)) {
    throw new OutputFormatError(`not a /proc/loadavg line: '${line.slice(0, 80)}'`);
  }
  return { one, five, fifteen };
}

/** `cat /proc/uptime /proc/loadavg` output. */
export function parseUptime(stdout: string): { uptime_seconds: number; uptime: string; load: LoadAverage } {
  const [uptimeLine = '', loadLine = ''] = stdout.trim().split('\n');
  const seconds = Number(uptimeLine.trim().split(/\s+/)[0]);
  if (!Number.isFinite(seconds)) throw new OutputFormatError(`not a /proc/uptime line: '${uptimeLine.slice(0, 80)}'`);
  return { uptime_seconds: Math.floor(seconds), uptime: humanSeconds(seconds), load: parseLoadavg(loadLine) };
}

export const loadSchema = z.object({ one: z.number(), five: z.number(), fifteen: z.number() });

const uptimeOutput = hostReportSchema({ uptime_seconds: z.number(), uptime: z.string(), load: loadSchema });
type UptimeData = z.output<typeof uptimeOutput>;
type UptimeHost = UptimeData['hosts'][number];

/** `0.42 0.38 0.30`, as `uptime` prints it. */
export function loadText(load: LoadAverage | undefined): string {
  return load ? [load.one, load.five, load.fifteen].map((n) => n.toFixed(2)).join(' ') : '';
}

/** host · up `3d 4h` · load `0.42 0.38 0.30`. */
const uptimeView: ResultViewDefinition<UptimeData, UptimeHost> = {
  columns: [
    { label: 'up', cell: (h) => (h.uptime_seconds !== undefined ? ageText(h.uptime_seconds) : ''), align: 'right' },
    { label: 'load', cell: (h) => loadText(h.load) },
  ],
  rows: (data) => reportRows(data.hosts, (h) => (h.uptime_seconds !== undefined ? [h] : undefined)),
  summary(data) {
    const up = answered(data.hosts, (h) => h.uptime_seconds !== undefined);
    const least = largest(up, (h) => -(h.uptime_seconds ?? 0));
    const busiest = largest(up, (h) => h.load?.one);
    if (!least || !busiest) return `no host answered (${data.hosts.length} asked)`;
    return `${notAll(up.length, data.hosts.length)}shortest up ${ageText(least.uptime_seconds ?? 0)} (${least.host}); highest load ${busiest.load?.one.toFixed(2) ?? '?'} (${busiest.host})`;
  },
};

export const uptime = defineTool({
  name: 'uptime',
  title: 'Uptime and load',
  description:
    'Show how long each host has been up and its 1/5/15-minute load averages, read from /proc/uptime and ' +
    '/proc/loadavg. Mirrors `uptime`.',
  risk: 'read',
  toolset: 'health',
  idempotent: true,
  input: z.object({ targets: targetsOrAll, timeout }).strict(),
  output: uptimeOutput,
  view: uptimeView,
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    return singleBatchPlan('uptime', hosts, [
      execStep({ id: 'uptime', hosts, argv: ['cat', '/proc/uptime', '/proc/loadavg'], asRoot: false, timeoutMs: stepTimeout(ctx, input.timeout) }),
    ]);
  },
  summarize(_input, results) {
    return reportHosts(results, 'uptime', parseUptime);
  },
});
