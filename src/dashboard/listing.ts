// Job listing for the dashboard: newest first, filtered, paged, from the job indexes through
// JobService.page (exact at any number of retained jobs, with the total that matches), records
// cut to what the viewer may see. The filter fields are declared here once (form and query).
import type { Identity } from '../../auth/types.js';
import { ORIGINS } from '../../auth/types.js';
import type { JobRecord } from '../../queues/records.js';
import { JOB_STATES, type JobState } from '../../queues/states.js';
import type { JobPage } from '../../queues/service.js';
import { STATE_LOOK } from '../present/render/html.js';
import type { Runtime } from '../runtime.js';
import { inRange, type Filter, type FilterField } from './filters.js';

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

export function matches(job: JobRecord, filter: JobFilter): boolean {
  if (filter.state !== undefined && job.state !== filter.state) return false;
  if (filter.tool !== undefined && job.tool !== filter.tool) return false;
  if (filter.requester !== undefined && job.requester.subject !== filter.requester && job.requester.displayName !== filter.requester) return false;
  if (filter.origin !== undefined && job.requester.origin !== filter.origin) return false;
  if (filter.host !== undefined && !job.plan.hosts.includes(filter.host)) return false;
  return inRange(filter, Date.parse(job.createdAt));
}

/** One page of jobs matching `filter`, newest first, and how many match in all. */
export async function listJobs(runtime: Runtime, viewer: Identity, filter: JobFilter, offset: number, limit: number): Promise<JobPage> {
  return runtime.service.page(viewer, {
    offset,
    limit,
    state: filter.state as JobState | undefined,
    tool: filter.tool,
    requester: filter.requester,
    host: filter.host,
    origin: filter.origin,
    since: filter.since,
    until: filter.until,
  });
}
