// Making a write durable before acting on it, under Sentinel failover.
//
// Redis replicates asynchronously. In a failover whatever no replica had received is lost with
// the old primary, and a forced or partitioned failover leaves the old primary accepting
// writes for seconds (about 12 s in the test lab) that nobody will ever see. `WAIT n t` says
// how many replicas hold everything up to this connection's last write — but only on the
// connection it is sent on, and only for the server that connection talks to now. A WAIT sent
// after a reconnect proves nothing about a write made before it: a fresh connection has written
// nothing, so WAIT counts every replica at once.
//
// So a write is made durable in rounds, each on ONE dedicated connection that never replays a
// command on another socket (no offline queue, no resend, in-flight commands fail on close):
//   1. a script checks that the write is there on this server (the record says `running` with
//      this delivery's token, the ledger has the claim…) and, if so, writes a touch key — a
//      write of this connection that comes after the checked write in the server's
//      replication stream;
//   2. WAIT on the same connection: replicas that acknowledge the touch hold everything before
//      it on this server, the checked write included;
//   3. the round counts only if the connection did not close between 1 and 2.
// A check that fails tells the caller what the current primary holds (the write was lost, or
// someone else wrote since): the caller re-writes it (`repair`) or gives up the action. A WAIT
// that falls short (the old primary has no replica left; the new one has none until the old
// one resynced, ~15 s in the lab) is retried with backoff until `redis.confirm_within`.
//
// Who uses it: a submission is confirmed to its caller (job id) only once a round says a
// replica holds its record, marker and BullMQ job, else the caller gets "unavailable, nothing
// was run" (queues/service.ts); a decision likewise; a worker confirms its claim before each
// step (queues/claims.ts) and its ending (queues/endings.ts) with `assert`.
//
// WAIT is not consensus: with more than one replica, one that acknowledged may not be the one
// promoted. Set redis.confirm_replicas to the number of replicas for the strongest guarantee
// (README, operations). With redis.confirm_replicas 0 (standalone) nothing is checked.
import type { Redis } from 'ioredis';
import { errorMessage } from '../config/errors.js';
import type { Keys } from './keys.js';
import { runScript } from './scripts.js';
import { sleep } from './sleep.js';

/** What must hold on the current primary for a write to count as there. */
export type Condition =
  /** Hash field equals one of `is` ('' = the field is absent). */
  | { readonly field: string; readonly key: string; readonly is: readonly string[] }
  /** The key exists. */
  | { readonly exists: string }
  /** String key equals `is`. */
  | { readonly key: string; readonly is: string }
  /** Hash `hash` has field `has` (with `containing` in its value, when given). */
  | { readonly hash: string; readonly has: string; readonly containing?: string | undefined }
  /** Sorted-set `member` of `zset` is present (or absent). */
  | { readonly zset: string; readonly member: string; readonly present: boolean }
  /** The record's vote list (JSON in field `votes`) has a vote by `subject`. */
  | { readonly votes: string; readonly subject: string };

// KEYS: 1 the touch key. ARGV: 1 conditions (JSON), 2 now (ms).
// Returns {'ok'} after the touch, or {'no', index (1-based), what the server holds}.
const CHECK = `
local conds = cjson.decode(ARGV[1])
for i, c in ipairs(conds) do
  local ok, actual = false, ''
  if c['field'] then
    actual = redis.call('HGET', c['key'], c['field']) or ''
    for _, v in ipairs(c['is']) do if v == actual then ok = true end end
  elseif c['exists'] then
    ok = redis.call('EXISTS', c['exists']) == 1
    actual = ok and 'exists' or 'missing'
  elseif c['hash'] then
    local v = redis.call('HGET', c['hash'], c['has'])
    ok = v ~= false and (not c['containing'] or string.find(v, c['containing'], 1, true) ~= nil)
    actual = v and 'unfinished' or 'missing'
  elseif c['zset'] then
    local present = redis.call('ZSCORE', c['zset'], c['member']) ~= false
    ok = present == c['present']
    actual = present and 'present' or 'absent'
  elseif c['votes'] then
    local raw = redis.call('HGET', c['votes'], 'votes')
    actual = 'no vote'
    if raw and raw ~= '' and raw ~= '[]' then
      for _, v in ipairs(cjson.decode(raw)) do
        if v['subject'] == c['subject'] then ok = true end
      end
    end
  else
    actual = redis.call('GET', c['key']) or ''
    ok = actual == c['is']
  end
  if not ok then return {'no', tostring(i), actual} end
end
redis.call('SET', KEYS[1], ARGV[2])
return {'ok', '', ''}
`;

export type Round = { readonly kind: 'durable' } | { readonly kind: 'differs'; readonly index: number; readonly actual: string } | { readonly kind: 'unconfirmed'; readonly problem: string };

export type Assured =
  | { readonly ok: true; readonly rounds: number }
  /** The current primary holds something else (see `index`/`actual`) and `repair` gave up. */
  | { readonly ok: false; readonly kind: 'differs'; readonly index: number; readonly actual: string }
  /** No confirmation within redis.confirm_within: the write may or may not survive. */
  | { readonly ok: false; readonly kind: 'unconfirmed'; readonly problem: string };

