// Which workers are alive, which sites they serve and what they run. Every worker writes a
// heartbeat key (TTL `ttlMs`, refreshed every fifth of it) and keeps one Redis connection
// named after itself. A worker is judged gone only on evidence gathered on ONE primary that
// has been Redis's primary long enough for every live worker to have found it again:
//  - a crash (SIGKILL, power cut): the kernel closes the worker's sockets, so its named
//    connection leaves `CLIENT LIST` while its heartbeat stops changing. Gone once both have
//    held for `confirmMs` — but only after the current primary has been seen for a full
//    heartbeat TTL: right after a Sentinel failover or a Redis restart, live workers are still
//    reconnecting (their connections are not on the new primary yet), so absence means nothing;
//  - a freeze (SIGSTOP, a hung event loop): the connection stays, the heartbeat key runs out.
//    Gone once the key has been missing for a full TTL, observed continuously on the same
//    primary (a key lost by async replication in a failover is rewritten by its live worker
//    within a fifth of the TTL, see `Heartbeat.write`).
// "The same primary" is its run_id and replication id (INFO), read in the same MULTI as the
// observations: a promoted replica or a restarted Redis is a new primary, and every
// observation starts again. When it became primary is kept on Redis itself (`primaryKey`), so
// a reconciler that just started does not have to wait a TTL to trust a stable primary.
// Where `CLIENT LIST` is not allowed (an ACL), only the heartbeat's TTL counts.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Keys } from './keys.js';
import { runScript } from './scripts.js';
import { sleep } from './sleep.js';
import { keepReconnecting } from './connections.js';

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

/** `unsure`: not enough evidence yet (treat as alive, look again). */
export type Liveness = 'alive' | 'gone' | 'unsure';

const CONNECTION_PREFIX = 'castellan-worker:';

export function workersKey(keys: Keys): string {
  return `${keys.prefix}:workers`;
}

/** Where running work is listed: BullMQ job id → JSON { worker, job (Castellan id), site? }. */
export function runningKey(keys: Keys): string {
  return `${keys.prefix}:running`;
}

/** "<primary identity> <ms since it was first seen as primary>", kept on that primary. */
export function primaryKey(keys: Keys): string {
  return `${keys.prefix}:primary`;
}

