// Smoke run of the benchmark harness so it cannot rot: 5 fake nodes, one run, Castellan
// (executor, pipeline, raw ssh2) and parallel-ssh through the fan-out harness, then the queue
// harness, then the report. Only that results come out and hosts-ok counts are right: timing
// goals live in `npm run bench`, never in tests.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { measureCastellan, writeBenchConfig } from '../../bench/castellan-client.js';
import { hostsOk } from '../../bench/competitors.js';
import { castellanConfig, competitorConfig, runFanout, type CastellanRunner, type FleetResult } from '../../bench/fanout.js';
import { describeFarm, type Fleet } from '../../bench/fleet.js';
import { missingPackages } from '../../bench/install.js';
import { measureQueue, type QueueResult } from '../../bench/queue.js';
import { machineInfo, renderMarkdown, verdicts } from '../../bench/report.js';
import { writeReport } from '../../bench/run.js';
import { startFarm } from '../../src/lab/fake-farm.js';
import { useRedis } from '../support/redis.js';

const NODES = 5;
const redis = useRedis();
let dir: string;
let fleet: Fleet;

/** In-process Castellan client (the bench runs it as a child process of its own). */
const inProcess: CastellanRunner = async (spec) => {
  const t0 = performance.now();
  const measurement = await measureCastellan(spec);
  return {
    measurement,
    process: { code: 0, wallMs: performance.now() - t0, cpuMs: measurement.cold.cpuMs, peakRssMb: measurement.maxRssMb, stdout: '', stderr: '', timedOut: false },
  };
};

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-bench-smoke-'));
  fleet = await describeFarm(await startFarm({ nodes: NODES, dir: path.join(dir, 'farm'), recordExecs: false }));
});

afterAll(async () => {
  await fleet?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('benchmark smoke run', () => {
  let fanout: FleetResult;
  let queue: QueueResult;

  it('counts hosts ok from each tool\'s own lines, not from login-shell noise', () => {
    const n = fleet.nodes.length;
    const [a, b] = [fleet.nodes[0]?.address ?? '', fleet.nodes[1]?.address ?? ''];
    const noise = `${a}: rm: cannot remove '/root/.pyenv/shims/tmp': No such file or directory\n`;
    expect(hostsOk('pdsh', { code: 0, stdout: '', stderr: noise, timedOut: false }, fleet)).toBe(n);
    expect(hostsOk('pdsh', { code: 1, stdout: '', stderr: `${noise}pdsh@box: ${b}: ssh exited with exit code 255\n`, timedOut: false }, fleet)).toBe(n - 1);
    expect(hostsOk('clush', { code: 255, stdout: '', stderr: `clush: ${a}: exited with exit code 255\n`, timedOut: false }, fleet)).toBe(n - 1);
    expect(hostsOk('clush', { code: 1, stdout: '', stderr: 'clush: something odd\n', timedOut: false }, fleet)).toBe(0);
    expect(hostsOk('parallel-ssh', { code: 0, stdout: `[1] 08:36:20 [SUCCESS] ${a}:22\n[2] 08:36:20 [FAILURE] ${b}:22 Exited with error code 255\n`, stderr: '', timedOut: false }, fleet)).toBe(1);
    expect(hostsOk('ansible', { code: 0, stdout: 'node01 | CHANGED | rc=0 >>\n\nnode02 | UNREACHABLE! => {\n', stderr: '', timedOut: false }, fleet)).toBe(1);
  });

  it('has the competitor it compares with', () => {
    expect(missingPackages()).not.toContain('pssh');
  });

  it('fans out with Castellan and parallel-ssh and counts every host ok', async () => {
    fanout = await runFanout({
      fleet,
      label: 'smoke',
      configs: [castellanConfig('executor'), castellanConfig('pipeline'), castellanConfig('raw-ssh2'), castellanConfig('pipeline', 64, 1, 2), competitorConfig('parallel-ssh', 32)],
      runs: 1,
      redisUrl: redis.url,
      workDir: dir,
      runCastellan: inProcess,
      competitorTimeoutMs: 60_000,
      log: () => undefined,
    });
    const byId = new Map(fanout.rows.map((r) => [r.id, r]));
    for (const id of ['castellan-executor-w64:cold', 'castellan-executor-w64:warm', 'castellan-pipeline-w64:cold', 'castellan-pipeline-w64:warm', 'castellan-raw-ssh2-w64:warm', 'parallel-ssh-w32']) {
      const row = byId.get(id);
      expect(row, id).toBeDefined();
      expect(row?.runs, id).toBe(1);
      expect(row?.errors, id).toEqual([]);
      expect(row?.hostsOkMin, id).toBe(NODES);
      expect(row?.wallMs.median, id).toBeGreaterThan(0);
    }
    // The single-host probe reaches exactly one host, and per-host timings come from HostResult.
    expect(byId.get('castellan-pipeline-w64-n1:warm')?.hostsOkMin).toBe(1);
    expect(byId.get('castellan-pipeline-w64-n1:warm')?.hosts).toBe(1);
    expect(Number.isFinite(byId.get('castellan-executor-w64:cold')?.hostP95Ms.median)).toBe(true);
    expect(byId.get('parallel-ssh-w32')?.cpuMs.median).toBeGreaterThan(0);
  });

  it('measures the queue: every job succeeds and the figures are filled in', async () => {
    const config = await loadConfig(await writeBenchConfig({ fleet, window: 64, redisUrl: redis.url, workDir: dir }));
    queue = await measureQueue({
      config: { ...config, redis: { ...config.redis, prefix: 'castellan-queue-smoke' } },
      target: fleet.nodes[0]?.name ?? 'node01',
      jobs: 20,
      ratePerSecond: 20,
      durationSeconds: 1,
    });
    expect(queue.throughput.jobs).toBe(20);
    expect(queue.throughput.failed).toBe(0);
    expect(queue.latency.succeeded).toBe(20);
    expect(queue.latency.enqueueToStartMs.n).toBe(20);
    expect(queue.latency.requestToFirstProgressMs.n).toBe(20);
    expect(queue.memory.afterAllBytes).toBeGreaterThan(0);
    expect(queue.memory.retainedBullmqJobs).toBeGreaterThan(0);
  });

  it('writes the report with a verdict per target', async () => {
    const report = {
      startedAt: new Date().toISOString(),
      finishedAt: new Date().toISOString(),
      machine: machineInfo(),
      options: { smoke: true },
      installed: [],
      fleets: [fanout],
      queue,
      verdicts: verdicts([fanout], queue),
      notes: [],
    };
    expect(report.verdicts.map((v) => v.status)).toContain('not measured'); // no N = 1000 here
    expect(report.verdicts.find((v) => v.target.includes('≤ 15 ms at N = 1'))?.status).toBe('not measured'); // no executor N = 1 row
    const { files } = await writeReport(report, path.join(dir, 'results'));
    for (const file of files) expect(existsSync(file), file).toBe(true);
    const markdown = await readFile(files[0] as string, 'utf8');
    expect(markdown).toBe(renderMarkdown(report));
    expect(markdown).toContain('| parallel-ssh -p 32 | 32 (default) |');
    expect(markdown).toContain(`${NODES}/${NODES}`);
    const json = JSON.parse(await readFile(files[1] as string, 'utf8'));
    expect(json.fleets[0].rows.length).toBe(fanout.rows.length);
  });
});
