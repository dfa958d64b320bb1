// Is anything of a run still alive on this machine (where the lab's nodes live)?
import { execFileSync } from 'node:child_process';

/** `pgrep -f PATTERN` output, '' when nothing matches. */
export function pgrepFull(pattern: string): string {
  try {
    return execFileSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

// `sleep N` as the marker of a remote run: N unique to this test process (pid) and call, so
// the process table shows only our run's sleeps.
let sleepSeq = 0;
export function uniqueSleep(): string {
  sleepSeq += 1;
  return String(5_000_000 + (process.pid % 10_000) * 100 + sleepSeq);
}

/** Pids of every `sleep N` on this machine. */
export function survivors(seconds: string): string[] {
  return pgrepFull(`^sleep ${seconds}$`).split('\n').filter(Boolean);
}

/** Users running `sleep N` (root under as_root), one entry per process. */
export function sleeperUsers(seconds: string): string[] {
  const table = execFileSync('ps', ['-eo', 'user:32=,args='], { encoding: 'utf8' });
  return table.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f.slice(1).join(' ') === `sleep ${seconds}`).map((f) => f[0]!);
}

/** Processes die asynchronously after KILL: poll (bounded) rather than look once. */
export async function survivorsAfterSettling(seconds: string, withinMs = 8_000): Promise<string[]> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const left = survivors(seconds);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
