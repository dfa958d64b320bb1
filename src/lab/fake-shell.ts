// What a fake node does with an exec request. A real node hands the command line to the login
// shell; the fake parses it just far enough to answer the trivial commands benchmarks and
// tests send (`true`, `echo ok`, `hostname`, `uptime`, `sleep 2`, `cat`), plain or inside
// Castellan's remote wrapper (src/ssh/remote-run.ts), `sh -c '…'` as parallel-ssh/clush/pdsh
// and Ansible's raw module send it, and `a && b ; c` sequences. Anything else answers like sh
// does for an unknown program: "not found", exit 127. Nothing is ever executed for real.

export type Connector = ';' | '&&' | '||';

export interface FakeStep {
  /** How this step joins the previous one (null for the first). */
  readonly connector: Connector | null;
  readonly argv: readonly string[];
}

/** Castellan's remote wrapper, recognised by its `castellan-run:<runId>` $0. */
export interface WrapperRun {
  readonly runId: string;
  readonly deadlineMs: number;
  /** Leading stdin bytes meant for the command; the rest of stdin is the lifeline. */
  readonly stdinBytes: number;
}

export interface FakeCommand {
  readonly steps: readonly FakeStep[];
  readonly wrapper: WrapperRun | null;
  /** The executor's run finder / killer: answered as "nothing of that run is left". */
  readonly control: 'find' | 'kill' | null;
  /** Set when the line used shell syntax the fake does not model (pipes, redirections…). */
  readonly unsupported: string | null;
}

export interface NodeIdentity {
  readonly node: string;
  readonly user: string;
}

export interface StepAnswer {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
  /** Simulated run time (sleep). */
  readonly sleepMs: number;
  /** The step echoes its stdin (cat). */
  readonly readsStdin: boolean;
}

type Token = { word: string } | { op: Connector };

const UNSUPPORTED = new Set(['|', '&', '<', '>', '(', ')', '`', '$(']);

/** POSIX-sh-like word splitting: quotes, backslashes, and the ; && || separators. */
export function tokenize(line: string): Token[] | string {
  const tokens: Token[] = [];
  let word = '';
  let inWord = false;
  const flush = (): void => {
    if (inWord) tokens.push({ word });
    word = '';
    inWord = false;
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) return 'unterminated single quote';
      word += line.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      inWord = true;
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        const d = line[j] as string;
        if (d === '\\' && j + 1 < line.length && '"\\$`\n'.includes(line[j + 1] as string)) word += line[++j];
        else if (d === '$' || d === '`') return 'expansion inside double quotes';
        else word += d;
      }
      if (j >= line.length) return 'unterminated double quote';
      i = j;
    } else if (c === '\\') {
      if (i + 1 < line.length && line[i + 1] !== '\n') word += line[i + 1];
      inWord = inWord || line[i + 1] !== '\n';
      i++;
    } else if (c === ' ' || c === '\t' || c === '\n') {
      flush();
      if (c === '\n') tokens.push({ op: ';' });
    } else if (c === ';') {
      flush();
      tokens.push({ op: ';' });
    } else if ((c === '&' || c === '|') && line[i + 1] === c) {
      flush();
      tokens.push({ op: c === '&' ? '&&' : '||' });
      i++;
    } else if (UNSUPPORTED.has(c) || (c === '$' && line[i + 1] === '(')) {
      return `shell syntax ${JSON.stringify(c)}`;
    } else {
      word += c;
      inWord = true;
    }
  }
  flush();
  return tokens;
}

function stepsOf(tokens: Token[]): FakeStep[] {
  const steps: FakeStep[] = [];
  let argv: string[] = [];
  let connector: Connector | null = null;
  for (const token of tokens) {
    if ('word' in token) {
      argv.push(token.word);
    } else {
      if (argv.length > 0) steps.push({ connector, argv });
      argv = [];
      connector = token.op;
    }
  }
  if (argv.length > 0) steps.push({ connector, argv });
  return steps;
}

/** Drop prefixes that only change how a program runs: sudo -n --, env VAR=…, setsid -w, exec, timeout N. */
function unwrapLaunchers(argv: readonly string[]): readonly string[] {
  let rest = argv;
  for (;;) {
    const [head, ...tail] = rest;
    if (head === 'sudo' || head === 'setsid') {
      let i = 0;
      while (tail[i]?.startsWith('-')) i++; // -n, -w, -- (none of the flags used here take a value)
      rest = tail.slice(i);
    } else if (head === 'env') {
      let i = 0;
      while (tail[i] !== undefined && /^[A-Za-z_][A-Za-z0-9_]*=/.test(tail[i] as string)) i++;
      rest = tail.slice(i);
    } else if (head === 'exec' || head === 'nohup') {
      rest = tail;
    } else if (head === 'timeout') {
      let i = 0;
      while (tail[i]?.startsWith('-')) i += tail[i] === '-k' || tail[i] === '-s' ? 2 : 1;
      rest = tail.slice(i + 1); // skip the duration too
    } else {
      return rest;
    }
  }
}

const SHELLS = new Set(['sh', '/bin/sh', 'bash', '/bin/bash', 'dash', '/bin/dash']);

