// How a command runs on a node so that it can really be stopped. Closing an SSH channel does
// not kill the remote process, and OpenSSH 9.2 refuses `signal` requests for root logins, so
// every command runs under a small POSIX sh wrapper (built only through quoteArgv). Every
// process it starts costs a node (a Raspberry Pi, say) a fork and often an exec, so it starts
// as few as it can: for a command without stdin, the wrapper sh, one forked lifeline and GNU
// `timeout`, which the wrapper becomes (exec) and which starts the command.
//
//  - The run has a session of its own: everything it starts shares the session id, even
//    processes that make their own process group (GNU timeout does), so `pkill -s` reaches
//    grandchildren. OpenSSH makes one per channel and the login shell execs the wrapper, which
//    so leads it already (`setsid` would have to fork: a session leader cannot call setsid()).
//    Otherwise (Dropbear runs commands in the connection process's session, which `pkill -s`
//    would take down with them; `sudo`; a login shell that did not exec) the wrapper re-runs
//    itself under `setsid -w`. It is passed as $1 and run by `eval "$1"` so it can.
//  - CASTELLAN_RUN=<runId> is exported to the command (and everything it starts), and
//    `castellan-run:<runId>` is the wrapper's (and its lifeline's) argv[0]: any later connection
//    finds the run by either (reconciliation after a crash), then every member of its session.
//  - The wrapper's first stdout line reports the session id; the executor strips it.
//  - `timeout --kill-after` is the remote deadline: the command dies even if Castellan is
//    SIGKILLed and the connection is never closed (half-open TCP).
//  - A lifeline reads the channel's stdin after the user's stdin bytes (exactly `n` of them,
//    via `head -c`, which never reads past them): EOF while the run is still alive means the
//    client sent EOF (cancel) or the connection dropped, and the lifeline TERMs then KILLs the
//    session. The executor therefore keeps the channel's stdin open while the command runs. The
//    lifeline reads with the `read` builtin (no `cat` process) and holds neither stdout nor
//    stderr, so sshd closes the channel as soon as the command is done.
import { asRootArgv } from '../../tools/steps/kind.js';
import { QuotingError, quoteArgv } from './quote.js';
import { RUN_ID_PATTERN } from './types.js';

export { RUN_ID_PATTERN };
export const RUN_ENV = 'CASTELLAN_RUN';
/** sshd hands the command line to `$SHELL -c` as ONE argument, and Linux caps one argument at 128 KiB. */
export const MAX_COMMAND_LINE_BYTES = 128 * 1024 - 1;
const SIDE_CHANNEL_PREFIX = '\u001ecastellan-run ';

export class RunIdError extends Error {
  constructor(runId: string) {
    super(`run id ${JSON.stringify(runId.slice(0, 80))} must match ${RUN_ID_PATTERN.source}`);
    this.name = 'RunIdError';
  }
}

export function assertRunId(runId: string): void {
  if (!RUN_ID_PATTERN.test(runId)) throw new RunIdError(runId);
}

// $0 = castellan-run:<runId>, $1 = this script, $2 = remote deadline (s), $3 = kill grace (s),
// $4 = stdin bytes, $5.. = argv. Field 6 of /proc/$$/stat is the session id (field 2, the
// command name, is "sh": no spaces). Once it leads its session, $$ is the session id. The
// lifeline checks that the run is alive through $$, the wrapper's pid, which `exec` hands to
// timeout. With stdin bytes, a pipeline feeds them and the wrapper waits for it (dash's
// `wait` waits for a whole pipeline, so the lifeline is a background job of its left side).
const WRAPPER = `w=$1
shift
read -r _ _ _ _ _ sid _ </proc/$$/stat || exit 125
[ "$sid" = "$$" ] || exec setsid -w sh -c 'eval "$1"' "$0" "$w" "$@"
CASTELLAN_RUN=\${0#castellan-run:}
export CASTELLAN_RUN
t=$1 g=$2 n=$3
shift 3
exec 3<&0 </dev/null
printf '\\036castellan-run %s\\n' "$sid"
lifeline() {
  while read -r _; do :; done
  trap '' TERM
  if kill -0 "$$"; then
    pkill -TERM -s "$sid"
    sleep "$g"
    pkill -KILL -s "$sid"
  fi
}
if [ "$n" -gt 0 ]; then
  {
    head -c "$n" <&3
    exec >&-
    lifeline <&3 &
  } 2>/dev/null | timeout -k "$g" "$t" "$@" 3<&- &
  wait "$!"
else
  lifeline <&3 >/dev/null 2>&1 3<&- &
  exec timeout -k "$g" "$t" "$@" 3<&-
fi`;

