// Castellan's Lua scripts, registered once per connection with ioredis `defineCommand`:
// ioredis then sends EVALSHA (the script body travels once, not on every call) and falls back
// to EVAL by itself when Redis answers NOSCRIPT (after a restart or a Sentinel failover to a
// replica that never saw the script).
import type { Redis } from 'ioredis';

export const SCRIPT_NAMES = ['castellanTransition', 'castellanVote', 'castellanLockAcquire', 'castellanLockRelease', 'castellanLedgerClaim', 'castellanGuardedHset', 'castellanSubmit', 'castellanRateTake', 'castellanIndexQuery', 'castellanAuditAppend', 'castellanSetPreview', 'castellanConfirm', 'castellanReconcile', 'castellanForget', 'castellanRetainAccount', 'castellanRetainPrune', 'castellanDurable', 'castellanEventsAppend', 'castellanRecordIfFinal', 'castellanRecordLive', 'castellanRunningDone'] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

type ScriptCall = (numberOfKeys: number, ...keysAndArgs: Array<string | number>) => Promise<unknown>;

/** Runs a registered script: `keys` are Redis keys (they decide the cluster slot), `args` the rest. */
export function runScript(redis: Redis, name: ScriptName, lua: string, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
  const commands = redis as unknown as Record<string, ScriptCall | undefined>;
  let call = commands[name];
  if (!call) {
    // numberOfKeys left out: each call passes it first, so one script serves any number of keys.
    redis.defineCommand(name, { lua });
    call = commands[name]!;
  }
  return call.call(redis, keys.length, ...keys, ...args);
}
