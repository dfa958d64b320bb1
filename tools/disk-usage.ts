// Filesystem usage from POSIX-format df, whose columns are fixed; pseudo filesystems are left
// out by default because operators ask "which disk is full", not "how big is /dev/shm".
import { z } from 'zod';
import { absolutePath, targetsOrAll, timeout } from './fields.js';
import { execStep, resolveHosts, singleBatchPlan, stepTimeout } from './planning.js';
import { OutputFormatError, hostReportSchema, reportHosts } from './reports.js';
import { defineTool } from './types.js';
import { answered, dfSize, largest, notAll, percentText, plural, reportRows, toneAbove, type ResultViewDefinition } from './result-view.js';

export const PSEUDO_FILESYSTEMS = new Set(['tmpfs', 'devtmpfs', 'squashfs', 'overlay', 'efivarfs', 'ramfs']);

export interface Filesystem {
  filesystem: string;
  type: string;
  size_bytes: number;
  used_bytes: number;
  available_bytes: number;
  used_percent: number;
  mounted_on: string;
}

/** `df -PTk`: Filesystem Type 1024-blocks Used Available Capacity Mounted-on (mount may hold spaces). */
export function parseDf(stdout: string): Filesystem[] {
  const lines = stdout.split('\n').filter((line) => line.trim() !== '');
  if (lines.length === 0 || !/^Filesystem\s+Type/.test(lines[0] ?? '')) throw new OutputFormatError('missing df -PT header');
  return lines.slice(1).map((line) => {
    const match = /^(\S+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)%\s+(.+)$/.exec(line);
    if (!match) throw new OutputFormatError(`not a df -PT line: '${line.slice(0, 80)}'`);
    const [, filesystem = '', type = '', size, used, available, percent, mount = ''] = match;
    return {
      filesystem,
      type,
      size_bytes: Number(size) * 1024,
      used_bytes: Number(used) * 1024,
      available_bytes: Number(available) * 1024,
      used_percent: Number(percent),
      mounted_on: mount,
    };
  });
}

const diskOutput = hostReportSchema({
    filesystems: z.array(
      z.object({
        filesystem: z.string(),
        type: z.string(),
        size_bytes: z.number(),
        used_bytes: z.number(),
        available_bytes: z.number(),
        used_percent: z.number(),
        mounted_on: z.string(),
      }),
    ),
  });
type DiskData = z.output<typeof diskOutput>;

/** One row per host and filesystem, as `df -h` prints them; alike hosts fold. */
const diskView: ResultViewDefinition<DiskData, Filesystem> = {
  columns: [
    { label: 'mounted on', cell: (f) => f.mounted_on },
    { label: 'size', cell: (f) => dfSize(f.size_bytes), align: 'right' },
    { label: 'used', cell: (f) => dfSize(f.used_bytes), align: 'right' },
    { label: 'avail', cell: (f) => dfSize(f.available_bytes), align: 'right' },
    { label: 'use%', cell: (f) => percentText(f.used_percent), align: 'right', tone: (f) => toneAbove(f.used_percent, 80, 90) },
    { label: 'filesystem', cell: (f) => `${f.filesystem} (${f.type})` },
  ],
  rows: (data) => reportRows(data.hosts, (h) => h.filesystems),
  summary(data) {
    const up = answered(data.hosts, (h) => h.filesystems !== undefined);
    const all = up.flatMap((h) => (h.filesystems ?? []).map((f) => ({ host: h.host, f })));
    const fullest = largest(all, (x) => x.f.used_percent);
    if (!fullest) return up.length ? 'no filesystems to show' : `no host answered (${data.hosts.length} asked)`;
    const high = all.filter((x) => x.f.used_percent >= 80).length;
    return `${notAll(up.length, data.hosts.length)}fullest: ${fullest.f.mounted_on} on ${fullest.host} at ${percentText(fullest.f.used_percent)}${high ? `; ${plural(high, 'filesystem')} at 80 % or more` : ''}`;
  },
};

export const diskUsage = defineTool({
  name: 'disk_usage',
  title: 'Disk usage',
  description:
    'Show size, used and available space of each mounted filesystem on each host, or only of the filesystems ' +
    'holding the given paths. Mirrors `df -PT [PATH…]`.',
  risk: 'read',
  toolset: 'health',
  idempotent: true,
  input: z
    .object({
      targets: targetsOrAll,
      paths: z
        .array(absolutePath.describe('Absolute path.'))
        .max(32)
        .optional()
        .describe('Only the filesystems holding these paths (e.g. `/`, `/var/lib/rancher`).'),
      include_pseudo: z
        .boolean()
        .default(false)
        .describe('Also show tmpfs, devtmpfs, squashfs and overlay filesystems.'),
      timeout,
    })
    .strict(),
  output: diskOutput,
  view: diskView,
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    return singleBatchPlan('disk_usage', hosts, [
      execStep({ id: 'df', hosts, argv: ['df', '-PTk', '--', ...(input.paths ?? [])], asRoot: false, timeoutMs: stepTimeout(ctx, input.timeout) }),
    ]);
  },
  summarize(input, results) {
    return reportHosts(results, 'df', (stdout) => ({
      filesystems: parseDf(stdout).filter((fs) => input.include_pseudo || !PSEUDO_FILESYSTEMS.has(fs.type)),
    }));
  },
});
