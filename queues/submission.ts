// A submission is never silent. The job record, the idempotency claim and a "being submitted"
// marker are written in one atomic step (a Lua script); the BullMQ job is added after it; the
// marker comes off only when the submitter is about to hand the caller a job id (`confirm`).
// So at any moment exactly one of these holds:
//   - no record: nothing happened, the caller got an error;
//   - a record without a marker: the caller got its job id, the job runs;
//   - a record with a marker: the caller has not been told (yet). If the submitter dies, loses
//     Redis or times out, `reconcile` (run by every long-lived process) ends such a record
//     `failed` — "never queued, nothing was run" — and frees its idempotency key.
// `confirm` and `reconcile` are atomic against each other, and a worker never starts a job that
// still carries its marker (`settled`), so "nothing was run" is true whenever it is said.
import { createHash } from 'node:crypto';
import { canonicalJson } from '../config/canonical-json.js';
import type { QueueContext } from './context.js';
import { endJob } from './endings.js';
import { indexKeysOf, type JobDoc } from './records.js';
import { runScript } from './scripts.js';
import { sleep } from './sleep.js';
import { wakeDecided } from './wake.js';
import { ALLOWED_FROM, FINAL_STATES, type JobState } from './states.js';

/** How long a marker may stand before a reconcile ends its record (a submission's steps time out well before). */
export const SUBMIT_GRACE_MS = 30_000;

/** States a record is created in: only these can still be "never queued". */
const INITIAL: readonly JobState[] = ['awaiting_approval', 'queued'];

export const NEVER_QUEUED = 'never queued: the submission did not complete (Redis became unreachable or the server stopped), nothing was run';

/** The part of a request that must match for an idempotent retry: tool and validated input. */
export function requestFingerprint(tool: string, input: unknown): string {
  return createHash('sha256').update(canonicalJson([tool, input])).digest('hex').slice(0, 32);
}

/** The idempotency claim's value: the job it was claimed for and the request's fingerprint. */
export function claimValue(jobId: string, fingerprint: string): string {
  return `${jobId} ${fingerprint}`;
}

export function parseClaim(value: string): { jobId: string; fingerprint: string | undefined } {
  const [jobId = '', fingerprint] = value.split(' ');
  return { jobId, fingerprint };
}

// KEYS: 1 record, 2 job index, 3 markers, 4 idempotency key (keys.unused() for none), 5 where-index
// hash, 6 state index of the initial state, 7 the requester's in-flight set (keys.unused() when
// not limited)
// ARGV: 1 fields (JSON), 2 createdAt (ms), 3 job id, 4 claim value, 5 claim TTL (s), 6 now (ms),
// 7 the secondary index keys (JSON list; records.ts indexKeysOf), 8 in-flight limit,
// 9 record key prefix, 10 states that count as in flight, 11 final states, 12 in-flight set TTL (s),
// 13 keys.unused(): the name that stands for "no such key" (see keys.ts)
// The in-flight count and the claim of a slot are one step: two submissions at the same instant
// cannot both take the last slot (limits.jobs_per_requester). An idempotent retry is answered
// before the limit is looked at.
const CREATE = `
local NONE = ARGV[13]
if KEYS[4] ~= NONE then
  local held = redis.call('GET', KEYS[4])
  if held then return {'taken', held} end
end
if KEYS[7] ~= NONE then
  local counted, final = {}, {}
  for st in string.gmatch(ARGV[10], '[^,]+') do counted[st] = true end
  for st in string.gmatch(ARGV[11], '[^,]+') do final[st] = true end
  local active, first = 0, ''
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[7])) do
    local st = redis.call('HGET', ARGV[9] .. id, 'state')
    if not st or final[st] then
      redis.call('SREM', KEYS[7], id)
    elseif counted[st] then
      active = active + 1
      if first == '' then first = id end
    end
  end
  if active >= tonumber(ARGV[8]) then return {'limit', tostring(active), first} end
  redis.call('SADD', KEYS[7], ARGV[3])
  redis.call('EXPIRE', KEYS[7], tonumber(ARGV[12]))
end
if KEYS[4] ~= NONE then redis.call('SET', KEYS[4], ARGV[4], 'EX', tonumber(ARGV[5])) end
local fields = cjson.decode(ARGV[1])
for k, v in pairs(fields) do redis.call('HSET', KEYS[1], k, v) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
for _, index in ipairs(cjson.decode(ARGV[7])) do redis.call('ZADD', index, ARGV[2], ARGV[3]) end
redis.call('HSET', KEYS[5], ARGV[3], ARGV[7])
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[3])
return {'created', ''}
`;

