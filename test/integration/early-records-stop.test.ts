// An exec step recorded during its fan-out (queues/runner.ts EARLY_BATCH: 64 hosts a write)
// that is stopped half-way: cancelled, at the job's deadline, and with hosts hitting the
// step's own timeout. Nodes 001-300 answer at once, 301-400 hold their command for ten
// minutes; with a window of 64 the stop finds 64 of them running and 36 not started, after
// two early writes. Whatever stopped it, every host has exactly one ledger finish and one
// execution audit record, with the status the job's result gives it; the job's state agrees
// with its audit outcome; nothing is left running on the farm.
// Real parts: a fake-node farm, a private Redis, a runtime with its in-process worker.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig } from '../../config/load.js';
import type { JobSettings } from '../../queues/context.js';
import { Redactor } from '../../queues/redact.js';
import { startFarm, type Farm, type NodeFault } from '../../src/lab/fake-farm.js';
import { createLogger } from '../../src/log.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { useRedis } from '../support/redis.js';
import { eventually } from './mcp-harness.js';

const NODES = 400;
const QUICK = 300;
/** Early writes (queues/runner.ts EARLY_BATCH: 64 hosts each) of 256 hosts fit in the quick nodes. */
const EARLY_WRITTEN = 256;
const HOLD_MS = 10 * 60_000;
const name = (i: number): string => `node${String(i).padStart(3, '0')}`;
const quick = Array.from({ length: QUICK }, (_, i) => name(i + 1));
const slow = Array.from({ length: NODES - QUICK }, (_, i) => name(QUICK + i + 1));

const redis = useRedis();
let dir: string;
let farm: Farm;
let configFile: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-early-stop-'));
  const faults: Record<string, NodeFault> = Object.fromEntries(slow.map((n) => [n, { holdMs: HOLD_MS }]));
  farm = await startFarm({ nodes: NODES, dir: path.join(dir, 'farm'), recordExecs: false, faults });
  configFile = path.join(dir, 'castellan.yaml');
  await writeFile(configFile, stringify({
    inventory: farm.inventoryFile,
    known_hosts: farm.knownHostsFile,
    ssh: { user: farm.loginUser, private_key_file: farm.clientKeyFile, window: 64, kill_grace: '2s' },
    redis: { url: redis.url, prefix: 'castellan' },
    auth: {
      roles: { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] },
      local_identity: { subject: 'tester', display_name: 'Tester', groups: ['admins'] },
    },
    jobs: { files_root: path.join(dir, 'files') },
    log: { level: 'warn' },
  }));
}, 120_000);

