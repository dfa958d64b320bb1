// Job listing from the Redis indexes, on a real Redis: every filter (state, tool, requester,
// host, origin, time) and their combinations give exactly what a full scan of the records
// gives, in the same order, with the same total; states move with transitions and votes;
// retention takes a job out of every index; jobs written before the indexes get them.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../queues/keys.js';
import { JobStore, newJobId, type JobDoc, type JobQuery, type JobRecord } from '../../queues/records.js';
import { isFinal, type JobState } from '../../queues/states.js';
import { useRedis } from '../support/redis.js';

const redisServer = useRedis();
let redis: Redis;
let store: JobStore;
const k = keys('idx');

const TOOLS = ['ping', 'uptime', 'exec'];
const PEOPLE = [
  { subject: 'alice', displayName: 'Alice Admin' },
  { subject: 'oscar', displayName: 'Oscar Operator' },
  { subject: 'claude', displayName: 'Claude (MCP)' },
];
const ORIGINS = ['cli', 'mcp', 'slack', 'dashboard'] as const;
const HOSTS = ['node01', 'node02', 'node03', 'node04'];
const T0 = Date.parse('2026-11-01T00:00:00Z');

function doc(i: number): JobDoc {
  const person = PEOPLE[i % PEOPLE.length]!;
  const hosts = HOSTS.filter((_h, n) => (i + n) % 3 !== 0);
  return {
    id: newJobId(),
    tool: TOOLS[i % TOOLS.length]!,
    risk: 'read',
    input: {},
    plan: { tool: TOOLS[i % TOOLS.length]!, hosts, batches: [], failureBudget: 0 },
    planHash: 'h',
    requester: { ...person, groups: [], roles: ['operator'], origin: ORIGINS[i % ORIGINS.length]! },
    replyTo: { kind: 'cli' },
    createdAt: new Date(T0 + i * 60_000).toISOString(),
    approvalsRequired: 0,
    timeoutMs: 60_000,
  };
}

/** What a listing must return: every record, filtered the slow way, newest first. */
async function scan(query: JobQuery): Promise<{ ids: string[]; total: number }> {
  const ids = await redis.zrevrange(k.jobIndex(), 0, -1);
  const records = (await Promise.all(ids.map((id) => store.get(id)))).filter((r): r is JobRecord => r !== undefined);
  const hit = records.filter((r) => {
    const at = Date.parse(r.createdAt);
    return (
      (query.states === undefined || query.states.includes(r.state)) &&
      (query.tool === undefined || r.tool === query.tool) &&
      (query.requester === undefined || r.requester.subject === query.requester || r.requester.displayName === query.requester) &&
      (query.host === undefined || r.plan.hosts.includes(query.host)) &&
      (query.origin === undefined || r.requester.origin === query.origin) &&
      (query.since === undefined || at >= query.since) &&
      (query.until === undefined || at <= query.until)
    );
  });
  const offset = query.offset ?? 0;
  return { ids: hit.slice(offset, offset + (query.limit ?? 20)).map((r) => r.id), total: hit.length };
}

const docs: JobDoc[] = [];

beforeAll(async () => {
  redis = new Redis(redisServer.url);
  store = new JobStore(redis, k);
  // Three approval requests first (the oldest), then 297 newer jobs: an inbox read from the
  // newest 500 with the offset applied before the filter would have been wrong here.
  for (let i = 0; i < 300; i++) {
    const d = doc(i);
    docs.push(d);
    await store.create(d, i < 3 ? 'awaiting_approval' : 'queued');
  }
  for (let i = 3; i < 300; i++) {
    const id = docs[i]!.id;
    if (i % 5 === 0) continue; // stays queued
    await store.transition(id, 'running');
    const end: JobState = i % 11 === 0 ? 'failed' : i % 13 === 0 ? 'partially_failed' : 'succeeded';
    if (i % 7 !== 0) await store.transition(id, end);
  }
});

afterAll(async () => {
  await redis.quit();
});

