// The HTTP JSON API under /api/v1: the same job operations as every other front end (submit,
// status, log, approve, deny, cancel, list, the tool catalogue), for the CLI's remote mode and
// the coming dashboard. It translates HTTP to JobService calls and CastellanErrors back to
// HTTP; it decides nothing itself. JSON is parsed here, per router, never app-wide (the Slack
// receiver mounted on the same app needs raw bodies).
import express, { type ErrorRequestHandler, type Request, type RequestHandler } from 'express';
import { z } from 'zod';
import type { Origin, Requester } from '../../auth/types.js';
import type { ReplyAddress } from '../../queues/records.js';
import { isFinal } from '../../queues/states.js';
import { CastellanError } from '../../config/errors.js';
import type { Runtime } from '../runtime.js';
import { eventView, jobView, outputPage, viewOfJob } from '../present/job-view.js';
import { linesOfJob, MAX_PAGE_LINES } from '../present/output-lines.js';
import { jobFilterShape, listOptions } from '../present/job-list.js';
import { auditAnswer, auditCursor, auditFilterShape, auditQuery } from '../present/audit-list.js';
import { verifiedRequester } from '../../auth/request-identity.js';
import { toolListing } from '../present/tool-listing.js';
import { isRedisUnavailable, redisUnavailable, RETRY_AFTER_S } from '../../queues/connections.js';

export const API_PREFIX = '/api/v1';
const MAX_BODY = '256kb';

export interface ApiOptions {
  /** Bearer authentication (requireBearer), or a responder explaining why there is none. */
  readonly authenticate: RequestHandler;
}

/** The JSON error body every API failure uses. */
export interface ApiErrorBody {
  readonly error: { readonly code: string; readonly message: string; readonly field?: string | undefined };
}

const submitBody = z
  .object({
    tool: z.string().min(1, { error: 'must name a tool' }),
    input: z.record(z.string(), z.unknown()).optional(),
    idempotency_key: z.string().optional(),
  })
  .strict();
/** `?wait=30` (seconds) or `?wait=30s` / `2m`: how long POST /jobs waits for the result, capped at jobs.wait_budget. */
const submitQuery = z.object({
  wait: z
    .string()
    .regex(/^\d{1,4}(ms|s|m)?$/, { error: 'expected seconds (30) or a duration like 30s or 2m' })
    .transform((v) => {
      const n = Number(/^\d+/.exec(v)![0]);
      return v.endsWith('ms') ? n : v.endsWith('m') ? n * 60_000 : n * 1000;
    })
    .optional(),
});
const decisionBody = z.object({ reason: z.string().max(1000).optional() }).strict();
const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).optional(),
  offset: z.coerce.number().int().min(0).max(10_000_000).optional(),
  ...jobFilterShape,
});
const auditListQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(1000).optional(),
    cursor: auditCursor.optional(),
    ...auditFilterShape,
  })
  .strict();
const eventsQuery = z.object({
  after: z.string().regex(/^(0|\d{1,20}-\d{1,20})$/, { error: 'expected an event id like 1712345678901-0 (or 0 for the start)' }).optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  /** Hold the request up to this long when there is no event after `after` yet (long poll). */
  wait_ms: z.coerce.number().int().min(0).max(30_000).optional(),
});
const outputQuery = z.object({
  offset: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(500).optional(),
  max_chars: z.coerce.number().int().min(100).max(1_000_000).optional(),
});

const linesQuery = z.object({
  hosts: z.string().max(1000).optional(),
  after: z.string().max(300).optional(),
  max_lines: z.coerce.number().int().min(1).max(MAX_PAGE_LINES).optional(),
});

/** Parse with a zod schema; the first problem becomes an `invalid_input` naming its field. */
function parse<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue?.path.map(String).join('.') ?? '';
  const message =
    issue?.code === 'unrecognized_keys' ? `unknown ${where} field(s): ${issue.keys.join(', ')}` : `${field || where}: ${issue?.message ?? 'invalid'}`;
  throw new CastellanError('invalid_input', message, field || undefined);
}

