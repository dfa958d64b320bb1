// `castellan`: the operators' CLI. Every operation goes through the same pipeline as MCP and
// Slack (typed tool → policy → job → SSH → folded result → audit). Live progress goes to
// stderr, results to stdout, and the exit code says how it went (see render.ts).
import { Command, CommanderError } from 'commander';
import { catalogue, getTool, helpText, parseToolWords } from '../../tools/index.js';
import { CastellanError, errorMessage } from '../../config/errors.js';
import { runCopy } from './copy.js';
import { openLocal, type JobClient } from './local.js';
import { openRemoteJobClient } from './remote.js';
import { serverOf, tokenFor } from './account.js';
import { exitCodeFor } from './render.js';
import { auditLine } from '../present/audit-list.js';
import { approvalText, eventText, jobRowText, jobText, planText, previewText, resultText, summaryText, textStyleFor } from '../present/render/text.js';
import { readStdin, readTextFile, scriptLines } from './stdin.js';
import { MAX_PAGE_LINES, outputLinesText } from '../present/output-lines.js';
import { displayArgv } from '../../config/visible.js';
import { GLOBAL_OPTIONS, firstWordIndex, splitGlobalOptions } from './global-options.js';
import { quietOnClosedPipe } from './pipes.js';
import { followThroughOutages } from './follow.js';
import { isRedisUnavailable, redisUnavailable } from '../../queues/connections.js';

quietOnClosedPipe();

interface GlobalOptions {
  config?: string;
  server?: string;
  tokenFile?: string;
  json?: boolean;
  raw?: boolean;
  wait?: boolean;
  verbose?: boolean;
  idempotencyKey?: string;
}

const program = new Command();
program.name('castellan').description('Typed, authenticated, audited cluster operations over SSH: the CLI front end.');
for (const o of GLOBAL_OPTIONS) program.option(o.flags, o.description);
program.showHelpAfterError().exitOverride();

const globals = (): GlobalOptions => program.opts<GlobalOptions>();

async function withClient<T>(fn: (client: JobClient) => Promise<T>): Promise<T> {
  const g = globals();
  const server = serverOf(g);
  const client = server
    ? await openRemoteJobClient({ server, token: await tokenFor(server, g.tokenFile) })
    : (await openLocal(g.config, Boolean(g.verbose))).client;
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** Submit a tool call, follow its progress, print the result; returns the exit code. */
export async function runTool(client: JobClient, tool: string, input: unknown): Promise<number> {
  const g = globals();
  const { job, duplicate } = await client.submit(tool, input, g.idempotencyKey);
  if (duplicate) process.stderr.write(`» same idempotency key as job ${job.id}: not submitted again\n`);
  if (job.state === 'awaiting_approval') {
    const err = textStyleFor(process.stderr);
    const preview = previewText(job, err);
    process.stderr.write(`${planText(job.plan, err)}\n${preview ? `${preview}\n` : ''}${approvalText(job, err) ?? ''}\n`);
  }
  if (job.maintenance) process.stderr.write(`» ${job.maintenance.detail}\n`);
  if (g.wait === false) {
    process.stdout.write(g.json ? JSON.stringify(job, null, 2) + '\n' : `${job.id}\n`);
    return exitCodeFor(job.state);
  }
  // First Ctrl-C cancels the job (like ^C on ssh); a second one stops waiting.
  const stopWaiting = new AbortController();
  let interrupts = 0;
  const onSigint = (): void => {
    interrupts += 1;
    if (interrupts === 1) {
      process.stderr.write(`\n» cancelling job ${job.id} (Ctrl-C again to stop waiting)\n`);
      client.cancel(job.id, 'interrupted from the terminal').catch((err: unknown) => process.stderr.write(`» ${errorMessage(err)}\n`));
    } else stopWaiting.abort();
  };
  process.on('SIGINT', onSigint);
  const queuedHint = setTimeout(() => {
    void client.get(job.id).then((j) => {
      if (j.state === 'queued') process.stderr.write("» still queued: is a worker running? ('castellan up', 'castellan serve' or 'castellan worker')\n");
    }).catch(() => undefined);
  }, 3000);
  try {
    const expires = job.approval?.expires_at !== undefined ? Date.parse(job.approval.expires_at) : Date.now();
    const waitMs = job.state === 'awaiting_approval' ? Math.max(0, expires - Date.now()) + job.timeout_ms + 60_000 : job.timeout_ms + 60_000;
    // Rides a Redis (or server) outage: the job goes on, so the wait does too (src/cli/follow.ts).
    const final = await followThroughOutages(client, job.id, {
      timeoutMs: waitMs,
      onEvent: (e) => {
        const line = eventText(e, textStyleFor(process.stderr));
        if (line) process.stderr.write(line + '\n');
      },
      say: (line) => process.stderr.write(`${line}\n`),
      signal: stopWaiting.signal,
    });
    printFinal(final, g.json);
    return exitCodeFor(final.state);
  } finally {
    clearTimeout(queuedHint);
    process.off('SIGINT', onSigint);
  }
}

function printFinal(job: Awaited<ReturnType<JobClient['get']>>, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(JSON.stringify(job, null, 2) + '\n');
    return;
  }
  process.stdout.write(resultText(job, textStyleFor(process.stdout), { raw: globals().raw }));
  process.stderr.write(summaryText(job, textStyleFor(process.stderr)) + '\n');
}

