// The web dashboard under /ui: sign-in and session, then the pages. It translates HTTP to
// JobService calls and renders the answers; every rule (who may run, approve, cancel) is the
// policy's, reached through the service as from every other front end.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import express, { type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import { auditScope, authorizeApproval, authorizeCancel } from '../../auth/policy.js';
import type { JobRecord } from '../../queues/records.js';
import type { Requester } from '../../auth/types.js';
import { JOB_ID_PATTERN, newJobId } from '../../queues/records.js';
import { AUDIT_ID_PATTERN } from '../../queues/audit.js';
import { toolArgsFor } from '../../tools/cli-args.js';
import { inputJsonSchema } from '../../tools/registry.js';
import { CastellanError, errorMessage } from '../../config/errors.js';
import { toolListing } from '../present/tool-listing.js';
import { jobView, planView, type JobView } from '../present/job-view.js';
import type { Runtime } from '../runtime.js';
import { authRoutes } from './auth-routes.js';
import { BOARD_PATH, queueBoards } from './board.js';
import { requesterFor, safeReturnPath, setSignedIn, signedIn, wantsHtml } from './context.js';
import { html, inline } from '../present/render/markup.js';
import { barePage, UI, type Viewer } from './layout.js';
import { jobFields, listJobs, type JobFilter } from './listing.js';
import { keptQuery, readFilter } from './filters.js';
import { FeedWaker, streamJob, streamJobList } from './live.js';
import { approvalsPage, confirmApprovalPage, type InboxItem } from './pages/approvals.js';
import { auditFields, auditPage, auditQueryOf, type AuditFilter } from './pages/audit.js';
import { hostsPage } from './pages/hosts.js';
import { jobPage } from './pages/job.js';
import { jobsPage } from './pages/jobs.js';
import { inputFromForm, previewFragment, runFormPage, toolsPage, type ToolSummary } from './pages/run.js';
import { hostRows } from './hosts.js';
import { checkCsrfToken, checkSameOrigin, readCookie, securityHeaders, SESSION_COOKIE, type CookiePolicy } from './security.js';
import { SessionStore } from './session.js';
import { SignIn } from './sign-in.js';

const FORM_LIMIT = '256kb';
const PAGE_SIZE = 50;
const EXPORT_PAGE = 1000;
const INBOX_LIMIT = 200;

/** Static files: the TypeScript source tree's assets folder, also when running from dist/. */
export function assetsDir(): string {
  const here = new URL('./assets/', import.meta.url);
  const fromDist = new URL('../../../src/dashboard/assets/', import.meta.url);
  return fileURLToPath(existsSync(fileURLToPath(here)) ? here : fromDist);
}

