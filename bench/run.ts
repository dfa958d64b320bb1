// `npm run bench`: Castellan against parallel-ssh, clush, pdsh and Ansible, side by side, on
// loopback only, bounded in time (about 15 minutes with the defaults on 2 cores). Installs
// the competitors when missing, starts a private Redis, a fake-node farm per size (in its own
// process) and a real OpenSSH lab, runs every configuration round-robin, then writes
// bench/results/<date>-<time>.{md,json} and bench/results/latest.md and prints the tables.
//
//   node dist/bench/run.js [--quick] [--sizes 100,1000] [--runs 5] [--sshd 50] [--full]
//                          [--no-queue] [--queue-jobs 10000] [--queue-rate 50] [--queue-seconds 10]
//                          [--no-farm-competitors]
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import { startRedis, type PrivateRedis } from '../src/lab/redis.js';
import { writeBenchConfig } from './castellan-client.js';
import { DEFAULT_WINDOW } from './competitors.js';
import { castellanConfig, childProcessRunner, competitorConfig, runFanout, CASTELLAN_WINDOW, type ClientConfig, type FleetResult } from './fanout.js';
import { startFarmProcess, startSshdFleet, type Fleet } from './fleet.js';
import { ensureTools } from './install.js';
import { measureQueue, type QueueResult } from './queue.js';
import { machineInfo, renderMarkdown, verdicts, type BenchReport } from './report.js';

const RESULTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
const CLIENT_TIMEOUT_MS = 10 * 60_000;
const COMPETITOR_TIMEOUT_MS = 5 * 60_000;
/** Warm repetitions inside one process for the N = 1 overhead figure. */
const N1_WARM_RUNS = 20;
/**
 * Warm repetitions inside one process on real sshd: a warm round of 50 hosts takes ~0.1 s, so
 * one sample per process is mostly the machine's noise; the process's figure is their median.
 */
const SSHD_WARM_RUNS = 10;
/** The same on the fake farms: a warm round of 1000 fake nodes takes 0.2-0.6 s and swings as much under load. */
const FARM_WARM_RUNS = 5;

export interface BenchOptions {
  readonly sizes: readonly number[];
  readonly runs: number;
  readonly sshdNodes: number;
  readonly full: boolean;
  /** Competitors on the fake farms too (off: Castellan and raw ssh2 rows only there, for the warm figures). */
  readonly farmCompetitors: boolean;
  readonly queue: boolean;
  readonly queueJobs: number;
  readonly queueRate: number;
  readonly queueSeconds: number;
}

function parseOptions(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      sizes: { type: 'string' },
      runs: { type: 'string' },
      sshd: { type: 'string' },
      full: { type: 'boolean', default: false },
      'no-queue': { type: 'boolean', default: false },
      'no-farm-competitors': { type: 'boolean', default: false },
      'queue-jobs': { type: 'string' },
      'queue-rate': { type: 'string' },
      'queue-seconds': { type: 'string' },
    },
  });
  const quick = values.quick ?? false;
  const int = (text: string | undefined, fallback: number, name: string, min: number, max: number): number => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in ${min}..${max}, not ${text}`);
    return n;
  };
  const sizes = (values.sizes ?? (quick ? '100' : '100,1000')).split(',').map((v) => int(v.trim(), 0, 'sizes', 1, 5000));
  return {
    sizes,
    runs: int(values.runs, quick ? 3 : 5, 'runs', 1, 50),
    sshdNodes: int(values.sshd, quick ? 0 : 50, 'sshd', 0, 200),
    full: values.full ?? false,
    farmCompetitors: !values['no-farm-competitors'],
    queue: !values['no-queue'],
    queueJobs: int(values['queue-jobs'], quick ? 2000 : 10_000, 'queue-jobs', 2, 100_000),
    queueRate: int(values['queue-rate'], 50, 'queue-rate', 1, 2000),
    queueSeconds: int(values['queue-seconds'], quick ? 5 : 10, 'queue-seconds', 1, 120),
  };
}

/** Each tool at its own default window and at 64; Castellan's default is 64. */
export function fanoutConfigs(kind: 'farm' | 'sshd', nodes: number, options: { full: boolean; withSingleHost: boolean; competitors?: boolean }): ClientConfig[] {
  const warm = kind === 'sshd' ? SSHD_WARM_RUNS : FARM_WARM_RUNS;
  const configs: ClientConfig[] = [
    castellanConfig('executor', CASTELLAN_WINDOW, undefined, warm),
    castellanConfig('pipeline', CASTELLAN_WINDOW, undefined, warm),
    castellanConfig('raw-ssh2', CASTELLAN_WINDOW, undefined, warm),
    // The same with the node helper off (every command its own SSH exec under the wrapper), in
    // the same rounds, so the two modes compare under the same load.
    castellanConfig('executor', CASTELLAN_WINDOW, undefined, warm, 'off'),
    castellanConfig('pipeline', CASTELLAN_WINDOW, undefined, warm, 'off'),
  ];
  if (options.withSingleHost) configs.push(castellanConfig('executor', CASTELLAN_WINDOW, 1, N1_WARM_RUNS), castellanConfig('pipeline', CASTELLAN_WINDOW, 1, N1_WARM_RUNS));
  if (options.competitors === false) return configs;
  for (const tool of ['parallel-ssh', 'clush', 'pdsh'] as const) {
    for (const window of new Set([DEFAULT_WINDOW[tool], 64])) configs.push(competitorConfig(tool, window));
  }
  // Ansible needs ~50 s per run at N = 1000: only with --full. Its default of 5 forks only where it ends in seconds.
  if (kind === 'sshd' || nodes <= 100) configs.push(competitorConfig('ansible', DEFAULT_WINDOW.ansible));
  if (kind === 'sshd' || nodes <= 100 || options.full) configs.push(competitorConfig('ansible', 64));
  return configs;
}

function stamp(date: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}-${p(date.getHours())}${p(date.getMinutes())}${p(date.getSeconds())}`;
}

