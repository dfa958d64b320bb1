// Load, memory, root disk and CPU temperature in one round trip. The script is a constant:
// no input is ever placed in it. Each line is tagged so the parser does not depend on order,
// and hosts without thermal zones (VMs, some x86 boards) simply report no temperature.
import { z } from 'zod';
import { targetsOrAll, timeout } from './fields.js';
import { execStep, resolveHosts, singleBatchPlan, stepTimeout } from './planning.js';
import { OutputFormatError, hostReportSchema, reportHosts } from './reports.js';
import { defineTool } from './types.js';
import { loadSchema, loadText, parseLoadavg } from './uptime.js';
import { answered, bytesOf, largest, notAll, percentText, reportRows, toneAbove, type ResultViewDefinition } from './result-view.js';
import type { LoadAverage } from './uptime.js';

export const RESOURCE_SCRIPT = [
  'echo "loadavg $(cat /proc/loadavg)"',
  'echo "cpus $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 0)"',
  "grep -E '^(MemTotal|MemAvailable|SwapTotal|SwapFree):' /proc/meminfo | sed 's/^/mem /'",
  'echo "rootfs $(df -Pk / | tail -n 1)"',
  'for zone in /sys/class/thermal/thermal_zone*; do',
  '  [ -r "$zone/temp" ] && echo "thermal $(cat "$zone/type" 2>/dev/null || echo unknown) $(cat "$zone/temp")"',
  'done',
  'exit 0',
].join('\n');

export interface ResourceUsage {
  load: LoadAverage;
  cpus: number;
  memory: { total_bytes: number; available_bytes: number; used_percent: number };
  swap: { total_bytes: number; free_bytes: number };
  root_disk: { size_bytes: number; used_bytes: number; available_bytes: number; used_percent: number };
  /** Hottest thermal zone in °C, null when the host exposes none. */
  cpu_temperature_c: number | null;
  thermal_zones: { zone: string; celsius: number }[];
}

function kibToBytes(value: string | undefined): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new OutputFormatError(`expected a number of KiB, got '${value}'`);
  return n * 1024;
}

