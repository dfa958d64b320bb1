// Job listing for the dashboard: newest first, filtered, paged. Without filters a page is one
// ZREVRANGE on the job index (fast at any size). With filters it walks the index newest-first
// in chunks until the page is full, looking at no more than SCAN_LIMIT jobs, and says so when
// it stopped early, rather than silently showing a partial answer as complete.
import type { Identity } from '../../auth/types.js';
import { ORIGINS } from '../../auth/types.js';
import type { JobRecord } from '../../queues/records.js';
import { JOB_STATES } from '../../queues/states.js';
import { STATE_LOOK } from '../present/render/html.js';
import type { Runtime } from '../runtime.js';
import { inRange, isFiltered, type Filter, type FilterField } from './filters.js';

type JobField = 'state' | 'tool' | 'requester' | 'origin' | 'host';
export type JobFilter = Filter<JobField>;

/** The Jobs page's filter fields; the tool list comes from the catalogue. */
export function jobFields(tools: readonly string[]): FilterField<JobField>[] {
  return [
    { name: 'state', label: 'State', options: JOB_STATES, words: (s) => STATE_LOOK[s as keyof typeof STATE_LOOK].label },
    { name: 'tool', label: 'Tool', options: tools },
    { name: 'requester', label: 'Requester', hint: 'subject or name' },
    { name: 'origin', label: 'Origin', options: ORIGINS },
    { name: 'host', label: 'Host', hint: 'node01' },
  ];
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

export function matches(job: JobRecord, filter: JobFilter): boolean {
  if (filter.state !== undefined && job.state !== filter.state) return false;
  if (filter.tool !== undefined && job.tool !== filter.tool) return false;
  if (filter.requester !== undefined && job.requester.subject !== filter.requester && job.requester.displayName !== filter.requester) return false;
  if (filter.origin !== undefined && job.requester.origin !== filter.origin) return false;
  if (filter.host !== undefined && !job.plan.hosts.includes(filter.host)) return false;
  return inRange(filter, Date.parse(job.createdAt));
}

export async function listJobs(runtime: Runtime, viewer: Identity, filter: JobFilter, offset: number, limit: number): Promise<JobPage> {
  if (!isFiltered(filter)) {
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
