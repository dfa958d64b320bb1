// Local mode: the CLI talks to Redis directly, as the local identity from config
// (auth.local_identity). There is deliberately no flag to act as anyone else.
import { loadConfig } from '../../config/load.js';
import type { Requester } from '../../auth/types.js';
import { jobView, viewOfJob, type JobView } from '../present/job-view.js';
import type { StampedEvent } from '../../queues/events.js';
import { linesOfJob, type LinesOptions, type OutputLines } from '../present/output-lines.js';
import { createLogger } from '../log.js';
import { Redactor } from '../../queues/redact.js';
import { createRuntime, type Runtime } from '../runtime.js';
import { findConfig } from './config-path.js';
import { CastellanError } from '../../config/errors.js';
import { auditAnswer, auditCursor, auditFilterSchema, auditQuery, type AuditListAnswer, type AuditListRequest } from '../present/audit-list.js';
import { formatFilterIssue, jobFilterSchema, listOptions, type JobListPage as ListPage, type JobListRequest } from '../present/job-list.js';

export interface JobClient {
  readonly requester: Requester;
  /** Local mode only: the server's files root, where cp stages local files. */
  readonly filesRoot?: string | undefined;
  submit(tool: string, input: unknown, idempotencyKey?: string): Promise<{ job: JobView; duplicate: boolean }>;
  get(id: string): Promise<JobView>;
  list(options: JobListRequest): Promise<ListPage<JobView>>;
  /** A page of the audit trail the caller may read, newest first. */
  audit(options: AuditListRequest): Promise<AuditListAnswer>;
  events(id: string, afterId?: string): Promise<StampedEvent[]>;
  /** The job's output as lines per host, one page (src/present/output-lines.ts). */
  lines(id: string, options: LinesOptions): Promise<OutputLines>;
  /** Follow events after `after` (default: all) until the job ends or `timeoutMs` passes. */
  wait(id: string, timeoutMs: number, onEvent: (e: StampedEvent) => void, signal?: AbortSignal, after?: string): Promise<JobView>;
  approve(id: string, reason?: string): Promise<JobView>;
  deny(id: string, reason?: string): Promise<JobView>;
  cancel(id: string, reason?: string): Promise<JobView>;
  close(): Promise<void>;
}

export async function openLocal(configFlag: string | undefined, verbose: boolean): Promise<{ client: JobClient; runtime: Runtime }> {
  const config = await loadConfig(findConfig(configFlag));
  const redactor = new Redactor(config.secrets.values());
  // CLI logs stay quiet unless asked: results go to stdout, progress to stderr.
  const logger = createLogger({ level: verbose ? 'debug' : 'warn', redactor });
  const runtime = await createRuntime(config, { mode: 'client', logger });
  const requester = runtime.localRequester('cli');
  const s = runtime.service;
  // The same view the API sends, so local and remote output are one rendering.
  const view = (job: Parameters<typeof jobView>[0]): JobView => jobView(job, { places: runtime.places });
  const client: JobClient = {
    requester,
    filesRoot: config.jobs.filesRoot,
    submit: async (tool, input, idempotencyKey) => {
      const { job, duplicate } = await s.submit({ tool, input, requester, replyTo: { kind: 'cli' }, idempotencyKey });
      return { job: view(job), duplicate };
    },
    get: async (id) => viewOfJob(s, await s.get(id, requester), requester, runtime.places),
    list: async (o) => {
      const filter = jobFilterSchema.safeParse(o.filter ?? {});
      if (!filter.success) throw new CastellanError('invalid_input', formatFilterIssue(filter.error));
      const page = await s.page(requester, listOptions(filter.data, o));
      return { jobs: page.jobs.map(view), total: page.total, ...(page.next !== undefined ? { next: page.next } : {}) };
    },
    audit: async (o) => {
      const filter = auditFilterSchema.safeParse(o.filter ?? {});
      if (!filter.success) throw new CastellanError('invalid_input', formatFilterIssue(filter.error));
      const cursor = o.cursor === undefined ? undefined : auditCursor.safeParse(o.cursor);
      if (cursor?.success === false) throw new CastellanError('invalid_input', `--cursor: ${cursor.error.issues[0]?.message ?? 'invalid'}`);
      return auditAnswer(await s.audit(requester, auditQuery(filter.data, { limit: o.limit, cursor: cursor?.data })));
    },
    events: (id, afterId) => s.events(id, requester, afterId),
    lines: async (id, options) => linesOfJob(s, await s.get(id, requester), requester, options),
    wait: async (id, timeoutMs, onEvent, signal, after) => view(await s.wait(id, requester, timeoutMs, onEvent, signal, after)),
    approve: async (id, reason) => view(await s.approve(id, requester, reason)),
    deny: async (id, reason) => view(await s.deny(id, requester, reason)),
    cancel: async (id, reason) => view(await s.cancel(id, requester, reason)),
    close: () => runtime.close(),
  };
  return { client, runtime };
}