export async function writeReport(report: BenchReport, dir = RESULTS_DIR): Promise<{ markdown: string; files: string[] }> {
  await mkdir(dir, { recursive: true });
  const base = path.join(dir, stamp(new Date(report.startedAt)));
  const markdown = renderMarkdown(report);
  // NaN is not JSON: missing figures become null.
  const json = JSON.stringify(report, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2);
  await writeFile(`${base}.json`, `${json}\n`);
  await writeFile(`${base}.md`, markdown);
  await writeFile(path.join(dir, 'latest.md'), markdown);
  return { markdown, files: [`${base}.md`, `${base}.json`, path.join(dir, 'latest.md')] };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  const installed = await ensureTools(log);
  const work = await mkdtemp(path.join(os.tmpdir(), 'castellan-bench-'));
  let redis: PrivateRedis | undefined;
  let fleet: Fleet | undefined;
  // Ctrl-C must not leave 1000 listeners, 50 sshd or a Redis behind.
  const interrupted = (): void => {
    log('interrupted: cleaning up');
    void (async () => {
      await fleet?.stop().catch(() => undefined);
      await redis?.stop().catch(() => undefined);
      await rm(work, { recursive: true, force: true });
      process.exit(130);
    })();
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  const fleets: FleetResult[] = [];
  let queue: QueueResult | null = null;
  const notes: string[] = [];
  try {
    redis = await startRedis({ dir: path.join(work, 'redis') });
    const runner = childProcessRunner(CLIENT_TIMEOUT_MS);
    const smallest = Math.min(...options.sizes);
    for (const size of options.sizes) {
      log(`fan-out: starting a farm of ${size} fake nodes`);
      fleet = await startFarmProcess(size, path.join(work, `farm-${size}`));
      const current = fleet;
      try {
        fleets.push(await runFanout({
          fleet: current,
          label: `Fake farm, N = ${size}`,
          configs: fanoutConfigs('farm', size, { full: options.full, withSingleHost: size === smallest, competitors: options.farmCompetitors }),
          runs: options.runs,
          redisUrl: redis.url,
          workDir: work,
          runCastellan: runner,
          competitorTimeoutMs: COMPETITOR_TIMEOUT_MS,
          log,
        }));
        if (queue === null && options.queue && size === smallest) {
          log(`queue: ${options.queueJobs} jobs, then ${options.queueRate} jobs/s for ${options.queueSeconds} s`);
          // Its own key prefix on the same Redis: the fan-out jobs above do not count.
          const file = await writeBenchConfig({ fleet: current, window: CASTELLAN_WINDOW, redisUrl: redis.url, workDir: path.join(work) });
          const config = await loadConfig(file);
          queue = await measureQueue({
            config: { ...config, redis: { ...config.redis, prefix: 'castellan-queue-bench' } },
            target: current.nodes[0]?.name ?? 'node001',
            jobs: options.queueJobs,
            ratePerSecond: options.queueRate,
            durationSeconds: options.queueSeconds,
            log,
          });
        }
      } finally {
        await current.stop();
        fleet = undefined;
      }
    }
    if (options.sshdNodes > 0) {
      log(`fan-out: starting a real OpenSSH lab of ${options.sshdNodes} sshd`);
      fleet = await startSshdFleet(options.sshdNodes, path.join(work, 'sshd'));
      const current = fleet;
      try {
        fleets.push(await runFanout({
          fleet: current,
          label: `Real sshd, N = ${options.sshdNodes}`,
          configs: fanoutConfigs('sshd', options.sshdNodes, { full: options.full, withSingleHost: false }),
          runs: options.runs,
          redisUrl: redis.url,
          workDir: work,
          runCastellan: runner,
          competitorTimeoutMs: COMPETITOR_TIMEOUT_MS,
          log,
        }));
      } finally {
        await current.stop();
        fleet = undefined;
      }
    }
    if (!options.sizes.includes(1000)) notes.push('N = 1000 was not run: its targets are "not measured".');
    if (!options.farmCompetitors) notes.push('--no-farm-competitors: the fake farms ran Castellan and the raw ssh2 loop only.');
    notes.push('Castellan runs each command through its node helper (one Perl process per pooled connection: a fork and exec per command, in its own session, with a remote deadline and a lifeline, so a timeout or cancel really stops it); the "(wrapper, node_helper off)" rows run every command as its own SSH exec under the remote wrapper (sh, a forked lifeline and timeout). The other tools run bare `true`. On real sshd the per-command processes cost the node CPU: see "Node CPU per host".');
    notes.push('The fake farm, the clients and the other engineers\' work share the same 2 cores: absolute times vary between runs; ratios within one run are the figures to compare.');
  } finally {
    process.removeListener('SIGINT', interrupted);
    process.removeListener('SIGTERM', interrupted);
    await fleet?.stop().catch(() => undefined);
    await redis?.stop().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
  const report: BenchReport = {
    startedAt,
    finishedAt: new Date().toISOString(),
    machine,
    options: { ...options },
    installed,
    fleets,
    queue,
    verdicts: verdicts(fleets, queue),
    notes,
  };
  const { markdown, files } = await writeReport(report);
  process.stdout.write(`${markdown}\n`);
  log(`written: ${files.join(', ')}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
