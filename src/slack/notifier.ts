// The Slack notifier: keeps every Slack message that shows a job in step with the job.
//
// It follows all jobs from Redis, not from process memory: a scan of the job index from a
// stored position finds new jobs (a Slack request gets its channel message; a job awaiting
// approval, from any front end, gets an approval card), and for each job still changing it
// reads the job's event stream from a stored cursor. So a restart resumes where it stopped,
// and whatever decides a job (a click, the CLI, the API, expiry, cancel) reaches every card.
//
// One notifier writes at a time (a lease in Redis), so several servers never post twice.
// Edits are coalesced: a message is re-rendered every tick but only sent when the rendering
// changed and at most once per `editIntervalMs`; a 429's Retry-After pauses all calls.
// A 1000-host fan-out thus costs tens of edits, not thousands.
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { webApi } from '@slack/bolt';
import type { QueueContext } from '../../queues/context.js';
import type { JobRecord } from '../../queues/records.js';
import { isFinal } from '../../queues/states.js';
import { errorMessage } from '../../config/errors.js';
import type { Logger } from '../log.js';
import type { SlackKeys } from './keys.js';
import { needsThreadReply, renderJob, renderOutputReply, type JobProgress, type MessageKind, type SlackMessage } from './render.js';

type WebClient = webApi.WebClient;

/** One Slack message that shows a job, and what was last sent to it. */
interface ShownMessage {
  readonly channel: string;
  readonly ts: string;
  readonly fingerprint: string;
  /** Not before this time (epoch ms) may it be edited again. */
  readonly nextAt: number;
  /** ts of the thread reply with long output, once posted. */
  readonly outputTs?: string | undefined;
  readonly failures?: number | undefined;
}

interface WatchState extends JobProgress {
  readonly cursor: string;
}

export interface NotifierOptions {
  readonly redis: Redis;
  readonly ctx: Pick<QueueContext, 'store' | 'events' | 'keys'>;
  readonly keys: SlackKeys;
  readonly client: WebClient;
  readonly publicUrl: string;
  readonly approvalsChannel: string | undefined;
  readonly logger: Logger;
  readonly tickMs?: number;
  readonly editIntervalMs?: number;
  /** Lease length; another instance takes over this long after this one stops renewing. */
  readonly leaseMs?: number;
  /** Observes every Slack call (benchmarks count them; metrics). */
  readonly onCall?: (method: string) => void;
}

const LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0`;

const KNOWN_TTL_S = 7 * 24 * 3600;
/** Jobs created this long before the stored position are looked at again (same-ms creations, clock skew). */
const SCAN_OVERLAP_MS = 5000;
const SCAN_BATCH = 500;
const MAX_EDIT_FAILURES = 5;
const RETRY_FAILED_EDIT_MS = 5000;

export class SlackNotifier {
  private readonly instance = randomBytes(8).toString('hex');
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly tickMs: number;
  private readonly editIntervalMs: number;
  private readonly leaseMs: number;

  constructor(private readonly o: NotifierOptions) {
    this.tickMs = o.tickMs ?? 250;
    this.editIntervalMs = o.editIntervalMs ?? 1000;
    this.leaseMs = o.leaseMs ?? 5000;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        try {
          await this.tick();
        } catch (error) {
          this.o.logger.warn({ err: errorMessage(error) }, 'Slack notifier tick failed; retrying');
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.tickMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    // Hand over at once instead of making the next instance wait out the lease.
    await this.o.redis.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, this.o.keys.notifierLease(), this.instance).catch(() => undefined);
  }

  /** One pass: take or keep the lease, find new jobs, bring changed messages up to date. */
  async tick(now = Date.now()): Promise<void> {
    const { redis, keys } = this.o;
    const leader = (await redis.eval(LEASE, 1, keys.notifierLease(), this.instance, String(this.leaseMs))) === 1;
    if (!leader) return;
    const pausedUntil = Number((await redis.get(keys.pauseUntil())) ?? '0');
    if (now < pausedUntil) return;
    try {
      await this.scanNewJobs(now);
      const watching = await redis.smembers(keys.watching());
      for (const jobId of watching) await this.update(jobId);
    } catch (error) {
      if (error instanceof Error && (error as { code?: string }).code === webApi.ErrorCode.RateLimitedError) {
        const retryAfterS = (error as webApi.WebAPIRateLimitedError).retryAfter;
        await redis.set(keys.pauseUntil(), String(Date.now() + retryAfterS * 1000), 'PX', retryAfterS * 1000 + 1000);
        this.o.logger.info({ retryAfterS }, 'Slack rate limit: pausing Slack calls as asked (Retry-After)');
        return;
      }
      throw error;
    }
  }

  private async scanNewJobs(now: number): Promise<void> {
    const { redis, keys, ctx } = this.o;
    const stored = await redis.get(keys.feedPosition());
    // First start: begin shortly before now rather than posting the whole history.
    const position = stored === null ? now - 60_000 : Number(stored);
    const found = await redis.zrangebyscore(ctx.keys.jobIndex(), position - SCAN_OVERLAP_MS, '+inf', 'WITHSCORES', 'LIMIT', 0, SCAN_BATCH);
    let next = position;
    for (let i = 0; i < found.length; i += 2) {
      const jobId = found[i] ?? '';
      const score = Number(found[i + 1]);
      if ((await redis.set(keys.known(jobId), '1', 'EX', KNOWN_TTL_S, 'NX')) !== 'OK') {
        next = Math.max(next, score);
        continue;
      }
      try {
        const job = await ctx.store.get(jobId);
        if (job) await this.introduce(job);
      } catch (error) {
        // Not introduced (rate limited, Redis hiccup): the next tick looks at it again.
        await redis.del(keys.known(jobId));
        await redis.set(keys.feedPosition(), String(Math.max(position, Math.min(next, score))));
        throw error;
      }
      next = Math.max(next, score);
    }
    if (next !== position || stored === null) await redis.set(keys.feedPosition(), String(next));
  }

  /** A job seen for the first time: post its messages and start watching it. */
  private async introduce(job: JobRecord): Promise<void> {
    const request = job.replyTo.kind === 'slack' ? job.replyTo.channel : undefined;
    const approvals = this.o.approvalsChannel;
    const kinds: [MessageKind, string][] = [];
    if (request !== undefined) kinds.push(['request', request]);
    // A request made in the approvals channel already carries the buttons there.
    if (job.state === 'awaiting_approval' && approvals !== undefined && approvals !== request) kinds.push(['card', approvals]);
    if (kinds.length === 0) return;
    const progress = await this.progress(job.id);
    const existing = await this.o.redis.hgetall(this.o.keys.messages(job.id));
    for (const [kind, channel] of kinds) {
      if (existing[kind] !== undefined) continue; // posted before an interruption
      const message = renderJob(job, progress, kind, this.o.publicUrl);
      const posted = await this.call('chat.postMessage', () => this.o.client.chat.postMessage({ channel, text: message.text, blocks: message.blocks, unfurl_links: false, unfurl_media: false }));
      if (!posted.ts) continue;
      const shown: ShownMessage = { channel: posted.channel ?? channel, ts: posted.ts, fingerprint: fingerprint(message), nextAt: Date.now() + this.editIntervalMs };
      await this.o.redis.hset(this.o.keys.messages(job.id), kind, JSON.stringify(shown));
    }
    await this.o.redis.sadd(this.o.keys.watching(), job.id);
  }

  /** Read the job's new events into its progress counters (stored, so a restart resumes). */
  private async progress(jobId: string): Promise<WatchState> {
    const key = this.o.keys.watch(jobId);
    const raw = await this.o.redis.get(key);
    let state: WatchState = raw ? (JSON.parse(raw) as WatchState) : { cursor: '0', done: 0, failed: 0 };
    const events = await this.o.ctx.events.read(jobId, state.cursor, 5000);
    if (events.length === 0) return state;
    let { done, failed, batch } = state;
    for (const { event } of events) {
      if (event.type === 'host_finished') {
        if (event.status === 'ok') done += 1;
        else failed += 1;
      } else if (event.type === 'batch') {
        batch = { index: event.index, total: event.total };
      }
    }
    state = { cursor: events[events.length - 1]?.id ?? state.cursor, done, failed, batch };
    await this.o.redis.set(key, JSON.stringify(state), 'EX', KNOWN_TTL_S);
    return state;
  }

  private async update(jobId: string): Promise<void> {
    const { redis, keys } = this.o;
    const job = await this.o.ctx.store.get(jobId);
    if (!job) {
      await redis.srem(keys.watching(), jobId);
      return;
    }
    const progress = await this.progress(jobId);
    const shown = await redis.hgetall(keys.messages(jobId));
    let settled = isFinal(job.state);
    for (const [kind, raw] of Object.entries(shown)) {
      const message = JSON.parse(raw) as ShownMessage;
      const rendered = renderJob(job, progress, kind as MessageKind, this.o.publicUrl);
      let current = message;
      const print = fingerprint(rendered);
      if (print !== message.fingerprint) {
        if (Date.now() < message.nextAt) {
          settled = false; // coalesced: the next tick sends the newest state
          continue;
        }
        const edited = await this.call('chat.update', () => this.o.client.chat.update({ channel: message.channel, ts: message.ts, text: rendered.text, blocks: rendered.blocks }));
        const failures = edited.ok === false ? (message.failures ?? 0) + 1 : 0;
        // A failed edit is tried again later; after a few (message deleted, bot removed) it is given up.
        const gaveUp = failures >= MAX_EDIT_FAILURES;
        current = {
          ...current,
          fingerprint: edited.ok !== false || gaveUp ? print : message.fingerprint,
          nextAt: Date.now() + (edited.ok === false ? RETRY_FAILED_EDIT_MS : this.editIntervalMs),
          failures,
        };
        await redis.hset(keys.messages(jobId), kind, JSON.stringify(current));
        if (edited.ok === false && !gaveUp) settled = false;
      }
      if (kind === 'request' && needsThreadReply(job) && current.outputTs === undefined) {
        const reply = await this.call('chat.postMessage', () =>
          this.o.client.chat.postMessage({ channel: message.channel, thread_ts: message.ts, text: renderOutputReply(job), unfurl_links: false, unfurl_media: false }),
        );
        await redis.hset(keys.messages(jobId), kind, JSON.stringify({ ...current, outputTs: reply.ts ?? 'posted' }));
      }
    }
    if (settled) await redis.srem(keys.watching(), jobId);
  }

  private async call<T extends { ok?: boolean }>(method: string, run: () => Promise<T>): Promise<T> {
    this.o.onCall?.(method);
    try {
      return await run();
    } catch (error) {
      if ((error as { code?: string }).code === webApi.ErrorCode.RateLimitedError) throw error;
      // A message deleted in Slack, a channel the bot left: log and carry on with the others.
      this.o.logger.warn({ method, err: errorMessage(error) }, 'Slack call failed');
      return { ok: false } as T;
    }
  }
}

function fingerprint(message: SlackMessage): string {
  return createHash('sha256').update(JSON.stringify(message)).digest('base64url').slice(0, 22);
}
