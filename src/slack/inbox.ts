// Slash commands and Approve clicks survive the process that acknowledged them. Slack sends an
// interaction once (a retry only when the ack is late), and Castellan acks before it plans,
// submits or votes; a crash in between would lose a command the person was told was taken, or
// an approval the approver saw accepted. So each is written to Redis *before* the ack, handled
// after it, and removed once handled. Every instance runs a recoverer that takes up entries
// nobody has touched for `staleMs` (their instance died) and handles them: a tool run is
// submitted with the same idempotency key (Slack's trigger id), and a vote is the same atomic
// vote again (a second vote by the same person counts once), so handling an entry twice still
// makes one job and one vote.
//
// Redis layout: a hash id → entry JSON, a sorted set id → when it was last taken up, and a
// short-lived "done" marker so a late Slack redelivery of a handled entry is not handled again.
import type { Redis } from 'ioredis';
import type { SlackKeys } from './keys.js';

export interface RecordedCommand {
  /** Entries recorded before clicks were (no kind) are commands too. */
  readonly kind?: 'command' | undefined;
  /** `team:trigger_id`: Slack's own identifier of this invocation, the same on every redelivery. */
  readonly id: string;
  readonly team: string;
  readonly user: string;
  readonly channel: string;
  readonly triggerId: string;
  readonly text: string;
  /** Where ephemeral answers go (valid 30 minutes, 5 uses). */
  readonly responseUrl: string;
  /** When Slack's command reached Castellan (epoch ms). */
  readonly at: number;
}

/** An Approve button pressed on a job's card. */
export interface RecordedClick {
  readonly kind: 'approve';
  /** `team:trigger_id` of the click (a double click is two clicks; the vote counts once). */
  readonly id: string;
  readonly team: string;
  readonly user: string;
  /** Where the card is: the approver's answers go there, as ephemerals. */
  readonly channel: string;
  readonly jobId: string;
  readonly at: number;
}

export type InboxEntry = RecordedCommand | RecordedClick;

/** A handled command's id is remembered this long (Slack stops retrying after minutes). */
const DONE_TTL_S = 3600;

/** Record unless already recorded or handled: 1 recorded, 0 a redelivery. */
const RECORD = `
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1`;

/** Take up to ARGV[3] commands untouched since ARGV[1]; each is stamped ARGV[2] (taken now). */
const TAKE_STALE = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    table.insert(out, raw)
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return out`;

export class CommandInbox {
  constructor(
    private readonly redis: Redis,
    private readonly keys: SlackKeys,
  ) {}

  private doneKey(id: string): string {
    return `${this.keys.commands()}:done:${id}`;
  }

  /** Write the entry before the ack. False when it was recorded or handled before (a redelivery). */
  async record(entry: InboxEntry): Promise<boolean> {
    const fresh = await this.redis.eval(RECORD, 3, this.keys.commands(), this.keys.commandClaims(), this.doneKey(entry.id), entry.id, JSON.stringify(entry), String(Date.now()));
    return fresh === 1;
  }

  /** Still queued or working on these here: keeps the recoverers (of every instance) away. */
  async touch(ids: Iterable<string>): Promise<void> {
    const now = Date.now();
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.zadd(this.keys.commandClaims(), 'XX', now, id);
    await pipeline.exec();
  }

  /** Handled (answered, its job submitted, its vote recorded): forget it, remember that it was. */
  async done(id: string): Promise<void> {
    await this.redis.multi().hdel(this.keys.commands(), id).zrem(this.keys.commandClaims(), id).set(this.doneKey(id), '1', 'EX', DONE_TTL_S).exec();
  }

  /** Entries nobody touched for `staleMs`, taken up by the caller. */
  async takeStale(staleMs: number, limit = 20): Promise<InboxEntry[]> {
    const now = Date.now();
    const raws = (await this.redis.eval(TAKE_STALE, 2, this.keys.commands(), this.keys.commandClaims(), String(now - staleMs), String(now), String(limit))) as string[];
    return raws.map((raw) => JSON.parse(raw) as InboxEntry);
  }

  /** Entries recorded and not yet handled (tests, metrics). */
  async pending(): Promise<number> {
    return this.redis.hlen(this.keys.commands());
  }
}
