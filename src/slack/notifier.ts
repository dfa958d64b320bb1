// The Slack notifier: keeps every Slack message that shows a job in step with the job.
//
// It learns about jobs from the all-jobs feed (queues/feed.ts), read in one consumer group
// shared by every Castellan instance: each feed entry reaches one instance, and one that died
// before acknowledging an entry has it taken over, so nothing is missed across restarts. A job
// that needs Slack messages (a Slack request; any job that needs approval, for the approvals
// channel) is added to the `watching` set in the same transaction that acknowledges its entry.
//
// Each watched job has exactly one owner instance at a time (an owner key per job, valid while
// the owner's heartbeat key lives). Only the owner posts and edits the job's messages: it
// follows the job's own event stream through the process's JobEventHub (queues/follow.ts), so
// progress, votes and the ending arrive live, in order, from one writer. When an owner dies
// its heartbeat expires and another instance's sweep takes the job over, resuming from what
// Redis says was posted (message ts, last render, plan parts, output reply). Each message is
// posted once across instances (post-once.ts); an owner paused past its heartbeat whose edit
// lands after the new owner's flags the message to be edited again (RECORD_EDIT below).
//
// Edits are coalesced: a message is re-rendered when the job changed, and sent only when the
// rendering changed and at most once per `editIntervalMs`; a 429's Retry-After pauses every
// instance's calls (a shared key). A 1000-host fan-out thus costs tens of edits, not thousands.
import { createHash, randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import os from 'node:os';
import type { ChainableCommander, Redis } from 'ioredis';
import { webApi } from '@slack/bolt';
import type { QueueContext } from '../../queues/context.js';
import type { StampedEvent } from '../../queues/events.js';
import type { FeedEntry } from '../../queues/feed.js';
import type { JobRecord } from '../../queues/records.js';
import { errorMessage } from '../../config/errors.js';
import { jobView, type ApprovalPlaces, type JobView } from '../present/job-view.js';
import { needsOutputReply, planPlacement, planReply, slackJobMessage, slackOutputReply, type MessageKind, type MessageState, type SlackMessage } from '../present/render/slack.js';
import type { Logger } from '../log.js';
import type { SlackKeys } from './keys.js';
import { PostOnce } from './post-once.js';

type WebClient = webApi.WebClient;

/** One Slack message that shows a job, and what was last sent to it (stored in Redis). */
interface ShownMessage {
  readonly channel: string;
  readonly ts: string;
  readonly fingerprint: string;
  /** Not before this time (epoch ms) may it be edited again. */
  readonly nextAt: number;
  /** Plan thread replies posted so far (plans too long for the card). */
  readonly planPosted?: number | undefined;
  /** ts of the thread reply with long output, once posted. */
  readonly outputTs?: string | undefined;
  readonly failures?: number | undefined;
}

export interface NotifierOptions {
  readonly redis: Redis;
  readonly ctx: Pick<QueueContext, 'store' | 'keys' | 'feed' | 'hub'>;
  readonly keys: SlackKeys;
  readonly client: WebClient;
  readonly publicUrl: string;
  readonly approvalsChannel: string | undefined;
  readonly places: ApprovalPlaces;
  readonly logger: Logger;
  readonly editIntervalMs?: number | undefined;
  /** Heartbeat lifetime: another instance takes this one's jobs over this long after it stops. */
  readonly leaseMs?: number | undefined;
  /** How often every instance looks for watched jobs whose owner is gone. */
  readonly sweepMs?: number | undefined;
  /** Feed entries another instance took and did not acknowledge for this long are taken over. */
  readonly claimIdleMs?: number | undefined;
  /** Observes every Slack call (benchmarks count them; metrics). */
  readonly onCall?: ((method: string) => void) | undefined;
}

/** The consumer group every Slack notifier reads the feed in. */
export const FEED_GROUP = 'slack-notifier';
const MAX_EDIT_FAILURES = 5;
const RETRY_FAILED_EDIT_MS = 5000;
/** Events that progress is computed from; output is left out (it can be large and the view needs none). */
const PROGRESS_EVENTS = new Set(['batch', 'step', 'host_started', 'host_finished', 'lock_wait', 'state']);

/** Claim a job when it has no owner, or its owner's heartbeat is gone. Returns 1 when this instance owns it. */
const CLAIM = `
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then return 1 end
if owner and redis.call('EXISTS', ARGV[2] .. owner) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1`;

/** Every watched job whose owner is gone, claimed for ARGV[1] in one round trip. */
const SWEEP = `
local claimed = {}
for _, job in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[3] .. job
  local owner = redis.call('GET', key)
  if owner ~= ARGV[1] and (not owner or redis.call('EXISTS', ARGV[2] .. owner) == 0) then
    redis.call('SET', key, ARGV[1])
    table.insert(claimed, job)
  elseif owner == ARGV[1] then
    table.insert(claimed, job)
  end
end
return claimed`;

// After an edit: record it. An instance that lost the job meanwhile (paused past its heartbeat)
// may have had its older rendering land after the new owner's edit, so it flags the message
// to be edited again and keeps the job watched. KEYS: 1 messages, 2 owner, 3 watching.
// ARGV: 1 kind, 2 message JSON, 3 instance, 4 job id, 5 the redo field.
const RECORD_EDIT = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then return 1 end
redis.call('HSET', KEYS[1], ARGV[5], '1')
redis.call('SADD', KEYS[3], ARGV[4])
return 0`;

// Let a job go (its messages show its end), unless a late edit flagged one of them meanwhile:
// then only the ownership goes, and the next sweep edits it again. KEYS: 1 messages, 2 owner,
// 3 watching. ARGV: 1 instance, 2 job id, 3 kept for (s), 4… redo fields.
const LET_GO = `
local flagged = false
for i = 4, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then flagged = true end
end
if not flagged then
  redis.call('SREM', KEYS[3], ARGV[2])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return flagged and 0 or 1`;

/** The messages-hash field that asks for a message to be edited again (see RECORD_EDIT). */
const redoField = (kind: MessageKind): string => `redo:${kind}`;
const KINDS: readonly MessageKind[] = ['request', 'card'];

class RateLimited extends Error {}

export class SlackNotifier {
  /** This process in the consumer group and as a job owner. */
  readonly instance = `${os.hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly editIntervalMs: number;
  private readonly leaseMs: number;
  private readonly sweepMs: number;
  private abort = new AbortController();
  private loops: Promise<void>[] = [];
  /** Posts each job's messages once, across instances and retries. */
  private readonly posts: PostOnce;
  /** Jobs this process watches now: their loop and how to wake it. */
  private readonly watchers = new Map<string, { wake: () => void; done: Promise<void> }>();

  constructor(private readonly o: NotifierOptions) {
    this.editIntervalMs = o.editIntervalMs ?? 1000;
    this.leaseMs = o.leaseMs ?? 5000;
    this.sweepMs = o.sweepMs ?? 1000;
    this.posts = new PostOnce({ redis: o.redis, keys: o.keys, client: o.client, instance: this.instance, call: (method, run) => this.call(method, run) });
  }

  /** Jobs this instance owns and follows right now (tests, metrics). */
  get watching(): string[] {
    return [...this.watchers.keys()];
  }

  async start(): Promise<void> {
    if (this.loops.length > 0) return;
    this.abort = new AbortController();
    const { signal } = this.abort;
    // One listener per watched job (hundreds during a burst of commands) is expected here.
    setMaxListeners(0, signal);
    await this.beat();
    this.loops = [
      this.every(Math.max(100, Math.floor(this.leaseMs / 3)), () => this.beat(), signal),
      this.every(this.sweepMs, () => this.sweep(), signal),
      this.consumeFeed(signal),
    ];
  }

  async stop(): Promise<void> {
    this.abort.abort();
    for (const w of this.watchers.values()) w.wake();
    await Promise.allSettled([...this.loops, ...[...this.watchers.values()].map((w) => w.done)]);
    this.loops = [];
    // Hand over at once instead of making the other instances wait out the heartbeat.
    const { redis, keys } = this.o;
    await redis.del(keys.notifierAlive(this.instance)).catch(() => undefined);
  }

  /**
   * Start watching a job now (a Slack command that just submitted it, a recovered command),
   * rather than when its feed entry comes by. Same ownership rules as the feed.
   */
  async track(jobId: string): Promise<void> {
    await this.o.redis.sadd(this.o.keys.watching(), jobId);
    await this.claimAndWatch(jobId);
  }

  private async every(ms: number, work: () => Promise<unknown>, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await work();
      } catch (error) {
        if (!signal.aborted) this.o.logger.warn({ err: errorMessage(error) }, 'Slack notifier housekeeping failed; retrying');
      }
      await pause(ms, signal);
    }
  }

  private async beat(): Promise<void> {
    await this.o.redis.set(this.o.keys.notifierAlive(this.instance), '1', 'PX', this.leaseMs);
  }

  private async consumeFeed(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.o.ctx.feed.consume((entry, tx) => this.onFeedEntry(entry, tx), {
          group: FEED_GROUP,
          consumer: this.instance,
          signal,
          blockMs: 2000,
          claimIdleMs: this.o.claimIdleMs ?? 15_000,
        });
      } catch (error) {
        if (signal.aborted) return;
        this.o.logger.warn({ err: errorMessage(error) }, 'Slack notifier lost the job feed; reading it again');
        await pause(1000, signal);
      }
    }
  }

  /** One feed entry: does the job need Slack messages? Then watch it (acknowledged together). */
  private async onFeedEntry(entry: FeedEntry, tx: ChainableCommander): Promise<void> {
    if (this.watchers.has(entry.jobId)) {
      this.watchers.get(entry.jobId)?.wake();
      return;
    }
    const job = await this.o.ctx.store.get(entry.jobId);
    if (!job || this.messageKinds(job).length === 0) return;
    tx.sadd(this.o.keys.watching(), job.id);
    // Claimed right away; should this instance die before the acknowledgement commits, the
    // entry comes back and the job's owner key (with no heartbeat behind it) is taken over.
    await this.claimAndWatch(job.id);
  }

  private lastTidy = 0;

  private async sweep(): Promise<void> {
    const { redis, keys } = this.o;
    if (Date.now() - this.lastTidy > 60_000) {
      this.lastTidy = Date.now();
      await this.tidyConsumers();
    }
    const claimed = (await redis.eval(SWEEP, 1, keys.watching(), this.instance, keys.notifierAlive(''), keys.jobOwner(''))) as string[];
    for (const jobId of claimed) if (!this.watchers.has(jobId)) this.watch(jobId);
  }

  /**
   * Every process start joins the feed's group under a new name; names of processes gone for an
   * hour with nothing pending are dropped (pending entries stay until another instance claims them).
   */
  private async tidyConsumers(): Promise<void> {
    const feed = this.o.ctx.keys.feed();
    const consumers = (await this.o.redis.xinfo('CONSUMERS', feed, FEED_GROUP).catch(() => [])) as unknown[][];
    for (const fields of consumers) {
      const field = (name: string): unknown => fields[fields.indexOf(name) + 1];
      const name = String(field('name'));
      if (name !== this.instance && Number(field('pending')) === 0 && Number(field('idle')) > 3_600_000) {
        await this.o.redis.xgroup('DELCONSUMER', feed, FEED_GROUP, name);
      }
    }
  }

  private async claimAndWatch(jobId: string): Promise<void> {
    if (this.watchers.has(jobId)) return;
    const { redis, keys } = this.o;
    const mine = (await redis.eval(CLAIM, 1, keys.jobOwner(jobId), this.instance, keys.notifierAlive(''))) === 1;
    if (mine) this.watch(jobId);
  }

  /** Which messages a job gets: its request message (Slack requests) and an approval card. */
  private messageKinds(job: JobRecord): [MessageKind, string][] {
    const request = job.replyTo.kind === 'slack' ? job.replyTo.channel : undefined;
    const approvals = this.o.approvalsChannel;
    const kinds: [MessageKind, string][] = [];
    if (request !== undefined) kinds.push(['request', request]);
    // A request made in the approvals channel already carries the buttons there.
    if (job.approvalsRequired > 0 && approvals !== undefined && approvals !== request) kinds.push(['card', approvals]);
    return kinds;
  }

  /** The owner's loop for one job: follow its events, keep its messages current, let go when it ended. */
  private watch(jobId: string): void {
    // Claims can race (a command's track() and the job's first feed entry): one loop per job.
    if (this.watchers.has(jobId)) return;
    let wake: () => void = () => undefined;
    // The first look happens at once: post what is missing, catch up after a takeover.
    let woken = true;
    const signal = this.abort.signal;
    // The job's own follower stops with the watcher (job let go, ownership lost) or the notifier.
    const following = new AbortController();
    const stopFollowing = (): void => following.abort();
    signal.addEventListener('abort', stopFollowing, { once: true });
    const events: StampedEvent[] = [];
    let ended = false;
    const pump = (async () => {
      let last = '0';
      while (!following.signal.aborted) {
        try {
          for await (const e of this.o.ctx.hub.follow(jobId, { after: last, signal: following.signal })) {
            last = e.id;
            if (PROGRESS_EVENTS.has(e.event.type)) events.push(e);
            woken = true;
            wake();
          }
          if (!following.signal.aborted) ended = true;
          break;
        } catch (error) {
          // Redis away for a moment: follow again from the last event seen.
          if (following.signal.aborted) break;
          this.o.logger.warn({ jobId, err: errorMessage(error) }, 'Slack notifier lost a job\'s events; following again');
          await pause(1000, following.signal);
        }
      }
      woken = true;
      wake();
    })();
    const done = (async () => {
      let nextAt = 0;
      while (!signal.aborted) {
        if (nextAt > Date.now()) {
          // Coalescing: events pile up until the message may be edited again, then one render.
          await pause(nextAt - Date.now(), signal);
        } else if (!woken) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 60_000);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
        }
        woken = false;
        if (signal.aborted) break;
        try {
          const outcome = await this.sync(jobId, events, ended);
          if (outcome === 'done') break;
          nextAt = outcome;
        } catch (error) {
          if (error instanceof RateLimited) {
            nextAt = Number((await this.o.redis.get(this.o.keys.pauseUntil()).catch(() => null)) ?? Date.now() + 1000);
            continue;
          }
          if (signal.aborted) break;
          this.o.logger.warn({ jobId, err: errorMessage(error) }, 'Slack notifier could not update a job\'s messages; retrying');
          nextAt = Date.now() + RETRY_FAILED_EDIT_MS;
        }
      }
    })()
      .catch((error: unknown) => this.o.logger.warn({ jobId, err: errorMessage(error) }, 'Slack notifier stopped following a job'))
      .finally(() => {
        this.watchers.delete(jobId);
        signal.removeEventListener('abort', stopFollowing);
        following.abort();
        void pump.catch(() => undefined);
      });
    this.watchers.set(jobId, { wake: () => { woken = true; wake(); }, done });
  }

  /**
   * Bring a job's messages up to date. Returns 'done' once the job ended and every message
   * shows it (the job is let go), else when to look again at the latest (0: on the next event).
   */
  private async sync(jobId: string, events: readonly StampedEvent[], ended: boolean): Promise<number | 'done'> {
    const { redis, keys } = this.o;
    if (!(await this.stillOwner(jobId))) return 'done';
    const job = await this.o.ctx.store.get(jobId);
    if (!job) {
      await this.letGo(jobId);
      return 'done';
    }
    const view = jobView(job, { events: job.state === 'running' ? events : undefined, places: this.o.places });
    const shown = await redis.hgetall(keys.messages(jobId));
    let later = 0;
    // Ended: the final event was read (the record is written before it), or the record says so
    // long enough ago that a lost final event must not keep the job watched forever.
    let settled = view.finished && (ended || Date.now() - Date.parse(job.updatedAt) > 30_000);
    const kinds = this.messageKinds(job);
    for (const [kind, channel] of kinds) {
      const raw = shown[kind];
      const found = raw === undefined ? await this.post(job, view, kind, channel) : (JSON.parse(raw) as ShownMessage);
      if (found === 'busy') {
        // Another instance is posting it right now: look again soon.
        settled = false;
        later = later === 0 ? Date.now() + 1000 : Math.min(later, Date.now() + 1000);
        continue;
      }
      if (!found) continue; // Slack refused the post (logged); tried again on the next look
      let message = found;
      message = await this.postPlan(job.id, view, kind, message);
      const rendered = slackJobMessage(view, kind, this.o.publicUrl, stateOf(view, message));
      const print = fingerprint(rendered);
      const redo = shown[redoField(kind)] !== undefined;
      if (print !== message.fingerprint || redo) {
        if (Date.now() < message.nextAt) {
          // Coalesced: the newest state goes out when the interval has passed.
          later = later === 0 ? message.nextAt : Math.min(later, message.nextAt);
          settled = false;
          continue;
        }
        // Cleared before the edit: a late edit landing after this one flags it again.
        if (redo) await redis.hdel(keys.messages(jobId), redoField(kind));
        message = await this.edit(job.id, kind, message, rendered, print);
        if (message.fingerprint !== print) {
          settled = false;
          later = later === 0 ? message.nextAt : Math.min(later, message.nextAt);
        }
      }
      // Long output: a thread reply under the request, or under the card when there is no request.
      const replyHere = kind === 'request' || !kinds.some(([k]) => k === 'request');
      if (replyHere && needsOutputReply(view) && message.outputTs === undefined) {
        const reply = slackOutputReply(view);
        const posted = await this.call('chat.postMessage', () => this.o.client.chat.postMessage({ channel: message.channel, thread_ts: message.ts, text: reply.text, blocks: reply.blocks, unfurl_links: false, unfurl_media: false }));
        await redis.hset(keys.messages(jobId), kind, JSON.stringify({ ...message, outputTs: posted.ts ?? 'failed' }));
      }
    }
    if (settled) {
      await this.letGo(jobId);
      return 'done';
    }
    return later;
  }

  /** The job's message of this kind: posted once across instances and retries (post-once.ts). */
  private async post(job: JobRecord, view: JobView, kind: MessageKind, channel: string): Promise<ShownMessage | 'busy' | undefined> {
    const rendered = slackJobMessage(view, kind, this.o.publicUrl, view.state === 'awaiting_approval' ? { planParts: { posted: 0, total: partsOf(view) } } : {});
    const outcome = await this.posts.message(
      job.id,
      kind,
      async () => {
        const posted = await this.call('chat.postMessage', () => this.o.client.chat.postMessage({ channel, text: rendered.text, blocks: rendered.blocks, unfurl_links: false, unfurl_media: false }));
        return posted.ts ? { channel: posted.channel ?? channel, ts: posted.ts } : undefined;
      },
      (posted): string => JSON.stringify({ ...posted, fingerprint: fingerprint(rendered), nextAt: Date.now() + this.editIntervalMs, planPosted: 0 } satisfies ShownMessage),
    );
    if (outcome.kind === 'busy') return 'busy';
    return outcome.kind === 'recorded' ? (JSON.parse(outcome.message) as ShownMessage) : undefined;
  }

  /** A plan too long for the card goes whole into its thread, part by part, while the job waits for approval. */
  private async postPlan(jobId: string, view: JobView, kind: MessageKind, message: ShownMessage): Promise<ShownMessage> {
    if (view.state !== 'awaiting_approval') return message;
    const placement = planPlacement(view);
    if (placement.inline) return message;
    let current = message;
    for (let part = current.planPosted ?? 0; part < placement.replies.length; part++) {
      const reply = planReply(view, part);
      const posted = await this.call('chat.postMessage', () => this.o.client.chat.postMessage({ channel: current.channel, thread_ts: current.ts, text: reply.text, blocks: reply.blocks, unfurl_links: false, unfurl_media: false }));
      if (!posted.ts) return current; // tried again on the next look; the buttons wait for the whole plan
      current = { ...current, planPosted: part + 1 };
      await this.o.redis.hset(this.o.keys.messages(jobId), kind, JSON.stringify(current));
    }
    return current;
  }

  private async edit(jobId: string, kind: MessageKind, message: ShownMessage, rendered: SlackMessage, print: string): Promise<ShownMessage> {
    const edited = await this.call('chat.update', () => this.o.client.chat.update({ channel: message.channel, ts: message.ts, text: rendered.text, blocks: rendered.blocks }));
    const failures = edited.ok === false ? (message.failures ?? 0) + 1 : 0;
    // A failed edit is tried again later; after a few (message deleted, bot removed) it is given up.
    const gaveUp = failures >= MAX_EDIT_FAILURES;
    const current: ShownMessage = {
      ...message,
      fingerprint: edited.ok !== false || gaveUp ? print : message.fingerprint,
      nextAt: Date.now() + (edited.ok === false ? RETRY_FAILED_EDIT_MS : this.editIntervalMs),
      failures,
    };
    const { redis, keys } = this.o;
    await redis.eval(RECORD_EDIT, 3, keys.messages(jobId), keys.jobOwner(jobId), keys.watching(), kind, JSON.stringify(current), this.instance, jobId, redoField(kind));
    return current;
  }

  private async stillOwner(jobId: string): Promise<boolean> {
    return (await this.o.redis.get(this.o.keys.jobOwner(jobId))) === this.instance;
  }

  private async letGo(jobId: string): Promise<void> {
    const { redis, keys } = this.o;
    // The messages are kept a while for a late look (a restarted owner finding the job again).
    await redis.eval(LET_GO, 3, keys.messages(jobId), keys.jobOwner(jobId), keys.watching(), this.instance, jobId, 7 * 24 * 3600, ...KINDS.map(redoField));
  }

  private async call<T extends { ok?: boolean }>(method: string, run: () => Promise<T>): Promise<T> {
    const { redis, keys } = this.o;
    const pausedUntil = Number((await redis.get(keys.pauseUntil())) ?? '0');
    if (Date.now() < pausedUntil) throw new RateLimited(`Slack asked to wait until ${new Date(pausedUntil).toISOString()}`);
    this.o.onCall?.(method);
    try {
      return await run();
    } catch (error) {
      if ((error as { code?: string }).code === webApi.ErrorCode.RateLimitedError) {
        const retryAfterS = (error as webApi.WebAPIRateLimitedError).retryAfter;
        await redis.set(keys.pauseUntil(), String(Date.now() + retryAfterS * 1000), 'PX', retryAfterS * 1000 + 1000);
        this.o.logger.info({ method, retryAfterS }, 'Slack rate limit: pausing Slack calls as asked (Retry-After)');
        throw new RateLimited(`rate limited for ${retryAfterS} s`);
      }
      // A message deleted in Slack, a channel the bot left: log and carry on with the others.
      this.o.logger.warn({ method, err: errorMessage(error) }, 'Slack call failed');
      return { ok: false } as T;
    }
  }
}

function partsOf(view: JobView): number {
  const placement = planPlacement(view);
  return placement.inline ? 0 : placement.replies.length;
}

function stateOf(view: JobView, message: ShownMessage): MessageState {
  return view.state === 'awaiting_approval' ? { planParts: { posted: message.planPosted ?? 0, total: partsOf(view) } } : {};
}

function fingerprint(message: SlackMessage): string {
  return createHash('sha256').update(JSON.stringify(message)).digest('base64url').slice(0, 22);
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
