// Per-host locks for `change` and `destructive` jobs, across all workers: two reboots never
// overlap on a node. All-or-nothing acquisition (a Lua script) avoids two jobs each holding
// half of each other's hosts; locks carry a TTL so a crashed worker cannot hold a node
// forever, and the owner renews them while it runs.
//
// A lock is owned by one delivery of a job (`<job>:<run token>`, lockOwner), not by the job:
// a delivery taken over while its worker was alive but judged gone (paused, cut off from Redis
// longer than the heartbeat TTL) ran again beside the one that resumed it, and whichever ended
// first released the locks of both: another job waiting for those hosts ran on them while the
// roll still had steps there (test/integration/fault-worker-paused.test.ts). The ledger stops a
// step running twice; only the locks keep other jobs off. A redelivery takes over the locks of
// the delivery it replaces (`inherit`: it was judged gone, and can no longer release them), so
// that one's release or renewal finds them taken; each delivery releases only its own.
import type { Redis } from 'ioredis';
import { sleep } from './sleep.js';
import type { Keys } from './keys.js';
import { runScript } from './scripts.js';

// Takes every lock or none. The same script renews: a lock this owner holds is extended, and a
// lock that expired while Redis was unreachable and that nobody took meanwhile is taken again
// (the run never stopped owning the host); a lock someone else holds now is lost.
// ARGV[3]: an owner whose locks this one takes over ('' for none).
const ACQUIRE = `
for i = 1, #KEYS do
  local owner = redis.call('GET', KEYS[i])
  if owner and owner ~= ARGV[1] and owner ~= ARGV[3] then return {0, KEYS[i], owner} end
end
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2]) end
return {1, '', ''}
`;

// ARGV[2] = '1': every delivery of job ARGV[1] (owners ARGV[1] and ARGV[1]:*).
const RELEASE = `
local n = 0
local prefix = ARGV[1] .. ':'
for i = 1, #KEYS do
  local owner = redis.call('GET', KEYS[i])
  if owner == ARGV[1] or (ARGV[2] == '1' and owner and string.sub(owner, 1, #prefix) == prefix) then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
`;

/** The owner of the locks one delivery of a job holds (its run token: queues/claims.ts). */
export function lockOwner(jobId: string, run: string): string {
  return `${jobId}:${run}`;
}

/** The job a lock owner belongs to: what people waiting for the lock are told. */
export function ownerJob(owner: string): string {
  const colon = owner.indexOf(':');
  return colon < 0 ? owner : owner.slice(0, colon);
}

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

  /** `inherit`: an owner (a delivery replaced by this one) whose locks are taken over. */
  async tryAcquire(owner: string, hosts: readonly string[], inherit = ''): Promise<LockAttempt> {
    const k = this.lockKeys(hosts);
    if (k.length === 0) return { acquired: true };
    const [ok, key, holder] = (await runScript(this.redis, 'castellanLockAcquire', ACQUIRE, k, [owner, String(this.ttlMs), inherit])) as [number, string, string];
    if (ok === 1) return { acquired: true };
    return { acquired: false, host: this.hostOf(key), holder: ownerJob(holder) };
  }

  /**
   * Wait until every host is free, polling; `onWait` is told once per change of holder.
   * Gives up when `signal` aborts.
   */
  async acquire(owner: string, hosts: readonly string[], signal: AbortSignal, onWait?: (host: string, holder: string) => void, inherit = ''): Promise<boolean> {
    let lastHolder = '';
    let delay = 50;
    for (;;) {
      if (signal.aborted) return false;
      const attempt = await this.tryAcquire(owner, hosts, inherit);
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
    const [ok, key, holder] = (await runScript(this.redis, 'castellanLockAcquire', ACQUIRE, k, [owner, String(this.ttlMs), ''])) as [number, string, string];
    if (ok === 1) return { held: true };
    return { held: false, host: this.hostOf(key), holder: ownerJob(holder) };
  }

  /** Release `owner`'s locks; `allOfJob`: `owner` is a job id, and every delivery's go (the job ended). */
  async release(owner: string, hosts: readonly string[], allOfJob = false): Promise<number> {
    const k = this.lockKeys(hosts);
    if (k.length === 0) return 0;
    return (await runScript(this.redis, 'castellanLockRelease', RELEASE, k, [owner, allOfJob ? '1' : '0'])) as number;
  }

  private hostOf(key: string): string {
    return key.slice(this.keys.hostLock('').length);
  }

  get renewEveryMs(): number {
    return Math.floor(this.ttlMs / 3);
  }
}
