// Arbitrary commands, in the four shapes operators already use: an exact argv, one shell
// line (`exec`), a script on stdin (`heredoc`) and several lines in order (`pipe`/`batch`).
// A shell line is the operator's own text passed intact as ONE argument of `sh -c`; Castellan
// never splices it into a larger string.
import { z } from 'zod';
import { argvElement, asRoot, targets, timeout } from './fields.js';
import { execStep, resolveHosts, singleBatchPlan, stepTimeout } from './planning.js';
import { scriptText } from './run-script.js';
import { ToolInputError, defineTool } from './types.js';
import type { PlanStep } from './types.js';

// One line of shell; blank lines are allowed in `lines` (dropped there), not as `command`.
const shellLine = z
  .string()
  .max(16 * 1024)
  .regex(/^[^\0\r\n]*$/, { error: 'must be one line without NUL (use `script` or `lines` for several)' })
  // `sh -c -x…` would read the line as shell options, not as the command.
  .refine((line) => !line.trimStart().startsWith('-'), { error: 'must not start with "-"' });
const commandLine = shellLine.min(1, { error: 'must not be empty' });

const FORMS = ['argv', 'command', 'script', 'lines'] as const;

/** `pipe`/`batch` semantics: blank lines and `#` comments are not commands. */
export function commandLines(lines: readonly string[]): string[] {
  return lines.map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'));
}

export const exec = defineTool({
  name: 'exec',
  title: 'Run a command',
  description:
    'Run an arbitrary command on each host, given as exactly one of: `argv` (run exactly as given, no shell), ' +
    '`command` (one shell line, run as `/bin/sh -c COMMAND`), `script` (fed on stdin to `/bin/sh -s`) or `lines` ' +
    '(several shell lines run in order; blank lines and # comments skipped). Mirrors `goldentooth exec|heredoc|pipe`.',
  risk: 'destructive',
  toolset: 'commands',
  idempotent: false,
  input: z
    .object({
      targets,
      argv: z
        .array(argvElement)
        .min(1)
        .max(256)
        .refine((argv) => !(argv[0] ?? '').startsWith('-') && argv[0] !== '', { error: 'the program (first element) must not be empty or start with "-"' })
        .optional()
        .describe('Program and arguments, run exactly as given without a shell (e.g. `["systemctl","is-active","nginx"]`).'),
      command: commandLine.optional().describe('One shell command line, run as `/bin/sh -c COMMAND` (pipes and redirections work).'),
      script: scriptText.optional().describe('A shell script fed on stdin to `/bin/sh -s` (the heredoc form).'),
      lines: z
        .array(shellLine)
        .min(1)
        .max(100)
        .optional()
        .describe('Shell lines run in order as separate steps; a host whose line fails skips its later lines. Blank lines and `#` comments are dropped.'),
      as_root: asRoot,
      timeout,
    })
    .strict()
    .superRefine((input, ctx) => {
      const given = FORMS.filter((form) => input[form] !== undefined);
      if (given.length !== 1) {
        ctx.addIssue({
          code: 'custom',
          path: [given[1] ?? 'command'],
          message: `give exactly one of argv, command, script or lines (got ${given.length === 0 ? 'none' : given.join(' and ')})`,
        });
      }
    }),
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    const base = { hosts, asRoot: input.as_root, timeoutMs: stepTimeout(ctx, input.timeout) };
    let steps: PlanStep[];
    if (input.argv !== undefined) {
      steps = [execStep({ ...base, id: 'exec', argv: input.argv })];
    } else if (input.command !== undefined) {
      steps = [execStep({ ...base, id: 'exec', argv: ['/bin/sh', '-c', input.command], description: `${input.as_root ? 'sudo ' : ''}${input.command}` })];
    } else if (input.script !== undefined) {
      const lines = input.script.split('\n').length;
      steps = [execStep({ ...base, id: 'script', argv: ['/bin/sh', '-s'], stdin: input.script, description: `${input.as_root ? 'sudo ' : ''}sh -s < script (${lines} lines)` })];
    } else {
      const lines = commandLines(input.lines ?? []);
      if (lines.length === 0) throw new ToolInputError('lines', 'has no commands once blank lines and # comments are dropped');
      steps = lines.map((line, i) =>
        execStep({ ...base, id: `line-${i + 1}`, argv: ['/bin/sh', '-c', line], description: `${input.as_root ? 'sudo ' : ''}${line}` }),
      );
    }
    return singleBatchPlan('exec', hosts, steps);
  },
});
