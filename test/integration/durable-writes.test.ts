// queues/durable.ts against a real primary and replica (redis-server on loopback): a write
// counts as durable only when the server the durable connection talks to holds it AND a
// replica acknowledged it; a replica that stops acknowledging makes rounds fall short until it
// is back; a write missing on the server is written again by the caller's repair.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { AuditLog } from '../../queues/audit.js';
import { confirmClaim, confirmStep } from '../../queues/claims.js';
import { durableConnection } from '../../queues/connections.js';
import { Durability } from '../../queues/durable.js';
import { endJob } from '../../queues/endings.js';
import { JobEvents } from '../../queues/events.js';
import { HostLocks } from '../../queues/host-locks.js';
import { keys } from '../../queues/keys.js';
import { ExecutionLedger, ledgerField } from '../../queues/ledger.js';
import { JobStore, newJobId, type JobDoc } from '../../queues/records.js';
import { Redactor } from '../../queues/redact.js';
import { deliveryGuard } from '../../queues/run-guard.js';
import { shardBoardKey, shardRunField } from '../../queues/shards.js';
import { startRedis, type PrivateRedis } from '../../src/lab/redis.js';
import { eventually } from './mcp-harness.js';

let dir: string;
let primary: PrivateRedis;
let replica: PrivateRedis;
let base: Redis;
const k = keys('durabletest');
const opened: Redis[] = [];

function durability(withinMs: number): Durability {
  return new Durability(
    () => {
      const c = durableConnection(base, 500);
      opened.push(c);
      return c;
    },
    k,
    { replicas: 1, timeoutMs: 500, withinMs },
  );
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-durable-'));
  primary = await startRedis({ dir: path.join(dir, 'primary') });
  replica = await startRedis({ dir: path.join(dir, 'replica') });
  const r = new Redis(replica.port);
  await r.replicaof('127.0.0.1', primary.port);
  r.disconnect();
  base = new Redis(primary.port, { maxRetriesPerRequest: null });
  await eventually(async () => (/master_link_status:up/.test(await replicaInfo()) ? true : undefined), 30_000, 'the replica to sync');
}, 60_000);

