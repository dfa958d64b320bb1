// An exec step wide enough to be recorded while its fan-out still runs (queues/runner.ts
// EARLY_BATCH, 64 hosts a write): every host still gets exactly one ledger finish and one
// execution audit record with the exact command, whichever write carried it. Real parts: a
// fake-node farm, a private Redis, the in-process worker of the benchmark's pipeline shape.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { measureCastellan } from '../../bench/castellan-client.js';
import { describeFarm, type Fleet } from '../../bench/fleet.js';
import { startFarm } from '../../src/lab/fake-farm.js';
import { useRedis } from '../support/redis.js';

const NODES = 300;
const redis = useRedis();
let dir: string;
let fleet: Fleet;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-early-records-'));
  fleet = await describeFarm(await startFarm({ nodes: NODES, dir: path.join(dir, 'farm'), recordExecs: false }));
}, 120_000);

afterAll(async () => {
  await fleet?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('an exec step recorded during its fan-out', () => {
  it('writes one ledger finish and one execution record per host, in more than one write', async () => {
    const measured = await measureCastellan({ shape: 'pipeline', fleet, window: 64, warmRuns: 0, redisUrl: redis.url, workDir: dir });
    expect(measured.cold.hostsOk).toBe(NODES);
    const client = new Redis(redis.url);
    try {
      // The warm-up job (list_nodes, one host) and the measured ping job: the newest is the ping.
      const [jobId] = await client.zrevrange('castellan:jobs', 0, 0);
      expect(jobId).toBeDefined();
      expect(await client.hget(`castellan:job:${jobId}`, 'state')).toBe('succeeded');

      const ledger = Object.values(await client.hgetall(`castellan:ledger:${jobId}`)).map((v) => JSON.parse(v) as { host: string; status: string; startedAt: string; finishedAt: string });
      expect(ledger).toHaveLength(NODES);
      expect(new Set(ledger.map((e) => e.host)).size).toBe(NODES);
      expect(ledger.every((e) => e.status === 'ok' && e.finishedAt !== undefined)).toBe(true);
      // All claimed together, before any host was touched: one claim time.
      expect(new Set(ledger.map((e) => e.startedAt)).size).toBe(1);
      // Recorded in several writes (each stamps its own finish time), not one after the fan-out.
      expect(new Set(ledger.map((e) => e.finishedAt)).size).toBeGreaterThan(1);

      const ids = await client.zrange(`castellan:audit:job:${jobId}`, 0, -1);
      const records = await Promise.all(ids.map(async (id) => {
        const [entry] = await client.xrange('castellan:audit', id, id);
        return JSON.parse(entry?.[1][1] ?? '{}') as { kind: string; host?: string; argv?: string[]; status?: string } & { results?: { host: string; status: string }[] };
      }));
      // An execution entry covers a write's hosts (its `results`): one per host here.
      const executions = records.filter((r) => r.kind === 'execution').flatMap((r) => (r.results ?? [r]).map((run) => ({ ...r, ...run })));
      expect(records.filter((r) => r.kind === 'execution').length, 'one entry per write, not per host').toBeLessThan(NODES);
      expect(executions).toHaveLength(NODES);
      expect(new Set(executions.map((r) => r.host)).size).toBe(NODES);
      for (const r of executions) {
        expect(r.status).toBe('ok');
        expect(r.argv).toEqual(['true']); // ping's exact command
      }
      expect(records.filter((r) => r.kind === 'outcome')).toHaveLength(1);
    } finally {
      client.disconnect();
    }
  }, 180_000);
});