/** The caller, with the origin their verified token carries (auth.clients); no header can change it. */
function requesterOf(req: Request): Requester {
  const requester = verifiedRequester(req);
  // requireBearer always sets it; reaching here without one is a wiring bug, not the caller's.
  if (requester === undefined) throw new CastellanError('unauthenticated', 'no verified identity on this request');
  return requester;
}

function replyTo(origin: Origin): ReplyAddress {
  switch (origin) {
    case 'cli':
      return { kind: 'cli' };
    case 'mcp':
      return { kind: 'mcp' };
    default:
      return { kind: 'dashboard' };
  }
}

export function apiRouter(runtime: Runtime, options: ApiOptions): express.Router {
  const { service } = runtime;
  const router = express.Router();
  router.use(options.authenticate);
  router.use(express.json({ limit: MAX_BODY, strict: true }));

  const jsonBody = (req: Request): unknown => {
    if (!req.is('application/json')) {
      throw new CastellanError('invalid_input', 'expected a JSON body with Content-Type: application/json');
    }
    return req.body as unknown;
  };
  const jobId = (req: Request): string => String(req.params['id'] ?? '');

  // Who the token says the caller is, and the roles Castellan maps their groups to.
  router.get('/whoami', (req, res) => {
    const r = requesterOf(req);
    res.json({ subject: r.subject, display_name: r.displayName, groups: r.groups, roles: r.roles, origin: r.origin });
  });

  router.get('/tools', (req, res) => {
    const requester = requesterOf(req);
    res.json({ tools: toolListing(runtime.ctx.tools.list(), requester, runtime, requester.origin) });
  });

  router.post('/jobs', async (req, res) => {
    const requester = requesterOf(req);
    const body = parse(submitBody, jsonBody(req), 'body');
    const query = parse(submitQuery, req.query, 'query');
    const submitted = await service.submit({
      tool: body.tool,
      input: body.input ?? {},
      requester,
      replyTo: replyTo(requester.origin),
      idempotencyKey: body.idempotency_key,
    });
    // By default the answer comes at once (202, a handle to poll). With ?wait= it comes when the
    // job ends or the wait runs out, whichever is first; a job awaiting approval never waits.
    let job = submitted.job;
    const waitMs = Math.min(query.wait ?? 0, runtime.ctx.settings.waitBudgetMs);
    if (waitMs > 0 && job.state !== 'awaiting_approval' && !isFinal(job.state)) {
      const gone = new AbortController();
      res.once('close', () => gone.abort());
      job = await service.wait(job.id, requester, waitMs, undefined, gone.signal);
    }
    res.status(isFinal(job.state) ? 200 : 202).location(`${req.baseUrl}/jobs/${job.id}`).json({ job: jobView(job, { places: runtime.places }), duplicate: submitted.duplicate });
  });

  router.get('/jobs', async (req, res) => {
    const requester = requesterOf(req);
    const query = parse(listQuery, req.query, 'query');
    const page = await service.page(requester, listOptions(query, query));
    res.json({ jobs: page.jobs.map((j) => jobView(j, { places: runtime.places })), total: page.total, offset: page.offset, ...(page.next !== undefined ? { next_offset: page.next } : {}) });
  });

  // The audit trail, newest first: only what the caller may read (auth/policy.ts auditScope).
  // Entries as they are stored (the JSONL file's format); `next_cursor` continues below the page.
  router.get('/audit', async (req, res) => {
    const requester = requesterOf(req);
    const query = parse(auditListQuery, req.query, 'query');
    const page = await service.audit(requester, auditQuery(query, query));
    res.json(auditAnswer(page));
  });

  router.get('/jobs/:id', async (req, res) => {
    const requester = requesterOf(req);
    res.json({ job: await viewOfJob(service, await service.get(jobId(req), requester), requester, runtime.places) });
  });

  router.get('/jobs/:id/events', async (req, res) => {
    const query = parse(eventsQuery, req.query, 'query');
    const limit = query.limit ?? 500;
    const requester = requesterOf(req);
    const after = query.after ?? '0';
    let events = await service.events(jobId(req), requester, after, limit);
    if (events.length === 0 && (query.wait_ms ?? 0) > 0) {
      // Long poll: hold the request until the next event (through the process's one event
      // hub) or the wait ends, so a remote follower needs no polling loop of its own.
      const stop = AbortSignal.timeout(query.wait_ms ?? 0);
      for await (const _first of service.follow(jobId(req), requester, { after, signal: stop })) break;
      events = await service.events(jobId(req), requester, after, limit);
    }
    const job = await service.get(jobId(req), requester);
    const last = events.at(-1)?.id ?? query.after ?? '0';
    res.json({ job_id: job.id, state: job.state, events: events.map(eventView), next_after: last, more: events.length === limit });
  });

  router.get('/jobs/:id/output', async (req, res) => {
    const query = parse(outputQuery, req.query, 'query');
    const job = await service.get(jobId(req), requesterOf(req));
    res.json(outputPage(job, { offset: query.offset ?? 0, limit: query.limit ?? 100, maxChars: query.max_chars ?? 64 * 1024 }));
  });

  // The output as lines per host (folded once ended), paged with `after`: what job_output and `castellan output` show.
  router.get('/jobs/:id/lines', async (req, res) => {
    const query = parse(linesQuery, req.query, 'query');
    const requester = requesterOf(req);
    const job = await service.get(jobId(req), requester);
    res.json(await linesOfJob(service, job, requester, { hosts: query.hosts, after: query.after, maxLines: query.max_lines ?? 100 }));
  });

  for (const action of ['approve', 'deny', 'cancel'] as const) {
    router.post(`/jobs/:id/${action}`, async (req, res) => {
      const requester = requesterOf(req);
      // An empty body is fine here: the reason is optional.
      const body = req.is('application/json') ? parse(decisionBody, req.body ?? {}, 'body') : {};
      const id = jobId(req);
      const job =
        action === 'approve'
          ? await service.approve(id, requester, body.reason)
          : action === 'deny'
            ? await service.deny(id, requester, body.reason)
            : await service.cancel(id, requester, body.reason);
      res.json({ job: jobView(job, { places: runtime.places }) });
    });
  }

  router.use((_req, res) => {
    sendError(res, new CastellanError('not_found', 'no such API endpoint; see GET /api/v1/tools, /api/v1/jobs and /api/v1/audit'));
  });
  router.use(apiErrorHandler(runtime));
  return router;
}