/** The -c script: runs the wrapper, which arrives as $1 (so that it can re-run itself under setsid). */
export const RUN_WRAPPER = 'eval "$1"';

// Prints the pids (one per line, zombies excluded) of the run: processes whose argv names it
// (the wrapper, its lifeline), every process carrying CASTELLAN_RUN=<runId>, every member of a
// session that one of those leads (never a session it merely runs in: under Dropbear that is the
// connection's), and every descendant of those (a grandchild that made its own session and cleared its environment is
// still found while its parent lives). $1 = pgrep pattern (anchored, dots escaped so this
// script never matches itself), $2 = env line.
const RUN_PIDS = `run_pids() {
  {
    pgrep -f "$1"
    grep -lzxF -e "$2" /proc/[0-9]*/environ 2>/dev/null | sed -n 's|^/proc/\\([0-9]*\\)/environ$|\\1|p'
  } | sort -un > "$run_seed"
  # Every member of a session that a tagged process leads (the wrapper, which became timeout).
  for p in $(cat "$run_seed"); do
    for sid in $(ps -o sid= -p "$p" 2>/dev/null); do [ "$sid" = "$p" ] && pgrep -s "$sid"; done
  done | sort -un >> "$run_seed"
  ps -e -o pid= -o ppid= 2>/dev/null | awk -v seedfile="$run_seed" '
    BEGIN { while ((getline p < seedfile) > 0) if (p != "") s[p] = 1 }
    { parent[$1] = $2 }
    END { do { c = 0; for (x in parent) if (!(x in s) && (parent[x] in s)) { s[x] = 1; c = 1 } } while (c); for (x in s) print x }
  ' | sort -un | while read -r p; do
    [ "$p" = "$$" ] && continue
    s=$(ps -o stat= -p "$p" 2>/dev/null) || continue
    case $s in Z*|'') continue ;; esac
    echo "$p"
  done
}`;

const FIND = `${RUN_PIDS}
run_seed=$(mktemp) || exit 4
trap 'rm -f "$run_seed"' EXIT
for p in $(run_pids "$1" "$2"); do ps -o pid=,args= -p "$p" 2>/dev/null; done
exit 0`;

// $3 = number of 0.1 s polls during the TERM grace. Exit 0 = nothing left, 3 = survivors listed.
// The run is frozen while the TERMs go out, as the node helper does (node-helper.ts): TERMed in
// pid order, a command whose pid is below its shell's (after a pid wrap-around, every few
// minutes where pid_max is 32768) died first, and the shell ran its next command before its
// own TERM came (test/integration/ssh-kill-order.test.ts saw \`sleep; echo never\` print).
// A stopped process dies of a TERM it does not handle at once; one that handles it (timeout)
// runs its handler after the CONT. The lifeline TERMs its session unfrozen: `pkill -STOP -s`
// would stop the lifeline too (it is a member), for good. That path (a dropped connection) did
// not show the race in 100 runs of the same test, half of them with the pids reversed.
const KILL = `${RUN_PIDS}
run_seed=$(mktemp) || exit 4
trap 'rm -f "$run_seed"' EXIT
pids=$(run_pids "$1" "$2")
[ -z "$pids" ] && { echo 'gone'; exit 0; }
kill -STOP $pids 2>/dev/null; kill -TERM $pids 2>/dev/null; kill -CONT $pids 2>/dev/null
i=0
while [ "$i" -lt "$3" ]; do
  sleep 0.1
  pids=$(run_pids "$1" "$2")
  [ -z "$pids" ] && { echo 'terminated'; exit 0; }
  i=$((i + 1))
done
i=0
while [ "$i" -lt 30 ]; do
  kill -KILL $pids 2>/dev/null
  sleep 0.1
  pids=$(run_pids "$1" "$2")
  [ -z "$pids" ] && { echo 'killed'; exit 0; }
  i=$((i + 1))
done
echo "left" $pids
exit 3`;