export function parseResourceUsage(stdout: string): ResourceUsage {
  let load: LoadAverage | undefined;
  let cpus = 0;
  const mem = new Map<string, number>();
  let rootDisk: ResourceUsage['root_disk'] | undefined;
  const zones: ResourceUsage['thermal_zones'] = [];
  for (const line of stdout.split('\n')) {
    const [tag, ...rest] = line.trim().split(/\s+/);
    if (tag === 'loadavg') load = parseLoadavg(rest.join(' '));
    else if (tag === 'cpus') cpus = Number(rest[0]) || 0;
    else if (tag === 'mem' && rest[0]) mem.set(rest[0].replace(/:$/, ''), kibToBytes(rest[1]));
    else if (tag === 'rootfs') {
      // df -Pk: Filesystem 1024-blocks Used Available Capacity Mounted-on
      const [, size, used, available] = rest;
      const sizeBytes = kibToBytes(size);
      const usedBytes = kibToBytes(used);
      rootDisk = {
        size_bytes: sizeBytes,
        used_bytes: usedBytes,
        available_bytes: kibToBytes(available),
        used_percent: sizeBytes > 0 ? round1((usedBytes / sizeBytes) * 100) : 0,
      };
    } else if (tag === 'thermal' && rest.length >= 2) {
      const milli = Number(rest[rest.length - 1]);
      if (Number.isFinite(milli)) zones.push({ zone: rest.slice(0, -1).join(' '), celsius: round1(milli / 1000) });
    }
  }
  if (!load) throw new OutputFormatError('no load average line');
  const total = mem.get('MemTotal');
  const available = mem.get('MemAvailable');
  if (total === undefined || available === undefined) throw new OutputFormatError('no MemTotal/MemAvailable in /proc/meminfo');
  if (!rootDisk) throw new OutputFormatError('no root filesystem line from df');
  return {
    load,
    cpus,
    memory: { total_bytes: total, available_bytes: available, used_percent: total > 0 ? round1(((total - available) / total) * 100) : 0 },
    swap: { total_bytes: mem.get('SwapTotal') ?? 0, free_bytes: mem.get('SwapFree') ?? 0 },
    root_disk: rootDisk,
    cpu_temperature_c: zones.length > 0 ? Math.max(...zones.map((z) => z.celsius)) : null,
    thermal_zones: zones,
  };
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

const resourceOutput = hostReportSchema({
    load: loadSchema,
    cpus: z.number(),
    memory: z.object({ total_bytes: z.number(), available_bytes: z.number(), used_percent: z.number() }),
    swap: z.object({ total_bytes: z.number(), free_bytes: z.number() }),
    root_disk: z.object({ size_bytes: z.number(), used_bytes: z.number(), available_bytes: z.number(), used_percent: z.number() }),
    cpu_temperature_c: z.number().nullable(),
    thermal_zones: z.array(z.object({ zone: z.string(), celsius: z.number() })),
  });
type ResourceData = z.output<typeof resourceOutput>;
type ResourceHost = ResourceData['hosts'][number];

/** host · load · memory `3.1/7.6 GiB (41 %)` · root disk `18 %` · temp `52 °C`. */
const resourceView: ResultViewDefinition<ResourceData, ResourceHost> = {
  columns: [
    { label: 'load', cell: (h) => loadText(h.load) },
    { label: 'cpus', cell: (h) => (h.cpus ? String(h.cpus) : ''), align: 'right' },
    {
      label: 'memory',
      cell: (h) => (h.memory ? `${bytesOf(h.memory.total_bytes - h.memory.available_bytes, h.memory.total_bytes)} (${percentText(h.memory.used_percent)})` : ''),
      align: 'right',
      tone: (h) => toneAbove(h.memory?.used_percent, 80, 90),
    },
    { label: 'root disk', cell: (h) => (h.root_disk ? percentText(h.root_disk.used_percent) : ''), align: 'right', tone: (h) => toneAbove(h.root_disk?.used_percent, 80, 90) },
    { label: 'temp', cell: (h) => (typeof h.cpu_temperature_c === 'number' ? `${Math.round(h.cpu_temperature_c)} °C` : ''), align: 'right', tone: (h) => toneAbove(h.cpu_temperature_c, 70, 80) },
  ],
  rows: (data) => reportRows(data.hosts, (h) => (h.memory !== undefined ? [h] : undefined)),
  summary(data) {
    const up = answered(data.hosts, (h) => h.memory !== undefined);
    const memory = largest(up, (h) => h.memory?.used_percent);
    const disk = largest(up, (h) => h.root_disk?.used_percent);
    const hot = largest(up, (h) => h.cpu_temperature_c);
    if (!memory) return `no host answered (${data.hosts.length} asked)`;
    const parts = [`memory ${percentText(memory.memory?.used_percent ?? 0)} (${memory.host})`];
    if (disk?.root_disk) parts.push(`root disk ${percentText(disk.root_disk.used_percent)} (${disk.host})`);
    if (typeof hot?.cpu_temperature_c === 'number') parts.push(`${Math.round(hot.cpu_temperature_c)} °C (${hot.host})`);
    return `${notAll(up.length, data.hosts.length)}highest: ${parts.join(', ')}`;
  },
};

export const resourceUsage = defineTool({
  name: 'resource_usage',
  title: 'Resource usage',
  description:
    'Show load averages, CPU count, memory and swap (/proc/meminfo), root filesystem usage (`df -Pk /`) and CPU ' +
    'temperature (/sys/class/thermal, where present) for each host. Mirrors `uptime; free; df -h /; vcgencmd measure_temp`.',
  risk: 'read',
  toolset: 'health',
  idempotent: true,
  input: z.object({ targets: targetsOrAll, timeout }).strict(),
  output: resourceOutput,
  view: resourceView,
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    return singleBatchPlan('resource_usage', hosts, [
      execStep({
        id: 'resources',
        hosts,
        argv: ['/bin/sh', '-c', RESOURCE_SCRIPT],
        asRoot: false,
        timeoutMs: stepTimeout(ctx, input.timeout),
        description: 'read /proc/loadavg, /proc/meminfo, df -Pk /, /sys/class/thermal',
      }),
    ]);
  },
  summarize(_input, results) {
    return reportHosts(results, 'resources', parseResourceUsage);
  },
});
