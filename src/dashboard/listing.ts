// Job listing for the dashboard: newest first, filtered, paged. Without filters a page is one
// ZREVRANGE on the job index (fast at any size). With filters it walks the index newest-first
// in chunks until the page is full, looking at no more than SCAN_LIMIT jobs, and says so when
// it stopped early, rather than silently showing a partial answer as complete.
import type { Identity } from '../../auth/types.js';
import type { JobRecord } from '../../queues/records.js';
import { JOB_STATES, type JobState } from '../../queues/states.js';
import type { Runtime } from '../runtime.js';

export interface JobFilter {
  readonly state?: JobState | undefined;
  readonly tool?: string | undefined;
  readonly requester?: string | undefined;
  readonly origin?: string | undefined;
  readonly host?: string | undefined;
  /** Epoch ms bounds on creation time. */
  readonly since?: number | undefined;
  readonly until?: number | undefined;
}

export interface JobPage {
  readonly jobs: readonly JobRecord[];
  readonly offset: number;
  /** Offset of the next page (in index positions), when there may be more. */
  readonly next?: number | undefined;
  /** True when filtering stopped after SCAN_LIMIT jobs without filling the page. */
  readonly truncated: boolean;
}

export const SCAN_LIMIT = 5000;
const CHUNK = 200;

export function hasFilter(filter: JobFilter): boolean {
  return Object.values(filter).some((v) => v !== undefined);
}

export function matches(job: JobRecord, filter: JobFilter): boolean {
  if (filter.state !== undefined && job.state !== filter.state) return false;
  if (filter.tool !== undefined && job.tool !== filter.tool) return false;
  if (filter.requester !== undefined && job.requester.subject !== filter.requester && job.requester.displayName !== filter.requester) return false;
  if (filter.origin !== undefined && job.requester.origin !== filter.origin) return false;
  if (filter.host !== undefined && !job.plan.hosts.includes(filter.host)) return false;
  const created = Date.parse(job.createdAt);
  if (filter.since !== undefined && created < filter.since) return false;
  if (filter.until !== undefined && created > filter.until) return false;
  return true;
}

export async function listJobs(runtime: Runtime, viewer: Identity, filter: JobFilter, offset: number, limit: number): Promise<JobPage> {
  if (!hasFilter(filter)) {
    const jobs = await runtime.service.list(viewer, { offset, limit: limit + 1 });
    return { jobs: jobs.slice(0, limit), offset, next: jobs.length > limit ? offset + limit : undefined, truncated: false };
  }
  const found: JobRecord[] = [];
  let position = offset;
  while (position - offset < SCAN_LIMIT) {
    const chunk = await runtime.service.list(viewer, { offset: position, limit: CHUNK });
    for (const [i, job] of chunk.entries()) {
      if (!matches(job, filter)) continue;
      if (found.length === limit) return { jobs: found, offset, next: position + i, truncated: false };
      found.push(job);
    }
    position += chunk.length;
    if (chunk.length < CHUNK) return { jobs: found, offset, next: undefined, truncated: false };
  }
  return { jobs: found, offset, next: position, truncated: true };
}

export function parseState(value: unknown): JobState | undefined {
  return typeof value === 'string' && (JOB_STATES as readonly string[]).includes(value) ? (value as JobState) : undefined;
}
