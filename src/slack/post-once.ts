// One Slack message per job and kind (request message, approval card), whoever posts it.
//
// Slack's chat.postMessage has no idempotency key, and a posted message is known only by the
// `ts` Slack answers with, so "post, then record the ts in Redis" has windows in which a
// second poster finds no record and posts again: an owner paused past its heartbeat (another
// instance took the job over and both post), or a record that failed after the post (Redis
// away for a moment) followed by the loop's retry. Closed here:
//   - a claim per job and kind, taken atomically in Redis before posting: while a live
//     instance holds it, nobody else posts (a holder whose heartbeat is gone loses it);
//   - the record is written only if none exists (atomically); a poster that finds another's
//     record there deletes its own message (chat.delete) and uses the recorded one;
//   - a message posted but not yet recorded is kept in memory and recorded on the next look,
//     never posted again.
// Left: a process that dies between Slack's answer and its record leaves that message behind
// unrecorded (Slack cannot be asked for it without reading channel history).
import type { Redis } from 'ioredis';
import type { webApi } from '@slack/bolt';
import type { MessageKind } from '../present/render/slack.js';
import type { SlackKeys } from './keys.js';

/** How long an unfinished claim (its holder died mid-post) keeps others from posting. */
const CLAIM_TTL_MS = 60_000;

// KEYS: 1 the job's messages hash, 2 the claim. ARGV: 1 kind, 2 instance, 3 heartbeat key prefix, 4 TTL.
const CLAIM = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 'posted' end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[2] and redis.call('EXISTS', ARGV[3] .. holder) == 1 then return 'busy' end
redis.call('SET', KEYS[2], ARGV[2], 'PX', tonumber(ARGV[4]))
return 'mine'`;

// KEYS: 1 the job's messages hash, 2 the claim. ARGV: 1 kind, 2 message JSON, 3 instance.
// Returns the message recorded before this one (another poster's), or nothing when this one is.
const RECORD = `
local earlier = redis.call('HGET', KEYS[1], ARGV[1])
if earlier then return earlier end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return false`;

const RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

export type PostOutcome = { readonly kind: 'recorded'; readonly message: string } | { readonly kind: 'busy' } | { readonly kind: 'failed' };

/** What a poster needs to know of a message it posted: where it is. */
export interface PostedMessage {
  readonly channel: string;
  readonly ts: string;
}

export interface PostOnceOptions {
  readonly redis: Redis;
  readonly keys: SlackKeys;
  readonly client: webApi.WebClient;
  /** This poster (a notifier instance): its heartbeat key is keys.notifierAlive(instance). */
  readonly instance: string;
  /** Runs a Slack call (rate-limit pauses, counting); a failed call answers `{ ok: false }`. */
  readonly call: <T extends { ok?: boolean }>(method: string, run: () => Promise<T>) => Promise<T>;
}

export class PostOnce {
  /** Posted, not yet recorded (the record failed): recorded on the next look instead of posting again. */
  private readonly unrecorded = new Map<string, PostedMessage & { readonly record: string }>();

  constructor(private readonly o: PostOnceOptions) {}

  /**
   * The job's message of this kind: the recorded one, or `post` it now and record it. Answers
   * the recorded message's JSON (`toRecord` of what was posted, or another poster's); `busy`
   * while another live instance is posting it (look again soon); `failed` when Slack refused
   * the post.
   */
  async message(jobId: string, kind: MessageKind, post: () => Promise<PostedMessage | undefined>, toRecord: (posted: PostedMessage) => string): Promise<PostOutcome> {
    const { redis, keys } = this.o;
    const slot = `${jobId}:${kind}`;
    let mine = this.unrecorded.get(slot);
    if (!mine) {
      const claim = (await redis.eval(CLAIM, 2, keys.messages(jobId), keys.postClaim(jobId, kind), kind, this.o.instance, keys.notifierAlive(''), CLAIM_TTL_MS)) as string;
      if (claim === 'busy') return { kind: 'busy' };
      const recorded = claim === 'posted' ? await redis.hget(keys.messages(jobId), kind) : null;
      if (recorded !== null) return { kind: 'recorded', message: recorded };
      const posted = await post();
      if (!posted) {
        await redis.eval(RELEASE, 1, keys.postClaim(jobId, kind), this.o.instance);
        return { kind: 'failed' };
      }
      mine = { ...posted, record: toRecord(posted) };
      this.unrecorded.set(slot, mine);
    }
    const earlier = (await redis.eval(RECORD, 2, keys.messages(jobId), keys.postClaim(jobId, kind), kind, mine.record, this.o.instance)) as string | null;
    this.unrecorded.delete(slot);
    if (earlier === null) return { kind: 'recorded', message: mine.record };
    // Another instance posted and recorded this message first (this one was paused past its
    // heartbeat, or took a claim whose holder seemed gone): ours goes, theirs stays.
    const { channel, ts } = mine;
    await this.o.call('chat.delete', () => this.o.client.chat.delete({ channel, ts }));
    return { kind: 'recorded', message: earlier };
  }
}
