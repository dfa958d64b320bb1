// A script body travels on stdin and its arguments after `--` (or python's `-`), so neither
// is ever parsed as shell text or as interpreter options.
import { z } from 'zod';
import { argvElement, asRoot, targets, timeout } from './fields.js';
import { execStep, resolveHosts, showArgv, singleBatchPlan, stepTimeout } from './planning.js';
import { defineTool } from './types.js';

export const INTERPRETERS = ['sh', 'bash', 'python3'] as const;
export type Interpreter = (typeof INTERPRETERS)[number];

/** argv that reads the program from stdin and passes `args` as its positional arguments. */
export function interpreterArgv(interpreter: Interpreter, args: readonly string[]): string[] {
  return interpreter === 'python3' ? ['python3', '-', ...args] : [interpreter, '-s', '--', ...args];
}

export const scriptText = z
  .string()
  .min(1, { error: 'must not be empty' })
  .max(256 * 1024, { error: 'must be at most 256 KiB' })
  .refine((s) => !s.includes('\0'), { error: 'must not contain a NUL character' });

export const runScript = defineTool({
  name: 'run_script',
  title: 'Run a script',
  description:
    'Run a script on each host: the script text is fed on stdin to sh, bash or python3 and `args` become its ' +
    'positional arguments. Mirrors `ssh HOST sh -s -- ARGS < script` (the `heredoc` form).',
  // Arbitrary code, optionally as root: as dangerous as exec (policy.tool_risk can lower it).
  risk: 'destructive',
  toolset: 'commands',
  idempotent: false,
  input: z
    .object({
      targets,
      script: scriptText.describe('The script text (up to 256 KiB).'),
      args: z.array(argvElement).max(64).default([]).describe('Arguments passed to the script ($1… or sys.argv[1:]).'),
      interpreter: z.enum(INTERPRETERS).default('sh').describe('Interpreter that reads the script from stdin.'),
      as_root: asRoot,
      timeout,
    })
    .strict(),
  plan(input, ctx) {
    const hosts = resolveHosts(ctx, input.targets);
    const argv = interpreterArgv(input.interpreter, input.args);
    const lines = input.script.split('\n').length;
    return singleBatchPlan('run_script', hosts, [
      execStep({
        id: 'script',
        hosts,
        argv,
        asRoot: input.as_root,
        stdin: input.script,
        timeoutMs: stepTimeout(ctx, input.timeout),
        description: `${input.as_root ? 'sudo ' : ''}${showArgv(argv)} < script (${lines} line${lines === 1 ? '' : 's'})`,
      }),
    ]);
  },
});