function toolInput(toolName: string, words: readonly string[]): unknown {
  const tool = getTool(toolName);
  const parsed = parseToolWords(tool, words);
  if (!parsed.ok) throw new CastellanError('invalid_input', `${toolName}: ${parsed.message}\n(see 'castellan help ${toolName}')`, parsed.issues[0]?.field);
  return parsed.raw;
}

/** exec's options (--as-root, --timeout…) for the stdin forms; the command itself comes from stdin or a file. */
function execOptions(targets: string, extra: readonly string[]): Record<string, unknown> {
  const parsed = toolInput('exec', [targets, ...extra, '--command', 'true']) as Record<string, unknown>;
  const { command: _ignored, ...rest } = parsed;
  return rest;
}

async function runWords(toolName: string, words: readonly string[]): Promise<number> {
  const input = toolInput(toolName, words);
  return withClient((client) => runTool(client, toolName, input));
}

// --- operations with their own shape -------------------------------------------------
program
  .command('pipe')
  .description('Run each stdin line as a command on the hosts (# comments and blank lines skipped)')
  .argument('<targets>')
  .allowUnknownOption()
  .allowExcessArguments()
  .action(async (targets: string, _o: unknown, cmd: Command) => {
    const lines = scriptLines(await readStdin());
    finish(await runInput('exec', { ...execOptions(targets, cmd.args.slice(1)), lines }));
  });

program
  .command('heredoc')
  .description('Run stdin as one shell script on the hosts')
  .argument('<targets>')
  .allowUnknownOption()
  .allowExcessArguments()
  .action(async (targets: string, _o: unknown, cmd: Command) => {
    const script = await readStdin();
    finish(await runInput('exec', { ...execOptions(targets, cmd.args.slice(1)), script }));
  });

program
  .command('batch')
  .description('Run each line of a script file as a command on the hosts (default targets: all)')
  .argument('<script>')
  .argument('[targets]', 'target expression', 'all')
  .allowUnknownOption()
  .allowExcessArguments()
  .action(async (script: string, targets: string, _o: unknown, cmd: Command) => {
    const lines = scriptLines(await readTextFile(script));
    finish(await runInput('exec', { ...execOptions(targets, cmd.args.slice(2)), lines }));
  });

program
  .command('cp')
  .description('Copy files with node:path syntax: cp ./f k8s_worker:/etc/f | cp node01:/etc/f ./dir | cp node01:/etc/f node02,node03:/etc/f')
  .argument('<source>')
  .argument('<destination>')
  .option('--mode <octal>', 'file mode for uploads, e.g. 0644')
  .action(async (source: string, destination: string, opts: { mode?: string }) => {
    finish(await withClient((client) => runCopy(client, source, destination, opts.mode, (tool, input) => runTool(client, tool, input))));
  });

