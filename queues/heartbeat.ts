// Which workers are alive, which sites they serve and what they run. Every worker writes a
// heartbeat key (TTL `ttlMs`, refreshed every fifth of it) and keeps one Redis connection
// named after itself. Two ways of noticing a worker that is gone, so that a clear crash is
// handled at once and a frozen one soon after:
//  - SIGKILL, a crash, a power cut: the kernel closes the worker's sockets and Redis drops
//    its named connection immediately; `CLIENT LIST` no longer shows it (checked twice, a
//    second apart, so a reconnect after a Redis blip is not mistaken for a death);
//  - SIGSTOP, a hung event loop: the connection stays, but the heartbeat key runs out.
// Where `CLIENT LIST` is not allowed (an ACL), only the heartbeat's TTL counts.
import type { Redis } from 'ioredis';
import type { Keys } from './keys.js';

export interface WorkerBeat {
  readonly id: string;
  /** Sites served; [''] = hosts without a site (a worker started without --site). */
  readonly sites: readonly string[];
  readonly pid: number;
  readonly host: string;
  /** BullMQ ids of what it runs now (job ids, shard ids). */
  readonly jobs: readonly string[];
  readonly at: number;
}

export type Liveness = 'alive' | 'gone';

const CONNECTION_PREFIX = 'castellan-worker:';

export function workersKey(keys: Keys): string {
  return `${keys.prefix}:workers`;
}

/** Where running work is listed: BullMQ job id → JSON { worker, job (Castellan id), site? }. */
export function runningKey(keys: Keys): string {
  return `${keys.prefix}:running`;
}

export interface RunningEntry {
  readonly worker: string;
  readonly job: string;
  readonly site?: string | undefined;
}

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  private named: Redis | undefined;
  private readonly jobs = new Set<string>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly beat: Omit<WorkerBeat, 'jobs' | 'at'>,
    readonly ttlMs: number,
  ) {}

  async start(): Promise<void> {
    // Its own connection, named, so that its disappearance is the worker's.
    this.named = this.redis.duplicate({ connectionName: `${CONNECTION_PREFIX}${this.beat.id}`, lazyConnect: true });
    this.named.on('error', () => undefined);
    await this.named.connect();
    await this.write();
    this.timer = setInterval(() => void this.write().catch(() => undefined), Math.max(100, Math.floor(this.ttlMs / 5)));
  }

  /** Note the start of a BullMQ job here (and in the running list reconcilers read). */
  async running(bullId: string, entry: Omit<RunningEntry, 'worker'>): Promise<void> {
    this.jobs.add(bullId);
    // A redelivery keeps the entry of the worker that started it: if that worker is frozen
    // rather than dead, it is the one a reconciler must watch (and its entry goes only when
    // the job has been reconciled or has ended).
    await this.redis.hsetnx(runningKey(this.keys), bullId, JSON.stringify({ ...entry, worker: this.beat.id }));
  }

  async done(bullId: string): Promise<void> {
    this.jobs.delete(bullId);
    // Only our own entry: a reconciler or another delivery may have taken it over.
    const raw = await this.redis.hget(runningKey(this.keys), bullId);
    if (raw && (JSON.parse(raw) as RunningEntry).worker === this.beat.id) await this.redis.hdel(runningKey(this.keys), bullId);
  }

  private async write(): Promise<void> {
    const now = Date.now();
    const beat: WorkerBeat = { ...this.beat, jobs: [...this.jobs], at: now };
    await this.redis.multi().set(this.keys.workerHeartbeat(this.beat.id), JSON.stringify(beat), 'PX', this.ttlMs).zadd(workersKey(this.keys), now, this.beat.id).exec();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    // A clean exit says so at once (nobody waits for the TTL).
    await this.redis.multi().del(this.keys.workerHeartbeat(this.beat.id)).zrem(workersKey(this.keys), this.beat.id).exec().catch(() => undefined);
    this.named?.disconnect();
    this.named = undefined;
  }
}

/** Reads the worker registry; keeps a little memory so a blip is not taken for a death. */
export class WorkerRegistry {
  /** Worker id → when its named connection was first seen missing. */
  private readonly missingSince = new Map<string, number>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly confirmMs = 1000,
  ) {}

  /** Live workers, from their heartbeat keys (stale registry entries are pruned). */
  async live(): Promise<WorkerBeat[]> {
    const ids = await this.redis.zrange(workersKey(this.keys), 0, -1);
    if (ids.length === 0) return [];
    const raw = await this.redis.mget(...ids.map((id) => this.keys.workerHeartbeat(id)));
    const beats: WorkerBeat[] = [];
    const stale: string[] = [];
    raw.forEach((value, i) => {
      if (value) beats.push(JSON.parse(value) as WorkerBeat);
      else stale.push(ids[i]!);
    });
    if (stale.length) await this.redis.zrem(workersKey(this.keys), ...stale).catch(() => undefined);
    return beats;
  }

  /** Sites that at least one live worker serves ('' = hosts without a site). */
  async sitesServed(): Promise<Set<string>> {
    return new Set((await this.live()).flatMap((b) => b.sites));
  }

  /** Names of the connections Redis has now, or undefined when CLIENT LIST is not allowed. */
  private async connectionNames(): Promise<Set<string> | undefined> {
    try {
      const list = (await this.redis.client('LIST')) as string;
      const names = new Set<string>();
      for (const line of list.split('\n')) {
        const m = / name=(\S+)/.exec(line);
        if (m?.[1]?.startsWith(CONNECTION_PREFIX)) names.add(m[1].slice(CONNECTION_PREFIX.length));
      }
      return names;
    } catch {
      return undefined;
    }
  }

  /** Each worker's liveness: gone when its heartbeat ran out, or its connection is gone (confirmed). */
  async liveness(workerIds: readonly string[]): Promise<Map<string, Liveness>> {
    const out = new Map<string, Liveness>();
    if (workerIds.length === 0) return out;
    const beats = await this.redis.mget(...workerIds.map((id) => this.keys.workerHeartbeat(id)));
    const names = await this.connectionNames();
    const now = Date.now();
    workerIds.forEach((id, i) => {
      if (!beats[i]) {
        out.set(id, 'gone');
        return;
      }
      if (names === undefined || names.has(id)) {
        this.missingSince.delete(id);
        out.set(id, 'alive');
        return;
      }
      const since = this.missingSince.get(id) ?? now;
      this.missingSince.set(id, since);
      out.set(id, now - since >= this.confirmMs ? 'gone' : 'alive');
    });
    return out;
  }

  /** One worker, confirmed at once (waits out the blip check when its connection is missing). */
  async isGone(workerId: string): Promise<boolean> {
    let state = (await this.liveness([workerId])).get(workerId);
    if (state === 'alive' && this.missingSince.has(workerId)) {
      await new Promise((r) => setTimeout(r, this.confirmMs));
      state = (await this.liveness([workerId])).get(workerId);
    }
    return state === 'gone';
  }
}
