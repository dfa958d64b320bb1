// What happened on one host: the result vocabulary shared by tools (which summarise it), the
// job layer (which stores it) and the SSH executor (which produces it).

export const HOST_STATUSES = [
  'ok',
  'failed', // exit code != 0 or killed by a signal
  'timed_out',
  'unreachable',
  'auth_failed',
  'host_key_rejected',
  'cancelled',
  'skipped', // never attempted (failure budget spent, or an earlier step failed)
] as const;
export type HostStatus = (typeof HOST_STATUSES)[number];

export interface HostResult {
  readonly host: string;
  readonly status: HostStatus;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  /** True when output went over maxOutputBytes and was cut. Never silent. */
  readonly truncated: boolean;
  /** ISO timestamp of the attempt start (connect included). */
  readonly startedAt: string;
  readonly durationMs: number;
  /** Time to a ready connection (0 when pooled). */
  readonly connectMs: number;
  /** Human-readable reason for any status but ok. */
  readonly error?: string | undefined;
}

/** A batch size is a count of hosts or a percentage of the host list ("25%"). */
export type BatchSize = number | `${number}%`;