program
  .command('list-groups')
  .description('Inventory groups and their hosts (no SSH)')
  .action(async () => finish(await runWords('list_groups', [])));

program
  .command('list-nodes')
  .description('Inventory hosts with address, groups and labels (no SSH)')
  .argument('[targets]')
  .action(async (targets: string | undefined) => finish(await runWords('list_nodes', targets ? [targets] : [])));

// --- jobs ---------------------------------------------------------------------------
program
  .command('jobs')
  .description('Jobs, newest first, filtered by state, tool, requester, host, origin and time')
  .option('--state <state>', 'only jobs in this state (or several, comma-separated: queued,running)')
  .option('--tool <tool>', 'only jobs of this tool')
  .option('--requester <who>', 'only jobs requested by this subject or display name')
  .option('--host <host>', "only jobs whose plan touches this host")
  .option('--origin <origin>', 'only jobs requested through cli, mcp, slack or dashboard')
  .option('--since <time>', 'only jobs created at or after this time (2026-11-29, 2026-11-29T08:00Z)')
  .option('--until <time>', 'only jobs created at or before this time')
  .option('--limit <n>', 'how many', '20')
  .option('--offset <n>', 'skip this many', '0')
  .action(async (opts: { state?: string; tool?: string; requester?: string; host?: string; origin?: string; since?: string; until?: string; limit: string; offset: string }) => {
    const { limit, offset, ...filter } = opts;
    await withClient(async (client) => {
      const page = await client.list({ limit: Number(limit), offset: Number(offset), filter });
      if (globals().json) {
        process.stdout.write(JSON.stringify(page, null, 2) + '\n');
        return;
      }
      for (const j of page.jobs) process.stdout.write(jobRowText(j, textStyleFor(process.stdout)) + '\n');
      // How much is left goes to stderr: stdout stays one job a line for scripts.
      const shown = Number(offset) + page.jobs.length;
      if (page.jobs.length === 0) process.stderr.write('no jobs match\n');
      else if (page.next !== undefined) process.stderr.write(`${page.jobs.length} of ${page.total}; more with --offset ${shown}\n`);
    });
    finish(0);
  });

// --- audit --------------------------------------------------------------------------
program
  .command('audit')
  .description('The audit trail, newest first: who asked for what, who decided, what ran where (only what you may read)')
  .option('--subject <who>', 'only what this subject did')
  .option('--tool <tool>', 'only entries about this tool')
  .option('--host <host>', 'only entries naming this host')
  .option('--origin <origin>', 'only entries from cli, mcp, slack, dashboard or worker')
  .option('--kind <kind>', 'only request, decision, execution, outcome, cancel or refused entries')
  .option('--decision <d>', 'only approve or deny decisions')
  .option('--outcome <o>', 'only jobs that ended so or host executions with this status (failed, ok, …)')
  .option('--job <id>', "only this job's entries")
  .option('--since <time>', 'only entries at or after this time (2026-11-29, 2026-11-29T08:00Z)')
  .option('--until <time>', 'only entries at or before this time')
  .option('--limit <n>', 'how many', '50')
  .option('--cursor <id>', 'continue after this entry (the cursor the previous page printed)')
  .option('--jsonl', 'every matching entry as JSON lines, all pages (an export)')
  .action(async (opts: Record<string, string | boolean | undefined>) => {
    const { limit, cursor, jsonl, ...rest } = opts;
    const filter = Object.fromEntries(Object.entries(rest).filter((e): e is [string, string] => typeof e[1] === 'string'));
    const size = Number(limit);
    if (!Number.isInteger(size) || size < 1 || size > 1000) throw new CastellanError('invalid_input', `--limit: expected a whole number from 1 to 1000, got '${String(limit)}'`);
    await withClient(async (client) => {
      if (jsonl === true) {
        let after = typeof cursor === 'string' ? cursor : undefined;
        do {
          const page = await client.audit({ limit: 1000, cursor: after, filter });
          for (const e of page.entries) process.stdout.write(JSON.stringify(e) + '\n');
          after = page.next_cursor;
        } while (after !== undefined);
        return;
      }
      const page = await client.audit({ limit: size, cursor: typeof cursor === 'string' ? cursor : undefined, filter });
      if (globals().json) {
        process.stdout.write(JSON.stringify(page, null, 2) + '\n');
        return;
      }
      for (const e of page.entries) process.stdout.write(auditLine(e) + '\n');
      // How much is left goes to stderr: stdout stays one entry a line for scripts.
      if (page.entries.length === 0) process.stderr.write('no audit entries match (you see your own and, as an approver, those of jobs that asked for approval; admins see all)\n');
      else if (page.next_cursor !== undefined) process.stderr.write(`${page.entries.length} of ${page.total}; more with --cursor ${page.next_cursor}\n`);
    });
    finish(0);
  });

