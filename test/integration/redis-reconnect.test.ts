// queues/connections.ts keepReconnecting against a real redis-server: a connection that ends
// while reconnecting (ioredis 5.11.1: the Sentinel FailoverDetector calls connector.disconnect()
// during a reconnect, the connector throws "Connection is closed." and the client goes to `end`
// for good) is started again, and so is every connection duplicated from it (the subscribers of
// dedicatedConnection, BullMQ's blocking connections). The race is forced the way the detector
// causes it: the socket drops, and connector.disconnect() runs while ioredis reconnects.
// BullMQ 6.7 runs a Worker's commands on the connection it is given (Castellan's worker
// connection) and only its blocking fetch on a duplicate, which BullMQ brings back itself:
// the Worker test guards that both recover, whoever does it.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keepReconnecting } from '../../queues/connections.js';
import { startRedis, type PrivateRedis } from '../../src/lab/redis.js';
import { eventually } from './mcp-harness.js';

let dir: string;
let server: PrivateRedis;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-reconnect-'));
  server = await startRedis({ dir: path.join(dir, 'redis') });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface RawClient {
  status: string;
  stream?: { destroy(): void };
  connector: { disconnect(): void };
  once(event: string, listener: () => void): void;
}

/** Drop the socket and abort the reconnect that follows: the client ends, not on purpose. */
async function endWhileReconnecting(client: RawClient): Promise<void> {
  const ended = new Promise<void>((resolve) => client.once('end', resolve));
  client.once('connecting', () => client.connector.disconnect());
  client.stream?.destroy();
  await ended;
}

/** Like a Castellan worker connection: commands wait for Redis, reconnects are quick here. */
const open = (): Redis => {
  const c = new Redis(server.port, { maxRetriesPerRequest: null, retryStrategy: () => 50 });
  c.on('error', () => undefined);
  return c;
};

describe('a connection that ends while reconnecting', () => {
  it('is started again, and so are the duplicates made from it after it was kept', async () => {
    const base = open();
    let closing = false;
    keepReconnecting(base, () => closing, 100);
    const copy = base.duplicate();
    copy.on('error', () => undefined);
    await eventually(async () => (base.status === 'ready' && copy.status === 'ready' ? true : undefined), 10_000, 'both ready');
    for (const c of [base, copy]) {
      await endWhileReconnecting(c as unknown as RawClient);
      expect(c.status).toBe('end');
      await eventually(async () => (c.status === 'ready' ? true : undefined), 10_000, 'ready again');
      expect(await c.ping()).toBe('PONG');
    }
    // Closed on purpose: stays closed.
    copy.disconnect();
    closing = true;
    base.disconnect();
    await new Promise((r) => setTimeout(r, 400));
    expect([base.status, copy.status]).toEqual(['end', 'end']);
  });

  it('a BullMQ Worker on a kept connection still takes and completes jobs after its command or its blocking connection ended that way', async () => {
    const connection = open();
    const other = open();
    let closing = false;
    keepReconnecting(connection, () => closing, 100);
    const queue = new Queue('reconnect', { connection: other, prefix: 'kr' });
    // runRetryDelay: after a failed fetch BullMQ pauses its loop this long (15 s by default).
    const w = new Worker('reconnect', async (job) => (job.data as { n: number }).n * 2, { connection, prefix: 'kr', drainDelay: 1, runRetryDelay: 500 });
    w.on('error', () => undefined);
    const completes = async (n: number, what: string): Promise<void> => {
      const job = await queue.add('double', { n });
      await eventually(async () => ((await queue.getJob(job.id ?? ''))?.returnvalue === n * 2 ? true : undefined), 15_000, what);
    };
    try {
      await w.waitUntilReady();
      await completes(1, 'the first job to complete');
      const backend = w.getBackend();
      for (const [which, client] of [
        ['command', await backend.client],
        ['blocking', await backend.blockingClient],
      ] as const) {
        const raw = client as unknown as RawClient;
        await endWhileReconnecting(raw);
        await completes(21, `a job added after the ${which} connection ended to complete`);
        expect(raw.status).toBe('ready');
      }
    } finally {
      closing = true;
      await w.close();
      await queue.close();
      other.disconnect();
      connection.disconnect();
    }
  }, 90_000);
});