function parseSteps(line: string, depth: number): FakeCommand {
  const tokens = tokenize(line);
  if (typeof tokens === 'string') return { steps: [], wrapper: null, control: null, unsupported: tokens };
  const steps = stepsOf(tokens);
  // A single `sh -c SCRIPT [$0 args…]` is unwrapped: that is how tools hand over a command.
  if (steps.length === 1 && depth < 4) {
    const argv = unwrapLaunchers(steps[0]?.argv ?? []);
    if (SHELLS.has(argv[0] ?? '') && argv[1] === '-c' && argv[2] !== undefined) {
      const name = argv[3] ?? '';
      if (name.startsWith('castellan-run:')) {
        // `sh -c 'eval "$1"' castellan-run:<id> WRAPPER t g n argv…` (older: `sh -c WRAPPER castellan-run:<id> t g n argv…`).
        const params = argv[2] === 'eval "$1"' ? argv.slice(5) : argv.slice(4);
        const [deadline = '0', , bytes = '0'] = params.slice(0, 3);
        const wrapper = {
          runId: name.slice('castellan-run:'.length),
          deadlineMs: Math.round(Number(deadline) * 1000),
          stdinBytes: Number(bytes) || 0,
        };
        return { steps: [{ connector: null, argv: params.slice(3) }], wrapper, control: null, unsupported: null };
      }
      if (name === 'castellan-find') return { steps: [], wrapper: null, control: 'find', unsupported: null };
      if (name === 'castellan-kill') return { steps: [], wrapper: null, control: 'kill', unsupported: null };
      return parseSteps(argv[2], depth + 1);
    }
    return { steps: [{ connector: null, argv }], wrapper: null, control: null, unsupported: null };
  }
  return { steps: steps.map((s) => ({ ...s, argv: unwrapLaunchers(s.argv) })), wrapper: null, control: null, unsupported: null };
}

export function parseCommandLine(line: string): FakeCommand {
  return parseSteps(line, 0);
}

function seconds(text: string | undefined): number {
  const match = /^(\d+(?:\.\d+)?)([smh]?)$/.exec(text ?? '');
  if (!match) return NaN;
  const scale = match[2] === 'm' ? 60 : match[2] === 'h' ? 3600 : 1;
  return Number(match[1]) * scale;
}

function home(user: string): string {
  return user === 'root' ? '/root' : `/home/${user}`;
}

const ok = (stdout = ''): StepAnswer => ({ stdout, stderr: '', exitCode: 0, sleepMs: 0, readsStdin: false });
const fail = (exitCode: number, stderr = ''): StepAnswer => ({ stdout: '', stderr, exitCode, sleepMs: 0, readsStdin: false });

/** The plausible result of one simple command on the fake node. */
export function answerStep(argv: readonly string[], who: NodeIdentity): StepAnswer {
  const [program = '', ...args] = argv;
  switch (program) {
    case 'true':
    case ':':
      return ok();
    case 'false':
      return fail(1);
    case 'exit':
      return fail(Number(args[0] ?? 0) & 255);
    case 'echo': {
      const newline = args[0] !== '-n';
      const words = (newline ? args : args.slice(1)).map((w) => (w === '~' ? home(who.user) : w));
      return ok(words.join(' ') + (newline ? '\n' : ''));
    }
    case 'hostname':
      return ok(`${who.node}\n`);
    case 'uptime':
      return ok(' 08:00:00 up 42 days,  3:07,  0 users,  load average: 0.08, 0.03, 0.01\n');
    case 'uname':
      if (args.includes('-a')) return ok(`Linux ${who.node} 6.1.0-castellan-fake #1 SMP x86_64 GNU/Linux\n`);
      if (args.includes('-n')) return ok(`${who.node}\n`);
      if (args.includes('-r')) return ok('6.1.0-castellan-fake\n');
      return ok('Linux\n');
    case 'whoami':
      return ok(`${who.user}\n`);
    case 'id':
      if (args.includes('-un') || (args.includes('-u') && args.includes('-n'))) return ok(`${who.user}\n`);
      if (args.includes('-u')) return ok(who.user === 'root' ? '0\n' : '1000\n');
      return ok(who.user === 'root' ? 'uid=0(root) gid=0(root) groups=0(root)\n' : `uid=1000(${who.user}) gid=1000(${who.user}) groups=1000(${who.user})\n`);
    case 'pwd':
      return ok(`${home(who.user)}\n`);
    case 'sleep': {
      const s = seconds(args[0]);
      if (Number.isNaN(s)) return fail(1, `sleep: invalid time interval '${args[0] ?? ''}'\n`);
      return { ...ok(), sleepMs: Math.round(s * 1000) };
    }
    case 'cat':
      if (args.length === 0 || (args.length === 1 && args[0] === '-')) return { ...ok(), readsStdin: true };
      return fail(1, `cat: ${args[0]}: No such file or directory\n`);
    default:
      return fail(127, `sh: 1: ${program}: not found\n`);
  }
}

/** A node's `holdMs` fault: a sleep before the command's own steps (which then run whatever it ended with). */
export function withHold(steps: readonly FakeStep[], holdMs: number | undefined): readonly FakeStep[] {
  if (!holdMs || holdMs <= 0) return steps;
  return [{ connector: null, argv: ['sleep', `${holdMs / 1000}`] }, ...steps];
}

/** Wrapper side-channel line, as remote-run.ts's wrapper prints it before the command's output. */
export function wrapperMarker(sessionId: number): string {
  return `\u001ecastellan-run ${sessionId}\n`;
}
