// A worker's claim against a real primary and replica (redis.confirm_replicas 1, no Sentinel):
// what a failover can leave behind, staged on the primary while no replica confirms anything,
// and what the worker does about it. The case here left a confirmed job `running` for nobody
// in the Sentinel failover test: the job's host lock was lost with the old primary and another
// job took the host on the new one; the claim check called that "superseded" (as if another
// delivery ran the job), so the delivery neither ran nor ended it, and BullMQ completed it.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { startRedis, type PrivateRedis } from '../../src/lab/redis.js';
import { useCastellan } from '../support/castellan.js';
import { eventually } from './mcp-harness.js';
import { readFile } from 'node:fs/promises';

const c = useCastellan({
  nodes: 1,
  config: {
    redis: { confirm_replicas: 1, confirm_timeout: '500ms', confirm_within: '60s' },
    // BullMQ renews job locks every 2 s and looks for stalled jobs every 2 s: a lost job lock
    // becomes a redelivery within the test.
    jobs: { worker: { lock_duration: '4s', stalled_interval: '2s' } },
  },
});

let replica: PrivateRedis;
let replicaClient: Redis;

function person(subject: string, groups: string[]): Requester {
  return { subject, displayName: subject, groups, roles: rolesForGroups(groups, { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] }), origin: 'cli' };
}
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

async function inSync(): Promise<void> {
  await eventually(async () => (/master_link_status:up/.test(await replicaClient.info('replication')) ? true : undefined), 30_000, 'the replica to sync');
}

beforeAll(async () => {
  replica = await startRedis({ dir: path.join(c.dir, 'replica') });
  replicaClient = new Redis(replica.port);
  await replicaClient.replicaof('127.0.0.1', String(c.redis.port));
  await inSync();
}, 60_000);

afterAll(async () => {
  replicaClient?.disconnect();
  await replica?.stop();
});

describe('a claim whose host lock another job took meanwhile', () => {
  it('waits for the host again, then runs once and ends succeeded (never left running for nobody)', async () => {
    const ctx = c.runtime.ctx;
    const tag = `castellan-claim-${randomBytes(4).toString('hex')}`;
    const file = `/tmp/${tag}.log`;
    const lock = ctx.keys.hostLock('node01');
    // Hold the host so the job waits for it, submitted and approved while the replica confirms.
    await ctx.redis.set(lock, 'jblocker0000', 'PX', 60_000);
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node01', command: `echo ran >> ${file} # ${tag}` }, requester: oscar, replyTo: { kind: 'cli' } });
    await c.runtime.service.approve(job.id, april);
    const holders: string[] = [];
    const waiting = c.runtime.service.wait(job.id, oscar, 90_000, (e) => {
      if (e.event.type === 'lock_wait') holders.push(e.event.holder);
    });
    await eventually(async () => (holders.includes('jblocker0000') ? true : undefined), 20_000, 'the job to wait for its host');
    // The replica goes (as in a failover): no claim can be confirmed now.
    await replicaClient.replicaof('NO', 'ONE');
    await eventually(async () => (/connected_slaves:0/.test(await ctx.redis.info('replication')) ? true : undefined), 10_000, 'the primary to lose its replica');
    await ctx.redis.del(lock);
    await eventually(async () => ((await ctx.store.get(job.id))?.state === 'running' ? true : undefined), 20_000, 'the job to take its host and claim it');
    // What the new primary holds after the switch: another job has the host.
    await ctx.redis.set(lock, 'jother00000', 'PX', 60_000);
    await replicaClient.replicaof('127.0.0.1', String(c.redis.port));
    await inSync();
    await eventually(async () => (holders.includes('jother00000') ? true : undefined), 30_000, 'the job to wait for its host again');
    expect(await readFile(file, 'utf8').catch(() => '')).toBe('');
    await ctx.redis.del(lock);
    const final = await waiting;
    expect(final.state, final.reason ?? '').toBe('succeeded');
    expect(await readFile(file, 'utf8')).toBe('ran\n');
    expect(c.logs.join('').includes('host lock lost in a Redis failover before any step ran; waiting for it again')).toBe(true);
  }, 120_000);

  it('a redelivery to the worker still running the job, found queued, is left to that run: it runs once', async () => {
    const ctx = c.runtime.ctx;
    const tag = `castellan-again-${randomBytes(4).toString('hex')}`;
    const file = `/tmp/${tag}.log`;
    const lock = ctx.keys.hostLock('node01');
    await ctx.redis.set(lock, 'jblocker0001', 'PX', 60_000);
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node01', command: `echo ran >> ${file} # ${tag}` }, requester: oscar, replyTo: { kind: 'cli' } });
    await c.runtime.service.approve(job.id, april);
    let waited = false;
    const waiting = c.runtime.service.wait(job.id, oscar, 90_000, (e) => {
      if (e.event.type === 'lock_wait') waited = true;
    });
    await eventually(async () => (waited ? true : undefined), 20_000, 'the job to wait for its host');
    // Its BullMQ lock lost (as in a failover): BullMQ hands the job out again, to this worker,
    // while the first delivery still waits for the host with the record `queued`.
    await ctx.redis.del(`${ctx.queue.toKey(job.id)}:lock`);
    const said = (text: string): boolean => c.logs.some((l) => l.includes(job.id) && l.includes(text));
    await eventually(async () => (said('job redelivered to the worker that still runs it (its claim was lost in a Redis failover): leaving it to that run') ? true : undefined), 30_000, 'the redelivery to be left to the first run');
    expect(said('lost the BullMQ job lock; the run goes on')).toBe(true);
    await ctx.redis.del(lock);
    const final = await waiting;
    expect(final.state, final.reason ?? '').toBe('succeeded');
    expect(await readFile(file, 'utf8')).toBe('ran\n');
  }, 120_000);
});
