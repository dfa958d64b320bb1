// When is a worker gone? Against a real redis-server and heartbeat processes that are really
// SIGKILLed, SIGSTOPped and cut off by a Redis restart (a new primary, as after a Sentinel
// failover): a crash is seen within the confirm window once the primary is settled; a freeze
// once its heartbeat has been missing a full TTL; and a live worker whose connection and
// heartbeat key were lost with the old primary is never judged gone — it writes its heartbeat
// and running entry again. (Built from dist/: run `npx tsc -p tsconfig.build.json` first.)
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { primaryKey, runningKey, WorkerRegistry, type Liveness } from '../../queues/heartbeat.js';
import { keys, type Keys } from '../../queues/keys.js';
import { sleep } from '../../queues/sleep.js';
import { REPO } from '../support/castellan.js';
import { useRedis } from '../support/redis.js';

const redisServer = useRedis();
const children: ChildProcess[] = [];
const clients: Redis[] = [];

afterAll(() => {
  for (const child of children) {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  }
  for (const c of clients) c.disconnect();
});

/** A connection that fails fast while Redis is down (the observer keeps polling through it). */
function observerConnection(): Redis {
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 100, commandTimeout: 2000 });
  redis.on('error', () => undefined);
  clients.push(redis);
  return redis;
}

interface HeartbeatChild {
  readonly child: ChildProcess;
  stderr(): string;
}

function startHeartbeat(prefix: string, id: string, ttlMs: number): Promise<HeartbeatChild> {
  const script = path.join(REPO, 'dist', 'test', 'support', 'heartbeat-process.js');
  const child = spawn(process.execPath, [script, redisServer.url, prefix, id, String(ttlMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`heartbeat process did not start: ${err}`)), 60_000);
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(timer);
        resolve({ child, stderr: () => err });
      }
    });
    child.once('exit', (code) => reject(new Error(`heartbeat process exited ${code}: ${err}`)));
  });
}

async function verdict(registry: WorkerRegistry, id: string): Promise<Liveness | 'no answer'> {
  return registry
    .liveness([id])
    .then((m) => m.get(id) ?? 'unsure')
    .catch(() => 'no answer' as const);
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Until the current primary has been one for a full TTL (the registry records since when). */
async function settled(redis: Redis, registry: WorkerRegistry, k: Keys, id: string, ttlMs: number): Promise<void> {
  await until('the primary to settle', ttlMs + 60_000, async () => {
    await verdict(registry, id);
    const [since, [seconds]] = await Promise.all([redis.get(primaryKey(k)), redis.time()]);
    return since !== null && Number(seconds) * 1000 - Number(since.split(' ')[1]) >= ttlMs + 200;
  });
}

describe('worker liveness', () => {
  it('a SIGKILLed worker is gone within the confirm window on a settled primary, before its heartbeat runs out', async () => {
    const k = keys('crash');
    const ttlMs = 15_000;
    const redis = observerConnection();
    const registry = new WorkerRegistry(redis, k, { ttlMs, confirmMs: 1000 });
    const w = await startHeartbeat('crash', 'w-crash', ttlMs);
    await until('the worker to be seen alive', 30_000, async () => (await verdict(registry, 'w-crash')) === 'alive');
    await settled(redis, registry, k, 'w-crash', ttlMs);
    expect(await verdict(registry, 'w-crash')).toBe('alive');

    w.child.kill('SIGKILL');
    await until('the crash to be seen', 60_000, async () => (await verdict(registry, 'w-crash')) === 'gone');
    // Its heartbeat key is still there: the crash was seen by its connection, not the TTL.
    expect(await redis.exists(k.workerHeartbeat('w-crash'))).toBe(1);
  }, 180_000);

  it('a SIGSTOPped worker is gone only after its heartbeat has been missing for a full TTL', async () => {
    const k = keys('freeze');
    const ttlMs = 3000;
    const redis = observerConnection();
    const registry = new WorkerRegistry(redis, k, { ttlMs, confirmMs: 500 });
    const w = await startHeartbeat('freeze', 'w-freeze', ttlMs);
    await until('the worker to be seen alive', 30_000, async () => (await verdict(registry, 'w-freeze')) === 'alive');
    await settled(redis, registry, k, 'w-freeze', ttlMs);

    w.child.kill('SIGSTOP');
    let missingSince: number | undefined;
    await until('the freeze to be seen', 120_000, async () => {
      const [[seconds], present] = await Promise.all([redis.time(), redis.exists(k.workerHeartbeat('w-freeze'))]);
      const now = Number(seconds) * 1000;
      if (!present) missingSince ??= now;
      const v = await verdict(registry, 'w-freeze');
      if (v !== 'gone') return false;
      // Never while the key (and the connection) were there; only a TTL after the key went.
      expect(missingSince, 'judged gone while its heartbeat key was there').toBeDefined();
      expect(now - missingSince!).toBeGreaterThanOrEqual(ttlMs - 1000);
      return true;
    });
    w.child.kill('SIGKILL');
  }, 180_000);

  it('a live worker whose heartbeat, running entry and connection were lost with the primary is never judged gone, and re-asserts them', async () => {
    const k = keys('failover');
    const ttlMs = 3000;
    const redis = observerConnection();
    // A short confirm window on purpose: the settle rule, not a long window, keeps it alive.
    const registry = new WorkerRegistry(redis, k, { ttlMs, confirmMs: 300 });
    const w = await startHeartbeat('failover', 'w-live', ttlMs);
    await until('the worker to be seen alive', 30_000, async () => (await verdict(registry, 'w-live')) === 'alive');
    await settled(redis, registry, k, 'w-live', ttlMs);

    // A new primary (restarted Redis: a new run_id) that lacks the worker's last writes, as
    // after a failover with async replication; its connections come back when they come back.
    await redisServer.server.restart();
    const admin = observerConnection();
    await until('Redis to answer again', 60_000, async () => (await admin.ping().catch(() => '')) === 'PONG');
    await admin.multi().del(k.workerHeartbeat('w-live')).hdel(runningKey(k), 'job-of-w-live').exec();

    const verdicts: Array<Liveness | 'no answer'> = [];
    const start = Date.now();
    await until('the worker to re-assert itself', 120_000, async () => {
      verdicts.push(await verdict(registry, 'w-live'));
      const [beat, entry] = await Promise.all([admin.get(k.workerHeartbeat('w-live')), admin.hget(runningKey(k), 'job-of-w-live')]);
      // Watch for three TTLs at least, so a wrong "gone" would have had its chance.
      return beat !== null && entry !== null && Date.now() - start > 3 * ttlMs && verdicts.at(-1) === 'alive';
    });
    expect(verdicts).not.toContain('gone');
    expect(JSON.parse((await admin.hget(runningKey(k), 'job-of-w-live'))!)).toMatchObject({ worker: 'w-live', job: 'job-of-w-live' });
    expect(w.stderr()).toContain('re-asserted');

    // And a crash on the new primary is still seen (once it has settled).
    await settled(admin, registry, k, 'w-live', ttlMs);
    w.child.kill('SIGKILL');
    await until('the crash to be seen', 60_000, async () => (await verdict(registry, 'w-live')) === 'gone');
  }, 240_000);
});
