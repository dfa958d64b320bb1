// The one guard every per-delivery write passes (issue 15: nothing runs twice by accident).
//
// Each delivery of a job carries a run token (queues/claims.ts): the record's `run` field, or a
// shard's `run:<site>` on its board (queues/shards.ts). A delivery that lost the job to a
// stalled-job re-delivery (a paused worker, a Redis failover without replicas) may still be
// running: a "zombie". Host locks are already owned per delivery (queues/host-locks.ts); every
// other write one delivery makes about its run — ledger claims and finishes, a shard's result,
// progress events — checks in the same Lua script that the token is still the job's, so a
// zombie's late write never overwrites what the delivery that replaced it recorded.
import type { Redis } from 'ioredis';
import type { Keys } from './keys.js';
import { runScript } from './scripts.js';

/** Written only while hash `key`'s field `field` holds `value`. */
export interface RunGuard {
  readonly key: string;
  readonly field: string;
  readonly value: string;
}

/** The guard of delivery `run` of job `jobId` (a shard's: shardGuard, queues/shards.ts). */
export function deliveryGuard(keys: Keys, jobId: string, run: string): RunGuard {
  return { key: keys.job(jobId), field: 'run', value: run };
}

/**
 * Lua: true when a guard given as script arguments refuses the write. `field` '' means no
 * guard. Every guarded script builds its check from this, so the rule lives in one place.
 */
export function guardRefuses(key: string, field: string, value: string): string {
  return `(${field} ~= '' and redis.call('HGET', ${key}, ${field}) ~= ${value})`;
}

/** The guard's script arguments: key (`none` when unguarded), field, value. */
export function guardArgs(guard: RunGuard | undefined, none: string): [key: string, field: string, value: string] {
  return guard ? [guard.key, guard.field, guard.value] : [none, '', ''];
}

/** A write refused because the delivery making it is no longer the job's (or shard's). */
export class DeliverySuperseded extends Error {
  constructor(
    readonly jobId: string,
    what: string,
  ) {
    super(`${what} refused: another delivery of job ${jobId} runs it now`);
    this.name = 'DeliverySuperseded';
  }
}

// KEYS[1] a hash, KEYS[2] the guard's hash; ARGV 1 and 2 the guard's field ('' for none) and
// token, then field, value pairs written over whatever the fields hold (in slices that stay
// within Lua's unpack limit). Returns false (nil), writing nothing, when the guard refuses.
const GUARDED_HSET = `if ${guardRefuses('KEYS[2]', 'ARGV[1]', 'ARGV[2]')} then return false end
for i = 3, #ARGV, 2000 do redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 1999, #ARGV))) end
return 1
`;

/** HSET `pairs` into `key` while `guard` holds; false when it refused (nothing written). */
export async function guardedHset(redis: Redis, keys: Keys, key: string, guard: RunGuard | undefined, pairs: readonly string[]): Promise<boolean> {
  if (pairs.length === 0) return true;
  const [guardKey, ...guardRest] = guardArgs(guard, keys.unused());
  return (await runScript(redis, 'castellanGuardedHset', GUARDED_HSET, [key, guardKey], [...guardRest, ...pairs])) !== null;
}
