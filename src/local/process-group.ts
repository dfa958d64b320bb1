// Programs Castellan runs on its own machine for a step (ipmitool, ansible-playbook) run
// detached, in their own process group, so a stop reaches every child they fork. One way to
// wait for them: a cancel or the deadline sends SIGTERM to the group, SIGKILL after the grace.
import type { ChildProcess } from 'node:child_process';
import type { HostStatus } from '../../tools/host-result.js';

export interface GroupWaitOptions {
  readonly signal?: AbortSignal | undefined;
  /** The status a cancel means (cancelled, or interrupted when the worker stops). */
  readonly abortStatus?: (() => HostStatus) | undefined;
  readonly timeoutMs: number;
  readonly killGraceMs: number;
}

export interface GroupExit {
  readonly code: number | null;
  readonly signal: string | null;
  /** Why it was stopped (cancel or deadline), null when it ended by itself. */
  readonly stopped: HostStatus | null;
  /** The spawn error's message when the program could not start (code 127). */
  readonly spawnError?: string | undefined;
}

export async function waitForGroup(child: ChildProcess, options: GroupWaitOptions): Promise<GroupExit> {
  let stopped: HostStatus | null = null;
  let grace: NodeJS.Timeout | undefined;
  const kill = (signal: NodeJS.Signals): void => {
    if (child.pid === undefined || child.exitCode !== null) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };
  const stop = (status: HostStatus): void => {
    if (stopped) return;
    stopped = status;
    kill('SIGTERM');
    grace = setTimeout(() => kill('SIGKILL'), options.killGraceMs);
  };
  const onAbort = (): void => stop(options.abortStatus?.() ?? 'cancelled');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  const deadline = setTimeout(() => stop('timed_out'), options.timeoutMs);
  const exit = await new Promise<{ code: number | null; signal: string | null; spawnError?: string }>((resolve) => {
    child.once('error', (error) => resolve({ code: 127, signal: null, spawnError: error.message }));
    child.once('close', (c, s) => resolve({ code: c, signal: s }));
  });
  clearTimeout(deadline);
  if (grace) clearTimeout(grace);
  options.signal?.removeEventListener('abort', onAbort);
  return { ...exit, stopped };
}
