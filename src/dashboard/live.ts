// Live updates over Server-Sent Events (one-way, reconnects by itself, passes proxies, and
// needs no client library). The server renders every row it sends with the shared job view's
// HTML renderer, so all escaping stays in one place; the per-job stream sends event text
// already made visible (config/visible.ts), which dashboard.js inserts as text, never as markup.
//
// The jobs list follows the all-jobs feed (queues/feed.ts): every state change and vote of
// every job, in order, with stream ids a page can resume from. One blocking reader per
// process (FeedWaker) only wakes the open pages; each page reads the entries after its own
// position with a plain XRANGE on the shared connection, so a wake-up that is lost or comes
// early costs nothing, and a page that reconnects (Last-Event-ID) misses no entry.
import type { Request, Response } from 'express';
import type { Identity } from '../../auth/types.js';
import type { Logger } from 'pino';
import { visibleBlock } from '../../config/visible.js';
import type { JobFeed } from '../../queues/feed.js';
import { JOB_ID_PATTERN } from '../../queues/records.js';
import { isFinal } from '../../queues/states.js';
import { jobView } from '../present/job-view.js';
import { jobRow, maintenanceNote, progressNote, stateBadge, summaryBlock, timelineText } from '../present/render/html.js';
import type { Runtime } from '../runtime.js';
import { isFiltered } from './filters.js';
import { matches, type JobFilter } from './listing.js';

const HEARTBEAT_MS = 15_000;
/** A page re-reads the feed after this long without a wake-up (a lost wake-up costs this, never an entry). */
const QUIET_MS = 5000;
const MAX_TRACKED = 200;
const READ_COUNT = 200;
const STREAM_ID = /^\d{1,20}-\d{1,20}$/;

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

/**
 * One blocking read of the all-jobs feed per process, waking every open jobs page when an
 * entry arrives. It runs only while some page waits, and restarts when the next one does.
 */
export class FeedWaker {
  private readonly waiters = new Set<() => void>();
  private running: AbortController | undefined;
  private idle: NodeJS.Timeout | undefined;

  constructor(
    private readonly feed: JobFeed,
    private readonly logger: Logger,
    /** The reader stops this long after the last page stopped waiting (pages re-wait between reads). */
    private readonly idleMs = 1000,
  ) {}

  /** Settles on the next feed entry, after `quietMs`, or on abort. Register before reading. */
  wait(signal: AbortSignal, quietMs = QUIET_MS): { promise: Promise<void>; cancel: () => void } {
    let wake!: () => void;
    const promise = new Promise<void>((resolve) => (wake = resolve));
    const timer = setTimeout(done, quietMs);
    const forget = (): void => {
      clearTimeout(timer);
      this.waiters.delete(done);
      signal.removeEventListener('abort', done);
      if (this.waiters.size === 0) this.stopWhenIdle();
    };
    this.waiters.add(done);
    signal.addEventListener('abort', done, { once: true });
    this.start();
    function done(): void {
      forget();
      wake();
    }
    return { promise, cancel: done };
  }

  close(): void {
    this.running?.abort();
    this.running = undefined;
    for (const wake of [...this.waiters]) wake();
  }

  private stopWhenIdle(): void {
    clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      if (this.waiters.size > 0) return;
      this.running?.abort();
      this.running = undefined;
    }, this.idleMs);
    this.idle.unref();
  }

  private start(): void {
    clearTimeout(this.idle);
    if (this.running !== undefined) return;
    const controller = new AbortController();
    this.running = controller;
    void (async () => {
      try {
        for await (const _entry of this.feed.follow(await this.feed.last(), { signal: controller.signal, blockMs: 2000 })) {
          for (const wake of [...this.waiters]) wake();
        }
      } catch (err) {
        if (!controller.signal.aborted) this.logger.warn({ err }, 'dashboard feed reader stopped; pages fall back to re-reading every few seconds');
      } finally {
        if (this.running === controller) this.running = undefined;
      }
    })();
  }
}

/**
 * The jobs list: from the feed position the page was read at, every entry about a row the
 * page shows re-sends that row, and (on the first page) a job the page has not seen that
 * matches its filter is sent to prepend. The SSE id is the feed position, so a reconnect
 * resumes exactly where the page left off.
 */