export function sendError(res: express.Response, error: CastellanError): void {
  const body: ApiErrorBody = { error: { code: error.code, message: error.message, ...(error.field !== undefined ? { field: error.field } : {}) } };
  if (error.retryAfterS !== undefined) res.set('Retry-After', String(error.retryAfterS));
  // Redis away (or another dependency): tell well-behaved clients when to come back.
  else if (error.code === 'unavailable') res.set('Retry-After', String(RETRY_AFTER_S));
  res.status(error.httpStatus).json(body);
}

/** Body-parser failures carry `type`; everything else unknown is an internal error (logged, not shown). */
export function apiErrorHandler(runtime: Pick<Runtime, 'logger'>): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    if (err instanceof CastellanError) {
      sendError(res, err);
      return;
    }
    if (isRedisUnavailable(err)) {
      // Reads and decisions that hit an outage: nothing was changed by this request.
      sendError(res, redisUnavailable(err, 'nothing was changed'));
      return;
    }
    const type = (err as { type?: unknown }).type;
    if (type === 'entity.parse.failed') {
      sendError(res, new CastellanError('invalid_input', `the request body is not valid JSON (${(err as Error).message})`));
      return;
    }
    if (type === 'entity.too.large') {
      res.status(413).json({ error: { code: 'invalid_input', message: `the request body is larger than ${MAX_BODY}` } });
      return;
    }
    if (typeof type === 'string' && type.startsWith('encoding.') || type === 'charset.unsupported') {
      sendError(res, new CastellanError('invalid_input', 'the request body must be UTF-8 JSON'));
      return;
    }
    runtime.logger.error({ err, path: req.path, method: req.method }, 'API request failed');
    sendError(res, new CastellanError('internal', 'internal error; the server log has the details'));
  };
}
