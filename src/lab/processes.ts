// Process bookkeeping for the labs, read straight from /proc (Linux only, like the labs).
// Stopping a node must leave nothing behind: sshd forks one child per connection and those
// children call setsid(), so killing the listener's process group is not enough. We collect
// the listener's whole family (descendants, plus anything sharing their session or group)
// *before* signalling, because once the listener dies its children are re-parented to init
// and the link is lost.
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcessInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly pgid: number;
  readonly sid: number;
  /** Single-letter state from /proc/PID/stat; 'Z' is a zombie (already dead). */
  readonly state: string;
}

/** Parse /proc/PID/stat; the command name may contain spaces and parentheses, so split after the last ')'. */
export function readProcess(pid: number): ProcessInfo | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [state = '?', ppid = '0', pgid = '0', sid = '0'] = fields;
  return { pid, ppid: Number(ppid), pgid: Number(pgid), sid: Number(sid), state };
}

export function readProcessTable(): ProcessInfo[] {
  const table: ProcessInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const info = readProcess(Number(entry));
    if (info) table.push(info);
  }
  return table;
}

/** The argv of a process, or null once it is gone. */
export function readCommandLine(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((part) => part.length > 0);
  } catch {
    return null;
  }
}

export function isAlive(pid: number): boolean {
  const info = readProcess(pid);
  return info !== null && info.state !== 'Z';
}

/** `roots` plus every descendant and every process in a session or group led by one of them. */
export function processFamily(roots: readonly number[]): Set<number> {
  const table = readProcessTable();
  const family = new Set(roots.filter((pid) => table.some((p) => p.pid === pid)));
  let grew = true;
  while (grew) {
    grew = false;
    for (const proc of table) {
      if (family.has(proc.pid)) continue;
      if (family.has(proc.ppid) || family.has(proc.sid) || family.has(proc.pgid)) {
        family.add(proc.pid);
        grew = true;
      }
    }
  }
  return family;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone: that is the goal.
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitGone(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter(isAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(25);
    alive = alive.filter(isAlive);
  }
  return alive;
}

/**
 * TERM the family of `roots`, KILL whatever is still alive after `graceMs`, and resolve once
 * all of it is gone. Throws if something survives SIGKILL (e.g. stuck in uninterruptible sleep).
 */
export async function stopProcessFamily(roots: readonly number[], graceMs = 3000): Promise<void> {
  if (roots.length === 0) return;
  const family = [...processFamily(roots)];
  for (const pid of family) signal(pid, 'SIGTERM');
  const stubborn = await waitGone(family, graceMs);
  // Children forked while we were waiting belong to the family too.
  const late = [...processFamily([...stubborn, ...roots.filter(isAlive)])];
  const remaining = [...new Set([...stubborn, ...late])];
  for (const pid of remaining) signal(pid, 'SIGKILL');
  const survivors = await waitGone(remaining, 5000);
  if (survivors.length > 0) throw new Error(`processes survived SIGKILL: ${survivors.join(', ')}`);
}