program
  .command('job')
  .description('One job: status, plan, folded output (--log for its event log)')
  .argument('<id>')
  .option('--log', 'print the event log')
  .action(async (id: string, opts: { log?: boolean }) => {
    const code = await withClient(async (client) => {
      const job = await client.get(id);
      if (globals().json) {
        process.stdout.write(JSON.stringify(job, null, 2) + '\n');
        return exitCodeFor(job.state);
      }
      process.stdout.write(jobText(job, textStyleFor(process.stdout), { raw: globals().raw }));
      if (opts.log) {
        for (const e of await client.events(id)) {
          const line = eventText(e, textStyleFor(process.stdout));
          if (line) process.stdout.write(`${new Date(e.at).toISOString()} ${line}\n`);
        }
      }
      return exitCodeFor(job.state);
    });
    finish(code);
  });

program
  .command('output')
  .description("A job's output as numbered lines per host (stderr marked !, alike hosts folded once it ended)")
  .argument('<id>')
  .option('--hosts <nodeset>', 'only these hosts of the job (node[01-03], or names separated by commas)')
  .option('--after <cursor>', 'continue where the previous page said')
  .option('--lines <n>', `lines per page (at most ${MAX_PAGE_LINES})`, '200')
  .action(async (id: string, opts: { hosts?: string; after?: string; lines: string }) => {
    const maxLines = Number(opts.lines);
    if (!Number.isInteger(maxLines) || maxLines < 1 || maxLines > MAX_PAGE_LINES) {
      throw new CastellanError('invalid_input', `--lines: expected a whole number from 1 to ${MAX_PAGE_LINES}, found '${opts.lines}'`, 'lines');
    }
    await withClient(async (client) => {
      const page = await client.lines(id, { hosts: opts.hosts, after: opts.after, maxLines });
      if (globals().json) {
        process.stdout.write(JSON.stringify(page, null, 2) + '\n');
        return;
      }
      // Lines to stdout; where the next page starts to stderr, so a pipe gets only output.
      process.stdout.write(outputLinesText(page).map((line) => `${line}\n`).join(''));
      if (page.next_after !== undefined) {
        const argv = ['castellan', 'output', id, ...(opts.hosts !== undefined ? ['--hosts', opts.hosts] : []), '--after', page.next_after];
        process.stderr.write(`more: ${displayArgv(argv)}\n`);
      }
    });
    finish(0);
  });

for (const verb of ['approve', 'deny', 'cancel'] as const) {
  program
    .command(verb)
    .description(`${verb[0]!.toUpperCase()}${verb.slice(1)} a job`)
    .argument('<id>')
    .option('--reason <text>', 'recorded in the audit trail')
    .action(async (id: string, opts: { reason?: string }) => {
      const job = await withClient((client) => client[verb](id, opts.reason));
      process.stdout.write(`${summaryText(job, textStyleFor(process.stdout))}\n`);
      finish(0);
    });
}

