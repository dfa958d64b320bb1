// Bounds on what one person can make Castellan do (config `limits:`), enforced in JobService
// so every front end inherits them: a token bucket on job creation per subject and origin
// (Redis, shared by every server process; one Lua script takes the token, so requests at the
// same instant cannot share the last one), a cap on jobs one person has queued or running
// (counted and claimed in the submission script, queues/submission.ts),
// and a cap on read tools' timeouts so a read cannot hold a worker for hours.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { LimitSettings } from '../config/schema.js';
import type { Plan, PlanStep } from '../tools/types.js';
import { runScript } from './scripts.js';

export type { LimitSettings };

/** Defaults when a runtime is built without limits (tests that build settings by hand). */
export const DEFAULT_LIMITS: LimitSettings = {
  maxHosts: 4096,
  readTimeoutMs: 5 * 60_000,
  jobsPerRequester: 16,
  rate: { perMinute: 60, burst: 30 },
  outputPerHostBytes: 1024 * 1024,
  outputPerJobBytes: 8 * 1024 * 1024,
  mcpBatches: 'refuse',
};

// KEYS[1] bucket hash. ARGV: 1 tokens per ms, 2 burst, 3 cost. Redis's own clock (TIME), so
// every server process agrees. Returns {allowed (1/0), ms until `cost` tokens are there}.
// Tokens are kept as a string: Lua numbers returned to Redis would be truncated to integers.
const TAKE = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(saved[1]) or burst
local at = tonumber(saved[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local ttl = math.ceil(burst / rate) + 1000
if tokens >= cost then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - cost), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, 0}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], ttl)
return {0, math.ceil((cost - tokens) / rate)}
`;

export type TakeResult = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number };

function hashed(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

/** Take `cost` tokens from the bucket of (subject, origin), or say how long until there are enough. */
export async function takeTokens(redis: Redis, prefix: string, subject: string, origin: string, rate: LimitSettings['rate'], cost = 1): Promise<TakeResult> {
  if (rate.perMinute <= 0) return { ok: true };
  const key = `${prefix}:ratelimit:${hashed(subject)}:${origin}`;
  const reply = (await runScript(redis, 'castellanRateTake', TAKE, [key], [rate.perMinute / 60_000, rate.burst, cost])) as [number, number];
  return reply[0] === 1 ? { ok: true } : { ok: false, retryAfterMs: Math.max(1, Number(reply[1])) };
}

/**
 * The set of a subject's jobs that may still hold a worker: counted and added to in one step
 * when a job is created (queues/submission.ts), pruned there as they end.
 */
export function activeJobsKey(prefix: string, subject: string): string {
  return `${prefix}:active:${hashed(subject)}`;
}

/**
 * A read plan with every step's (and gate's) timeout capped at `capMs`: a read tool asked to
 * wait 24 h on a FIFO gives up at the cap instead of pinning a worker.
 */
export function capReadPlan(plan: Plan, capMs: number): Plan {
  const cap = (step: PlanStep): PlanStep => ({
    ...step,
    timeoutMs: Math.min(step.timeoutMs, capMs),
    ...(step.action.kind === 'gate' ? { action: { ...step.action, timeoutMs: Math.min(step.action.timeoutMs, capMs) } } : {}),
    ...(step.onFailure !== undefined ? { onFailure: step.onFailure.map(cap) } : {}),
  });
  return { ...plan, batches: plan.batches.map((b) => ({ ...b, steps: b.steps.map(cap) })) };
}
