// The all-jobs feed and the per-process event hub, against a real redis-server: a notifier
// killed with SIGKILL mid-stream resumes without a gap or a repeat; followers of one job share
// one subscription and get events from a position, then live; a job's progress publisher
// leaves out the starts of hosts that finished within its interval, in order and scrubbed.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobEvents, ThrottledPublisher, type StampedEvent } from '../../queues/events.js';
import { ExecutionLedger } from '../../queues/ledger.js';
import { JobFeed } from '../../queues/feed.js';
import { JobEventHub } from '../../queues/follow.js';
import { keys } from '../../queues/keys.js';
import { Redactor } from '../../queues/redact.js';
import { sleep } from '../../queues/sleep.js';
import { REPO } from '../support/castellan.js';
import { useRedis } from '../support/redis.js';

const redisServer = useRedis();
let redis: Redis;
const children: ChildProcess[] = [];

beforeAll(() => {
  redis = new Redis(redisServer.url);
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  redis.disconnect();
});

async function until(condition: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(50);
  }
}

function startConsumer(prefix: string, delayMs: number): ChildProcess {
  const script = path.join(REPO, 'dist', 'test', 'support', 'feed-consumer.js');
  const child = spawn(process.execPath, [script, redisServer.url, prefix, 'notifier', 'c1', String(delayMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return child;
}

describe('all-jobs feed', () => {
  it('carries state changes and votes of every job, not output', async () => {
    const k = keys('feedkinds');
    const events = new JobEvents(redis, k, new Redactor([]));
    await events.publish('ja', { type: 'state', state: 'awaiting_approval', reason: 'waiting for 1 approval(s)' });
    await events.publishMany('jb', [
      { type: 'state', state: 'running' },
      { type: 'output', step: 's', host: 'node01', stream: 'stdout', text: 'hello' },
      { type: 'host_finished', step: 's', host: 'node01', status: 'ok', exitCode: 0, durationMs: 5 },
    ]);
    await events.publish('ja', { type: 'vote', subject: 'bob', decision: 'approve', count: 1, required: 1 });
    const feed = await new JobFeed(redis, k).read();
    expect(feed.map((e) => [e.jobId, e.event.type, e.event.type === 'state' ? e.event.state : e.event.type === 'vote' ? e.event.decision : ''])).toEqual([
      ['ja', 'state', 'awaiting_approval'],
      ['jb', 'state', 'running'],
      ['ja', 'vote', 'approve'],
    ]);
  });

  it('a notifier killed with SIGKILL mid-stream resumes with no gap and no repeat', async () => {
    const prefix = 'feedkill';
    const k = keys(prefix);
    const events = new JobEvents(redis, k, new Redactor([]));
    const total = 300;
    const seen = async (): Promise<number> => redis.llen(`${prefix}:test:seen`);
    let first = startConsumer(prefix, 5);
    // Jobs keep changing state while the notifier runs, is killed, and comes back.
    const producing = (async () => {
      for (let i = 0; i < total; i++) {
        await events.publish(`j${i % 7}`, { type: 'state', state: i % 2 === 0 ? 'queued' : 'running', reason: `step ${i}` });
        if (i % 10 === 0) await sleep(10);
      }
    })();
    await until(async () => (await seen()) >= 60);
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
    const atKill = await seen();
    expect(atKill).toBeLessThan(total);
    first = startConsumer(prefix, 0);
    await producing;
    await until(async () => (await seen()) >= total);
    await sleep(500); // a repeat would show up as an extra entry
    const recorded = await redis.lrange(`${prefix}:test:seen`, 0, -1);
    const feed = await new JobFeed(redis, k).read('0', 10_000);
    expect(feed).toHaveLength(total);
    expect(recorded).toEqual(feed.map((e) => `${e.id} ${e.jobId} state`));
    first.kill('SIGKILL');
  });

  it('a reader that keeps its own position follows from it, then live', async () => {
    const k = keys('feedfollow');
    const events = new JobEvents(redis, k, new Redactor([]));
    const feed = new JobFeed(redis, k);
    await events.publish('j1', { type: 'state', state: 'queued' });
    const position = await feed.last();
    await events.publish('j1', { type: 'state', state: 'running' });
    const controller = new AbortController();
    const got: string[] = [];
    const reading = (async () => {
      for await (const entry of feed.follow(position, { signal: controller.signal, blockMs: 200 })) {
        got.push(entry.event.type === 'state' ? entry.event.state : '');
        if (got.length === 2) controller.abort();
      }
    })();
    await sleep(300);
    await events.publish('j1', { type: 'state', state: 'succeeded' });
    await reading;
    expect(got).toEqual(['running', 'succeeded']);
  });
});

describe('event hub', () => {
  it('followers of a job share one subscription, start at a position and end with the job', async () => {
    const k = keys('hub');
    const events = new JobEvents(redis, k, new Redactor([]));
    const hub = new JobEventHub(redis, k, events, 60_000);
    try {
      await events.publish('j1', { type: 'state', state: 'queued' });
      const [firstEvent] = await events.read('j1');
      const collect = async (after: string): Promise<StampedEvent[]> => {
        const out: StampedEvent[] = [];
        for await (const e of hub.follow('j1', { after })) out.push(e);
        return out;
      };
      const fromStart = collect('0');
      const fromPosition = collect(firstEvent!.id);
      await until(async () => hub.followers === 2);
      const clients = Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))?.[1]);
      await events.publish('j1', { type: 'state', state: 'running' });
      await events.publish('j1', { type: 'host_finished', step: 's', host: 'node01', status: 'ok', exitCode: 0, durationMs: 3 });
      await events.publish('j1', { type: 'state', state: 'succeeded' });
      // The poll interval is a minute: only the subscription can have woken them this fast.
      const [all, later] = await Promise.all([fromStart, fromPosition]);
      expect(all.map((e) => e.event.type)).toEqual(['state', 'state', 'host_finished', 'state']);
      expect(later.map((e) => e.id)).toEqual(all.slice(1).map((e) => e.id));
      // Two followers, one extra connection (the hub's subscriber) at most: none per follower.
      expect(clients).toBeLessThanOrEqual(3);
    } finally {
      await hub.close();
    }
  });
});