// --- help ---------------------------------------------------------------------------
program
  .command('help')
  .description('List the tools, or show one tool\'s parameters')
  .argument('[tool]')
  .action((tool: string | undefined) => {
    if (tool) process.stdout.write(helpText(getTool(tool.replaceAll('-', '_'))) + '\n');
    else {
      process.stdout.write(program.helpInformation() + '\nTools (castellan <tool> [targets] [--param value]; castellan run <tool> …; castellan help <tool>):\n');
      for (const t of catalogue) process.stdout.write(`  ${t.name.padEnd(18)} ${t.risk.padEnd(12)} ${t.title}\n`);
    }
    finish(0);
  });

async function runInput(tool: string, input: unknown): Promise<number> {
  return withClient((client) => runTool(client, tool, input));
}

/** Errors that mean "what you typed is wrong" (exit 64, EX_USAGE). */
const USAGE_ERRORS = new Set(['UnknownToolError', 'ToolInputError', 'InvalidInputError', 'TargetError', 'NodeSetError', 'QuotingError']);

/** `--help` or `-h` among a tool's words, before any `--` (after it, words are the command's own). */
function asksForHelp(words: readonly string[]): boolean {
  const end = words.indexOf('--');
  return (end < 0 ? words : words.slice(0, end)).some((w) => w === '--help' || w === '-h');
}

function finish(code: number): void {
  process.exitCode = code;
}

// Commands added by other modules (server, lab, hosts, up, mcp) register here.
const extensions = await import('./commands.js');
extensions.register(program, { globals, withClient, runTool });
(await import('./account.js')).register(program, { globals });
(await import('./doctor.js')).register(program, globals);
const completion = await import('./completion.js');
completion.register(program);

/** Hidden entry point of the completion scripts (src/cli/completion.ts). */
const COMPLETE = '__complete';

// Any catalogue tool is also a command: `castellan ping all`, `castellan service_status web --unit nginx`.
const toolNames = new Set(catalogue.map((t) => t.name));
const argv = process.argv.slice(2);
const firstCommand = firstWordIndex(argv);
const verb = firstCommand >= 0 ? argv[firstCommand]!.replaceAll('-', '_') : undefined;
const isToolVerb = verb !== undefined && toolNames.has(verb) && !program.commands.some((c) => c.name() === argv[firstCommand]);
// `run <tool> …` and tool verbs keep their raw words (commander would swallow the `--` that
// separates exec's command from Castellan's options).
const isRun = argv[firstCommand] === 'run';

try {
  if (argv[0] === COMPLETE) {
    // The shell's words, raw: commander would consume global options and `--` from them.
    process.stdout.write((await completion.completions(program, argv.slice(1))).map((c) => `${c}\n`).join(''));
  } else if (isRun || isToolVerb) {
    // Global options may come before or after the tool name (as with kubectl); the tool's
    // parser gets the rest, including everything after `--` untouched.
    const { globals: late, rest } = splitGlobalOptions(argv.slice(firstCommand + 1));
    program.parseOptions([...argv.slice(0, firstCommand), ...late]);
    const tool = isRun ? rest.shift() : verb;
    if (!tool) throw new CastellanError('invalid_input', "run: which tool? (see 'castellan help')");
    // `castellan exec --help` is what operators type: the tool's help, as `castellan help exec`.
    if (asksForHelp(rest)) {
      process.stdout.write(helpText(getTool(tool.replaceAll('-', '_'))) + '\n');
      finish(0);
    } else finish(await runWords(tool.replaceAll('-', '_'), rest));
  } else {
    await program.parseAsync(process.argv);
  }
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? 0 : 64;
  } else if (err instanceof CastellanError) {
    process.stderr.write(`castellan: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else if (isRedisUnavailable(err)) {
    const unavailable = redisUnavailable(err, 'nothing was changed');
    process.stderr.write(`castellan: ${unavailable.message}\n`);
    process.exitCode = unavailable.exitCode;
  } else {
    const name = (err as { name?: string }).name ?? '';
    process.stderr.write(`castellan: ${errorMessage(err)}\n`);
    process.exitCode = name === 'ConfigError' ? 78 : USAGE_ERRORS.has(name) ? 64 : 70;
  }
}