describe('job listing from indexes', () => {
  it('every filter alone and combined matches a full scan, page by page, with the total', async () => {
    const queries: JobQuery[] = [
      {},
      { states: ['awaiting_approval'] },
      { states: ['succeeded'], limit: 50 },
      { states: ['succeeded'], offset: 100, limit: 50 },
      { states: ['queued', 'running'] },
      { tool: 'uptime', limit: 200 },
      { requester: 'oscar' },
      { requester: 'Claude (MCP)', limit: 7, offset: 14 },
      { host: 'node03', limit: 100 },
      { origin: 'slack' },
      { tool: 'exec', states: ['failed'], host: 'node02' },
      { tool: 'ping', requester: 'alice', origin: 'cli', states: ['succeeded', 'partially_failed'] },
      { since: T0 + 100 * 60_000, until: T0 + 150 * 60_000, limit: 100 },
      { host: 'node01', since: T0 + 200 * 60_000 },
      { tool: 'nothing-like-this' },
    ];
    for (const query of queries) {
      const got = await store.query(query);
      expect(got, JSON.stringify(query)).toEqual(await scan(query));
    }
  });

  it('an approvals inbox finds the oldest waiting jobs behind hundreds of newer ones', async () => {
    const inbox = await store.query({ states: ['awaiting_approval'] });
    expect(inbox.total).toBe(3);
    expect(inbox.ids).toEqual([docs[2]!.id, docs[1]!.id, docs[0]!.id]);
  });

  it('votes move jobs between state indexes atomically with the state', async () => {
    const approved = await store.vote(docs[0]!.id, { subject: 'april', displayName: 'April', origin: 'cli', decision: 'approve', planHash: 'h', at: new Date().toISOString() }, 1, 'denied');
    expect(approved).toMatchObject({ kind: 'approved' });
    const denied = await store.vote(docs[1]!.id, { subject: 'april', displayName: 'April', origin: 'cli', decision: 'deny', planHash: 'h', at: new Date().toISOString() }, 1, 'denied by April');
    expect(denied).toMatchObject({ kind: 'denied' });
    expect((await store.query({ states: ['awaiting_approval'] })).ids).toEqual([docs[2]!.id]);
    expect((await store.query({ states: ['denied'] })).ids).toEqual([docs[1]!.id]);
    expect((await store.query({ states: ['queued'], limit: 200 })).ids).toContain(docs[0]!.id);
    // A refused transition leaves the indexes alone.
    expect((await store.transition(docs[1]!.id, 'running')).ok).toBe(false);
    expect((await store.query({ states: ['running'] })).ids).not.toContain(docs[1]!.id);
  });

  it('retention takes a job out of every index: by expiry and by count', async () => {
    const victim = docs[4]!.id;
    expect(isFinal((await store.state(victim))!)).toBe(true);
    await store.expireFinished(victim, 1);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await store.trim(10_000, (s) => isFinal(s as JobState))).toBeGreaterThanOrEqual(1);
    const everyIndex = await redis.keys('idx:jobs*');
    for (const key of everyIndex) {
      const type = await redis.type(key);
      if (type === 'zset') expect(await redis.zscore(key, victim), key).toBeNull();
      if (type === 'hash') expect(await redis.hexists(key, victim), key).toBe(0);
    }
    expect((await store.query({ tool: docs[4]!.tool, limit: 200 })).ids).not.toContain(victim);

    // Over the count cap the oldest finished jobs go; jobs in flight stay however old.
    const before = await redis.zcard(k.jobIndex());
    const removed = await store.trim(before - 5, (s) => isFinal(s as JobState));
    expect(removed).toBeGreaterThanOrEqual(1);
    expect(await redis.zcard(k.jobIndex())).toBe(before - removed);
    expect(await store.query({ limit: 200 })).toEqual(await scan({ limit: 200 }));
    expect((await store.query({ states: ['awaiting_approval'] })).ids).toEqual([docs[2]!.id]);
  });

  it('a record that expired before the sweep leaves the indexes when a listing meets it', async () => {
    const gone = docs[299]!.id;
    await redis.del(k.job(gone));
    const page = await store.query({ limit: 3 });
    expect(page.ids[0]).toBe(gone);
    expect((await store.records(page.ids)).map((r) => r.id)).not.toContain(gone);
    expect((await store.query({ limit: 3 })).ids).not.toContain(gone);
  });

  it('jobs written before the indexes existed are indexed on the first listing', async () => {
    for (const key of await redis.keys('idx:jobs:*')) await redis.del(key);
    const fresh = new JobStore(redis, k);
    for (const query of [{ states: ['succeeded' as const] }, { host: 'node04', tool: 'ping' }, { requester: 'Alice Admin' }]) {
      expect(await fresh.query(query)).toEqual(await scan(query));
    }
  });
});
