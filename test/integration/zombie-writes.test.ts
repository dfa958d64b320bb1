// A zombie delivery (issue 15): a worker that lost its job to a stalled-job re-delivery (paused,
// or cut off by a Redis failover without replicas) wakes up and goes on writing about its run.
// Against a real redis-server: once another delivery's run token is the job's, every write the
// old one makes about its run — ledger claims, ledger finishes (and a checkpoint writing one
// again), progress events, a shard's result — is refused in the same script that would have
// made it, and what the new delivery recorded stands.
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { JobEvents, ThrottledPublisher } from '../../queues/events.js';
import { keys } from '../../queues/keys.js';
import { startRun } from '../../queues/claims.js';
import { ExecutionLedger, ledgerField, writeLedger } from '../../queues/ledger.js';
import { Redactor } from '../../queues/redact.js';
import { JobStore } from '../../queues/records.js';
import { deliveryGuard, DeliverySuperseded } from '../../queues/run-guard.js';
import { ShardBoard, shardBoardKey, shardGuard, shardRunField } from '../../queues/shards.js';
import type { ShardOutcome } from '../../queues/shards.js';
import { useRedis } from '../support/redis.js';

const server = useRedis();
const k = keys('zombietest');
const clients: Redis[] = [];
const client = (): Redis => {
  const c = new Redis(server.url);
  clients.push(c);
  return c;
};
afterAll(async () => {
  for (const c of clients) c.disconnect();
});