afterAll(async () => {
  await farm?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function withRuntime<T>(settings: Partial<JobSettings>, body: (runtime: Runtime) => Promise<T>): Promise<T> {
  const config = await loadConfig(configFile);
  const logger = createLogger({ level: 'warn', redactor: new Redactor(config.secrets.values()) });
  const runtime = await createRuntime(config, { mode: 'all', logger, jobSettings: settings });
  try {
    await runtime.startWorker();
    return await body(runtime);
  } finally {
    await runtime.close();
  }
}

interface LedgerValue {
  readonly host: string;
  readonly status?: string;
  readonly finishedAt?: string;
}

/** Counts every ledger finish written for a job, per host (Redis MONITOR: each HSET as sent). */
async function watchLedgerWrites(url: string): Promise<{ finishes: Map<string, number>; stop(): void }> {
  const client = new Redis(url);
  const monitor = await client.monitor();
  const finishes = new Map<string, number>();
  monitor.on('monitor', (_time: string, args: string[]) => {
    if (args[0]?.toLowerCase() !== 'hset' || !args[1]?.startsWith('castellan:ledger:')) return;
    for (let i = 2; i + 1 < args.length; i += 2) {
      const host = (args[i] ?? '').split('|')[2] ?? '';
      if ((args[i + 1] ?? '').includes('"finishedAt"')) finishes.set(host, (finishes.get(host) ?? 0) + 1);
    }
  });
  return {
    finishes,
    stop: () => {
      monitor.disconnect();
      client.disconnect();
    },
  };
}

async function finishedInLedger(client: Redis, jobId: string): Promise<LedgerValue[]> {
  return Object.values(await client.hgetall(`castellan:ledger:${jobId}`))
    .map((v) => JSON.parse(v) as LedgerValue)
    .filter((e) => e.finishedAt !== undefined);
}

/**
 * Submits ping on every node, waits until every quick node's result has reached the runner
 * (its host_finished events) and two early writes are in the ledger (the slow nodes cannot
 * have finished: nothing else writes a finish before the fan-out ends), then `stop`s it (or
 * not), and checks what was recorded against what the job says.
 */
async function stoppedMidFanout(
  runtime: Runtime,
  input: Record<string, unknown>,
  stop: (jobId: string) => Promise<void>,
  expected: { state: string; slowStatus: string; batchLine: string },
): Promise<void> {
  const requester = runtime.localRequester('cli');
  const client = new Redis(redis.url);
  const writes = await watchLedgerWrites(redis.url);
  try {
    const { job } = await runtime.service.submit({ tool: 'ping', input: { targets: 'all', ...input }, requester, replyTo: { kind: 'cli' } });
    const quickDone = new Set<string>();
    const batchLines: string[] = [];
    let over = false;
    const ended = runtime.service.wait(job.id, requester, 240_000, ({ event }) => {
      if (event.type === 'host_finished' && event.status === 'ok') quickDone.add(event.host);
      if (event.type === 'state' && event.reason?.startsWith('batch ')) batchLines.push(event.reason);
    }).finally(() => (over = true));
    await eventually(async () => {
      // The precondition, not a timing claim: the stop must come after both.
      if (over) throw new Error(`job ended before its quick nodes were done (${quickDone.size}) with early writes in the ledger`);
      if (quickDone.size < QUICK) return undefined;
      return (await finishedInLedger(client, job.id)).length >= EARLY_WRITTEN ? true : undefined;
    }, 120_000, 'the quick nodes done and early writes of 256 hosts in the ledger');
    await stop(job.id);
    const final = await ended;
    expect(final.state, final.reason).toBe(expected.state);
    // What people saw while it ran: a stop is not a failure.
    expect(batchLines).toEqual([expected.batchLine]);

    // The job's result: the quick nodes ok, the others stopped.
    const byHost = new Map((final.result?.hosts ?? []).map((h) => [h.host, h.status]));
    expect(byHost.size).toBe(NODES);
    for (const h of quick) expect(byHost.get(h), h).toBe('ok');
    for (const h of slow) expect(byHost.get(h), h).toBe(expected.slowStatus);

    // The ledger: every claim finished, once, with the result's status.
    const ledger = await finishedInLedger(client, job.id);
    expect(ledger).toHaveLength(NODES);
    for (const e of ledger) expect(e.status, e.host).toBe(byHost.get(e.host));
    // Written in more than one write, and no host in two of them.
    expect(new Set(ledger.map((e) => e.finishedAt)).size).toBeGreaterThan(1);
    await eventually(async () => (writes.finishes.size === NODES ? true : undefined), 10_000, 'MONITOR to see every ledger write');
    expect([...writes.finishes].filter(([, n]) => n !== 1)).toEqual([]);

    // The audit: one execution record per host with the same status, and the job's outcome.
    const ids = await client.zrange(`castellan:audit:job:${job.id}`, 0, -1);
    const records = await Promise.all(ids.map(async (id) => {
      const [entry] = await client.xrange('castellan:audit', id, id);
      return JSON.parse(entry?.[1][1] ?? '{}') as { kind: string; host?: string; status?: string; state?: string; argv?: string[] } & { results?: { host: string; status: string }[] };
    }));
    // An execution entry covers a write's hosts (its `results`): one per host here.
    const executions = records.filter((r) => r.kind === 'execution').flatMap((r) => (r.results ?? [r]).map((run) => ({ ...r, ...run })));
    expect(records.filter((r) => r.kind === 'execution').length, 'one entry per write, not per host').toBeLessThan(NODES);
    expect(executions).toHaveLength(NODES);
    expect(new Set(executions.map((r) => r.host)).size).toBe(NODES);
    for (const r of executions) {
      expect(r.status, r.host).toBe(byHost.get(r.host ?? ''));
      expect(r.argv).toEqual(['true']);
    }
    expect(records.filter((r) => r.kind === 'outcome').map((r) => r.state)).toEqual([final.state]);

    // Nothing of the run left on the nodes.
    await eventually(async () => (farm.stats().running === 0 ? true : undefined), 60_000, 'nothing left running on the farm');
  } finally {
    writes.stop();
    client.disconnect();
  }
}

describe('an exec step stopped after early writes', () => {
  it('cancelled: quick hosts ok, the others cancelled, each recorded once', async () => {
    await withRuntime({}, (runtime) =>
      stoppedMidFanout(runtime, {}, async (jobId) => {
        await runtime.service.cancel(jobId, runtime.localRequester('cli'), 'test');
      }, { state: 'cancelled', slowStatus: 'cancelled', batchLine: 'batch 1/1 stopped: 300 ok, 100 cancelled' }));
  }, 300_000);

  it("at the job's deadline: quick hosts ok, the others timed out, each recorded once", async () => {
    // The stop is the deadline: nothing to do but wait for it (long enough for the quick nodes).
    await withRuntime({ defaultTimeoutMs: 45_000 }, (runtime) =>
      stoppedMidFanout(runtime, {}, async () => undefined, { state: 'failed', slowStatus: 'timed_out', batchLine: 'batch 1/1 stopped: 300 ok, 100 timed out' }));
  }, 300_000);

  it("at the step's timeout: quick hosts ok, the others timed out, each recorded once", async () => {
    await withRuntime({}, (runtime) =>
      stoppedMidFanout(runtime, { timeout: '5s' }, async () => undefined, { state: 'partially_failed', slowStatus: 'timed_out', batchLine: 'batch 1/1 done: 300 ok, 100 failed' }));
  }, 300_000);
});