export interface ReplicationSettings {
  /** Replicas that must acknowledge (redis.confirm_replicas); 0: do not wait. */
  readonly replicas: number;
  /** One WAIT's timeout (redis.confirm_timeout). */
  readonly timeoutMs: number;
}

export interface DurabilitySettings extends ReplicationSettings {
  /** How long `assert` keeps trying (redis.confirm_within). */
  readonly withinMs: number;
}

/**
 * What a caller does when the check found the write missing or different on the current
 * primary: write it again on `redis` (the durable connection, the server just checked) and
 * return true to check again, or false to give up (someone else's write is there).
 */
export type Repair = (redis: Redis, differs: { readonly index: number; readonly actual: string }) => Promise<boolean>;

export class Durability {
  #connection: Redis | undefined;
  #epoch = 0;

  #closed = false;

  /** `open`: a new connection for the rounds (src/runtime.ts gives one that never replays); told whether it was closed on purpose. */
  constructor(
    private readonly open: (closedOnPurpose: () => boolean) => Redis,
    private readonly keys: Keys,
    readonly settings: DurabilitySettings | undefined,
  ) {}

  /** False with confirm_replicas 0: writes count as durable once written. */
  get enabled(): boolean {
    return (this.settings?.replicas ?? 0) > 0;
  }

  private connection(): Redis {
    if (!this.#connection) {
      const c = this.open(() => this.#closed);
      // Every close ends an epoch: a round whose check and WAIT straddle one does not count.
      c.on('close', () => {
        this.#epoch += 1;
      });
      this.#connection = c;
    }
    return this.#connection;
  }

  /** One check + touch + WAIT on the durable connection. Never throws. */
  async round(conditions: readonly Condition[]): Promise<Round> {
    const settings = this.settings;
    if (!settings || settings.replicas <= 0) return { kind: 'durable' };
    const redis = this.connection();
    // Opened on first use (or reconnecting): give it up to one WAIT's time to be ready, so the
    // first submission after a start is not refused for it.
    if (redis.status !== 'ready' && !(await readyWithin(redis, settings.timeoutMs))) return { kind: 'unconfirmed', problem: `the durable Redis connection is ${redis.status}` };
    const epoch = this.#epoch;
    try {
      const [verdict, index, actual] = (await runScript(redis, 'castellanDurable', CHECK, [this.keys.durableTouch()], [JSON.stringify(conditions), Date.now()])) as [string, string, string];
      if (verdict !== 'ok') return { kind: 'differs', index: Number(index) - 1, actual };
      // After the touch, on the same socket: counts replicas holding everything up to it.
      const acked = await redis.wait(settings.replicas, settings.timeoutMs);
      if (epoch !== this.#epoch) return { kind: 'unconfirmed', problem: 'the Redis connection changed servers while confirming' };
      if (acked >= settings.replicas) return { kind: 'durable' };
      return { kind: 'unconfirmed', problem: `${acked === 0 ? 'no Redis replica' : `only ${acked} Redis replica(s)`} confirmed it within ${(settings.timeoutMs / 1000).toFixed(1).replace(/\.0$/, '')} s (${acked} of ${settings.replicas} needed; a failover under way, or replicas down)` };
    } catch (err) {
      return { kind: 'unconfirmed', problem: errorMessage(err) };
    }
  }

  /**
   * Rounds until the write is durable, `repair` gives up, or redis.confirm_within passes
   * (backoff 100 ms doubling to 2 s between rounds; always a real pause, so a tight loop of
   * failing rounds never starves the connection's reconnect timer).
   */
  async assert(conditions: readonly Condition[], repair?: Repair, signal?: AbortSignal): Promise<Assured> {
    if (!this.enabled) return { ok: true, rounds: 0 };
    const deadline = Date.now() + (this.settings?.withinMs ?? 0);
    let pause = 100;
    let problem = '';
    for (let rounds = 1; ; rounds++) {
      const r = await this.round(conditions);
      if (r.kind === 'durable') return { ok: true, rounds };
      if (r.kind === 'differs') {
        let again: boolean;
        try {
          again = repair !== undefined && this.#connection !== undefined && (await repair(this.#connection, r));
        } catch (err) {
          // Not written (the connection dropped): the next round looks again.
          again = true;
          problem = errorMessage(err);
        }
        if (!again) return { ok: false, kind: 'differs', index: r.index, actual: r.actual };
        if (!problem) problem = `the current primary did not hold it (${r.actual || 'nothing'}); written again`;
      } else {
        problem = r.problem;
      }
      if (Date.now() >= deadline || signal?.aborted) return { ok: false, kind: 'unconfirmed', problem };
      await sleep(Math.min(pause, Math.max(1, deadline - Date.now())));
      pause = Math.min(pause * 2, 2000);
    }
  }

  close(): void {
    this.#closed = true;
    this.#connection?.disconnect();
  }
}

function readyWithin(redis: Redis, ms: number): Promise<boolean> {
  if (redis.status === 'end') return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      resolve(ok);
    };
    const onReady = (): void => done(true);
    const timer = setTimeout(() => done(redis.status === 'ready'), ms);
    redis.once('ready', onReady);
  });
}