describe('a delivery replaced by another', () => {
  it('cannot claim, finish or report progress once the job carries another run token', async () => {
    const redis = client();
    const ledger = new ExecutionLedger(redis, k);
    const store = new JobStore(redis, k);
    const jobId = 'jzombie1';
    // Delivery A runs the job (its token is the record's `run`), claims a step on two hosts.
    await store.update(jobId, { run: 'aaaa', worker: 'worker-a' });
    const a = deliveryGuard(k, jobId, 'aaaa');
    expect(await ledger.claim(jobId, 0, 'upgrade', ['node01', 'node02'], 'worker-a', undefined, a)).toEqual(['node01', 'node02']);
    const aEvents = new ThrottledPublisher(new JobEvents(client(), k, new Redactor([])), jobId);
    aEvents.guardWith(a);
    aEvents.emit({ type: 'step', step: 'upgrade', description: 'from A, before the takeover', hosts: ['node01'] });
    await aEvents.drain();

    // A is judged gone; delivery B takes the job over (as worker.ts execute does) and records node01.
    await store.update(jobId, { run: 'bbbb', worker: 'worker-b' });
    const b = deliveryGuard(k, jobId, 'bbbb');
    await ledger.finishMany(jobId, 0, 'upgrade', [{ host: 'node01', status: 'ok', exitCode: 0, durationMs: 5 }], 'worker-b', b);

    // A wakes up: its finish of node01 is refused, and B's stands.
    const late = ledger.finishMany(jobId, 0, 'upgrade', [{ host: 'node01', status: 'failed', exitCode: 1, durationMs: 9000 }], 'worker-a', a);
    await expect(late).rejects.toBeInstanceOf(DeliverySuperseded);
    const node01 = JSON.parse((await redis.hget(k.ledger(jobId), ledgerField(0, 'upgrade', 'node01'))) ?? '{}') as Record<string, unknown>;
    expect(node01).toMatchObject({ worker: 'worker-b', status: 'ok', exitCode: 0 });

    // Nor may it claim a further step, nor write a finish again (a checkpoint's repair).
    await expect(ledger.claim(jobId, 0, 'reboot', ['node02'], 'worker-a', undefined, a)).rejects.toBeInstanceOf(DeliverySuperseded);
    expect(await redis.hexists(k.ledger(jobId), ledgerField(0, 'reboot', 'node02'))).toBe(0);
    const lost = { key: k.ledger(jobId), values: { [ledgerField(0, 'upgrade', 'node02')]: JSON.stringify({ worker: 'worker-a', finishedAt: new Date().toISOString(), status: 'ok' }) }, guard: a };
    await expect(writeLedger(redis, k, lost)).rejects.toBeInstanceOf(DeliverySuperseded);
    expect(JSON.parse((await redis.hget(k.ledger(jobId), ledgerField(0, 'upgrade', 'node02'))) ?? '{}')).not.toHaveProperty('finishedAt');

    // Its progress is dropped; B's is written.
    aEvents.emit({ type: 'step', step: 'reboot', description: 'from A, after the takeover', hosts: ['node02'] });
    await aEvents.drain();
    const bEvents = new ThrottledPublisher(new JobEvents(client(), k, new Redactor([])), jobId);
    bEvents.guardWith(b);
    bEvents.emit({ type: 'step', step: 'reboot', description: 'from B', hosts: ['node02'] });
    await bEvents.drain();
    const said = (await new JobEvents(redis, k, new Redactor([])).read(jobId)).map((e) => (e.event.type === 'step' ? e.event.description : e.event.type));
    expect(said).toEqual(['from A, before the takeover', 'from B']);

    // Without a guard (tools and tests that run a plan outside a delivery) nothing changes.
    expect(await ledger.claim(jobId, 0, 'free', ['node03'], 'test')).toEqual(['node03']);
  });

  it("takes the job and claims its first step in one wait for Redis, and claims nothing when its running transition is refused", async () => {
    const redis = client();
    const ctx = { keys: k, store: new JobStore(redis, k), ledger: new ExecutionLedger(redis, k) };
    const jobId = 'jzombie3';
    await ctx.store.update(jobId, { state: 'queued' });
    const first = { step: 'ping', hosts: ['node01', 'node02'], claimedAt: '2026-01-02T03:04:05.000Z' };
    const delivery = (run: string, worker: string) => ({ jobId, run, attempt: 1, worker, startedAt: first.claimedAt, locked: () => [] });
    const a = await startRun(ctx, delivery('aaaa', 'worker-a'), { worker: 'worker-a' }, first);
    expect(a.transition).toEqual({ ok: true, from: 'queued' });
    expect(a.preclaimed).toEqual({ ...first, claimed: ['node01', 'node02'] });
    expect(await redis.hmget(k.job(jobId), 'state', 'run')).toEqual(['running', 'aaaa']);
    expect(JSON.parse((await redis.hget(k.ledger(jobId), ledgerField(1, 'ping', 'node01'))) ?? '{}')).toMatchObject({ worker: 'worker-a', startedAt: first.claimedAt });

    // A second delivery of the job (a stalled-job re-delivery): its transition is refused, and
    // the claim sent right behind it, guarded by the token it would have written, claims nothing.
    const b = await startRun(ctx, delivery('bbbb', 'worker-b'), { worker: 'worker-b' }, { ...first, step: 'other' });
    expect(b).toEqual({ transition: { ok: false, current: 'running' } });
    expect(await redis.hexists(k.ledger(jobId), ledgerField(1, 'other', 'node01'))).toBe(0);
    expect(await redis.hmget(k.job(jobId), 'state', 'run')).toEqual(['running', 'aaaa']);
    // An ended job is not taken either.
    await ctx.store.update(jobId, { state: 'cancelled' });
    expect(await startRun(ctx, delivery('cccc', 'worker-c'), { worker: 'worker-c' }, { ...first, step: 'third' })).toEqual({ transition: { ok: false, current: 'cancelled' } });
    expect(await redis.hlen(k.ledger(jobId))).toBe(2);
  });

  it("a shard's result and ledger writes are guarded by its board's run token", async () => {
    const redis = client();
    const ledger = new ExecutionLedger(redis, k);
    const board = new ShardBoard(redis, k);
    const jobId = 'jzombie2';
    expect((await board.claimRun(jobId, 'east', 'aaaa')).ours).toBe(true);
    const a = shardGuard(k, jobId, 'east', 'aaaa');
    expect(await ledger.claim(jobId, 0, 'upgrade', ['node01'], 'worker-a', undefined, a)).toEqual(['node01']);
    await board.takeRun(jobId, 'east', 'bbbb');
    expect(await redis.hget(shardBoardKey(k, jobId), shardRunField('east'))).toBe('bbbb');
    const outcome = (worker: string): ShardOutcome => ({ site: 'east', worker, hosts: [], steps: [] });
    expect(await board.saveResult(jobId, 'east', outcome('worker-b'), 'bbbb')).toBe(true);
    expect(await board.saveResult(jobId, 'east', outcome('worker-a'), 'aaaa')).toBe(false);
    expect((await board.result(jobId, 'east'))?.worker).toBe('worker-b');
    await expect(ledger.finishMany(jobId, 0, 'upgrade', [{ host: 'node01', status: 'ok', exitCode: 0, durationMs: 1 }], 'worker-a', a)).rejects.toBeInstanceOf(DeliverySuperseded);
  });
});