// KEYS[1] the running list. ARGV: 1 the BullMQ job id, 2 this worker's id. Deletes the entry
// only while it names this worker.
const RUNNING_DONE = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw and cjson.decode(raw)['worker'] == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
`;

export interface RunningEntry {
  readonly worker: string;
  readonly job: string;
  readonly site?: string | undefined;
}

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  private named: Redis | undefined;
  private readonly jobs = new Map<string, RunningEntry>();
  private written = false;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly beat: Omit<WorkerBeat, 'jobs' | 'at'>,
    readonly ttlMs: number,
    private readonly logger?: Logger,
  ) {}

  async start(): Promise<void> {
    // Its own connection, named, so that its disappearance is the worker's.
    const named = this.redis.duplicate({ connectionName: `${CONNECTION_PREFIX}${this.beat.id}`, lazyConnect: true });
    this.named = named;
    this.named.on('error', () => undefined);
    // Ended by a failover race (queues/connections.ts), it would make this live worker look gone.
    keepReconnecting(named, () => this.named !== named);
    await this.named.connect();
    await this.write();
    this.timer = setInterval(() => void this.write().catch(() => undefined), Math.max(100, Math.floor(this.ttlMs / 5)));
  }

  /**
   * Note the start of a BullMQ job here (and in the running list reconcilers read). False when
   * this worker already runs that delivery (a redelivery to the worker that still runs it).
   */
  async running(bullId: string, entry: Omit<RunningEntry, 'worker'>): Promise<boolean> {
    if (this.jobs.has(bullId)) return false;
    const mine: RunningEntry = { ...entry, worker: this.beat.id };
    this.jobs.set(bullId, mine);
    // A redelivery keeps the entry of the worker that started it: if that worker is frozen
    // rather than dead, it is the one a reconciler must watch (and its entry goes only when
    // the job has been reconciled or has ended).
    await this.redis.hsetnx(runningKey(this.keys), bullId, JSON.stringify(mine));
    return true;
  }

  async done(bullId: string): Promise<void> {
    this.jobs.delete(bullId);
    // Only our own entry: a reconciler or another delivery may have taken it over. Looked at
    // and deleted in one script (one round trip at the end of every job, and no gap between).
    await runScript(this.redis, 'castellanRunningDone', RUNNING_DONE, [runningKey(this.keys)], [bullId, this.beat.id]);
  }

  private async write(): Promise<void> {
    const now = Date.now();
    const beat: WorkerBeat = { ...this.beat, jobs: [...this.jobs.keys()], at: now };
    const replies = await this.redis
      .multi()
      .set(this.keys.workerHeartbeat(this.beat.id), JSON.stringify(beat), 'PX', this.ttlMs, 'GET')
      .zadd(workersKey(this.keys), now, this.beat.id)
      .exec();
    const previous = replies?.[0]?.[1];
    if (this.written && previous === null) await this.reassert();
    this.written = true;
  }

  /**
   * Our heartbeat was missing though we are alive: a failover lost it (async replication), or
   * Redis restarted without it. The running list may have lost our entries with it: put them
   * back, so reconcilers keep watching what we run (HSETNX: never over another's entry).
   */
  private async reassert(): Promise<void> {
    const entries = [...this.jobs.entries()];
    if (entries.length > 0) {
      const multi = this.redis.multi();
      for (const [bullId, entry] of entries) multi.hsetnx(runningKey(this.keys), bullId, JSON.stringify(entry));
      await multi.exec();
    }
    this.logger?.info({ worker: this.beat.id, running: entries.length }, 'worker heartbeat was missing on Redis (failover or restart): re-asserted it and the running list');
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

export interface RegistryTiming {
  /** The workers' heartbeat TTL (jobs.worker.heartbeat_ttl). */
  readonly ttlMs: number;
  /** How long a crashed worker's connection must be missing (jobs.worker.gone_confirm); 0: heartbeat only. */
  readonly confirmMs: number;
}

export function registryTiming(worker: { readonly heartbeatTtlMs: number; readonly goneConfirmMs: number }): RegistryTiming {
  return { ttlMs: worker.heartbeatTtlMs, confirmMs: worker.goneConfirmMs };
}

/** What one MULTI saw on one Redis. */
interface Snapshot {
  /** run_id/master_replid of the primary; undefined when this Redis is not a primary. */
  readonly primary: string | undefined;
  /** Redis's clock (ms): all durations are measured on it. */
  readonly at: number;
  /** When this primary was first seen as primary (Redis clock), from `primaryKey`. */
  readonly primarySince: number;
  readonly beats: ReadonlyArray<string | null>;
  /** Worker ids with a named connection, or undefined when CLIENT LIST is not allowed. */
  readonly names: ReadonlySet<string> | undefined;
}

interface Observation {
  /** When this worker was last looked at (Redis clock): older than a gap, the rest is void. */
  lastAt: number;
  /** The heartbeat's own `at` when last read (it changes on every write). */
  beatAt?: number | undefined;
  /** When the heartbeat was last seen to change. */
  refreshedAt?: number | undefined;
  beatMissingSince?: number | undefined;
  connMissingSince?: number | undefined;
}

function infoField(info: string, field: string): string | undefined {
  return new RegExp(`^${field}:(.*)$`, 'm').exec(info)?.[1]?.trim();
}

/** Reads the worker registry and judges liveness (see the top of this file for the rules). */
export class WorkerRegistry {
  private readonly seen = new Map<string, Observation>();
  /** The primary the observations were made on. */
  private observing: string | undefined;
  private clientList = true;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly timing: RegistryTiming,
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

  /** Everything a judgement needs, read in one MULTI so that it all comes from one Redis. */
  private async snapshot(workerIds: readonly string[]): Promise<Snapshot> {
    const multi = this.redis.multi().info('server').info('replication').time().get(primaryKey(this.keys)).mget(...workerIds.map((id) => this.keys.workerHeartbeat(id)));
    if (this.clientList) multi.client('LIST');
    let replies: Array<[Error | null, unknown]> | null;
    try {
      replies = await multi.exec();
    } catch (err) {
      // An ACL without CLIENT LIST aborts the whole MULTI: go on with the heartbeat alone.
      if (this.clientList && /NOPERM|EXECABORT/i.test(String(err))) {
        this.clientList = false;
        return this.snapshot(workerIds);
      }
      throw err;
    }
    if (!replies) throw new Error('Redis discarded the liveness transaction');
    const value = (i: number): unknown => {
      const [err, v] = replies[i] ?? [new Error('no reply'), undefined];
      if (err) throw err;
      return v;
    };
    const server = String(value(0));
    const replication = String(value(1));
    const [seconds, micros] = value(2) as [string, string];
    const at = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const role = infoField(replication, 'role');
    const primary = role === 'master' ? `${infoField(server, 'run_id') ?? '?'}/${infoField(replication, 'master_replid') ?? '?'}` : undefined;
    let primarySince = at;
    const stored = value(3) as string | null;
    if (primary !== undefined) {
      const [storedId, storedSince] = (stored ?? '').split(' ');
      if (storedId === primary && Number.isFinite(Number(storedSince))) primarySince = Number(storedSince);
      // A new primary (promoted, restarted) or the first look: say since when it is one.
      else await this.redis.set(primaryKey(this.keys), `${primary} ${at}`).catch(() => undefined);
    }
    let names: Set<string> | undefined;
    if (this.clientList) {
      names = new Set();
      for (const line of String(value(5)).split('\n')) {
        const m = / name=(\S+)/.exec(line);
        if (m?.[1]?.startsWith(CONNECTION_PREFIX)) names.add(m[1].slice(CONNECTION_PREFIX.length));
      }
    }
    return { primary, at, primarySince, beats: value(4) as Array<string | null>, names };
  }

  /** Each worker's liveness, from one snapshot added to what earlier snapshots on this primary saw. */
  async liveness(workerIds: readonly string[]): Promise<Map<string, Liveness>> {
    const out = new Map<string, Liveness>();
    if (workerIds.length === 0) return out;
    const snap = await this.snapshot(workerIds);
    const { ttlMs, confirmMs } = this.timing;
    // Observations count only if made continuously on this same primary: after a failover or
    // a restart start again, and forget a worker not looked at for a while (our own connection
    // was down, or nothing of it was running).
    if (snap.primary === undefined || this.observing !== snap.primary) this.seen.clear();
    const maxGap = Math.max(3000, ttlMs / 2);
    for (const [id, o] of this.seen) if (snap.at - o.lastAt > maxGap) this.seen.delete(id);
    this.observing = snap.primary;
    if (snap.primary === undefined) {
      // Talking to a replica (a demoted primary): nothing here says anything about anyone.
      for (const id of workerIds) out.set(id, 'unsure');
      return out;
    }
    // Every live worker has had a full TTL to reconnect to this primary and write its heartbeat.
    const settled = snap.at - snap.primarySince >= ttlMs;
    workerIds.forEach((id, i) => {
      const o = this.seen.get(id) ?? { lastAt: snap.at };
      o.lastAt = snap.at;
      this.seen.set(id, o);
      const raw = snap.beats[i];
      if (raw) {
        o.beatMissingSince = undefined;
        const beatAt = (JSON.parse(raw) as WorkerBeat).at;
        if (o.beatAt !== undefined && beatAt !== o.beatAt) o.refreshedAt = snap.at;
        o.beatAt = beatAt;
      } else {
        o.beatMissingSince ??= snap.at;
      }
      const connected = snap.names === undefined || snap.names.has(id);
      if (connected) o.connMissingSince = undefined;
      else o.connMissingSince ??= snap.at;

      if (o.beatMissingSince !== undefined && snap.at - o.beatMissingSince >= ttlMs) {
        out.set(id, 'gone');
      } else if (
        confirmMs > 0 &&
        settled &&
        o.connMissingSince !== undefined &&
        snap.at - o.connMissingSince >= confirmMs &&
        (o.refreshedAt === undefined || o.refreshedAt < o.connMissingSince)
      ) {
        // Its connection is gone from a settled primary and it has not written since: a crash.
        out.set(id, 'gone');
      } else if (raw && (connected || (o.refreshedAt !== undefined && snap.at - o.refreshedAt < ttlMs))) {
        out.set(id, 'alive');
      } else {
        out.set(id, 'unsure');
      }
    });
    return out;
  }

  /**
   * One worker, decided: looks again until the evidence says alive or gone (at most a few
   * TTLs, then alive — the reconcile loop keeps watching it). False when Redis cannot say.
   */
  async isGone(workerId: string): Promise<boolean> {
    const deadline = Date.now() + 3 * this.timing.ttlMs + this.timing.confirmMs + 5000;
    for (;;) {
      const state = await this.liveness([workerId])
        .then((m) => m.get(workerId) ?? 'unsure')
        .catch((): Liveness => 'unsure');
      if (state !== 'unsure') return state === 'gone';
      if (Date.now() >= deadline) return false;
      await sleep(250);
    }
  }
}
