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
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { sleep } from './sleep.js';
import type { Keys } from './keys.js';
import { runScript } from './scripts.js';

// Takes every lock or none. The same script renews: a lock this owner holds is extended, and a
// lock that expired while Redis was unreachable and that nobody took meanwhile is taken again
// (the run never stopped owning the host); a lock someone else holds now is lost.
// ARGV[3] on: owners whose locks this one takes over (none, or '').
const ACQUIRE = `
local inherit = {}
for i = 3, #ARGV do inherit[ARGV[i]] = true end
for i = 1, #KEYS do
  local owner = redis.call('GET', KEYS[i])
  if owner and owner ~= ARGV[1] and not inherit[owner] then return {0, KEYS[i], owner} end
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

/**
 * A new delivery's run token: random, then `@` and the id of the worker running it. Whoever
 * finds a lock this delivery left can ask whether its worker is gone (a token of an older
 * version, without the worker, is only waited out).
 */
export function runToken(workerId: string): string {
  return `${randomBytes(6).toString('hex')}@${workerId}`;
}

/** The worker a lock owner's delivery runs on, when its run token says (runToken). */
export function ownerWorker(owner: string): string | undefined {
  const at = owner.indexOf('@');
  return at < 0 ? undefined : owner.slice(at + 1) || undefined;
}

/** The job a lock owner belongs to: what people waiting for the lock are told. */
export function ownerJob(owner: string): string {
  const colon = owner.indexOf(':');
  return colon < 0 ? owner : owner.slice(0, colon);
}

/** `holder`: the holding job; `owner`: the holding delivery (lockOwner). */
export type LockAttempt = { readonly acquired: true } | { readonly acquired: false; readonly host: string; readonly holder: string; readonly owner: string };

/**
 * Asked about a lock held by another delivery of the same job that the caller does not already
 * take over: true when that delivery is gone and whatever it left on the hosts was seen to
 * (queues/worker.ts takeOverSibling); its locks are then taken over at once, not waited out.
 */
export type SiblingTakeOver = (owner: string) => Promise<boolean>;
/** Renewal: every lock still ours, or the first host whose lock someone else now holds. */
export type LockRenewal = { readonly held: true } | { readonly held: false; readonly host: string; readonly holder: string };

/** How often a sibling delivery judged alive (or not yet known gone) is asked about again. */
const SIBLING_RECHECK_MS = 2000;

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

  /** `inherit`: owners (deliveries replaced by this one) whose locks are taken over. */
  async tryAcquire(owner: string, hosts: readonly string[], inherit: string | readonly string[] = ''): Promise<LockAttempt> {
    const k = this.lockKeys(hosts);
    if (k.length === 0) return { acquired: true };
    const [ok, key, holder] = (await runScript(this.redis, 'castellanLockAcquire', ACQUIRE, k, [owner, String(this.ttlMs), ...(typeof inherit === 'string' ? [inherit] : inherit)])) as [number, string, string];
    if (ok === 1) return { acquired: true };
    return { acquired: false, host: this.hostOf(key), holder: ownerJob(holder), owner: holder };
  }

  /**
   * Wait until every host is free, polling; `onWait` is told once per change of holder.
   * Gives up when `signal` aborts. A lock held by another delivery of the same job (one that
   * took it before its run token reached the record, or whose `running` a failover lost) is
   * not waited out for its TTL: `takeOver` is asked (again every few seconds while it says no)
   * and, once it says that delivery is gone, its locks are taken over.
   */
  async acquire(owner: string, hosts: readonly string[], signal: AbortSignal, onWait?: (host: string, holder: string) => void, inherit = '', takeOver?: SiblingTakeOver): Promise<boolean> {
    const inherited = inherit ? [inherit] : [];
    const asked = new Map<string, number>();
    let lastHolder = '';
    let delay = 50;
    for (;;) {
      if (signal.aborted) return false;
      const attempt = await this.tryAcquire(owner, hosts, inherited);
      if (attempt.acquired) return true;
      if (takeOver && ownerJob(attempt.owner) === ownerJob(owner) && Date.now() - (asked.get(attempt.owner) ?? -Infinity) >= SIBLING_RECHECK_MS) {
        asked.set(attempt.owner, Date.now());
        if (await takeOver(attempt.owner)) {
          inherited.push(attempt.owner);
          continue;
        }
      }
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