afterAll(async () => {
  for (const c of opened) c.disconnect();
  base?.disconnect();
  await replica?.stop();
  await primary?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function replicaInfo(): Promise<string> {
  const r = new Redis(replica.port, { lazyConnect: true, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await r.info('replication');
  } catch {
    return '';
  } finally {
    r.disconnect();
  }
}

describe('durable writes (WAIT on the connection that checked)', () => {
  it('is durable when the primary holds the write and the replica acknowledged it; differs names what the primary holds', async () => {
    const d = durability(5_000);
    await base.hset(k.job('j1'), 'state', 'running', 'run', 'aaa');
    expect(await d.round([{ key: k.job('j1'), field: 'state', is: ['running'] }, { key: k.job('j1'), field: 'run', is: ['aaa'] }])).toEqual({ kind: 'durable' });
    // Another delivery's token: not ours, and nothing is written for it.
    expect(await d.round([{ key: k.job('j1'), field: 'run', is: ['bbb'] }])).toEqual({ kind: 'differs', index: 0, actual: 'aaa' });
    expect(await d.assert([{ key: k.job('j1'), field: 'run', is: ['bbb'] }], async () => false)).toEqual({ ok: false, kind: 'differs', index: 0, actual: 'aaa' });
    expect(await d.round([{ exists: k.job('nope') }])).toEqual({ kind: 'differs', index: 0, actual: 'missing' });
    expect(await d.round([{ zset: k.jobIndex(), member: 'j1', present: false }])).toEqual({ kind: 'durable' });
    d.close();
  });

  it('a write missing on the primary is written again by the repair, then confirmed', async () => {
    const d = durability(5_000);
    let repairs = 0;
    const assured = await d.assert([{ hash: k.ledger('j2'), has: '0|s1|node01' }], async (redis, differs) => {
      expect(differs).toMatchObject({ index: 0, actual: 'missing' });
      repairs += 1;
      await redis.hsetnx(k.ledger('j2'), '0|s1|node01', '{}');
      return true;
    });
    expect(assured).toEqual({ ok: true, rounds: 2 });
    expect(repairs).toBe(1);
    // It is on the replica now.
    const r = new Redis(replica.port);
    expect(await r.hexists(k.ledger('j2'), '0|s1|node01')).toBe(1);
    r.disconnect();
    d.close();
  });

  it('while no replica acknowledges, rounds fall short (unconfirmed, never "durable"); once it is back the same write is confirmed', async () => {
    const d = durability(60_000);
    await base.hset(k.job('j3'), 'state', 'succeeded', 'ending', 'e1');
    const conditions = [{ key: k.job('j3'), field: 'ending', is: ['e1'] }];
    expect(await d.round(conditions)).toEqual({ kind: 'durable' });
    // The replica leaves (as in a failover that promotes it): the old primary has none left.
    const r = new Redis(replica.port);
    await r.replicaof('NO', 'ONE');
    await eventually(async () => (/connected_slaves:0/.test(await base.info('replication')) ? true : undefined), 10_000, 'the primary to lose its replica');
    const short = await d.round(conditions);
    expect(short.kind).toBe('unconfirmed');
    expect(short.kind === 'unconfirmed' && short.problem).toMatch(/no Redis replica confirmed it within 0\.5 s \(0 of 1 needed/);
    // A bounded assert gives up saying why; a longer one rides out the replica's return.
    const bounded = await durability(1_500).assert(conditions);
    expect(bounded).toMatchObject({ ok: false, kind: 'unconfirmed' });
    const riding = d.assert(conditions);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await r.replicaof('127.0.0.1', String(primary.port));
    r.disconnect();
    const assured = await riding;
    expect(assured.ok).toBe(true);
    expect(assured.ok && assured.rounds).toBeGreaterThan(1);
    d.close();
  }, 90_000);

  it("a claim whose host lock another job took on the primary is not 'superseded': the job stays this delivery's to run or end", async () => {
    const d = durability(2_000);
    const ctx = { keys: k, durable: d, settings: { hostLockTtlMs: 60_000 } as never, logger: pino({ level: 'silent' }) };
    await base.hset(k.job('j4'), 'state', 'running', 'run', 'r4');
    await new ExecutionLedger(base, k).claim('j4', 0, 's1', ['node01'], 'w1');
    // Our lock was lost with the old primary; another job took the host since.
    await base.set(k.hostLock('node01'), 'jother', 'PX', 60_000);
    const delivery = { jobId: 'j4', run: 'r4', attempt: 0, worker: 'w1', startedAt: new Date().toISOString(), locked: () => ['node01'] };
    const verdict = await confirmClaim(ctx, delivery, 's1', ['node01']);
    expect(verdict).toMatchObject({ superseded: false, lockTaken: true });
    expect(verdict?.problem).toMatch(/another job \(jother\) holds the lock on node01/);
    // Once the host is free again, the same claim is confirmed (the lock written again: ours).
    await base.del(k.hostLock('node01'));
    expect(await confirmClaim(ctx, delivery, 's1', ['node01'])).toBeUndefined();
    expect(await base.get(k.hostLock('node01'))).toBe('j4:r4'); // this delivery's (queues/host-locks.ts lockOwner)
    // Another delivery's token: that one is superseded, as before.
    await base.hset(k.job('j4'), 'run', 'r5');
    expect(await confirmClaim(ctx, delivery, 's1', ['node01'])).toMatchObject({ superseded: true });
    d.close();
  });

  it("a step's ledger finish and execution audit record lost on the primary are written again and confirmed on the replica", async () => {
    const d = durability(5_000);
    const logger = pino({ level: 'silent' });
    const audit = new AuditLog(base, k, new Redactor([]), { markWrites: true });
    const ctx = { keys: k, durable: d, settings: {} as never, logger, audit };
    const ledger = new ExecutionLedger(base, k);
    await ledger.claim('j5', 0, 's1', ['node01', 'node02'], 'w1');
    const finished = await ledger.finishMany('j5', 0, 's1', [{ host: 'node01', status: 'ok', exitCode: 0, durationMs: 5 }, { host: 'node02', status: 'ok', exitCode: 0, durationMs: 6 }], 'w1');
    const written = await audit.appendMany([{ kind: 'execution', jobId: 'j5', subject: 'oscar', origin: 'worker', host: 'node01', step: 's1', status: 'ok' }, { kind: 'execution', jobId: 'j5', subject: 'oscar', origin: 'worker', host: 'node02', step: 's1', status: 'ok' }]);
    // Nothing lost: one round, nothing written again.
    expect(await confirmStep(ctx, 'j5', 's1', finished, written)).toBeUndefined();
    const lost = written.ids[1] ?? '';
    // As a failover leaves it: the finish of node02 back to its claim, its audit record gone.
    await base.hset(k.ledger('j5'), ledgerField(0, 's1', 'node02'), JSON.stringify({ attempt: 0, step: 's1', host: 'node02', worker: 'w1', startedAt: 'x' }));
    await base.xdel(k.audit(), lost);
    for (const key of await base.keys(`${k.prefix}:audit:*`)) await base.zrem(key, lost);
    await base.del(written.entries[1]?.marker ?? '');
    expect(await confirmStep(ctx, 'j5', 's1', finished, written)).toBeUndefined();
    const r = new Redis(replica.port);
    await eventually(async () => ((await r.hget(k.ledger('j5'), ledgerField(0, 's1', 'node02')))?.includes('"finishedAt"') ? true : undefined), 5_000, 'the finish on the replica');
    const onReplica = await new AuditLog(r, k, new Redactor([])).read({ jobId: 'j5' });
    expect(onReplica.map((e) => `${e.kind} ${e.host ?? ''}`).sort()).toEqual(['execution node01', 'execution node02']);
    // The same append again (as the worker connection resends a script whose reply a dropped
    // connection lost, after the old primary had run it): the ids written the first time,
    // nothing added.
    const before = await base.xlen(k.audit());
    const again = await audit.rewrite(base, written.entries);
    expect(again[0]).toBe(written.ids[0]);
    expect(await base.xlen(k.audit())).toBe(before);
    r.disconnect();
    d.close();
  });

  it("a replaced delivery's lost finish is not written again, and its checkpoint gives up at once", async () => {
    // A refusal retried like a dropped connection would hold the delivery (it awaits its
    // checkpoints) for all of confirm_within, then say it was unconfirmed.
    const d = durability(5_000);
    const ctx = { keys: k, durable: d, settings: {} as never, logger: pino({ level: 'silent' }), audit: new AuditLog(base, k, new Redactor([])) };
    const ledger = new ExecutionLedger(base, k);
    await base.hset(k.job('j7'), 'state', 'running', 'run', 'old1');
    const guard = deliveryGuard(k, 'j7', 'old1');
    await ledger.claim('j7', 0, 's1', ['node01'], 'w1', undefined, guard);
    const finished = await ledger.finishMany('j7', 0, 's1', [{ host: 'node01', status: 'ok', exitCode: 0, durationMs: 5 }], 'w1', guard);
    // Lost in a failover; meanwhile another delivery took the job.
    const claimOnly = JSON.stringify({ attempt: 0, step: 's1', host: 'node01', worker: 'w1', startedAt: 'x' });
    await base.hset(k.ledger('j7'), ledgerField(0, 's1', 'node01'), claimOnly);
    await base.hset(k.job('j7'), 'run', 'new2');
    expect(await confirmStep(ctx, 'j7', 's1', finished, { ids: [], entries: [] })).toMatch(/^the current primary holds/);
    expect(await base.hget(k.ledger('j7'), ledgerField(0, 's1', 'node01'))).toBe(claimOnly);
    d.close();
  });

  it("a shard's claim: its run token on the job's shard board, written again when lost, another delivery's token supersedes it", async () => {
    const d = durability(3_000);
    const ctx = { keys: k, durable: d, settings: { hostLockTtlMs: 60_000 } as never, logger: pino({ level: 'silent' }) };
    const board = shardBoardKey(k, 'j6');
    await base.hset(k.job('j6'), 'state', 'running');
    await new ExecutionLedger(base, k).claim('j6', 0, 's1', ['node03'], 'w1');
    const delivery = { jobId: 'j6', run: 'shardrun1', attempt: 0, worker: 'w1', startedAt: new Date().toISOString(), locked: () => [], shard: { site: 'rack-b' } };
    // The token was lost with the old primary: taken again (nobody else has), then confirmed.
    expect(await confirmClaim(ctx, delivery, 's1', ['node03'])).toBeUndefined();
    const r = new Redis(replica.port);
    await eventually(async () => ((await r.hget(board, shardRunField('rack-b'))) === 'shardrun1' ? true : undefined), 5_000, 'the token on the replica');
    r.disconnect();
    // The record's own `run` is not a shard's: the job is shared by its shards.
    expect(await base.hget(k.job('j6'), 'run')).toBeNull();
    // Another delivery of the shard holds it: superseded, nothing written.
    await base.hset(board, shardRunField('rack-b'), 'shardrun2');
    expect(await confirmClaim(ctx, delivery, 's1', ['node03'])).toMatchObject({ superseded: true, problem: expect.stringMatching(/another delivery of the shard/) as unknown });
    expect(await base.hget(board, shardRunField('rack-b'))).toBe('shardrun2');
    d.close();
  });

  it("a worker's ending lost on the primary while its audit outcome survived is written again there with one outcome record, not two", async () => {
    // As a failover can leave it: the job's state write went to the old primary and was lost,
    // the outcome record (written after it) went to the new one. The ending is written again
    // and announced again; its outcome record is found, not doubled.
    const d = durability(30_000);
    const redactor = new Redactor([]);
    const store = new JobStore(base, k);
    const audit = new AuditLog(base, k, redactor, { markWrites: true });
    const retention = { completedAgeS: 3600, completedCount: 100, failedAgeS: 3600, failedCount: 100 };
    const ctx = { redis: base, keys: k, store, events: new JobEvents(base, k, redactor), audit, locks: new HostLocks(base, k), settings: { retention } as never, logger: pino({ level: 'silent' }), durable: d };
    const doc: JobDoc = {
      id: newJobId(),
      tool: 'exec',
      risk: 'read',
      input: {},
      plan: { tool: 'exec', hosts: ['node01'], batches: [], failureBudget: 0 },
      planHash: 'h',
      requester: { subject: 'oscar', displayName: 'Oscar Operator', groups: [], roles: ['operator'], origin: 'cli' },
      replyTo: { kind: 'cli' },
      createdAt: new Date().toISOString(),
      approvalsRequired: 0,
      timeoutMs: 60_000,
    };
    await store.create(doc, 'running', { run: 'run1' });
    // No replica acknowledges for now: the ending's rounds fall short and it is re-checked.
    const r = new Redis(replica.port);
    await r.replicaof('NO', 'ONE');
    await eventually(async () => (/connected_slaves:0/.test(await base.info('replication')) ? true : undefined), 10_000, 'the primary to lose its replica');
    const ending = endJob(ctx, doc, 'succeeded', { reason: 'ran on 1 host', run: 'run1' });
    const outcomes = async (): Promise<number> => (await audit.read({ jobId: doc.id })).filter((e) => e.kind === 'outcome').length;
    await eventually(async () => ((await outcomes()) === 1 ? true : undefined), 10_000, 'the outcome record');
    await base.hset(k.job(doc.id), 'state', 'running');
    await base.hdel(k.job(doc.id), 'ending');
    await r.replicaof('127.0.0.1', String(primary.port));
    r.disconnect();
    expect(await ending).toEqual({ ended: true, state: 'succeeded' });
    expect(await base.hget(k.job(doc.id), 'state')).toBe('succeeded');
    expect(await outcomes()).toBe(1);
    const finals = (await ctx.events.read(doc.id)).filter((e) => e.event.type === 'state' && e.event.state === 'succeeded');
    expect(finals.length, 'announced again with the ending written again').toBe(2);
    d.close();
  }, 60_000);
});
