// The all-jobs feed: one Redis stream with every job's state changes and votes, in the order
// they happened (written in the same script as the job's own stream, queues/events.ts). A notifier (Slack messages, dashboard live updates) follows it instead of
// every job's own stream. A stream, unlike pub/sub, keeps entries, so a follower can resume
// from a stored position after a restart; a consumer group makes that exactly-once for
// whatever the handler writes to Redis (see `consume`).
//
// Entries: a job entering `awaiting_approval` is an approval request; `vote` entries carry M
// of N; the final `state` entry says how the job ended. The job's reply address (record
// field `replyTo`) says where a notifier should write.
import type { Redis, ChainableCommander } from 'ioredis';
import type { JobEvent } from './events.js';
import type { Keys } from './keys.js';
import { dedicatedConnection } from './connections.js';

/** Events that go to the feed as well as to the job's own stream. */
export type FeedEvent = Extract<JobEvent, { type: 'state' } | { type: 'vote' }>;

export interface FeedEntry {
  /** Stream id: the position to resume after. */
  readonly id: string;
  readonly at: number;
  readonly jobId: string;
  readonly event: FeedEvent;
}

/** Retained entries (approximate); a follower further behind than this resumes at the oldest. */
export const FEED_MAXLEN = 100_000;

export function isFeedEvent(event: JobEvent): event is FeedEvent {
  return event.type === 'state' || event.type === 'vote';
}


function entryOf(id: string, fields: string[]): FeedEntry {
  const field = (name: string): string => fields[fields.indexOf(name) + 1] ?? '';
  return { id, at: Number(id.split('-')[0]), jobId: field('j'), event: JSON.parse(field('e') || '{}') as FeedEvent };
}

type StreamReply = [string, [string, string[]][]][] | null;

export interface ConsumeOptions {
  /** Consumer group: one per kind of notifier (every Slack notifier process shares one). */
  readonly group: string;
  /** This process within the group (host:pid); its unacknowledged entries come back to it. */
  readonly consumer: string;
  /** Where a new group starts: `$` (only what comes next, the default) or `0` (everything kept). */
  readonly startAt?: '$' | '0' | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly blockMs?: number | undefined;
  /** Entries another consumer took but did not acknowledge for this long are taken over. */
  readonly claimIdleMs?: number | undefined;
}

/**
 * The handler adds its own Redis writes (message timestamps, cursors) to `tx`; they commit in
 * one MULTI with the acknowledgement, so after a crash an entry is either fully handled and
 * acknowledged, or neither, and comes back. Side effects outside Redis (a Slack API call)
 * happen at least once and must be idempotent (edit the message, do not post another).
 */
export type FeedHandler = (entry: FeedEntry, tx: ChainableCommander) => Promise<void>;

export class JobFeed {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /** Entries after `afterId` ('0' for the oldest kept), oldest first. */
  async read(afterId = '0', count = 500): Promise<FeedEntry[]> {
    const entries = await this.redis.xrange(this.keys.feed(), afterId === '0' ? '-' : `(${afterId}`, '+', 'COUNT', count);
    return entries.map(([id, fields]) => entryOf(id, fields));
  }

  /** The id of the newest entry ('0' when empty): a position to follow "from now". */
  async last(): Promise<string> {
    const [entry] = await this.redis.xrevrange(this.keys.feed(), '+', '-', 'COUNT', 1);
    return entry?.[0] ?? '0';
  }

  /**
   * Every entry after `afterId`, then live ones as they come, until the signal aborts. For
   * readers that keep their own position (a dashboard page passes the last id it showed).
   * Uses its own connection for the blocking read.
   */
  async *follow(afterId: string, options: { signal?: AbortSignal; blockMs?: number } = {}): AsyncGenerator<FeedEntry> {
    const reader = dedicatedConnection(this.redis);
    const stop = (): void => reader.disconnect();
    options.signal?.addEventListener('abort', stop, { once: true });
    let last = afterId;
    try {
      while (!options.signal?.aborted) {
        const reply: StreamReply = await reader.xread('COUNT', 500, 'BLOCK', options.blockMs ?? 5000, 'STREAMS', this.keys.feed(), last).catch((err: unknown) => {
          if (options.signal?.aborted) return null;
          throw err;
        });
        for (const [, entries] of reply ?? []) {
          for (const [id, fields] of entries) {
            last = id;
            yield entryOf(id, fields);
          }
        }
      }
    } finally {
      options.signal?.removeEventListener('abort', stop);
      reader.disconnect();
    }
  }

  /**
   * Handle every entry once per group, surviving restarts: first this consumer's own
   * unacknowledged entries (it crashed while handling them), then entries idle too long at
   * another consumer (it died), then new ones. Returns when the signal aborts.
   */
  async consume(handler: FeedHandler, options: ConsumeOptions): Promise<void> {
    const feed = this.keys.feed();
    await this.redis.xgroup('CREATE', feed, options.group, options.startAt ?? '$', 'MKSTREAM').catch((err: unknown) => {
      if (!String(err).includes('BUSYGROUP')) throw err;
    });
    const reader = dedicatedConnection(this.redis);
    const stop = (): void => reader.disconnect();
    options.signal?.addEventListener('abort', stop, { once: true });
    const handle = async (id: string, fields: string[]): Promise<void> => {
      const tx = this.redis.multi();
      await handler(entryOf(id, fields), tx);
      tx.xack(feed, options.group, id);
      const replies = await tx.exec();
      const failed = replies?.find(([error]) => error);
      if (failed?.[0]) throw failed[0];
    };
    try {
      // Own pending entries first: delivered before a crash, never acknowledged.
      for (;;) {
        const reply = (await reader.xreadgroup('GROUP', options.group, options.consumer, 'COUNT', 100, 'STREAMS', feed, '0')) as StreamReply;
        const entries = reply?.[0]?.[1] ?? [];
        if (entries.length === 0) break;
        for (const [id, fields] of entries) await handle(id, fields);
      }
      while (!options.signal?.aborted) {
        const claimed = (await this.redis.xautoclaim(feed, options.group, options.consumer, options.claimIdleMs ?? 60_000, '0-0', 'COUNT', 100)) as [string, [string, string[] | null][]];
        for (const [id, fields] of claimed[1]) if (fields) await handle(id, fields);
        const reply = (await reader
          .xreadgroup('GROUP', options.group, options.consumer, 'COUNT', 100, 'BLOCK', options.blockMs ?? 5000, 'STREAMS', feed, '>')
          .catch((err: unknown) => {
            if (options.signal?.aborted) return null;
            throw err;
          })) as StreamReply;
        for (const [, entries] of reply ?? []) for (const [id, fields] of entries) await handle(id, fields);
      }
    } finally {
      options.signal?.removeEventListener('abort', stop);
      reader.disconnect();
    }
  }
}
