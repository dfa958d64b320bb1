// What `castellan doctor` reports: one finding per check, each problem with the command or
// edit that fixes it. Checks never throw: a check that cannot run is itself a finding.

export type FindingStatus = 'ok' | 'warn' | 'fail' | 'skipped';

export interface Finding {
  /** Short name of what was checked: `config`, `host keys`, `redis`… */
  readonly check: string;
  readonly status: FindingStatus;
  /** One line: what was found. */
  readonly summary: string;
  /** Further lines (one per problem group), shown indented under the summary. */
  readonly details?: readonly string[];
  /** What to run or edit to fix it (absent when nothing needs fixing). */
  readonly fix?: string;
}

export const ok = (check: string, summary: string, details?: readonly string[]): Finding => ({ check, status: 'ok', summary, ...(details ? { details } : {}) });
export const warn = (check: string, summary: string, fix?: string, details?: readonly string[]): Finding => ({ check, status: 'warn', summary, ...(fix ? { fix } : {}), ...(details ? { details } : {}) });
export const fail = (check: string, summary: string, fix?: string, details?: readonly string[]): Finding => ({ check, status: 'fail', summary, ...(fix ? { fix } : {}), ...(details ? { details } : {}) });
export const skipped = (check: string, summary: string): Finding => ({ check, status: 'skipped', summary });

/** Exit status of a doctor run: 1 when anything failed, warnings alone still pass. */
export function doctorExitCode(findings: readonly Finding[]): number {
  return findings.some((f) => f.status === 'fail') ? 1 : 0;
}
