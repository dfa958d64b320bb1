// Job listing at 100,000 retained jobs: the Redis indexes (JobStore.query, what JobService.page,
// the API, CLI, MCP and dashboard list through) against the scan they replace (walk the
// all-jobs index newest first, read each record, filter, until the page is full). Also checks
// that both give the same page, and what the indexes cost in Redis memory. Writes
// bench/results/job-index-latest.{md,json}.
//
//   npm run build && node dist/bench/job-index.js [--jobs 100000] [--runs 15]
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { startRedis } from '../src/lab/redis.js';
import { keys } from '../queues/keys.js';
import { JobStore, newJobId, type JobDoc, type JobQuery, type JobRecord } from '../queues/records.js';
import type { JobState } from '../queues/states.js';
import { percentile } from './stats.js';

const RESULTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
const HOSTS = Array.from({ length: 16 }, (_, i) => `node${String(i + 1).padStart(2, '0')}`);
const TOOLS = ['ping', 'uptime', 'service_status', 'disk_usage', 'exec', 'service_restart', 'reboot'];
const PEOPLE = ['alice', 'oscar', 'april', 'claude-code', 'slack-bot'];
const ORIGINS = ['cli', 'mcp', 'slack', 'dashboard'] as const;

function docOf(i: number, at: number): JobDoc {
  const tool = TOOLS[i % TOOLS.length] ?? 'ping';
  // Most jobs touch a few hosts, every 10th the whole rack.
  const hosts = i % 10 === 0 ? HOSTS : HOSTS.slice(i % 16, (i % 16) + 1 + (i % 3));
  const person = PEOPLE[i % PEOPLE.length] ?? 'alice';
  return {
    id: newJobId(),
    tool,
    risk: 'read',
    input: { targets: hosts.join(',') },
    plan: { tool, hosts, batches: [], failureBudget: 0 },
    planHash: 'bench',
    requester: { subject: person, displayName: person, groups: [], roles: ['operator'], origin: ORIGINS[i % ORIGINS.length] ?? 'cli' },
    replyTo: { kind: 'cli' },
    createdAt: new Date(at).toISOString(),
    approvalsRequired: 0,
    timeoutMs: 60_000,
  };
}

/** The scan the indexes replace: newest first in chunks, every record read, filtered in Node. */
async function scan(redis: Redis, store: JobStore, k: ReturnType<typeof keys>, query: JobQuery): Promise<string[]> {
  const want = (query.offset ?? 0) + (query.limit ?? 20);
  const found: JobRecord[] = [];
  const total = await redis.zcard(k.jobIndex());
  for (let position = 0; position < total && found.length < want; position += 500) {
    const ids = await redis.zrevrange(k.jobIndex(), position, position + 499);
    const records = await Promise.all(ids.map((id) => store.get(id)));
    for (const r of records) {
      if (!r) continue;
      const at = Date.parse(r.createdAt);
      if (query.states && !query.states.includes(r.state)) continue;
      if (query.tool && r.tool !== query.tool) continue;
      if (query.requester && r.requester.subject !== query.requester && r.requester.displayName !== query.requester) continue;
      if (query.host && !r.plan.hosts.includes(query.host)) continue;
      if (query.origin && r.requester.origin !== query.origin) continue;
      if (query.since !== undefined && at < query.since) continue;
      if (query.until !== undefined && at > query.until) continue;
      found.push(r);
      if (found.length >= want) break;
    }
  }
  return found.slice(query.offset ?? 0, want).map((r) => r.id);
}