// KEYS: 1 record, 2 markers. ARGV: 1 job id, 2 states the record may be in, 3 the events'
// wake-up channel: a worker that found the marker waits on it (`settled`), not on a timer.
const CONFIRM = `
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return {'gone', redis.call('HGET', KEYS[1], 'state') or ''}
end
local s = redis.call('HGET', KEYS[1], 'state') or ''
for st in string.gmatch(ARGV[2], '[^,]+') do
  if st == s then
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('PUBLISH', ARGV[3], ARGV[1])
    return {'ok', s}
  end
end
return {'state', s}
`;

// KEYS: 1 record, 2 markers, 3 idempotency key (keys.unused() for none), 4 job index
// ARGV: 1 job id, 2 states `failed` may come from here, 3 reason, 4 now (ISO), 5 claim value,
// 6 state index key prefix (records.ts keeps one sorted set per state), 7 keys.unused()
const RECONCILE = `
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return {'confirmed', ''} end
redis.call('ZREM', KEYS[2], ARGV[1])
local s = redis.call('HGET', KEYS[1], 'state')
if not s then return {'missing', ''} end
if KEYS[3] ~= ARGV[7] and redis.call('GET', KEYS[3]) == ARGV[5] then redis.call('DEL', KEYS[3]) end
for st in string.gmatch(ARGV[2], '[^,]+') do
  if st == s then
    redis.call('HSET', KEYS[1], 'state', 'failed', 'reason', ARGV[3], 'finishedAt', ARGV[4], 'updatedAt', ARGV[4])
    local score = redis.call('ZSCORE', KEYS[4], ARGV[1])
    if score then
      redis.call('ZREM', ARGV[6] .. s, ARGV[1])
      redis.call('ZADD', ARGV[6] .. 'failed', score, ARGV[1])
    end
    return {'ended', s}
  end
end
return {'state', s}
`;

type Ctx = Pick<QueueContext, 'redis' | 'keys' | 'store' | 'events' | 'audit' | 'locks' | 'settings' | 'logger' | 'queue' | 'durable'>;

export type CreateOutcome =
  | { readonly created: true }
  | { readonly created: false; readonly claim: string }
  /** limits.jobs_per_requester reached: how many are in flight and one of them (to name in the refusal). */
  | { readonly created: false; readonly inFlight: number; readonly example: string };

/** limits.jobs_per_requester for one submission: the requester's in-flight set and its limit. */
export interface InFlightLimit {
  readonly key: string;
  readonly limit: number;
}

/** States that hold (or are about to hold) a worker; awaiting approval holds none. */
const IN_FLIGHT: readonly JobState[] = ['queued', 'waiting_window', 'running'];
const IN_FLIGHT_TTL_S = 7 * 24 * 3600;

/** Record + idempotency claim + in-flight slot + marker, atomically. */
export async function createRecord(
  ctx: Ctx,
  doc: JobDoc,
  fields: Record<string, string>,
  idempotency: { key: string; value: string; ttlS: number } | undefined,
  inFlight?: InFlightLimit,
): Promise<CreateOutcome> {
  const now = Date.now();
  const reply = (await runScript(
    ctx.redis,
    'castellanSubmit',
    CREATE,
    [ctx.keys.job(doc.id), ctx.keys.jobIndex(), ctx.keys.submitting(), idempotency?.key ?? ctx.keys.unused(), ctx.keys.jobsWhere(), ctx.keys.jobsBy('state', fields.state ?? ''), inFlight?.key ?? ctx.keys.unused()],
    [
      JSON.stringify(fields),
      Date.parse(doc.createdAt),
      doc.id,
      idempotency?.value ?? '',
      idempotency?.ttlS ?? 0,
      now,
      JSON.stringify(indexKeysOf(ctx.keys, doc)),
      inFlight?.limit ?? 0,
      ctx.keys.job(''),
      IN_FLIGHT.join(','),
      [...FINAL_STATES].join(','),
      IN_FLIGHT_TTL_S,
      ctx.keys.unused(),
    ],
  )) as [string, string, string?];
  if (reply[0] === 'created') return { created: true };
  if (reply[0] === 'limit') return { created: false, inFlight: Number(reply[1]), example: reply[2] ?? '' };
  return { created: false, claim: reply[1] };
}

/**
 * Take the marker off just before the caller is told the job id. False when a reconcile got
 * there first (the record is `failed`, "never queued"): the caller must get an error instead.
 */
export async function confirmSubmitted(ctx: Ctx, jobId: string): Promise<boolean> {
  return (await confirmSubmission(ctx, jobId)) !== undefined;
}

/** confirmSubmitted, answering the state the record was confirmed in (undefined: not confirmed). */
export async function confirmSubmission(ctx: Ctx, jobId: string): Promise<JobState | undefined> {
  const reply = (await runScript(ctx.redis, 'castellanConfirm', CONFIRM, [ctx.keys.job(jobId), ctx.keys.submitting()], [jobId, [...INITIAL, 'cancelled', 'denied'].join(','), ctx.keys.eventsChannel()])) as [string, string];
  // A record cancelled or denied in the meantime was still submitted: the caller sees that state.
  return reply[0] === 'ok' ? (reply[1] as JobState) : undefined;
}