export function dashboardRouter(runtime: Runtime): express.Router {
  const { config } = runtime;
  const router = express.Router();
  const settings = config.auth.dashboard;
  const oidc = config.auth.oidc;
  const secret = config.secrets.dashboardClientSecret;
  router.use('/assets', express.static(assetsDir(), { index: false, fallthrough: false, maxAge: '1h', setHeaders: (res) => res.set('X-Content-Type-Options', 'nosniff') }));
  if (settings === undefined || oidc === undefined || secret === undefined) {
    router.use(securityHeaders({ formTargets: [] }));
    router.use((_req, res) => {
      res.status(503).type('html').send(barePage('Dashboard not configured', html`<p>The web dashboard signs people in through OIDC as its own client. Add <code>auth.dashboard</code> (client_id and client_secret_env or client_secret_file) next to <code>auth.oidc</code> in castellan.yaml.</p>`).value);
    });
    return router;
  }

  const publicUrl = config.server.publicUrl.replace(/\/$/, '');
  const publicOrigin = new URL(publicUrl).origin;
  const cookies: CookiePolicy = { secure: publicUrl.startsWith('https:') };
  const sessions = new SessionStore(runtime.redis, config.redis.prefix, { idleMs: settings.sessionIdleMs, absoluteMs: settings.sessionAbsoluteMs });
  const redirectUri = `${publicUrl}/ui/auth/callback`;
  const signIn = new SignIn({
    issuer: oidc.issuer,
    clientId: settings.clientId,
    clientSecret: secret,
    scopes: settings.scopes,
    redirectUri,
    postLogoutRedirectUri: `${publicUrl}/ui/signed-out`,
    groupsClaim: 'groups',
  });

  const boardHeaders = securityHeaders({ formTargets: [], allowInlineStyles: true });
  const pageHeaders = securityHeaders({ formTargets: [signIn.issuerOrigin] });
  router.use((req, res, next) => ((req.baseUrl + req.path).startsWith(BOARD_PATH) ? boardHeaders : pageHeaders)(req, res, next));
  router.use(authRoutes({ signIn, sessions, cookies, publicUrl, redirectUri, absoluteMs: settings.sessionAbsoluteMs, logger: runtime.logger }));

  // Everything below needs a session; state-changing requests also pass the CSRF checks.
  const requireSession: RequestHandler = async (req, res, next) => {
    const sessionId = readCookie(req, SESSION_COOKIE);
    const session = await sessions.get(sessionId);
    if (session === undefined || sessionId === undefined) {
      if (wantsHtml(req)) {
        res.redirect(303, `${UI}/auth/login?return=${encodeURIComponent(safeReturnPath(req.originalUrl))}`);
      } else {
        res.status(401).json({ error: { code: 'unauthenticated', message: 'not signed in (or the session ended); sign in at /ui/auth/login' } });
      }
      return;
    }
    const origin = checkSameOrigin(req, publicOrigin);
    if (!origin.ok) {
      refuse(req, res, 403, origin.reason);
      return;
    }
    setSignedIn(res, { viewer: { requester: requesterFor(session, config.auth.roles), csrf: session.csrf }, session, sessionId });
    next();
  };
  router.use(requireSession);
  // bull-board: writes are admin-only, pass the same-origin check above and carry the
  // session's CSRF token (added to bull-board's own requests by board-csrf.js).
  router.use('/queues', queueBoards(runtime.ctx.queue, (res) => ({ identity: signedIn(res).viewer.requester, csrf: signedIn(res).viewer.csrf })));

  const form = express.urlencoded({ extended: false, limit: FORM_LIMIT, parameterLimit: 200 });
  const csrf: RequestHandler = (req, res, next) => {
    const verdict = checkCsrfToken(req, signedIn(res).session.csrf);
    if (!verdict.ok) {
      refuse(req, res, 403, verdict.reason);
      return;
    }
    next();
  };
  const viewerOf = (res: Response): Viewer => signedIn(res).viewer;
  const me = (res: Response): Requester => viewerOf(res).requester;
  const pendingFor = async (requester: Requester): Promise<number> => (await inbox(requester)).filter((i) => i.vote.ok).length;

  // A job awaiting approval is a delayed BullMQ job (it sleeps until its approval deadline),
  // so the delayed set is a small, exact index of the inbox, whatever the job history's size.
  const inbox = async (requester: Requester): Promise<InboxItem[]> => {
    const delayed = await runtime.ctx.queue.getDelayed(0, INBOX_LIMIT - 1);
    // Through the service, so each record is cut to what this person may see of it.
    const records = await Promise.all(delayed.flatMap((bull) => (bull.id !== undefined ? [runtime.service.get(bull.id, requester).catch(() => undefined)] : [])));
    return records
      .filter((record): record is JobRecord => record?.state === 'awaiting_approval')
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
      .map((record) => {
        const job = jobView(record, { places: runtime.places });
        return { job, vote: mayVote(requester, job) };
      });
  };
  const mayVote = (requester: Requester, job: JobView): InboxItem['vote'] => {
    const verdict = authorizeApproval({
      approver: requester,
      vote: 'approve',
      request: { requester: { subject: job.requester.subject, displayName: job.requester.display_name, groups: [], roles: [] }, risk: job.risk, tool: job.tool, origin: job.requester.origin },
      votes: (job.approval?.votes ?? []).map((v) => ({ subject: v.subject, vote: v.decision })),
      config: runtime.auth,
    });
    return verdict.ok ? { ok: true } : { ok: false, reason: verdict.reason };
  };
  const mayCancel = (requester: Requester, job: JobView): boolean => authorizeCancel({ by: requester, requester: job.requester }).ok;

  const send = (res: Response, markup: { value: string }, status = 200): void => {
    res.status(status).type('html').send(markup.value);
  };

  const waker = new FeedWaker(runtime.ctx.feed, runtime.logger);
  const toolNames = runtime.ctx.tools.list().map((t) => t.name).sort();
  const jobFilter = (query: Request['query']): JobFilter => readFilter(jobFields(toolNames), query);

  router.get('/', (_req, res) => res.redirect(303, `${UI}/jobs`));

  router.get('/jobs', async (req, res) => {
    const id = typeof req.query['id'] === 'string' ? req.query['id'].trim() : '';
    if (id !== '') {
      if (JOB_ID_PATTERN.test(id)) {
        res.redirect(303, `${UI}/jobs/${id}`);
        return;
      }
    }
    const filter = jobFilter(req.query);
    const offset = Math.min(Math.max(Number(req.query['offset'] ?? 0) || 0, 0), 1_000_000);
    // Read before the listing, so the live stream replays anything that changes in between.
    const feedAfter = await runtime.ctx.feed.last();
    const result = await listJobs(runtime, me(res), filter, offset, PAGE_SIZE);
    const query = keptQuery(req.query, ['offset', 'id']);
    send(res, jobsPage({
      viewer: viewerOf(res),
      filter,
      page: result,
      jobs: result.jobs.map((job) => jobView(job, { places: runtime.places })),
      feedAfter,
      tools: toolNames,
      query,
      pendingApprovals: await pendingFor(me(res)),
      notice: id !== '' ? `'${id.slice(0, 40)}' is not a job id (they look like j…)` : undefined,
    }));
  });

  router.get('/jobs.json', async (req, res) => {
    const filter = jobFilter(req.query);
    const offset = Math.min(Math.max(Number(req.query['offset'] ?? 0) || 0, 0), 1_000_000);
    const result = await listJobs(runtime, me(res), filter, offset, PAGE_SIZE);
    res.json({ jobs: result.jobs.map((j) => jobView(j, { places: runtime.places })), total: result.total, offset, ...(result.next !== undefined ? { next_offset: result.next } : {}) });
  });

  router.get('/live/jobs', async (req, res) => {
    await streamJobList(runtime, me(res), waker, req, res, jobFilter(req.query));
  });

  const showJob = async (req: Request, res: Response, extra: { notice?: string; error?: string; status?: number } = {}): Promise<void> => {
    const requester = me(res);
    const id = String(req.params['id']);
    // Events first, then the record: the page follows the events live from the last one read
    // here, so a state change landing between the two reads comes after it and is streamed (the
    // heading re-rendered). Record first, it could be among the events read while the record
    // still had the old state: a job that started in between kept a "queued" heading while its
    // log streamed.
    // Record and events come cut to what this person may see (queues/visibility.ts).
    const events = await runtime.service.events(id, requester, '0', 5000);
    const record = await runtime.service.get(id, requester);
    const job = jobView(record, { events, places: runtime.places });
    const tool = runtime.ctx.tools.get(job.tool);
    send(res, jobPage({
      viewer: viewerOf(res),
      job,
      events,
      cli: tool !== undefined ? toolArgsFor(tool, (job.input ?? {}) as Record<string, unknown>) : [job.tool],
      vote: mayVote(requester, job),
      mayCancel: mayCancel(requester, job),
      pendingApprovals: await pendingFor(requester),
      notice: extra.notice,
      error: extra.error,
    }), extra.status);
  };

  router.get('/jobs/:id', (req, res) => showJob(req, res, { notice: typeof req.query['done'] === 'string' ? doneNotice(req.query['done']) : undefined }));

  router.get('/jobs/:id/live', async (req, res) => {
    const job = await runtime.service.get(String(req.params['id']), me(res));
    const after = req.get('last-event-id') ?? (typeof req.query['after'] === 'string' ? req.query['after'] : '0');
    await streamJob(runtime, job.id, me(res), /^(0|\d{1,20}-\d{1,20})$/.test(after) ? after : '0', req, res);
  });

  router.get('/jobs/:id/approve', async (req, res) => {
    const requester = me(res);
    const record = await runtime.service.get(String(req.params['id']), requester);
    const job = jobView(record, { places: runtime.places });
    if (job.state !== 'awaiting_approval' || job.hidden?.details === true) {
      res.redirect(303, `${UI}/jobs/${job.id}`);
      return;
    }
    send(res, confirmApprovalPage(viewerOf(res), job, await pendingFor(requester)));
  });

  for (const action of ['approve', 'deny', 'cancel'] as const) {
    router.post(`/jobs/:id/${action}`, form, csrf, async (req, res) => {
      const requester = me(res);
      const id = String(req.params['id']);
      const body = req.body as Record<string, unknown>;
      const reason = typeof body['reason'] === 'string' && body['reason'].trim() !== '' ? body['reason'].trim().slice(0, 1000) : undefined;
      try {
        if (action === 'approve') await runtime.service.approve(id, requester, reason);
        else if (action === 'deny') {
          if (reason === undefined) throw new CastellanError('invalid_input', 'say why you deny it (the requester reads the reason)', 'reason');
          await runtime.service.deny(id, requester, reason);
        } else await runtime.service.cancel(id, requester, reason);
      } catch (error) {
        if (!(error instanceof CastellanError)) throw error;
        await showJob(req, res, { error: error.message, status: error.httpStatus });
        return;
      }
      res.redirect(303, `${UI}/jobs/${id}?done=${action}`);
    });
  }

  router.get('/approvals', async (_req, res) => {
    const requester = me(res);
    const waiting = await inbox(requester);
    const decided = (await runtime.service.recentlyDecided(requester, 20)).map((j) => jobView(j, { places: runtime.places }));
    send(res, approvalsPage(viewerOf(res), waiting, decided));
  });

  const toolSummaries = (requester: Requester): ToolSummary[] =>
    toolListing(runtime.ctx.tools.list(), requester, runtime, 'dashboard').map((t) => ({
      name: String(t['name']),
      title: String(t['title']),
      description: String(t['description']),
      risk: String(t['risk']),
      approvalRequired: t['approval_required'] === true,
    }));
  const toolFor = (requester: Requester, name: string): ToolSummary => {
    const summary = toolSummaries(requester).find((t) => t.name === name);
    if (summary === undefined) {
      runtime.service.tool(name); // unknown tool → its own error with suggestions
      throw new CastellanError('forbidden', `your roles (${requester.roles.join(', ') || 'none'}) may not run ${name}`);
    }
    return summary;
  };

  router.get('/run', async (_req, res) => {
    send(res, toolsPage(viewerOf(res), toolSummaries(me(res)), await pendingFor(me(res))));
  });

  router.get('/run/:tool', async (req, res) => {
    const requester = me(res);
    const summary = toolFor(requester, String(req.params['tool']));
    const tool = runtime.service.tool(summary.name);
    const values = Object.fromEntries(Object.entries(req.query).filter((e): e is [string, string] => typeof e[1] === 'string'));
    send(res, runFormPage({ viewer: viewerOf(res), tool: summary, schema: inputJsonSchema(tool), values: inputFromForm(inputJsonSchema(tool), values), errors: {}, idempotencyKey: newJobId(), pendingApprovals: await pendingFor(requester) }));
  });

  router.get('/run/:tool/targets', async (req, res) => {
    const expression = typeof req.query['expr'] === 'string' ? req.query['expr'] : '';
    const requester = me(res);
    toolFor(requester, String(req.params['tool']));
    try {
      const inventory = await runtime.ctx.inventory.current();
      const hosts = runtime.ctx.planContext(inventory).resolve(expression);
      res.json({ hosts: hosts.slice(0, 200), count: hosts.length });
    } catch (error) {
      res.json({ error: errorMessage(error) });
    }
  });

  router.post('/run/:tool', form, csrf, async (req, res) => {
    const requester = me(res);
    const summary = toolFor(requester, String(req.params['tool']));
    const tool = runtime.service.tool(summary.name);
    const schema = inputJsonSchema(tool);
    const body = req.body as Record<string, unknown>;
    const input = inputFromForm(schema, body);
    const action = body['_action'] === 'preview' ? 'preview' : 'submit';
    const idempotencyKey = typeof body['_idempotency'] === 'string' && /^j[a-z0-9]{8,24}$/.test(body['_idempotency']) ? body['_idempotency'] : newJobId();
    const fragment = req.get('x-requested-with') === 'fetch';
    try {
      if (action === 'preview') {
        const preview = await runtime.service.preview({ tool: tool.name, input, requester });
        const shown = { plan: planView(preview.plan, preview.loginUser), approvalsRequired: preview.approvalsRequired };
        if (fragment) send(res, previewFragment(shown));
        else send(res, runFormPage({ viewer: viewerOf(res), tool: summary, schema, values: input, errors: {}, preview: shown, idempotencyKey, pendingApprovals: await pendingFor(requester) }));
        return;
      }
      const { job } = await runtime.service.submit({ tool: tool.name, input, requester, replyTo: { kind: 'dashboard' }, idempotencyKey: `ui-${idempotencyKey}` });
      res.redirect(303, `${UI}/jobs/${job.id}`);
    } catch (error) {
      if (!(error instanceof CastellanError)) throw error;
      if (fragment) {
        send(res, html`<p class="error" role="alert">${inline(error.message)}</p>`, error.httpStatus);
        return;
      }
      const field = error.field?.split(/[.[]/)[0];
      send(res, runFormPage({
        viewer: viewerOf(res),
        tool: summary,
        schema,
        values: input,
        errors: field !== undefined && schema.properties?.[field] !== undefined ? { [field]: error.message } : {},
        error: error.message,
        idempotencyKey,
        pendingApprovals: await pendingFor(requester),
      }), error.httpStatus);
    }
  });

  router.get('/hosts', async (_req, res) => {
    const requester = me(res);
    const inventory = await runtime.ctx.inventory.current();
    send(res, hostsPage(viewerOf(res), await hostRows(runtime, requester, inventory), inventory.groups, await pendingFor(requester)));
  });

  // The trail as the signed-in person may read it (auditScope), from the audit indexes.
  const auditFilter = (query: Request['query']): AuditFilter => readFilter(auditFields(toolNames), query);
  const auditAfter = (query: Request['query']): string | undefined => (typeof query['after'] === 'string' && AUDIT_ID_PATTERN.test(query['after']) ? query['after'] : undefined);
  router.get('/audit', async (req, res) => {
    const requester = me(res);
    const filter = auditFilter(req.query);
    const after = auditAfter(req.query);
    const result = await runtime.service.audit(requester, auditQueryOf(filter, { limit: PAGE_SIZE, after }));
    send(res, auditPage({ viewer: viewerOf(res), result, filter, tools: toolNames, query: keptQuery(req.query, ['after']), after, scope: auditScope(requester), pendingApprovals: await pendingFor(requester) }));
  });
  // Every matching entry, streamed page by page (a page of the index at a time, never the whole trail in memory).
  router.get('/audit.jsonl', async (req, res) => {
    const requester = me(res);
    const filter = auditFilter(req.query);
    let after: string | undefined;
    let first = await runtime.service.audit(requester, auditQueryOf(filter, { limit: EXPORT_PAGE }));
    res.type('application/x-ndjson').attachment(`castellan-audit-${new Date().toISOString().slice(0, 19).replaceAll(':', '')}.jsonl`);
    for (;;) {
      if (first.entries.length > 0) res.write(first.entries.map((r) => JSON.stringify(r) + '\n').join(''));
      after = first.next;
      if (after === undefined || res.destroyed) break;
      first = await runtime.service.audit(requester, auditQueryOf(filter, { limit: EXPORT_PAGE, after }));
    }
    res.end();
  });

  router.use((req, res) => refuse(req, res, 404, 'no such dashboard page'));
  router.use(errorPage(runtime));
  return router;
}

function doneNotice(action: string): string | undefined {
  return action === 'approve' ? 'Your approval is recorded.' : action === 'deny' ? 'Denied: the request will not run.' : action === 'cancel' ? 'Cancellation requested.' : undefined;
}

function refuse(req: Request, res: Response, status: number, message: string): void {
  if (wantsHtml(req) || req.is('application/x-www-form-urlencoded')) {
    res.status(status).type('html').send(barePage(status === 404 ? 'Not found' : 'Request refused', html`<p>${message}</p><p><a class="button" href="${UI}/jobs">Back to jobs</a></p>`).value);
  } else {
    res.status(status).json({ error: { code: status === 404 ? 'not_found' : 'forbidden', message } });
  }
}

function errorPage(runtime: Runtime): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    if (err instanceof CastellanError) {
      refuse(req, res, err.httpStatus, err.message);
      return;
    }
    const type = (err as { type?: unknown }).type;
    if (type === 'entity.too.large') {
      refuse(req, res, 413, `the form is larger than ${FORM_LIMIT}`);
      return;
    }
    runtime.logger.error({ err, path: req.path }, 'dashboard request failed');
    refuse(req, res, 500, 'internal error; the server log has the details');
  };
}

