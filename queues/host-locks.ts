// Per-host locks for `change` and `destructive` jobs, across all workers: two reboots never
// overlap on a node. All-or-nothing acquisition (a Lua script) avoids two jobs each holding
// half of each other's hosts; locks carry a TTL so a crashed worker cannot hold a node
// forever, and the owner renews them while it runs.
//
// The owner is the job id, not one delivery of it (issue 15, reviewed 2026-11-29). What that
// leaves open, and why it stays so for now:
// - Nothing runs twice on a host because of it: that is the ledger's claim (queues/ledger.ts),
//   taken per step and host before any dispatch, whichever delivery holds the locks.
// - A redelivery to the worker still running the job, or while its worker is alive, is left
//   to that run (worker.ts redelivered); in a Sentinel failover the run token decides, and a
//   superseded delivery neither runs another step nor releases (claims.ts, worker.ts finally).
// - Left open: a delivery taken over while its worker is *alive* but judged gone (paused or cut
//   off from Redis longer than the heartbeat TTL) with a resumable plan. The new delivery takes
//   the locks at once (same owner), and whichever of the two ends first releases them while the
//   other may still have a command in flight; another job waiting for those hosts can then run
//   beside it until the survivor's next renewal (renewEveryMs) finds the lock taken and stops
//   it. Owning the locks by `<job>:<run token>` closes that (the new delivery waits for the old
//   one's locks to be released or to expire; each releases only its own), but touches every lock
//   owner check (worker, claims, endings, the holder shown in lock_wait): not done without a
//   test that reproduces the overlap (a SIGSTOPped worker process mid-roll), which is not written.
import type { Redis } from 'ioredis';
import { sleep } from './sleep.js';
import type { Keys } from './keys.js';
import { runScript } from './scripts.js';

// Takes every lock or none. The same script renews: a lock this owner holds is extended, and a
// lock that expired while Redis was unreachable and that nobody took meanwhile is taken again
// (the run never stopped owning the host); a lock someone else holds now is lost.
const ACQUIRE = `
for i = 1, #KEYS do
  local owner = redis.call('GET', KEYS[i])
  if owner and owner ~= ARGV[1] then return {0, KEYS[i], owner} end
end
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2]) end
return {1, '', ''}
`;

const RELEASE = `
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
`;

export type LockAttempt = { readonly acquired: true } | { readonly acquired: false; readonly host: string; readonly holder: string };
/** Renewal: every lock still ours, or the first host whose lock someone else now holds. */
export type LockRenewal = { readonly held: true } | { readonly held: false; readonly host: string; readonly holder: string };

export class HostLocks {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly ttlMs = 60_000,
  ) {}

  private lockKeys(hosts: readonly string[]): string[] {
    // Sorted: a stable order, whatever order plans list hosts in.
    return [...new Set(hosts)].sort().map((h) => this.keys.hostLock(h));
  }

  async tryAcquire(owner: string, hosts: readonly string[]): Promise<LockAttempt> {
    const k = this.lockKeys(hosts);
    if (k.length === 0) return { acquired: true };
    const [ok, key, holder] = (await runScript(this.redis, 'castellanLockAcquire', ACQUIRE, k, [owner, String(this.ttlMs)])) as [number, string, string];
    if (ok === 1) return { acquired: true };
    return { acquired: false, host: this.hostOf(key), holder };
  }

  /**
   * Wait until every host is free, polling; `onWait` is told once per change of holder.
   * Gives up when `signal` aborts.
   */
  async acquire(owner: string, hosts: readonly string[], signal: AbortSignal, onWait?: (host: string, holder: string) => void): Promise<boolean> {
    let lastHolder = '';
    let delay = 50;
    for (;;) {
      if (signal.aborted) return false;
      const attempt = await this.tryAcquire(owner, hosts);
      if (attempt.acquired) return true;
      if (attempt.holder !== lastHolder) {
        lastHolder = attempt.holder;
        onWait?.(attempt.host, attempt.holder);
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 1000);
    }
  }

  /** Throws when Redis cannot be reached (the caller retries); `held: false` means stop. */
  async renew(owner: string, hosts: readonly string[]): Promise<LockRenewal> {
    const k = this.lockKeys(hosts);
    if (k.length === 0) return { held: true };
    const [ok, key, holder] = (await runScript(this.redis, 'castellanLockAcquire', ACQUIRE, k, [owner, String(this.ttlMs)])) as [number, string, string];
    if (ok === 1) return { held: true };
    return { held: false, host: this.hostOf(key), holder };
  }

  async release(owner: string, hosts: readonly string[]): Promise<number> {
    const k = this.lockKeys(hosts);
    if (k.length === 0) return 0;
    return (await runScript(this.redis, 'castellanLockRelease', RELEASE, k, [owner])) as number;
  }

  private hostOf(key: string): string {
    return key.slice(this.keys.hostLock('').length);
  }

  get renewEveryMs(): number {
    return Math.floor(this.ttlMs / 3);
  }
}
