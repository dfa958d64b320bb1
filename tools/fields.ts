// Schema pieces shared by every tool, so a unit name or a target expression is checked the
// same way everywhere. Each piece refuses what could turn into an injected option or a second
// command: argv is never a shell string, but a value starting with `-` in an option position
// would still be read as an option by the remote program.
import { z } from 'zod';
import type { BatchSize } from './host-result.js';

/** No NUL (cannot travel in argv) and no newline (would read as a second line in logs/approvals). */
const NO_CONTROL_LINE = /^[^\0\r\n]*$/;

export const targets = z
  .string()
  .min(1, { error: 'must not be empty' })
  .max(1024)
  .regex(/^[A-Za-z0-9._\-[\],&!=@() ]+$/, {
    error: 'may contain only letters, digits, spaces and . _ - [ ] , & ! = @ ( )',
  })
  // Same rules as config/targets.ts checkTargetCharacters (which the resolver applies again);
  // kept as plain string checks here so MCP clients see the bounds in the JSON Schema.
  .refine((s) => s.trim() !== '', { error: 'must not be blank' })
  .refine((s) => !s.trimStart().startsWith('-'), { error: 'must not start with "-"' })
  .describe(
    'Target expression: host names, group names, `all`, node sets like `node[01-09]`, labels like ' +
      '`role=storage`; combine with `,` (union), `&` (intersection) and `!` (difference).',
  );

/** Read tools look at the whole cluster when no targets are given, like the operators' CLI. */
export const targetsOrAll = targets.default('all');

export const unitName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9@:._\\-]+$/, { error: 'may contain only letters, digits and @ : . _ \\ -' })
  .refine((s) => !s.startsWith('-'), { error: 'must not start with "-"' })
  .describe('systemd unit name, e.g. `nginx.service` or `wg-quick@wg0` (a missing suffix means .service).');

export const absolutePath = z
  .string()
  .max(4096)
  .regex(/^\//, { error: 'must be an absolute path (start with "/")' })
  .regex(NO_CONTROL_LINE, { error: 'must not contain NUL or newline characters' })
  .refine((p) => !p.split('/').includes('..'), { error: 'must not contain a ".." segment' });

/** RFC 1123 subdomain, which is what Kubernetes accepts as a node name. */
export const k8sNodeName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, {
    error: 'must be a Kubernetes node name (lowercase letters, digits, "-" and ".", RFC 1123)',
  })
  .describe('Kubernetes node name as shown by `kubectl get nodes`.');

/** A plain argument carried as one argv element: anything but NUL (argv cannot hold it). */
export const argvElement = z
  .string()
  .max(4096)
  .refine((s) => !s.includes('\0'), { error: 'must not contain a NUL character' });

const DURATION_UNITS_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
export const DURATION_PATTERN = /^(\d{1,7})(ms|s|m|h)$/;
const DURATION = DURATION_PATTERN;

/** Parse `30s`, `5m`, `2h`, `500ms` into milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text);
  if (!match) return undefined;
  const unit = match[2] as keyof typeof DURATION_UNITS_MS;
  return Number(match[1]) * DURATION_UNITS_MS[unit];
}

/** Show milliseconds the way an operator would type them back. */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** A duration typed as text (`30s`, `5m`) and handed to plans in milliseconds, within bounds. */
export function duration(bounds: { minMs: number; maxMs: number }) {
  const range = `between ${formatDuration(bounds.minMs)} and ${formatDuration(bounds.maxMs)}`;
  return z
    .string()
    .regex(DURATION, { error: 'expected a duration like 30s, 5m, 2h or 500ms' })
    .transform((text) => parseDuration(text) ?? Number.NaN)
    .pipe(
      z
        .number()
        .min(bounds.minMs, { error: `must be ${range}` })
        .max(bounds.maxMs, { error: `must be ${range}` }),
    );
}

/** Per-step command timeout; the configured default applies when absent. */
export const timeout = duration({ minMs: 1000, maxMs: 24 * 3_600_000 })
  .optional()
  .describe('Per-host command timeout, e.g. `30s` or `10m` (1s to 24h). Defaults to the configured command timeout.');

const BATCH_SIZE_TEXT = /^(\d{1,6}|\d{1,3}%)$/;
const FILE_MODE = /^0?[0-7]{3,4}$/;

/** Octal file mode as typed (`0644`), for upload modes. */
export const fileMode = z.string().regex(FILE_MODE, { error: 'expected an octal file mode like 0644 or 755' });

/** How help and errors name a pattern-checked text parameter (keyed by regex source). */
export const PATTERN_WORDS: Readonly<Record<string, string>> = {
  [DURATION_PATTERN.source]: 'a duration like 30s, 5m or 2h',
  [BATCH_SIZE_TEXT.source]: 'a percentage like 25%',
  [FILE_MODE.source]: 'an octal file mode like 0644',
};

/** Hosts per rolling batch: a count (`2`) or a share of the hosts (`25%`). */
export const batchSize = z
  .union([
    z.number().int().min(1).max(100_000),
    z.string().regex(BATCH_SIZE_TEXT, { error: 'expected a host count like 2 or a percentage like 25%' }),
  ])
  .transform((value, ctx): BatchSize => {
    if (typeof value === 'number') return value;
    const n = Number.parseInt(value, 10);
    const percent = value.endsWith('%');
    if (n < 1 || (percent && n > 100)) {
      ctx.addIssue({ code: 'custom', message: 'expected a host count from 1 or a percentage from 1% to 100%' });
      return z.NEVER;
    }
    return percent ? (`${n}%` as const) : n;
  })
  .describe('Hosts per rolling batch: a count like `2` or a percentage of the targets like `25%`.');

export const failureBudget = z
  .number()
  .int()
  .min(0)
  .max(100_000)
  .describe('Failed hosts tolerated over the whole run before later batches are skipped.');

export const asRoot = z.boolean().default(false).describe('Run through `sudo -n` (non-interactive sudo).');
