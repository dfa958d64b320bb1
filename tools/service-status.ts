// Unit state from `systemctl show` (stable key=value output meant for programs), not from
// `systemctl status`, whose human layout changes between systemd versions.
import { z } from 'zod';
import { targetsOrAll, timeout, unitName } from './fields.js';
import { execStep, resolveHosts, singleBatchPlan, stepTimeout } from './planning.js';
import { OutputFormatError, hostReportSchema, reportHosts } from './reports.js';
import type { ConditionDefinition } from './steps/index.js';
import { defineTool } from './types.js';
import { foldNodeSet } from '../config/nodeset.js';
import { answered, notAll, reportRows, type ResultViewDefinition } from './result-view.js';

/** `active`: the unit is active on the subject host (a gate after a reboot). */
const unitConditions: Readonly<Record<string, ConditionDefinition>> = {
  active: {
    describe: (args, subject) => `${String(args.unit ?? 'the unit')} is active on ${subject ?? 'each host'}`,
    judge(observation, subject) {
      const hosts = (observation.data as { hosts?: Array<{ host: string; status: string; error?: string; active_state?: string; sub_state?: string }> } | undefined)?.hosts ?? [];
      const mine = hosts.find((h) => h.host === subject);
      if (!mine || mine.status !== 'ok') return { state: 'waiting', observed: mine?.error ?? mine?.status ?? 'no answer' };
      return { state: mine.active_state === 'active' ? 'holds' : 'waiting', observed: `${mine.active_state ?? '?'} (${mine.sub_state ?? '?'})` };
    },
  },
};

export const SHOWN_PROPERTIES = [
  'Id',
  'Description',
  'LoadState',
  'ActiveState',
  'SubState',
  'UnitFileState',
  'ActiveEnterTimestamp',
  'StateChangeTimestamp',
  'MainPID',
  'NRestarts',
] as const;

export interface ServiceState {
  unit: string;
  description: string;
  load_state: string;
  active_state: string;
  sub_state: string;
  unit_file_state: string | null;
  /** When it last became active, as systemd prints it ("Mon 2025-01-06 10:00:00 UTC"); null if never. */
  since: string | null;
  main_pid: number | null;
  restarts: number | null;
}

/** Parse `systemctl show` key=value lines. */
export function parseSystemctlShow(stdout: string): ServiceState {
  const props = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) props.set(line.slice(0, eq), line.slice(eq + 1).trim());
  }
  const active = props.get('ActiveState');
  if (active === undefined) throw new OutputFormatError('no ActiveState in systemctl show output');
  const text = (key: string): string | null => {
    const value = props.get(key);
    return value === undefined || value === '' || value === 'n/a' ? null : value;
  };
  const count = (key: string): number | null => {
    const value = text(key);
    const n = value === null ? Number.NaN : Number(value);
    return Number.isInteger(n) ? n : null;
  };
  const pid = count('MainPID');
  return {
    unit: props.get('Id') ?? '',
    description: props.get('Description') ?? '',
    load_state: props.get('LoadState') ?? 'unknown',
    active_state: active,
    sub_state: props.get('SubState') ?? 'unknown',
    unit_file_state: text('UnitFileState'),
    since: text('ActiveEnterTimestamp'),
    // systemd reports MainPID=0 when nothing runs.
    main_pid: pid === 0 ? null : pid,
    restarts: count('NRestarts'),
  };
}

const serviceOutput = hostReportSchema({
    unit: z.string(),
    description: z.string(),
    load_state: z.string(),
    active_state: z.string(),
    sub_state: z.string(),
    unit_file_state: z.string().nullable(),
    since: z.string().nullable(),
    main_pid: z.number().nullable(),
    restarts: z.number().nullable(),
  });
type ServiceData = z.output<typeof serviceOutput>;
type ServiceHost = ServiceData['hosts'][number];

/** systemd's `Mon 2025-01-06 10:00:00 UTC` as `2025-01-06 10:00 UTC`. */
export function sinceText(since: string | null | undefined): string {
  if (!since) return '';
  const m = /(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2})(?::\d{2})?(?: (\S+))?$/.exec(since);
  return m ? `${m[1]} ${m[2]}${m[3] ? ` ${m[3]}` : ''}` : since;
}

/** host · active/sub · since · restarts. */
const serviceView: ResultViewDefinition<ServiceData, ServiceHost> = {
  columns: [
    {
      label: 'state',
      cell: (h) => `${h.active_state ?? '?'}/${h.sub_state ?? '?'}${h.load_state && h.load_state !== 'loaded' ? ` (${h.load_state})` : ''}`,
      tone: (h) => (h.active_state === 'active' ? 'ok' : h.active_state === 'failed' || h.load_state === 'not-found' ? 'bad' : 'warn'),
    },
    { label: 'since', cell: (h) => sinceText(h.since) },
    { label: 'restarts', cell: (h) => (typeof h.restarts === 'number' ? String(h.restarts) : ''), align: 'right', tone: (h) => (h.restarts ? 'warn' : undefined) },
  ],
  rows: (data) => reportRows(data.hosts, (h) => (h.active_state !== undefined ? [h] : undefined)),
  summary(data) {
    const up = answered(data.hosts, (h) => h.active_state !== undefined);
    const unit = up[0]?.unit ?? 'the unit';
    const active = up.filter((h) => h.active_state === 'active');
    const others = up.filter((h) => h.active_state !== 'active');
    if (up.length === 0) return `no host answered (${data.hosts.length} asked)`;
    const not = others.length ? ` (${foldNodeSet(others.map((h) => h.host))}: ${[...new Set(others.map((h) => h.active_state))].join(', ')})` : '';
    return `${notAll(up.length, data.hosts.length)}${unit} active on ${active.length} of ${up.length}${not}`;
  },
};

export const serviceStatus = defineTool({
  name: 'service_status',
  title: 'Service status',
  description:
    'Show whether a systemd unit is loaded and running on each host: active state, sub-state, since when, main PID ' +
    'and restart count. Mirrors `systemctl show UNIT --property=ActiveState,SubState,…` (the data of `systemctl status`).',
  risk: 'read',
  toolset: 'services',
  idempotent: true,
  input: z.object({ targets: targetsOrAll, unit: unitName, timeout }).strict(),
  output: serviceOutput,
  view: serviceView,
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    return singleBatchPlan('service_status', hosts, [
      execStep({
        id: 'show',
        hosts,
        argv: ['systemctl', 'show', `--property=${SHOWN_PROPERTIES.join(',')}`, '--', input.unit],
        asRoot: false,
        timeoutMs: stepTimeout(ctx, input.timeout),
      }),
    ]);
  },
  summarize(_input, results) {
    return reportHosts(results, 'show', parseSystemctlShow);
  },
  conditions: unitConditions,
});
