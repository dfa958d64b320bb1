// The private Redis: settings BullMQ needs, crash + AOF replay, and no server left behind.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive } from '../../src/lab/processes.js';
import { startRedis } from '../../src/lab/redis.js';
import { compileLab, type CompiledLab } from '../support/compile-lab.js';
import { useRedis } from '../support/redis.js';

async function waitUntil(condition: () => boolean, tries = 400): Promise<void> {
  for (let i = 0; i < tries && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 25));
}

describe('useRedis()', () => {
  const redis = useRedis();

  it('serves a private Redis with the settings BullMQ needs', async () => {
    expect(redis.url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
    expect(redis.server.port).not.toBe(6379);
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      expect(await client.ping()).toBe('PONG');
      expect(await client.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      expect(await client.config('GET', 'appendfsync')).toEqual(['appendfsync', 'everysec']);
      expect(await client.config('GET', 'save')).toEqual(['save', '']);
      expect(await client.config('GET', 'bind')).toEqual(['bind', '127.0.0.1']);
      expect(await client.config('GET', 'dir')).toEqual(['dir', redis.server.dir]);
    } finally {
      client.disconnect();
    }
  });
});

describe('startRedis()', () => {
  let dir: string;
  let compiled: CompiledLab | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-redis-test-'));
  });

  afterAll(async () => {
    await compiled?.remove();
    await rm(dir, { recursive: true, force: true });
  });

  it('replays the AOF after kill -9 and restart on the same port', async () => {
    const server = await startRedis({ dir: path.join(dir, 'crash') });
    const client = new Redis(server.url, { maxRetriesPerRequest: null, lazyConnect: true });
    client.on('error', () => undefined); // expected while the server is down
    try {
      await client.connect();
      await client.set('castellan:test:survivor', 'still here');
      const firstPid = server.pid;
      await server.kill();
      expect(isAlive(firstPid)).toBe(false);

      await server.restart();
      expect(server.pid).not.toBe(firstPid);
      expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);
      // The same client reconnects to the same port and finds the key replayed from the AOF.
      expect(await client.get('castellan:test:survivor')).toBe('still here');
    } finally {
      client.disconnect();
      await server.stop();
    }
    expect(isAlive(server.pid)).toBe(false);
  });

  it('gives two servers two different ports', async () => {
    const [a, b] = await Promise.all([startRedis({ dir: path.join(dir, 'a') }), startRedis({ dir: path.join(dir, 'b') })]);
    try {
      expect(a.port).not.toBe(b.port);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('fails with the server log when the port is taken', async () => {
    const holder = await startRedis({ dir: path.join(dir, 'holder'), appendOnly: false });
    try {
      await expect(startRedis({ dir: path.join(dir, 'clash'), port: holder.port })).rejects.toThrow(/Address already in use/);
    } finally {
      await holder.stop();
    }
  });

  it('dies with the process that started it, even on SIGKILL', async () => {
    compiled = await compileLab(['redis']);
    const script = `import { startRedis } from ${JSON.stringify(compiled.file('redis'))};
      const r = await startRedis({ dir: ${JSON.stringify(path.join(dir, 'orphan'))} });
      console.log(JSON.stringify({ pid: r.pid }));
      setInterval(() => {}, 1000);`;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      parent.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString()));
      parent.once('exit', (code) => reject(new Error(`parent exited early (${code})`)));
    });
    const { pid } = JSON.parse(line) as { pid: number };
    expect(isAlive(pid)).toBe(true);
    parent.kill('SIGKILL');
    await waitUntil(() => !isAlive(pid));
    expect(isAlive(pid)).toBe(false);
  });
});
