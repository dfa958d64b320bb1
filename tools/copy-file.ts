// File transfer in three directions. Remote paths are absolute and `..`-free; local paths
// (on the Castellan server) must resolve under ctx.localRoot, so a caller can neither read
// server secrets nor write outside the drop directory. The check here is lexical (plan() does
// no I/O); the executor (src/ssh/plan-executor.ts) checks again after realpath, before it
// creates any directory, and `<destination>/<host>` once it exists. Only regular files are
// copied, and setuid/setgid/sticky bits are dropped unless an upload asks for them by `mode`.
import path from 'node:path';
import { z } from 'zod';
import { absolutePath, fileMode, targets, timeout } from './fields.js';
import { resolveHosts } from './planning.js';
import { ToolInputError, defineTool } from './types.js';
import type { PlanContext, PlanStep } from './types.js';

export const DIRECTIONS = ['upload', 'download', 'relay'] as const;

const pathText = z
  .string()
  .min(1)
  .max(4096)
  .regex(/^[^\0\r\n]*$/, { error: 'must not contain NUL or newline characters' });

/** A local path named by a caller, resolved under `root`; throws a field-named error outside it. */
export function localPathUnder(root: string, requested: string, field: string, allowRoot: boolean): string {
  const base = path.resolve(root);
  const resolved = path.resolve(base, requested);
  const relative = path.relative(base, resolved);
  const outside = relative.startsWith('..') || path.isAbsolute(relative);
  if (outside || (relative === '' && !allowRoot)) {
    throw new ToolInputError(field, `'${requested}' must be a path inside the local transfer directory ${base}`);
  }
  return resolved;
}

function remoteCheck(value: string, field: string, ctx: z.RefinementCtx): void {
  const result = absolutePath.safeParse(value);
  if (!result.success) {
    for (const issue of result.error.issues) ctx.addIssue({ code: 'custom', path: [field], message: `remote path ${issue.message}` });
  }
}

export const copyFile = defineTool({
  name: 'copy_file',
  title: 'Copy a file',
  description:
    'Copy one file: `upload` from the Castellan server\'s transfer directory to each host, `download` from each host ' +
    'into `<destination>/<host>/` on the server, or `relay` from one host (`from_host`) to each host. Mirrors `scp`.',
  // Writes any file on the hosts (an upload to /etc/sudoers, a relay over a binary): that can
  // run arbitrary code, so it waits for approval like exec (policy.tool_risk can lower it).
  risk: 'destructive',
  toolset: 'files',
  idempotent: true,
  input: z
    .object({
      targets: targets.describe('Hosts to copy to (upload, relay) or from (download); a target expression.'),
      direction: z.enum(DIRECTIONS).describe('`upload` server → hosts, `download` hosts → server, `relay` one host → hosts.'),
      source: pathText.describe(
        'upload: file in the server transfer directory (relative, or absolute inside it); download and relay: absolute path on the source host(s).',
      ),
      destination: pathText.describe(
        'upload and relay: absolute path on each host; download: directory in the server transfer directory (files land in `<destination>/<host>/`).',
      ),
      from_host: targets.optional().describe('relay only: the host to copy from (a target expression matching exactly one host).'),
      mode: fileMode
        .optional()
        .describe('upload only: file mode to set, in octal like `0644`.'),
      timeout,
    })
    .strict()
    .superRefine((input, ctx) => {
      if (input.direction !== 'upload') remoteCheck(input.source, 'source', ctx);
      if (input.direction !== 'download') remoteCheck(input.destination, 'destination', ctx);
      if ((input.direction === 'relay') !== (input.from_host !== undefined)) {
        ctx.addIssue({ code: 'custom', path: ['from_host'], message: 'is required for relay and only allowed for relay' });
      }
      if (input.mode !== undefined && input.direction !== 'upload') {
        ctx.addIssue({ code: 'custom', path: ['mode'], message: 'is only allowed for upload' });
      }
    }),
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    const timeoutMs = input.timeout ?? ctx.defaults.commandTimeoutMs;
    const step = copyStep(input, hosts, ctx, timeoutMs);
    const { action } = step;
    // The relay source is touched too (read), so it belongs in locks, approvals and audit.
    const touched = action.kind === 'relay' ? [action.fromHost, ...step.hosts] : hosts;
    // A setuid/setgid/sticky mode hands out privileges: destructive whatever policy.tool_risk
    // lowered copy_file to. (Copies never carry those bits from the source file's own mode.)
    const special = action.kind === 'upload' && action.mode !== undefined && (action.mode & 0o7000) !== 0;
    return { tool: 'copy_file', hosts: touched, batches: [{ steps: [step] }], failureBudget: hosts.length, ...(special ? { risk: 'destructive' as const } : {}) };
  },
});

type CopyInput = z.output<typeof copyFile.input>;

function copyStep(input: CopyInput, hosts: string[], ctx: PlanContext, timeoutMs: number): PlanStep {
  switch (input.direction) {
    case 'upload': {
      const localPath = localPathUnder(ctx.localRoot, input.source, 'source', false);
      const mode = input.mode === undefined ? undefined : Number.parseInt(input.mode, 8);
      return {
        id: 'upload',
        description: `upload ${localPath} → ${input.destination}${input.mode ? ` (mode ${input.mode})` : ''}`,
        hosts,
        action: { kind: 'upload', localPath, remotePath: input.destination, mode },
        timeoutMs,
      };
    }
    case 'download': {
      const localDir = localPathUnder(ctx.localRoot, input.destination, 'destination', true);
      return {
        id: 'download',
        description: `download ${input.source} → ${localDir}/<host>/`,
        hosts,
        action: { kind: 'download', remotePath: input.source, localDir },
        timeoutMs,
      };
    }
    case 'relay': {
      const sources = resolveHosts(ctx, input.from_host ?? '', 'from_host');
      const [fromHost] = sources;
      if (sources.length !== 1 || fromHost === undefined) {
        throw new ToolInputError('from_host', `must match exactly one host, matched ${sources.length}`);
      }
      const destinations = hosts.filter((h) => h !== fromHost);
      if (destinations.length === 0) throw new ToolInputError('targets', `no destination hosts besides the source ${fromHost}`);
      return {
        id: 'relay',
        description: `relay ${fromHost}:${input.source} → ${input.destination}`,
        hosts: destinations,
        action: { kind: 'relay', fromHost, remotePath: input.source, destPath: input.destination },
        timeoutMs,
      };
    }
  }
}
