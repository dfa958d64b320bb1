// Per-host structured results. Every summarizing tool returns `{ hosts: [...] }` with one entry
// per host: its execution status, an error when it did not answer as expected, and the fields
// the tool parsed from its output (absent when there was nothing to parse).
import { z } from 'zod';
import { HOST_STATUSES } from './host-result.js';
import type { HostResult } from './host-result.js';
import type { StepResults } from './types.js';

const hostStatus = z.enum(HOST_STATUSES);

/** Output schema of a per-host report whose parsed fields follow `shape` (all optional). */
export function hostReportSchema<T extends z.ZodRawShape>(shape: T) {
  const entry = z
    .object({
      host: z.string(),
      status: hostStatus,
      error: z.string().optional(),
    })
    .extend(z.object(shape).partial().shape);
  return z.object({ hosts: z.array(entry) });
}

export interface HostEntry {
  host: string;
  status: HostResult['status'];
  error?: string;
}

/** Why a host produced nothing to parse: the executor's reason, else the exit code and first stderr line. */
function failureReason(result: HostResult): string {
  if (result.error) return result.error;
  if (result.status === 'failed') {
    const firstLine = result.stderr.trim().split('\n')[0] ?? '';
    return `exit code ${result.exitCode ?? 'none'}${result.signal ? ` (signal ${result.signal})` : ''}${firstLine ? `: ${firstLine}` : ''}`;
  }
  return result.status;
}

/**
 * One entry per host of `stepId`: parse stdout for hosts that ran ok; a parse failure becomes an
 * `error` on that host rather than failing the whole summary.
 */
export function reportHosts<T extends object>(
  results: StepResults,
  stepId: string,
  parse: (stdout: string, result: HostResult) => T,
): { hosts: (HostEntry & Partial<T>)[] } {
  const step = results.get(stepId);
  const hosts: (HostEntry & Partial<T>)[] = [];
  for (const [host, result] of step ?? new Map<string, HostResult>()) {
    const base: HostEntry = { host, status: result.status };
    if (result.status !== 'ok') {
      hosts.push({ ...base, error: failureReason(result) } as HostEntry & Partial<T>);
      continue;
    }
    try {
      const parsed = parse(result.stdout, result);
      const entry = { ...base, ...parsed } as HostEntry & Partial<T>;
      if (result.truncated) entry.error = 'output was truncated; figures may be incomplete';
      hosts.push(entry);
    } catch (error: unknown) {
      const reason = error instanceof Error ? error.message : String(error);
      hosts.push({ ...base, error: `unexpected output: ${reason}` } as HostEntry & Partial<T>);
    }
  }
  return { hosts };
}

/** An error raised by a parser when output does not have the expected shape. */
export class OutputFormatError extends Error {
  override name = 'OutputFormatError';
}

/** `3d 4h 12m`, `5m 3s`, for uptimes and handshake ages. */
export function humanSeconds(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const days = Math.floor(s / 86_400);
  const hours = Math.floor((s % 86_400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = s % 60;
  if (days > 0) return `${days}d ${hours}h ${minutes}m`;
  if (hours > 0) return `${hours}h ${minutes}m`;
  if (minutes > 0) return `${minutes}m ${seconds}s`;
  return `${seconds}s`;
}
