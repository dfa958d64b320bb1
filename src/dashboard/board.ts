// bull-board (@bull-board/express) under /ui/queues, behind the dashboard session: one
// read-only board for everyone, and one with write actions (retry, clean, pause…) that only
// admins reach. Both show the same BullMQ queue; the dashboard's session, same-origin CSRF
// check and security headers run before either.
import type { Queue } from 'bullmq';
import type { RequestHandler } from 'express';
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

/** Picks the board by the signed-in person's role; `who` reads the session set earlier. */
export function queueBoards(queue: Queue, who: (res: Parameters<RequestHandler>[1]) => Identity): RequestHandler {
  const readOnly = board(queue, true);
  const admin = board(queue, false);
  return (req, res, next) => {
    const handler = hasRole(who(res), 'admin') ? admin : readOnly;
    return handler(req, res, next);
  };
}
