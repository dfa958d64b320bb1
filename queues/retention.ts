// Retention by total bytes (config jobs.retention.max_bytes). Redis runs under `noeviction`:
// per-host and per-job output caps (queues/output-budget.ts) bound one job, but not how many
// finished jobs pile up. So each job's footprint (record, event stream, ledger, as Redis counts
// them with MEMORY USAGE) is accounted when it ends, and once the finished jobs together hold
// more than the limit, the oldest finished ones are deleted with every index entry naming them.
// Only finished jobs are ever accounted, so a job that is running or awaiting approval is never
// pruned; the job that just ended is kept in its own round, so its requester can read it.
// Accounting, pruning and deletion are Lua scripts: two processes ending jobs at once never
// count a job twice or leave an index entry behind.
import type { Redis } from 'ioredis';
import type { JobSettings } from './context.js';
import type { Keys } from './keys.js';
import { runScript } from './scripts.js';
import { FINAL_STATES, JOB_STATES } from './states.js';

/** Used when settings are built without a byte bound (tests that build settings by hand). */
export const DEFAULT_RETENTION_MAX_BYTES = 256 * 1024 * 1024;

/** How many jobs one ending prunes at most (the next ending goes on). */
const PRUNE_BATCH = 500;

/** Key names the scripts need, passed as one JSON argument (Castellan's keys are not cluster-slotted, see keys.ts). */
function keyNames(keys: Keys): string {
  return JSON.stringify({
    job: keys.job(''),
    events: keys.events(''),
    ledger: keys.ledger(''),
    where: keys.jobsWhere(),
    index: keys.jobIndex(),
    expiry: keys.jobsExpiry(),
    stateIndex: keys.jobsBy('state', ''),
    states: JOB_STATES.join(','),
    bytes: keys.retainedBytes(),
    order: keys.retainedOrder(),
    total: keys.retainedTotal(),
  });
}

// Deletes one job with everything that names it and gives back its accounted bytes (0 when it
// was never accounted). Shared by every script that deletes jobs.
const FORGET_ONE = `
local function release(P, id)
  local bytes = tonumber(redis.call('HGET', P.bytes, id) or '0')
  redis.call('HDEL', P.bytes, id)
  redis.call('ZREM', P.order, id)
  if bytes > 0 then redis.call('DECRBY', P.total, bytes) end
  return bytes
end
local function forget_one(P, id)
  redis.call('DEL', P.job .. id, P.events .. id, P.ledger .. id)
  local where = redis.call('HGET', P.where, id)
  if where then
    for _, key in ipairs(cjson.decode(where)) do redis.call('ZREM', key, id) end
  end
  for st in string.gmatch(P.states, '[^,]+') do redis.call('ZREM', P.stateIndex .. st, id) end
  redis.call('HDEL', P.where, id)
  redis.call('ZREM', P.index, id)
  redis.call('ZREM', P.expiry, id)
  return release(P, id)
end
`;

// ARGV: 1 key names (JSON), 2.. job ids.
const FORGET = `${FORGET_ONE}
local P = cjson.decode(ARGV[1])
for i = 2, #ARGV do forget_one(P, ARGV[i]) end
return #ARGV - 1
`;

// ARGV: 1 key names, 2 job id, 3 when it finished (ms). Returns {its bytes, the new total}.
// Accounting a job twice (an ending's retry) replaces its earlier count.
const ACCOUNT = `
local P = cjson.decode(ARGV[1])
local id = ARGV[2]
if redis.call('EXISTS', P.job .. id) == 0 then return {0, tonumber(redis.call('GET', P.total) or '0')} end
local function usage(key)
  local u = redis.call('MEMORY', 'USAGE', key, 'SAMPLES', 0)
  if u then return u end
  return 0
end
local bytes = usage(P.job .. id) + usage(P.events .. id) + usage(P.ledger .. id)
local old = tonumber(redis.call('HGET', P.bytes, id) or '0')
redis.call('HSET', P.bytes, id, bytes)
redis.call('ZADD', P.order, ARGV[3], id)
return {bytes, redis.call('INCRBY', P.total, bytes - old)}
`;

// ARGV: 1 key names, 2 max bytes, 3 id to keep, 4 batch, 5 final states.
// Returns {total after, {id, bytes, state, id, bytes, state, …}} of the jobs pruned.
const PRUNE = `${FORGET_ONE}
local P = cjson.decode(ARGV[1])
local max = tonumber(ARGV[2])
local final = {}
for st in string.gmatch(ARGV[5], '[^,]+') do final[st] = true end
local total = tonumber(redis.call('GET', P.total) or '0')
local pruned = {}
local offset = 0
local n = 0
while total > max and n < tonumber(ARGV[4]) do
  local id = redis.call('ZRANGE', P.order, offset, offset)[1]
  if not id then break end
  if id == ARGV[3] then
    offset = offset + 1
  else
    local st = redis.call('HGET', P.job .. id, 'state')
    if not st then
      forget_one(P, id)
    elseif not final[st] then
      release(P, id)
    else
      local bytes = forget_one(P, id)
      table.insert(pruned, id)
      table.insert(pruned, tostring(bytes))
      table.insert(pruned, st)
      n = n + 1
    end
    total = tonumber(redis.call('GET', P.total) or '0')
  end
end
return {tostring(total), pruned}
`;

/** Delete jobs with everything that names them: record, events, ledger, index entries, byte accounting. */
export async function forgetJobs(redis: Redis, keys: Keys, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await runScript(redis, 'castellanForget', FORGET, [], [keyNames(keys), ...ids]);
}

/** Count a finished job's footprint in Redis. Returns its bytes and what all finished jobs hold now. */
export async function accountFinished(redis: Redis, keys: Keys, id: string, finishedAt = Date.now()): Promise<{ bytes: number; total: number }> {
  const [bytes, total] = (await runScript(redis, 'castellanRetainAccount', ACCOUNT, [], [keyNames(keys), id, finishedAt])) as [number, number];
  return { bytes: Number(bytes), total: Number(total) };
}

export interface PrunedJob {
  readonly id: string;
  readonly bytes: number;
  readonly state: string;
}

/**
 * Delete the oldest finished jobs until all finished jobs hold at most `maxBytes`, never `keep`
 * (the job that just ended). Returns what was pruned and the total left.
 */
export async function pruneToBudget(redis: Redis, keys: Keys, maxBytes: number, keep: string): Promise<{ pruned: PrunedJob[]; total: number }> {
  const [total, flat] = (await runScript(redis, 'castellanRetainPrune', PRUNE, [], [keyNames(keys), maxBytes, keep, PRUNE_BATCH, [...FINAL_STATES].join(',')])) as [string, string[]];
  const pruned: PrunedJob[] = [];
  for (let i = 0; i + 2 < flat.length; i += 3) pruned.push({ id: flat[i] ?? '', bytes: Number(flat[i + 1]), state: flat[i + 2] ?? '' });
  return { pruned, total: Number(total) };
}

/** What finished jobs hold in Redis now, by the accounting above. */
export async function retainedBytes(redis: Redis, keys: Keys): Promise<number> {
  return Number((await redis.get(keys.retainedTotal())) ?? 0);
}

/** How long BullMQ keeps its own finished jobs (jobs.retention), for every queue.add and worker. */
export function bullRetention(r: JobSettings['retention']): { removeOnComplete: { age: number; count: number }; removeOnFail: { age: number; count: number } } {
  return { removeOnComplete: { age: r.completedAgeS, count: r.completedCount }, removeOnFail: { age: r.failedAgeS, count: r.failedCount } };
}
