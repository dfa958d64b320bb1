// A private Redis per test file: started in beforeAll, stopped (and its dir removed) in afterAll.
//
//   const redis = useRedis();
//   it('…', async () => { const client = new Redis(redis.url); … });
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { startRedis, type PrivateRedis, type RedisOptions } from '../../src/lab/redis.js';

export interface RedisHandle {
  /** redis://127.0.0.1:PORT, valid from beforeAll on. */
  readonly url: string;
  /** The server itself, for kill()/restart() in fault tests. */
  readonly server: PrivateRedis;
}

export function useRedis(options: Omit<RedisOptions, 'dir' | 'detached'> = {}): RedisHandle {
  let server: PrivateRedis | undefined;
  let dir: string | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-redis-'));
    server = await startRedis({ ...options, dir });
  });

  afterAll(async () => {
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const started = (): PrivateRedis => {
    if (!server) throw new Error('useRedis(): the server starts in beforeAll; read .url inside a test or hook');
    return server;
  };
  return {
    get url() {
      return started().url;
    },
    get server() {
      return started();
    },
  };
}
