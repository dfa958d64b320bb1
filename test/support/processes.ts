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
