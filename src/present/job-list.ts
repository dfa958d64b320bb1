// The filters of a job listing, declared once for every front end that lists jobs (API query
// string, MCP jobs_list, CLI `castellan jobs`): each narrows the listing, all of them read from
// the job indexes (queues/records.ts), so an approvals inbox or "failed on node07 this week"
// is exact at any number of retained jobs.
import { z } from 'zod';
import { ORIGINS } from '../../config/vocabulary.js';
import { JOB_STATES, type JobState } from '../../queues/states.js';
import type { JobListOptions } from '../../queues/service.js';

const time = z
  .string()
  .max(40)
  .refine((t) => !Number.isNaN(Date.parse(t)), { error: 'expected a time like 2026-11-29T08:00:00Z or 2026-11-29' })
  .describe('ISO 8601 time (UTC when no zone is given), e.g. 2026-11-29T08:00:00Z.');

/** `running` or `queued,running`: one state or several, comma-separated. */
const states = z
  .string()
  .max(200)
  .transform((text, ctx) => {
    const list = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
    const bad = list.filter((s) => !(JOB_STATES as readonly string[]).includes(s));
    if (bad.length > 0 || list.length === 0) {
      ctx.addIssue({ code: 'custom', message: `unknown state '${bad[0] ?? text}'; states are ${JOB_STATES.join(', ')}` });
      return z.NEVER;
    }
    return list as JobState[];
  });

export const jobFilterShape = {
  state: states.optional().describe(`Only jobs in this state, or any of several comma-separated (${JOB_STATES.join(', ')}).`),
  tool: z.string().max(64).optional().describe('Only jobs of this tool.'),
  requester: z.string().max(200).optional().describe('Only jobs requested by this subject or display name.'),
  host: z.string().max(253).optional().describe('Only jobs whose plan touches this inventory host.'),
  origin: z.enum(ORIGINS).optional().describe('Only jobs requested through this front end.'),
  since: time.optional().describe('Only jobs created at or after this time (ISO 8601).'),
  until: time.optional().describe('Only jobs created at or before this time (ISO 8601).'),
};

export const jobFilterSchema = z.object(jobFilterShape).strict();
export type JobFilterInput = z.output<typeof jobFilterSchema>;

/** What a CLI asks for: the filter as typed (the server or local service parses it) and the page. */
export interface JobListRequest {
  readonly limit?: number | undefined;
  readonly offset?: number | undefined;
  readonly filter?: Readonly<Partial<Record<keyof typeof jobFilterShape, string>>> | undefined;
}

export interface JobListPage<V = unknown> {
  readonly jobs: V[];
  readonly total: number;
  readonly next?: number | undefined;
}

/** `--state: unknown state 'runing'; …`: the first problem, named by its filter. */
export function formatFilterIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `--${issue.path.join('.') || 'filter'}: ${issue.message}` : 'invalid filter';
}

const instant = (t: string | undefined): number | undefined => (t === undefined ? undefined : Date.parse(/Z$|[+-]\d\d:?\d\d$/.test(t) || !t.includes('T') ? t : `${t}Z`));

/** The service's listing options for a parsed filter. */
export function listOptions(filter: Partial<JobFilterInput>, page: { limit?: number | undefined; offset?: number | undefined } = {}): JobListOptions {
  return {
    limit: page.limit,
    offset: page.offset,
    states: filter.state,
    tool: filter.tool,
    requester: filter.requester,
    host: filter.host,
    origin: filter.origin,
    since: instant(filter.since),
    until: instant(filter.until),
  };
}
