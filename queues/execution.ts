// Contracts of the executor that the job layer drives. The executor knows nothing of jobs,
// tools or identities: it connects (with pinned host keys), runs argv arrays, transfers files,
// and reports per-host outcomes with an explicit status. src/ssh implements these.
import { createHash } from 'node:crypto';
import type { HostResult } from '../tools/host-result.js';

/** What a run id may look like: it travels in a remote argv, an environment line and a pgrep pattern. */
export const RUN_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * The run id of one host's run of a step (`base` is `<jobId>.<step>`, or `<jobId>.<step>.c` for
 * a gate's checks): `<base>.<host>`. Per host, not per step, because finding or killing a run
 * by its id must reach only that host's processes, even when two inventory names lead to one
 * machine (aliases, containers, the lab). A host name that does not fit the pattern, or makes
 * the id too long, is replaced by a digest of base and host, so the id stays valid and distinct.
 */
export function hostRunId(base: string, host: string): string {
  const plain = `${base}.${host}`;
  if (RUN_ID_PATTERN.test(plain)) return plain;
  const digest = createHash('sha256').update(`${base}\n${host}`).digest('hex').slice(0, 16);
  return `${base.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64 - digest.length - 1)}.${digest}`;
}

/** Everything needed to reach one host. Built from an inventory Host plus config defaults. */
export interface SshTarget {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly user: string;
  /** Private key file; when absent the ssh-agent (SSH_AUTH_SOCK / config) is used. */
  readonly privateKeyFile?: string | undefined;
}

export interface ExecRequest {
  /** The remote program and its arguments. Never a shell string: quoting is the executor's job. */
  readonly argv: readonly string[];
  /** Run through `sudo -n` (non-interactive; fails cleanly when a password would be needed). */
  readonly asRoot?: boolean;
  /** Bytes fed to the command's stdin (pipe / heredoc scripts). */
  readonly stdin?: string | undefined;
  /**
   * Unique tag of this run on this host (`hostRunId`: `<jobId>.<step>.<host>`), matching
   * RUN_ID_PATTERN. The remote wrapper carries it so the run can be found and killed from
   * another connection, and reconciled after a worker crash.
   */
  readonly runId: string;
}

export interface ExecLimits {
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  /** Per host and per stream; beyond it output is dropped and `truncated` is set. */
  readonly maxOutputBytes: number;
  /** After TERM, how long before KILL. */
  readonly killGraceMs: number;
}

export type ExecEvent =
  | { readonly type: 'host_started'; readonly host: string }
  | { readonly type: 'output'; readonly host: string; readonly stream: 'stdout' | 'stderr'; readonly chunk: string }
  | { readonly type: 'host_finished'; readonly host: string; readonly result: HostResult }
  | { readonly type: 'batch_started'; readonly index: number; readonly hosts: readonly string[] }
  | { readonly type: 'batch_finished'; readonly index: number; readonly failed: number; readonly budgetLeft: number };

export interface FanoutOptions extends Partial<ExecLimits> {
  /** Sliding window: at most this many hosts in flight (default 64). */
  readonly window?: number;
  readonly signal?: AbortSignal | undefined;
  readonly onEvent?: ((event: ExecEvent) => void) | undefined;
}