function seconds(ms: number): string {
  return (Math.max(ms, 1) / 1000).toFixed(3);
}


export interface WrapOptions {
  readonly runId: string;
  readonly asRoot: boolean;
  readonly loginUser: string;
  /** Remote deadline; the executor's own command timeout should fire first. */
  readonly deadlineMs: number;
  readonly killGraceMs: number;
  readonly stdinBytes: number;
}

/** The full remote command line for one run of `argv`. */
export function wrapCommand(argv: readonly string[], options: WrapOptions): string {
  assertRunId(options.runId);
  const inner = [
    'sh', '-c', RUN_WRAPPER, `castellan-run:${options.runId}`, WRAPPER,
    seconds(options.deadlineMs), seconds(options.killGraceMs), String(options.stdinBytes),
    ...argv,
  ];
  // quoteArgv also refuses an empty argv here (the wrapper would otherwise run `timeout` alone).
  quoteArgv(argv);
  const line = quoteArgv(asRootArgv(inner, options.asRoot, options.loginUser));
  if (Buffer.byteLength(line) > MAX_COMMAND_LINE_BYTES) {
    throw new QuotingError(`the command line is ${Buffer.byteLength(line)} bytes once quoted; the remote shell takes at most ` +
      `${MAX_COMMAND_LINE_BYTES} (Linux MAX_ARG_STRLEN): pass large data on stdin or upload a file`);
  }
  return line;
}

function runArgs(runId: string): string[] {
  assertRunId(runId);
  // The pattern is anchored at an argument boundary; dots are escaped, which also makes the
  // pattern text differ from what it matches, so the finder never finds itself.
  return [`castellan-run:${runId.replaceAll('.', '[.]')}( |$)`, `${RUN_ENV}=${runId}`];
}

export function findCommand(runId: string, asRoot: boolean, loginUser: string): string {
  return quoteArgv(asRootArgv(['sh', '-c', FIND, 'castellan-find', ...runArgs(runId)], asRoot, loginUser));
}

export function killCommand(runId: string, graceMs: number, asRoot: boolean, loginUser: string): string {
  const polls = String(Math.max(1, Math.ceil(graceMs / 100)));
  return quoteArgv(asRootArgv(['sh', '-c', KILL, 'castellan-kill', ...runArgs(runId), polls], asRoot, loginUser));
}

const MARKER = Buffer.from(SIDE_CHANNEL_PREFIX, 'latin1');
const MAX_PREAMBLE_LINE = 4096;

/**
 * Strips the wrapper's side-channel line from the start of stdout. Anything before it (a
 * chatty login script) passes through; after it, nothing is parsed, so command output can
 * never be mistaken for it.
 */
export class SideChannel {
  private pending: Buffer = Buffer.alloc(0);
  private done = false;
  /** The run's remote session id (= process group of the wrapper), once reported. */
  sessionId: number | null = null;

  get seen(): boolean {
    return this.done;
  }

  /** Feed a stdout chunk; returns the bytes that belong to the command's output. */
  push(chunk: Buffer): Buffer {
    if (this.done) return chunk;
    this.pending = Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      const newline = this.pending.indexOf(0x0a);
      if (newline < 0) {
        // A partial line that can no longer become the marker is output already.
        const head = this.pending.subarray(0, MARKER.length);
        if (!MARKER.subarray(0, head.length).equals(head) || this.pending.length > MAX_PREAMBLE_LINE) {
          out.push(this.pending);
          this.pending = Buffer.alloc(0);
        }
        return Buffer.concat(out);
      }
      const line = this.pending.subarray(0, newline);
      const rest = this.pending.subarray(newline + 1);
      if (line.subarray(0, MARKER.length).equals(MARKER)) {
        const sid = Number(line.subarray(MARKER.length).toString('latin1'));
        this.sessionId = Number.isInteger(sid) && sid > 0 ? sid : null;
        this.done = true;
        out.push(rest);
        this.pending = Buffer.alloc(0);
        return Buffer.concat(out);
      }
      out.push(this.pending.subarray(0, newline + 1));
      this.pending = rest;
    }
  }

  /** At end of stream: whatever is still held back. */
  flush(): Buffer {
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    return rest;
  }
}