async function timed(runs: number, fn: () => Promise<unknown>): Promise<number[]> {
  const samples: number[] = [];
  for (let r = 0; r < runs + 1; r++) {
    const t0 = performance.now();
    await fn();
    if (r > 0) samples.push(performance.now() - t0);
  }
  return samples;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { jobs: { type: 'string', default: '100000' }, runs: { type: 'string', default: '15' } } });
  const jobs = Number(values.jobs);
  const runs = Number(values.runs);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-bench-index-'));
  const server = await startRedis({ dir: path.join(dir, 'redis') });
  const redis = new Redis(server.url);
  const k = keys('bench');
  const store = new JobStore(redis, k);
  const log = (line: string): void => void process.stderr.write(`» ${line}\n`);
  try {
    log(`seeding ${jobs} jobs`);
    const start = Date.now() - jobs * 60_000;
    const seedStart = performance.now();
    for (let i = 0; i < jobs; i += 1000) {
      await Promise.all(
        Array.from({ length: Math.min(1000, jobs - i) }, (_, n) => {
          const j = i + n;
          // Ten approval requests among the oldest: the inbox a scan must read everything to find.
          const state: JobState = j < 10 ? 'awaiting_approval' : j % 50 === 0 ? 'failed' : j % 97 === 0 ? 'partially_failed' : 'succeeded';
          return store.create(docOf(j, start + j * 60_000), state);
        }),
      );
    }
    const seedMs = performance.now() - seedStart;
    let indexBytes = 0;
    for (const key of await redis.keys('bench:jobs:*')) indexBytes += Number(await redis.call('MEMORY', 'USAGE', key));
    const total = Number((/used_memory:(\d+)/.exec(await redis.info('memory')) ?? [])[1] ?? 0);

    const middle = start + Math.floor(jobs / 2) * 60_000;
    const cases: [string, JobQuery][] = [
      ['approvals inbox (state=awaiting_approval, 10 oldest)', { states: ['awaiting_approval'], limit: 50 }],
      ['state=failed, newest 50', { states: ['failed'], limit: 50 }],
      ['state=failed, page at offset 1000', { states: ['failed'], offset: 1000, limit: 50 }],
      ['tool=reboot and state=failed', { tool: 'reboot', states: ['failed'], limit: 50 }],
      ['host=node07, newest 50', { host: 'node07', limit: 50 }],
      ['requester=claude-code and origin=mcp', { requester: 'claude-code', origin: 'mcp', limit: 50 }],
      ['one hour in the middle of the history', { since: middle, until: middle + 3_600_000, limit: 50 }],
      ['no filter, offset 50000', { offset: Math.floor(jobs / 2), limit: 50 }],
    ];
    const rows: { what: string; index_p50_ms: number; index_p95_ms: number; scan_p50_ms: number; ratio: number; total: number; same: boolean }[] = [];
    for (const [what, query] of cases) {
      const indexed = await store.query(query);
      const scanned = await scan(redis, store, k, query);
      const same = JSON.stringify(indexed.ids) === JSON.stringify(scanned);
      const index = await timed(runs, async () => store.records((await store.query(query)).ids));
      const scanRuns = Math.max(2, Math.min(runs, 5));
      const slow = await timed(scanRuns, () => scan(redis, store, k, query));
      const row = { what, index_p50_ms: percentile(index, 50), index_p95_ms: percentile(index, 95), scan_p50_ms: percentile(slow, 50), ratio: 0, total: indexed.total, same };
      row.ratio = row.scan_p50_ms / Math.max(row.index_p50_ms, 0.001);
      rows.push(row);
      log(`${what}: index ${row.index_p50_ms.toFixed(1)} ms, scan ${row.scan_p50_ms.toFixed(0)} ms (${row.ratio.toFixed(0)}×), ${row.total} match, same page: ${same}`);
    }
    const result = {
      jobs,
      runs,
      seed_ms: Math.round(seedMs),
      redis_used_memory_bytes: total,
      index_bytes: indexBytes,
      index_bytes_per_job: Math.round(indexBytes / jobs),
      cases: rows,
      at: new Date().toISOString(),
    };
    const md = [
      `# Job listing at ${jobs.toLocaleString('en')} retained jobs`,
      '',
      `Indexes: ${(indexBytes / 1048576).toFixed(1)} MiB in Redis (${result.index_bytes_per_job} bytes a job; all of Redis ${(total / 1048576).toFixed(0)} MiB). Seeding (create = record + indexes in one MULTI): ${(seedMs / 1000).toFixed(1)} s.`,
      `Each listing reads the page's records too. Scan = walk the all-jobs index newest first, read each record, filter (the old way). p50 of ${runs} runs (scan: up to 5).`,
      '',
      '| listing | index p50 | index p95 | scan p50 | scan / index | matches | same page |',
      '|---|---:|---:|---:|---:|---:|---|',
      ...rows.map((r) => `| ${r.what} | ${r.index_p50_ms.toFixed(1)} ms | ${r.index_p95_ms.toFixed(1)} ms | ${r.scan_p50_ms.toFixed(0)} ms | ${r.ratio.toFixed(0)}× | ${r.total} | ${r.same ? 'yes' : 'NO'} |`),
      '',
      `Measured ${result.at} on a shared 2-core machine (other sessions running).`,
      '',
    ].join('\n');
    await mkdir(RESULTS_DIR, { recursive: true });
    await writeFile(path.join(RESULTS_DIR, 'job-index-latest.json'), JSON.stringify(result, null, 2) + '\n');
    await writeFile(path.join(RESULTS_DIR, 'job-index-latest.md'), md);
    process.stdout.write(md);
    if (rows.some((r) => !r.same)) process.exitCode = 1;
  } finally {
    await redis.quit();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
