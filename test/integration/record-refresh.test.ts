// A store that decoded a job's doc once reads only the record's live fields again (JobStore.get,
// JobStore.ifFinal; the doc never changes): on a real Redis, what it gets must equal a whole read
// at every stage of the job (a vote, running, a cancel, ended with a result, a preview), a record
// written anew under the same key must be read whole, and a record that is gone reads as gone.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../queues/keys.js';
import { JobStore, newJobId, recordFields, recordFromFields, type JobDoc, type JobRecord } from '../../queues/records.js';
import { useRedis } from '../support/redis.js';

const redisServer = useRedis();
let redis: Redis;
let store: JobStore;
const k = keys('refresh');

function doc(): JobDoc {
  const hosts = ['node01', 'node02', 'node03'];
  return {
    id: newJobId(),
    tool: 'exec',
    risk: 'change',
    input: { targets: 'node[01-03]', command: 'uptime' },
    plan: { tool: 'exec', hosts, batches: [], failureBudget: 0 },
    planHash: 'h',
    requester: { subject: 'alice', displayName: 'Alice', groups: [], roles: ['operator'], origin: 'cli' },
    replyTo: { kind: 'cli' },
    createdAt: new Date().toISOString(),
    approvalsRequired: 1,
    timeoutMs: 60_000,
  };
}

beforeAll(() => {
  redis = new Redis(redisServer.url);
  store = new JobStore(redis, k);
});

afterAll(async () => {
  await redis.quit();
});

/** What a whole read of the record decodes to (HGETALL, nothing known). */
async function whole(id: string): Promise<JobRecord> {
  return recordFromFields(await redis.hgetall(k.job(id)));
}

async function calls(command: string): Promise<number> {
  const info = await redis.info('commandstats');
  const match = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info);
  return Number(match?.[1] ?? 0);
}

describe('reading a known record again', () => {
  it('gives what a whole read gives at every stage, reading the doc once', async () => {
    const d = doc();
    await store.create(d, 'awaiting_approval');
    expect(await store.get(d.id)).toEqual(await whole(d.id));
    const wholeReads = await calls('hgetall');
    const stages: Array<() => Promise<unknown>> = [
      () => store.vote(d.id, { subject: 'bob', displayName: 'Bob', origin: 'slack', roles: ['approver'], decision: 'approve', planHash: 'h', at: new Date().toISOString() }, 1, 'denied'),
      () => store.transition(d.id, 'running', { startedAt: new Date().toISOString(), worker: 'w1', attempt: 1 }),
      () => store.update(d.id, { cancel: JSON.stringify({ by: 'carol', at: new Date().toISOString(), reason: 'stop' }) }),
      () =>
        store.transition(d.id, 'cancelled', {
          finishedAt: new Date().toISOString(),
          reason: 'cancelled by Carol: stop',
          result: JSON.stringify({ hosts: [{ host: 'node01', status: 'cancelled', steps: [] }], steps: [], folded: [] }),
        }),
      () => store.setPreview(d.id, { jobId: newJobId(), state: 'succeeded' }),
    ];
    for (const stage of stages) {
      await stage();
      const expected = await whole(d.id);
      expect(await store.get(d.id)).toEqual(expected);
      const final = await store.ifFinal(d.id);
      if (expected.state === 'cancelled') expect(final).toEqual({ record: expected, announced: false });
      else expect(final).toEqual({ state: expected.state });
    }
    // Our own whole() reads aside (one per stage), the store never read the whole hash again.
    expect((await calls('hgetall')) - wholeReads).toBe(stages.length);
  });

  it('reads whole a record written anew under the same key, and answers nothing once it is gone', async () => {
    const d = doc();
    await store.create(d, 'queued');
    expect((await store.get(d.id))?.input).toEqual(d.input);
    await store.forget([d.id]);
    expect(await store.get(d.id)).toBeUndefined();
    expect(await store.ifFinal(d.id)).toBeUndefined();
    const other = { ...d, input: { targets: 'node01', command: 'reboot now, said the fixture' } };
    await store.create(other, 'succeeded');
    expect((await store.get(d.id))?.input).toEqual(other.input);
    expect(await store.ifFinal(d.id)).toEqual({ record: await whole(d.id), announced: false });
  });

  it('gives a submitter the record it wrote, and its worker the same without the doc again', async () => {
    const d = doc();
    const fields = recordFields(d, 'queued', { queuedAt: d.createdAt });
    await redis.hset(k.job(d.id), fields);
    const written = store.fromFields(fields);
    expect(written).toEqual(await whole(d.id));
    const before = await calls('hgetall');
    expect(await store.get(d.id)).toEqual(written);
    expect(await calls('hgetall')).toBe(before);
  });
});
