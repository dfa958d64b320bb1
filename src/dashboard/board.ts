// bull-board (@bull-board/express) under /ui/queues, behind the dashboard session: one
// read-only board for everyone, and one with write actions (retry, clean, pause…) that only
// admins reach. Both show the same BullMQ queue; the dashboard's session, same-origin CSRF
// check and security headers run before either. Its writes also need the session's CSRF token
// (board-csrf.js adds it to bull-board's own requests), and its page loads nothing from another
// origin: bull-board 9's index asks Google Fonts for IBM Plex, which is taken out (the board
// falls back to the system's sans-serif; an air-gapped admin network has no Google anyway).
import type { Queue } from 'bullmq';
import type { RequestHandler, Response } from 'express';
import { html } from '../present/render/markup.js';
import { checkCsrfToken } from './security.js';
import { UI } from './layout.js';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { hasRole } from '../../auth/roles.js';
import type { Identity } from '../../auth/types.js';

export const BOARD_PATH = '/ui/queues';

/**
 * What the read-only board shows of a job's data: who asked for which tool on which hosts.
 * Input, commands, scripts and results stay behind the job page's visibility rules
 * (auth/policy.ts jobAccess); only admins, who may see every job, get the raw data.
 */
export function summaryOfJobData(data: unknown): Record<string, unknown> {
  const doc = (data ?? {}) as { id?: unknown; tool?: unknown; risk?: unknown; requester?: { subject?: unknown; origin?: unknown }; plan?: { hosts?: unknown } };
  return {
    id: doc.id,
    tool: doc.tool,
    risk: doc.risk,
    requester: doc.requester?.subject,
    origin: doc.requester?.origin,
    hosts: Array.isArray(doc.plan?.hosts) ? doc.plan.hosts.length : undefined,
    details: `open /ui/jobs/${typeof doc.id === 'string' ? doc.id : ''} for what you may see of this job`,
  };
}

function board(queue: Queue, readOnlyMode: boolean): RequestHandler {
  const adapter = new ExpressAdapter();
  adapter.setBasePath(BOARD_PATH);
  const queueAdapter = new BullMQAdapter(queue, { readOnlyMode, allowRetries: !readOnlyMode, description: 'Castellan jobs (one BullMQ job per request)' });
  if (readOnlyMode) {
    queueAdapter.setFormatter('data', summaryOfJobData);
    queueAdapter.setFormatter('returnValue', () => '(hidden: see the job page)');
  }
  createBullBoard({
    queues: [queueAdapter],
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: 'Castellan queues', miscLinks: [{ text: 'Back to the dashboard', url: '/ui/jobs' }] } },
  });
  return adapter.getRouter() as RequestHandler;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** `<link>`s to another origin (bull-board's Google Fonts stylesheet): never requested from the dashboard. */
const FOREIGN_LINK = /<link\b[^>]*\bhref=["']?(?:https?:)?\/\/[^>]*>\s*/gi;

/** bull-board's HTML page as the dashboard serves it: no foreign links, and the CSRF token + its script. */
export function boardHtml(page: string, csrf: string): string {
  const additions = html`<meta name="csrf-token" content="${csrf}"><script src="${UI}/assets/board-csrf.js"></script>`.value;
  return page.replace(FOREIGN_LINK, '').replace(/<head>/i, `<head>${additions}`);
}

/** Rewrites the HTML bull-board sends through `res.send` (its res.render ends there). */
function rewriteHtml(res: Response, csrf: string): void {
  const send = res.send.bind(res);
  res.send = (body?: unknown) => send(typeof body === 'string' && /<html/i.test(body.slice(0, 200)) ? boardHtml(body, csrf) : body);
}

/**
 * Picks the board by the signed-in person's role; `who` reads the session set earlier. Writes
 * without the session's CSRF token are refused (403) before bull-board sees them.
 */
export function queueBoards(queue: Queue, who: (res: Response) => { readonly identity: Identity; readonly csrf: string }): RequestHandler {
  const readOnly = board(queue, true);
  const admin = board(queue, false);
  return (req, res, next) => {
    const { identity, csrf } = who(res);
    if (!SAFE_METHODS.has(req.method)) {
      const verdict = checkCsrfToken(req, csrf);
      if (!verdict.ok) {
        res.status(403).json({ error: { code: 'forbidden', message: verdict.reason } });
        return;
      }
    }
    rewriteHtml(res, csrf);
    const handler = hasRole(identity, 'admin') ? admin : readOnly;
    return handler(req, res, next);
  };
}