export async function streamJobList(runtime: Runtime, viewer: Identity, waker: FeedWaker, req: Request, res: Response, filter: JobFilter): Promise<void> {
  const shown = (typeof req.query['ids'] === 'string' ? req.query['ids'] : '').split(',').filter((id) => JOB_ID_PATTERN.test(id)).slice(0, MAX_TRACKED);
  const resume = req.get('last-event-id') ?? (typeof req.query['after'] === 'string' ? req.query['after'] : '');
  let last = STREAM_ID.test(resume) ? resume : await runtime.ctx.feed.last();
  const tracked = new Set(shown);
  const stream = openStream(req, res);
  // Only jobs created after the newest row shown are new; an older job's entry (a late vote
  // on a job from the next page) must not jump to the top.
  let newest = 0;
  if (shown.length > 0) {
    const scores = await Promise.all(shown.map((id) => runtime.ctx.redis.zscore(runtime.ctx.keys.jobIndex(), id)));
    newest = Math.max(0, ...scores.map((s) => Number(s ?? 0)));
  }
  while (!stream.closed.aborted) {
    const woken = waker.wait(stream.closed);
    const entries = await runtime.ctx.feed.read(last, READ_COUNT);
    // Several entries for one job in a batch send its row once, as it is now.
    const changed = new Map<string, string>();
    for (const entry of entries) {
      last = entry.id;
      changed.set(entry.jobId, entry.id);
    }
    for (const [jobId, position] of changed) {
      const record = await runtime.service.get(jobId, viewer).catch(() => undefined);
      if (record === undefined) continue;
      const known = tracked.has(jobId);
      if (!known && (Date.parse(record.createdAt) < newest || (isFiltered(filter) && !matches(record, filter)))) continue;
      if (!known) {
        tracked.add(jobId);
        if (tracked.size > MAX_TRACKED) tracked.delete(tracked.values().next().value as string);
      }
      stream.send(known ? 'row' : 'new', { id: jobId, html: jobRow(jobView(record, { places: runtime.places })).value }, position);
    }
    if (entries.length > 0 && changed.size === 0) stream.send('position', {}, last);
    if (entries.length === READ_COUNT) {
      woken.cancel();
      continue;
    }
    await woken.promise;
  }
}

/** One job's events from `after` on (those `viewer` may see), then `final` once it has ended. */
export async function streamJob(runtime: Runtime, jobId: string, viewer: Identity, after: string, req: Request, res: Response): Promise<void> {
  const stream = openStream(req, res);
  const state = await runtime.ctx.store.state(jobId);
  if (state !== undefined && isFinal(state)) {
    stream.send('final', { state });
    res.end();
    return;
  }
  for await (const stamped of runtime.service.follow(jobId, viewer, { after, signal: stream.closed })) {
    const event = stamped.event;
    const text = timelineText(stamped);
    stream.send(
      'job',
      {
        at: new Date(stamped.at).toISOString(),
        type: event.type,
        host: 'host' in event && typeof event.host === 'string' ? visibleBlock(event.host) : undefined,
        status: event.type === 'host_finished' ? event.status : undefined,
        stream: event.type === 'output' ? event.stream : undefined,
        output: event.type === 'output' ? visibleBlock(event.text) : undefined,
        timeline: text !== undefined ? visibleBlock(text) : undefined,
      },
      stamped.id,
    );
    if (event.type === 'state' && isFinal(event.state)) {
      stream.send('final', { state: event.state });
      break;
    }
    // A new state (or batch) changes the heading and the summary: send them rendered as the page would.
    if (event.type === 'state' || event.type === 'batch') {
      const record = await runtime.service.get(jobId, viewer);
      const view = jobView(record, { places: runtime.places, events: record.state === 'running' ? await runtime.service.events(jobId, viewer, '0', 5000) : undefined });
      stream.send('summary', { badge: stateBadge(view.state).value, html: `${summaryBlock(view).value}${progressNote(view).value}${maintenanceNote(view).value}` });
    }
  }
  res.end();
}
