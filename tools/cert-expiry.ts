// Certificate expiry. The paths travel as positional arguments of a constant script ("$@"),
// never inside it, and one line comes back per path in input order, so a missing file is a
// per-path error instead of hiding the other certificates.
import { z } from 'zod';
import { absolutePath, targetsOrAll, timeout } from './fields.js';
import { execStep, resolveHosts, showArgv, singleBatchPlan, stepTimeout } from './planning.js';
import { OutputFormatError, hostReportSchema, reportHosts } from './reports.js';
import { answered, notAll, plural, reportRows, type ResultViewDefinition } from './result-view.js';
import { defineTool } from './types.js';

export const CERT_SCRIPT = [
  'for path in "$@"; do',
  // A FIFO or a device (/dev/zero) would hold the read forever: regular files only.
  '  if [ ! -f "$path" ]; then',
  `    printf 'error\\t%s\\n' 'not a regular file'`,
  // RFC 2253 names escape control characters, so the subject stays on its line.
  '  elif out=$(openssl x509 -enddate -subject -nameopt RFC2253 -noout -in "$path" 2>&1 </dev/null); then',
  `    printf 'ok\\t%s\\n' "$(printf '%s' "$out" | tr '\\n' '\\t')"`,
  '  else',
  `    printf 'error\\t%s\\n' "$(printf '%s\\n' "$out" | head -n 1)"`,
  '  fi',
  'done',
].join('\n');

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAY_MS = 86_400_000;

/** `notAfter=Jan  1 00:00:00 2026 GMT` → Date. */
export function parseNotAfter(text: string): Date {
  const match = /^notAfter=(\w{3})\s+(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4}) GMT$/.exec(text.trim());
  const month = match ? MONTHS.indexOf(match[1] ?? '') : -1;
  if (!match || month < 0) throw new OutputFormatError(`not an openssl notAfter line: '${text.slice(0, 80)}'`);
  const [, , day, hh, mm, ss, year] = match.map(Number);
  return new Date(Date.UTC(year ?? 0, month, day, hh, mm, ss));
}

export interface CertificateExpiry {
  path: string;
  /** The certificate's subject (RFC 2253: `CN=apiserver,O=kubernetes`), when openssl printed it. */
  subject?: string;
  not_after: string | null;
  days_left: number | null;
  expired: boolean | null;
  /** Expires within `warn_days` (or already expired). */
  warning: boolean | null;
  error?: string;
}

/** One output line per path; `now` is when the check ran. */
export function parseCertLines(stdout: string, paths: readonly string[], now: Date, warnDays: number): CertificateExpiry[] {
  const lines = stdout.split('\n').filter((line) => line !== '');
  if (lines.length !== paths.length) throw new OutputFormatError(`expected ${paths.length} lines, got ${lines.length}`);
  return paths.map((path, i) => {
    const line = lines[i] ?? '';
    const tab = line.indexOf('\t');
    const [status, text] = [line.slice(0, tab), line.slice(tab + 1)];
    if (status !== 'ok') return { path, not_after: null, days_left: null, expired: null, warning: null, error: text || 'unreadable' };
    const fields = text.split('\t');
    const notAfter = parseNotAfter(fields.find((f) => f.startsWith('notAfter=')) ?? text);
    const subject = fields.find((f) => f.startsWith('subject='))?.slice('subject='.length).trim();
    const daysLeft = Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS);
    const expired = notAfter.getTime() <= now.getTime();
    return { path, ...(subject ? { subject } : {}), not_after: notAfter.toISOString(), days_left: daysLeft, expired, warning: expired || daysLeft < warnDays };
  });
}

const certOutput = hostReportSchema({
    certificates: z.array(
      z.object({
        path: z.string(),
        subject: z.string().optional(),
        not_after: z.string().nullable(),
        days_left: z.number().nullable(),
        expired: z.boolean().nullable(),
        warning: z.boolean().nullable(),
        error: z.string().optional(),
      }),
    ),
  });
type CertData = z.output<typeof certOutput>;

/** host · path · subject · days left (warned within warn_days) · expiry date. */
const certView: ResultViewDefinition<CertData, CertificateExpiry> = {
  columns: [
    { label: 'path', cell: (c) => c.path },
    { label: 'subject', cell: (c) => c.subject ?? '' },
    {
      label: 'days left',
      cell: (c) => (c.error !== undefined ? `unreadable: ${c.error}` : c.expired ? `expired ${-(c.days_left ?? 0)} days ago` : String(c.days_left ?? '')),
      align: 'right',
      tone: (c) => (c.error !== undefined || c.expired ? 'bad' : c.warning ? 'warn' : 'ok'),
    },
    { label: 'expires', cell: (c) => (c.not_after ? c.not_after.slice(0, 10) : '') },
  ],
  rows: (data) => reportRows(data.hosts, (h) => h.certificates),
  summary(data) {
    const up = answered(data.hosts, (h) => h.certificates !== undefined);
    if (up.length === 0) return `no host answered (${data.hosts.length} asked)`;
    const all = up.flatMap((h) => (h.certificates ?? []).map((c) => ({ host: h.host, c })));
    const dated = all.filter((x) => x.c.days_left !== null).sort((a, b) => (a.c.days_left ?? 0) - (b.c.days_left ?? 0));
    const soonest = dated[0];
    const warned = all.filter((x) => x.c.warning === true).length;
    const unreadable = all.filter((x) => x.c.error !== undefined).length;
    return [
      `${notAll(up.length, data.hosts.length)}${plural(all.length, 'certificate')}`,
      ...(soonest ? [`soonest ${soonest.c.path} on ${soonest.host} in ${plural(soonest.c.days_left ?? 0, 'day')}`] : []),
      ...(warned ? [`${warned} expire soon or expired`] : []),
      ...(unreadable ? [`${unreadable} unreadable`] : []),
    ].join('; ');
  },
};

export const certExpiry = defineTool({
  name: 'cert_expiry',
  title: 'Certificate expiry',
  description:
    'Show when X.509 certificates on each host expire, the days left, and whether that is within `warn_days`. ' +
    'Mirrors `openssl x509 -enddate -noout -in PATH`.',
  risk: 'read',
  toolset: 'health',
  idempotent: true,
  input: z
    .object({
      targets: targetsOrAll,
      paths: z
        .array(absolutePath.describe('Absolute path of a PEM certificate.'))
        .min(1)
        .max(32)
        .describe('Certificate files to check, e.g. `/etc/kubernetes/pki/apiserver.crt`.'),
      warn_days: z.number().int().min(0).max(3650).default(30).describe('Flag certificates expiring within this many days.'),
      as_root: z.boolean().default(false).describe('Read the files through `sudo -n` (for root-only directories).'),
      timeout,
    })
    .strict(),
  output: certOutput,
  view: certView,
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    return singleBatchPlan('cert_expiry', hosts, [
      execStep({
        id: 'certs',
        hosts,
        // `sh -c SCRIPT NAME ARGS…`: the paths become "$@" and are never parsed as shell text.
        argv: ['/bin/sh', '-c', CERT_SCRIPT, 'cert_expiry', ...input.paths],
        asRoot: input.as_root,
        timeoutMs: stepTimeout(ctx, input.timeout),
        description: `${input.as_root ? 'sudo ' : ''}openssl x509 -enddate -noout -in ${showArgv(input.paths)}`,
      }),
    ]);
  },
  summarize(input, results) {
    return reportHosts(results, 'certs', (stdout, result) => ({
      certificates: parseCertLines(stdout, input.paths, new Date(result.startedAt), input.warn_days),
    }));
  },
});