/** Whether the job's submission is still unconfirmed. */
export async function isUnconfirmed(ctx: Pick<QueueContext, 'redis' | 'keys'>, jobId: string): Promise<boolean> {
  return (await ctx.redis.zscore(ctx.keys.submitting(), jobId)) !== null;
}

/**
 * End one unconfirmed record as `failed` (never queued), free its idempotency key and remove its
 * BullMQ job if one was made. Returns true when this call ended it.
 */
export async function reconcileOne(ctx: Ctx, jobId: string, reason = NEVER_QUEUED): Promise<boolean> {
  const record = await ctx.store.get(jobId);
  const idemKey = record?.idempotencyKey !== undefined ? ctx.keys.idempotency(hashPart(record.requester.subject), hashPart(record.idempotencyKey)) : ctx.keys.unused();
  const claim = record ? claimValue(record.id, requestFingerprint(record.tool, record.input)) : '';
  const from = INITIAL.filter((s) => ALLOWED_FROM.failed.includes(s));
  const reply = (await runScript(ctx.redis, 'castellanReconcile', RECONCILE, [ctx.keys.job(jobId), ctx.keys.submitting(), idemKey, ctx.keys.jobIndex()], [
    jobId,
    from.join(','),
    reason,
    new Date().toISOString(),
    claim,
    ctx.keys.jobsBy('state', ''),
    ctx.keys.unused(),
  ])) as [string, string];
  if (reply[0] !== 'ended' || !record) return false;
  ctx.logger.warn({ jobId }, 'a submission that never completed was ended as failed (never queued, nothing was run)');
  // The BullMQ job may exist (its add succeeded but the answer was lost): a worker would only
  // find the record final and close it, but it need not wait in the queue.
  await ctx.queue
    .getJob(jobId)
    .then((job) => job?.remove())
    .catch(() => undefined);
  await endJob(ctx, record, 'failed', { reason, recorded: true });
  return true;
}

/** Every marker older than `graceMs`: the submissions whose submitter gave up or died. */
export async function reconcileSubmissions(ctx: Ctx, graceMs = SUBMIT_GRACE_MS): Promise<number> {
  const stale = await ctx.redis.zrangebyscore(ctx.keys.submitting(), '-inf', Date.now() - graceMs);
  let ended = 0;
  for (const id of stale) if (await reconcileOne(ctx, id)) ended += 1;
  return ended;
}

/**
 * Before a worker starts a job: wait until its submitter confirmed it (normally a few ms after
 * the BullMQ job appears). A marker that outstays the grace is reconciled here. True: go on.
 */
export async function settled(ctx: Ctx & Pick<QueueContext, 'hub'>, jobId: string, graceMs = SUBMIT_GRACE_MS): Promise<boolean> {
  const deadline = Date.now() + graceMs;
  let wait = 20;
  for (;;) {
    // Woken by the confirmation's own message (registered before the read, so a confirmation
    // between the two still wakes us); the timer only covers a lost message. A worker that
    // took the job a moment before its submitter confirmed it waits a round trip, not 20 ms.
    const woken = await ctx.hub.nextChange(jobId);
    if (!(await isUnconfirmed(ctx, jobId))) {
      woken.cancel();
      return true;
    }
    if (Date.now() >= deadline) {
      woken.cancel();
      await reconcileOne(ctx, jobId);
      return false;
    }
    const timer = new AbortController();
    await Promise.race([woken.promise, sleep(wait, timer.signal)]);
    timer.abort();
    woken.cancel();
    wait = Math.min(wait * 2, 500);
  }
}

/**
 * Run `reconcileSubmissions` now and then every `everyMs` until the returned stop function is
 * called. Failures (Redis down) are retried on the next round, logged once per outage.
 */
export function startReconciler(ctx: Ctx, everyMs: number, graceMs = SUBMIT_GRACE_MS): () => void {
  let failing = false;
  let running: Promise<void> | undefined;
  const round = (): void => {
    if (running) return;
    // Submissions never confirmed are ended; approved jobs whose wake-up was lost are woken.
    running = reconcileSubmissions(ctx, graceMs)
      .then(() => wakeDecided(ctx))
      .then(() => {
        failing = false;
      })
      .catch((err: unknown) => {
        if (!failing) ctx.logger.debug({ err: String(err) }, 'submission reconcile failed; retrying later');
        failing = true;
      })
      .finally(() => {
        running = undefined;
      });
  };
  round();
  const timer = setInterval(round, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

export function hashPart(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}
