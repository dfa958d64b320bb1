// Redis replicates asynchronously: in a failover, whatever no replica had received is lost
// with the old primary, and a primary that has just been replaced may still accept writes
// for a moment (a forced or partitioned failover) that no one will ever see. So a submission
// (and an approval) is confirmed to its caller only once `WAIT` says enough replicas hold
// everything this connection wrote. WAIT blocks its connection until it answers: quick while
// replicas keep up, up to redis.confirm_timeout when they do not (then the caller gets
// "unavailable"). Settings: redis.confirm_replicas (default 1 under Sentinel, 0 standalone =
// no WAIT) and redis.confirm_timeout.
import type { Redis } from 'ioredis';

export interface ReplicationSettings {
  /** Replicas that must acknowledge; 0: do not wait. */
  readonly replicas: number;
  readonly timeoutMs: number;
}

export interface Replicated {
  readonly ok: boolean;
  /** Replicas that acknowledged. */
  readonly acked: number;
  /** For messages: "no Redis replica confirmed it within 2 s (0 of 1)". */
  readonly problem: string;
}

export async function replicated(redis: Redis, settings: ReplicationSettings | undefined): Promise<Replicated> {
  if (!settings || settings.replicas <= 0) return { ok: true, acked: 0, problem: '' };
  const acked = await redis.wait(settings.replicas, settings.timeoutMs);
  const ok = acked >= settings.replicas;
  const problem = ok ? '' : `${acked === 0 ? 'no Redis replica' : `only ${acked} Redis replica(s)`} confirmed it within ${(settings.timeoutMs / 1000).toFixed(1).replace(/\.0$/, '')} s (${acked} of ${settings.replicas} needed; a failover under way, or replicas down)`;
  return { ok, acked, problem };
}
