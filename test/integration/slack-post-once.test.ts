// A job's Slack message is posted once, whoever posts it (src/slack/post-once.ts): real Redis,
// the Slack stand-in, several notifier instances racing for the same message.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { webApi } from '@slack/bolt';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type PrivateRedis } from '../../src/lab/redis.js';
import { slackKeys } from '../../src/slack/keys.js';
import { PostOnce, type PostedMessage, type PostOutcome } from '../../src/slack/post-once.js';
import { startSlackStandIn, type SlackStandIn } from '../support/slack-standin.js';

const CHANNEL = 'CPOSTONCE';
const keys = slackKeys('castellan');
let dir: string;
let redis: PrivateRedis;
let slack: SlackStandIn;
let client: webApi.WebClient;
const connections: Redis[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'castellan-post-once-'));
  redis = await startRedis({ dir });
  slack = await startSlackStandIn();
  client = new webApi.WebClient(slack.botToken, { slackApiUrl: slack.apiUrl, retryConfig: { retries: 0 } });
});

afterAll(async () => {
  for (const c of connections) c.disconnect();
  await slack?.stop();
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** One notifier instance's poster, on its own connection; `alive`: its heartbeat key is there. */
async function poster(instance: string, alive: boolean): Promise<{ posts: PostOnce; conn: Redis }> {
  const conn = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  connections.push(conn);
  if (alive) await conn.set(keys.notifierAlive(instance), '1', 'PX', 60_000);
  const call = async <T extends { ok?: boolean }>(_method: string, run: () => Promise<T>): Promise<T> => run().catch(() => ({ ok: false }) as T);
  return { posts: new PostOnce({ redis: conn, keys, client, instance, call }), conn };
}

const post = (jobId: string) => async (): Promise<PostedMessage | undefined> => {
  const posted = await client.chat.postMessage({ channel: CHANNEL, text: `job ${jobId}` });
  return posted.ts ? { channel: CHANNEL, ts: posted.ts } : undefined;
};
const toRecord = (posted: PostedMessage) => JSON.stringify(posted);
const shown = (jobId: string) => slack.messages(CHANNEL).filter((m) => m.text === `job ${jobId}`);
const tsOf = (outcome: PostOutcome) => (outcome.kind === 'recorded' ? (JSON.parse(outcome.message) as PostedMessage).ts : outcome.kind);

describe('a job message is posted once', () => {
  it('five live instances at once: one posts, the others wait for it', async () => {
    const posters = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((name) => poster(`race-${name}`, true)));
    const outcomes = await Promise.all(posters.map((p) => p.posts.message('j1', 'request', post('j1'), toRecord)));
    expect(shown('j1')).toHaveLength(1);
    const ts = shown('j1')[0]?.ts;
    expect(outcomes.filter((o) => o.kind === 'recorded').map(tsOf)).toEqual([ts]);
    expect(outcomes.filter((o) => o.kind === 'busy')).toHaveLength(4);
    // Looking again gives every instance the one recorded message.
    for (const p of posters) expect(tsOf(await p.posts.message('j1', 'request', post('j1'), toRecord))).toBe(ts);
    expect(shown('j1')).toHaveLength(1);
  });

  it('an instance paused past its heartbeat while posting: the second message is deleted, one stays', async () => {
    const paused = await poster('paused', false); // its heartbeat is gone
    const other = await poster('other', true);
    let resume: () => void = () => undefined;
    const held = new Promise<void>((r) => (resume = r));
    let inside: () => void = () => undefined;
    const claimed = new Promise<void>((r) => (inside = r));
    const first = paused.posts.message('j2', 'card', async () => {
      inside();
      await held; // claimed, then paused before posting
      return post('j2')();
    }, toRecord);
    await claimed;
    // The claim's holder looks dead: the other instance takes it over, posts and records.
    const second = await other.posts.message('j2', 'card', post('j2'), toRecord);
    expect(second.kind).toBe('recorded');
    resume();
    const late = await first;
    // The paused one posted too, found the other's record, and removed its own message.
    expect(tsOf(late)).toBe(tsOf(second));
    expect(shown('j2').map((m) => m.ts)).toEqual([tsOf(second)]);
    expect(slack.callsOf('chat.delete')).toHaveLength(1);
  });

  it('a post whose record failed is recorded on the next look, not posted again', async () => {
    const { posts, conn } = await poster('flaky', true);
    const failed = await posts
      .message('j3', 'request', async () => {
        const posted = await post('j3')();
        conn.disconnect(); // Redis away right after Slack answered: the record cannot be written
        return posted;
      }, toRecord)
      .catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(Error);
    expect(shown('j3')).toHaveLength(1);
    await conn.connect();
    await conn.set(keys.notifierAlive('flaky'), '1', 'PX', 60_000);
    const again = await posts.message('j3', 'request', post('j3'), toRecord);
    expect(tsOf(again)).toBe(shown('j3')[0]?.ts);
    expect(shown('j3')).toHaveLength(1);
    expect(await conn.hget(keys.messages('j3'), 'request')).toBe(JSON.stringify({ channel: CHANNEL, ts: shown('j3')[0]?.ts }));
  });
});
