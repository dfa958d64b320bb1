// Live updates over Server-Sent Events (one-way, reconnects by itself, passes proxies, and
// needs no client library). The server renders every row it sends, so all escaping stays in
// one place; the per-job stream sends event text already made visible (config/visible.ts),
// which dashboard.js inserts as text, never as markup.
import type { Request, Response } from 'express';
import { visibleBlock } from '../../config/visible.js';
import { JOB_ID_PATTERN } from '../../queues/records.js';
import { isFinal } from '../../queues/states.js';
import { eventView } from '../present/job-view.js';
import type { Runtime } from '../runtime.js';
import { hasFilter, matches, type JobFilter } from './listing.js';
import { jobRow } from './pages/jobs.js';
import { timelineText } from './render-job.js';

const HEARTBEAT_MS = 15_000;
/** How often the jobs list looks for changed rows. */
export const LIST_POLL_MS = 500;
const MAX_TRACKED = 100;

function openStream(req: Request, res: Response): { send: (event: string, data: unknown, id?: string) => void; closed: AbortSignal } {
  res.status(200).set({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
  res.flushHeaders();
  res.write('retry: 3000\n\n');
  const controller = new AbortController();
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
  req.on('close', () => {
    clearInterval(heartbeat);
    controller.abort();
  });
  return {
    send(event, data, id) {
      if (controller.signal.aborted) return;
      res.write(`${id !== undefined ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    },
    closed: controller.signal,
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * The jobs list: rows the page shows are re-sent when their record changes, and (on the
 * first page) new jobs that match the page's filter are sent to prepend.
 */
export async function streamJobList(runtime: Runtime, req: Request, res: Response, filter: JobFilter): Promise<void> {
  const ids = (typeof req.query['ids'] === 'string' ? req.query['ids'] : '').split(',').filter((id) => JOB_ID_PATTERN.test(id)).slice(0, MAX_TRACKED);
  const { redis, keys } = runtime.ctx;
  const stream = openStream(req, res);
  const seen = new Map<string, string>();
  for (const id of ids) seen.set(id, '');
  let newest = ids.length > 0 ? Math.max(...(await Promise.all(ids.map((id) => redis.zscore(keys.jobIndex(), id)))).map((s) => Number(s ?? 0))) : Date.now();
  // First pass only records the current versions; the page already shows them.
  let first = true;
  while (!stream.closed.aborted) {
    const tracked = [...seen.keys()];
    const pipeline = redis.pipeline();
    for (const id of tracked) pipeline.hget(keys.job(id), 'updatedAt');
    const versions = ((await pipeline.exec()) ?? []).map(([, v]) => (typeof v === 'string' ? v : ''));
    for (const [i, id] of tracked.entries()) {
      const version = versions[i] ?? '';
      if (seen.get(id) === version) continue;
      seen.set(id, version);
      if (first && ids.includes(id)) continue;
      const job = await runtime.ctx.store.get(id);
      if (job !== undefined) stream.send('row', { id, html: jobRow(job).value });
    }
    first = false;
    const fresh = await redis.zrangebyscore(keys.jobIndex(), `(${newest}`, '+inf', 'LIMIT', 0, 50);
    for (const id of fresh) {
      newest = Math.max(newest, Number((await redis.zscore(keys.jobIndex(), id)) ?? newest));
      const job = await runtime.ctx.store.get(id);
      if (job === undefined || (hasFilter(filter) && !matches(job, filter))) continue;
      seen.set(id, job.updatedAt);
      if (seen.size > MAX_TRACKED) seen.delete(seen.keys().next().value as string);
      stream.send('new', { id, html: jobRow(job).value });
    }
    await sleep(LIST_POLL_MS, stream.closed);
  }
}

/** One job's events from `after` on, then `final` once it has ended. */
export async function streamJob(runtime: Runtime, jobId: string, after: string, req: Request, res: Response, showOutput: boolean): Promise<void> {
  const stream = openStream(req, res);
  const state = await runtime.ctx.store.state(jobId);
  if (state !== undefined && isFinal(state)) {
    stream.send('final', { state });
    res.end();
    return;
  }
  for await (const stamped of runtime.ctx.hub.follow(jobId, { after, signal: stream.closed })) {
    const view = eventView(stamped);
    const event = view.event;
    if (event['type'] === 'output' && !showOutput) continue;
    const text = timelineText(view);
    stream.send(
      'job',
      {
        at: view.at,
        type: event['type'],
        host: typeof event['host'] === 'string' ? visibleBlock(event['host']) : undefined,
        status: event['status'],
        stream: event['stream'],
        output: event['type'] === 'output' && typeof event['text'] === 'string' ? visibleBlock(event['text']) : undefined,
        timeline: text !== undefined ? visibleBlock(text) : undefined,
      },
      view.id,
    );
    if (event['type'] === 'state' && isFinal(event['state'] as never)) {
      stream.send('final', { state: event['state'] });
      break;
    }
  }
  res.end();
}
