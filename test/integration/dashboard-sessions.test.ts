// Dashboard sessions in a real Redis: idle and absolute timeouts, one-time sign-in state, and
// only a hash of the cookie value stored.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionStore } from '../../src/dashboard/session.js';
import { useRedis } from '../support/redis.js';

const redis = useRedis();
let client: Redis;

beforeAll(() => {
  client = new Redis(redis.url);
});
afterAll(() => client?.disconnect());

describe('SessionStore', () => {
  const who = { subject: 'alice', displayName: 'Alice', groups: ['admins'], idToken: 'id.token.value' };

  it('ends a session after the idle timeout, and keeps a used one alive', async () => {
    let now = 1_000_000;
    const store = new SessionStore(client, 'ts1', { idleMs: 60_000, absoluteMs: 3_600_000 }, () => now);
    const { id } = await store.create(who);
    now += 50_000;
    await expect(store.get(id)).resolves.toMatchObject({ subject: 'alice' });
    now += 50_000; // 50 s after the last use: still inside the idle window
    await expect(store.get(id)).resolves.toMatchObject({ subject: 'alice' });
    now += 61_000;
    await expect(store.get(id)).resolves.toBeUndefined();
  });

  it('ends a session at the absolute timeout however busy it is', async () => {
    let now = 2_000_000;
    const store = new SessionStore(client, 'ts2', { idleMs: 60_000, absoluteMs: 120_000 }, () => now);
    const { id } = await store.create(who);
    for (let i = 0; i < 3; i++) {
      now += 35_000;
      await expect(store.get(id)).resolves.toBeDefined();
    }
    now += 20_000;
    await expect(store.get(id)).resolves.toBeUndefined();
  });

  it('stores no usable cookie value, destroys on sign-out, and gives sign-in state once', async () => {
    const store = new SessionStore(client, 'ts3', { idleMs: 60_000, absoluteMs: 120_000 });
    const { id } = await store.create(who);
    const keys = await client.keys('ts3:*');
    expect(keys.join(' ')).not.toContain(id);
    const stored = await client.get(keys[0]!);
    expect(stored).not.toContain(id);
    const ttl = await client.pttl(keys[0]!);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
    await store.destroy(id);
    await expect(store.get(id)).resolves.toBeUndefined();

    const login = await store.beginLogin({ codeVerifier: 'v', state: 's', nonce: 'n', returnTo: '/ui/jobs' });
    await expect(store.takeLogin(login)).resolves.toMatchObject({ state: 's' });
    await expect(store.takeLogin(login)).resolves.toBeUndefined();
    await expect(store.get('x'.repeat(500))).resolves.toBeUndefined();
  });
});