describe('job progress publisher', () => {
  it("writes a host that finished within its interval as the finish only, keeps a running host's start before its output and finish, and scrubs held-back tails whole", async () => {
    const k = keys('progress');
    const secret = 'hunter2-very-secret-value';
    const events = new JobEvents(redis, k, new Redactor([secret]));
    const publisher = new ThrottledPublisher(events, 'jp', 300);
    publisher.emit({ type: 'state', state: 'running' });
    publisher.emit({ type: 'step', step: 's', description: 'true', hosts: ['fast', 'slow'] });
    publisher.emit({ type: 'host_started', step: 's', host: 'fast' });
    publisher.emit({ type: 'host_started', step: 's', host: 'slow' });
    // A secret split across two chunks of the running host: never shown in part.
    publisher.emit({ type: 'output', step: 's', host: 'slow', stream: 'stdout', text: `line one ${secret.slice(0, 8)}` });
    publisher.emit({ type: 'host_finished', step: 's', host: 'fast', status: 'ok', exitCode: 0, durationMs: 2 });
    // The slow host's start goes out with the interval's flush, while it still runs.
    await until(async () => (await events.read('jp')).some((e) => e.event.type === 'host_started'));
    publisher.emit({ type: 'output', step: 's', host: 'slow', stream: 'stdout', text: `${secret.slice(8)} done\n` });
    publisher.emit({ type: 'host_finished', step: 's', host: 'slow', status: 'ok', exitCode: 0, durationMs: 900 });
    await publisher.drain();
    const written = (await events.read('jp')).map((e) => e.event);
    const label = written.map((e) => `${e.type}${'host' in e ? `:${e.host}` : ''}`);
    expect(label.filter((l) => l !== 'output:slow')).toEqual(['state', 'step', 'host_finished:fast', 'host_started:slow', 'host_finished:slow']);
    expect(label.indexOf('output:slow')).toBeGreaterThan(label.indexOf('host_started:slow'));
    expect(label.lastIndexOf('output:slow')).toBeLessThan(label.indexOf('host_finished:slow'));
    const text = written.flatMap((e) => (e.type === 'output' ? [e.text] : [])).join('');
    expect(text).toBe('line one [REDACTED] done\n');
    expect(JSON.stringify(written)).not.toContain(secret.slice(0, 8));
  });

  it('records a ledger outcome with the start time the caller knows, and reads it back for claims it did not make', async () => {
    const k = keys('ledgerstart');
    const ledger = new ExecutionLedger(redis, k);
    await ledger.claim('jl', 0, 's', ['a'], 'w-old', '2026-01-01T00:00:00.000Z');
    await ledger.claim('jl', 0, 's', ['b'], 'w-new', '2026-01-02T00:00:00.000Z');
    await ledger.finishMany('jl', 0, 's', [
      { host: 'a', status: 'ok', exitCode: 0, durationMs: 1 },
      { host: 'b', status: 'failed', exitCode: 1, durationMs: 2, startedAt: '2026-01-02T00:00:00.000Z' },
    ], 'w-new');
    const entries = new Map((await ledger.entries('jl')).map((e) => [e.host, e]));
    expect(entries.get('a')).toMatchObject({ startedAt: '2026-01-01T00:00:00.000Z', status: 'ok', worker: 'w-new' });
    expect(entries.get('b')).toMatchObject({ startedAt: '2026-01-02T00:00:00.000Z', status: 'failed', exitCode: 1 });
    expect(entries.get('a')?.finishedAt).toBeDefined();
  });
});
