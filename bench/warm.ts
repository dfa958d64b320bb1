// `npm run bench:warm`: the warm fan-out figures of issue 15, measured the one way that held on
// this shared 2-core machine: client processes interleaved against one fleet. Each round runs
// one process per shape (raw ssh2 loop, bare executor, whole pipeline; order rotated each
// round), each doing 1 cold + `--warm` warm fan-outs of `ping`/`true`; the first warm fan-outs of
// a process settle the JIT and the pool, so only its last `--keep` count. Medians are over all
// kept fan-outs of a shape. A/B: `--before DIR` adds the same shapes (`--before-shapes`, default
// the pipeline) run from another build's dist, in the same rounds, each build with a Redis of its
// own (an older build may keep its records in another layout).
//
//   node dist/bench/warm.js [--nodes 1000 | --sshd 50] [--rounds 5] [--warm 10] [--keep 7]
//                           [--shapes raw-ssh2,executor,pipeline] [--before DIR] [--before-shapes pipeline]
//                           [--node-helper auto|off] [--cpu-prof DIR (the pipeline's warm fan-outs only)]
//                           [--node-flags '--max-semi-space-size=64' (this build's clients only)]
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startRedis, type PrivateRedis } from '../src/lab/redis.js';
import type { CastellanMeasurement, CastellanShape, CastellanSpec, FanoutSample } from './castellan-client.js';
import { CASTELLAN_WINDOW, CLIENT_SCRIPT } from './fanout.js';
import { startFarmProcess, startSshdFleet, type Fleet } from './fleet.js';
import { runMeasured } from './measure-process.js';
import { ratio, spread, type Spread } from './stats.js';

const RESULTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
const CLIENT_TIMEOUT_MS = 10 * 60_000;
const SHAPES: readonly CastellanShape[] = ['raw-ssh2', 'executor', 'pipeline'];

export interface WarmOptions {
  readonly fleet: { readonly kind: 'farm' | 'sshd'; readonly nodes: number };
  readonly rounds: number;
  readonly warm: number;
  readonly keep: number;
  readonly shapes: readonly CastellanShape[];
  /** Another build's client script (`<dist>/bench/castellan-client.js`), for A/B. */
  readonly beforeScript?: string | undefined;
  readonly beforeShapes: readonly CastellanShape[];
  readonly nodeHelper?: 'auto' | 'off' | undefined;
  /** Node flags for this build's client processes only (e.g. a GC setting, A/B against the same build as --before). */
  readonly nodeFlags: readonly string[];
  /** Write a `--cpu-prof` of every pipeline process here. */
  readonly cpuProfDir?: string | undefined;
}

/** One row of the table: a shape from one build. */
export interface WarmClient {
  readonly label: string;
  readonly shape: CastellanShape;
  readonly script: string;
  readonly build: 'this' | 'before';
}

export interface WarmRow {
  readonly label: string;
  readonly wallMs: Spread;
  readonly cpuMs: Spread;
  /** Median of each round's process (its kept warm fan-outs), in round order. */
  readonly roundMedians: readonly number[];
  /** The same for client CPU. */
  readonly roundCpuMedians: readonly number[];
  /** Peak RSS of each process (MB; process.resourceUsage().maxRSS at its end). */
  readonly rssMb: Spread;
  readonly hostsOkMin: number;
  readonly errors: readonly string[];
}

export function parseWarmOptions(argv: readonly string[]): WarmOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      nodes: { type: 'string' },
      sshd: { type: 'string' },
      rounds: { type: 'string' },
      warm: { type: 'string' },
      keep: { type: 'string' },
      shapes: { type: 'string' },
      before: { type: 'string' },
      'before-shapes': { type: 'string' },
      'node-helper': { type: 'string' },
      'cpu-prof': { type: 'string' },
      'node-flags': { type: 'string' },
    },
  });
  const int = (text: string | undefined, fallback: number, name: string, min: number, max: number): number => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in ${min}..${max}, not ${text}`);
    return n;
  };
  const shapes = (text: string | undefined, fallback: readonly CastellanShape[], name: string): CastellanShape[] => {
    if (text === undefined) return [...fallback];
    return text.split(',').map((s) => {
      const shape = s.trim() as CastellanShape;
      if (!SHAPES.includes(shape)) throw new Error(`--${name}: unknown shape ${s} (known: ${SHAPES.join(', ')})`);
      return shape;
    });
  };
  if (values.nodes !== undefined && values.sshd !== undefined) throw new Error('--nodes (fake farm) and --sshd (real OpenSSH) exclude each other');
  const fleet = values.sshd !== undefined
    ? { kind: 'sshd' as const, nodes: int(values.sshd, 50, 'sshd', 1, 200) }
    : { kind: 'farm' as const, nodes: int(values.nodes, 1000, 'nodes', 1, 5000) };
  const warm = int(values.warm, 10, 'warm', 1, 200);
  const helper = values['node-helper'];
  if (helper !== undefined && helper !== 'auto' && helper !== 'off') throw new Error(`--node-helper must be auto or off, not ${helper}`);
  return {
    fleet,
    rounds: int(values.rounds, 5, 'rounds', 1, 100),
    warm,
    keep: int(values.keep, Math.min(7, warm), 'keep', 1, warm),
    shapes: shapes(values.shapes, SHAPES, 'shapes'),
    beforeScript: values.before === undefined ? undefined : clientScriptOf(values.before),
    beforeShapes: shapes(values['before-shapes'], ['pipeline'], 'before-shapes'),
    nodeHelper: helper,
    nodeFlags: values['node-flags'] === undefined ? [] : values['node-flags'].split(/\s+/).filter((f) => f !== ''),
    cpuProfDir: values['cpu-prof'] === undefined ? undefined : path.resolve(values['cpu-prof']),
  };
}

/** `--before` names a checkout (with its own built dist/) or a dist directory. */
export function clientScriptOf(dir: string): string {
  for (const candidate of [path.join(dir, 'dist', 'bench', 'castellan-client.js'), path.join(dir, 'bench', 'castellan-client.js')]) {
    if (existsSync(candidate)) return path.resolve(candidate);
  }
  throw new Error(`--before ${dir}: no dist/bench/castellan-client.js or bench/castellan-client.js there (build it first: npx tsc -p tsconfig.build.json)`);
}

export function warmClients(options: Pick<WarmOptions, 'shapes' | 'beforeScript' | 'beforeShapes'>): WarmClient[] {
  const label = (shape: CastellanShape): string => (shape === 'raw-ssh2' ? 'raw ssh2 loop' : `Castellan ${shape}`);
  const clients: WarmClient[] = options.shapes.map((shape) => ({ label: label(shape), shape, script: CLIENT_SCRIPT, build: 'this' }));
  if (options.beforeScript) {
    for (const shape of options.beforeShapes) clients.push({ label: `${label(shape)} (before)`, shape, script: options.beforeScript, build: 'before' });
  }
  return clients;
}

/** The kept fan-outs of one process: its last `keep` warm ones. */
export function keptWarm(measurement: CastellanMeasurement, keep: number): FanoutSample[] {
  return measurement.warm.slice(Math.max(0, measurement.warm.length - keep));
}

export function summarize(label: string, perRound: ReadonlyArray<readonly FanoutSample[]>, errors: readonly string[], rssMb: readonly number[] = []): WarmRow {
  const all = perRound.flat();
  return {
    label,
    rssMb: spread(rssMb),
    wallMs: spread(all.map((s) => s.wallMs)),
    cpuMs: spread(all.map((s) => s.cpuMs)),
    roundMedians: perRound.map((samples) => spread(samples.map((s) => s.wallMs)).median),
    roundCpuMedians: perRound.map((samples) => spread(samples.map((s) => s.cpuMs)).median),
    hostsOkMin: all.length ? Math.min(...all.map((s) => s.hostsOk)) : 0,
    errors,
  };
}

const ms = (v: number): string => (Number.isFinite(v) ? `${Math.round(v)}` : '–');
const load = (): string => os.loadavg().map((v) => v.toFixed(1)).join(' / ');

export function renderWarm(title: string, rows: readonly WarmRow[], options: Pick<WarmOptions, 'rounds' | 'warm' | 'keep'> & Partial<Pick<WarmOptions, 'nodeFlags'>>, loadStart: string, loadEnd: string, hosts: number): string {
  const raw = rows.find((r) => r.label === 'raw ssh2 loop');
  const lines = [
    `## ${title}`,
    '',
    `${options.rounds} rounds; in each, one process per row (order rotated), each 1 cold + ${options.warm} warm fan-outs; ` +
      `figures over the last ${options.keep} warm fan-outs of every process (${options.rounds * options.keep} per row).`,
    `Load average (1 / 5 / 15 min): start ${loadStart}, end ${loadEnd}.`,
    ...(options.nodeFlags?.length ? [`This build's client processes ran with node ${options.nodeFlags.join(' ')} (the before build's without).`] : []),
    '',
    '| Row | Wall median (min–max) | Client CPU median | × raw ssh2 | Per-round medians (ms) | Peak RSS (median) | Hosts ok (lowest) |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.label} | ${ms(r.wallMs.median)} ms (${ms(r.wallMs.min)}–${ms(r.wallMs.max)}) | ${ms(r.cpuMs.median)} ms | ${raw ? ratio(r.wallMs.median, raw.wallMs.median).toFixed(2) : '–'} | ${r.roundMedians.map(ms).join(', ')} | ${ms(r.rssMb.median)} MB | ${r.hostsOkMin}/${hosts} |`),
  ];
  // A/B: how often the build under test beat the before build in the same round.
  for (const before of rows.filter((r) => r.label.endsWith(' (before)'))) {
    const after = rows.find((r) => r.label === before.label.replace(/ \(before\)$/, ''));
    if (!after) continue;
    const lower = (mine: readonly number[], theirs: readonly number[]): string => {
      const pairs = mine.map((a, i) => [a, theirs[i] ?? Number.NaN] as const).filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b));
      return `${pairs.filter(([a, b]) => a < b).length} of ${pairs.length} rounds`;
    };
    const change = (a: number, b: number): string => `${(ratio(a, b) * 100 - 100).toFixed(1)} %`;
    lines.push('', `A/B ${after.label}: this build ${ms(after.wallMs.median)} ms vs before ${ms(before.wallMs.median)} ms wall (${change(after.wallMs.median, before.wallMs.median)}, faster in ${lower(after.roundMedians, before.roundMedians)}); ` +
      `client CPU ${ms(after.cpuMs.median)} vs ${ms(before.cpuMs.median)} ms (${change(after.cpuMs.median, before.cpuMs.median)}, lower in ${lower(after.roundCpuMedians, before.roundCpuMedians)}). ` +
      'Under load the wall figures swing with the machine; CPU is the steadier comparison.');
  }
  const errors = rows.flatMap((r) => r.errors.map((e) => `${r.label}: ${e}`));
  if (errors.length) lines.push('', 'Errors:', ...errors.map((e) => `- ${e.slice(0, 300)}`));
  lines.push('', '× raw ssh2 = wall median / the raw ssh2 loop\'s wall median (issue 15 targets, warm: pipeline ≤ 1.5 × at 1000 fake nodes, ≤ 1.1 × at 50 real sshd).');
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const options = parseWarmOptions(process.argv.slice(2));
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const clients = warmClients(options);
  const loadStart = load();
  const startedAt = new Date();
  const work = await mkdtemp(path.join(os.tmpdir(), 'castellan-warm-'));
  const redises = new Map<WarmClient['build'], PrivateRedis>();
  let fleet: Fleet | undefined;
  const cleanup = async (): Promise<void> => {
    await fleet?.stop().catch(() => undefined);
    for (const redis of redises.values()) await redis.stop().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  };
  const interrupted = (): void => {
    log('interrupted: cleaning up');
    void cleanup().then(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  const kept = new Map<string, FanoutSample[][]>(clients.map((c) => [c.label, []]));
  const errors = new Map<string, string[]>(clients.map((c) => [c.label, []]));
  const rss = new Map<string, number[]>(clients.map((c) => [c.label, []]));
  const { kind, nodes } = options.fleet;
  const title = `Warm fan-out, ${kind === 'farm' ? `fake farm N = ${nodes}` : `real sshd N = ${nodes}`}, ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  try {
    for (const build of new Set(clients.map((c) => c.build))) redises.set(build, await startRedis({ dir: path.join(work, `redis-${build}`) }));
    log(`warm: starting ${kind === 'farm' ? `a farm of ${nodes} fake nodes` : `${nodes} sshd`} (load ${loadStart})`);
    fleet = kind === 'farm' ? await startFarmProcess(nodes, path.join(work, 'farm')) : await startSshdFleet(nodes, path.join(work, 'sshd'));
    for (let round = 0; round < options.rounds; round++) {
      for (let k = 0; k < clients.length; k++) {
        const client = clients[(k + round) % clients.length] as WarmClient;
        const spec: CastellanSpec = {
          shape: client.shape,
          fleet,
          window: CASTELLAN_WINDOW,
          warmRuns: options.warm,
          redisUrl: redises.get(client.build)?.url,
          workDir: path.join(work, client.build),
          nodeHelper: options.nodeHelper,
        };
        await mkdir(spec.workDir, { recursive: true });
        // A profile of the pipeline's warm fan-outs only (castellan-client.ts; an older build ignores it).
        const profDir = options.cpuProfDir && client.shape === 'pipeline' ? path.join(options.cpuProfDir, client.build) : undefined;
        if (profDir) await mkdir(profDir, { recursive: true });
        const env = profDir ? { ...process.env, CASTELLAN_BENCH_WARM_PROFILE: profDir } : process.env;
        const flags = client.build === 'this' ? options.nodeFlags : [];
        const run = await runMeasured(process.execPath, [...flags, client.script, JSON.stringify(spec)], { timeoutMs: CLIENT_TIMEOUT_MS, env });
        let measurement: CastellanMeasurement | null = null;
        try {
          measurement = run.code === 0 ? (JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as CastellanMeasurement) : null;
        } catch {
          measurement = null;
        }
        if (!measurement) {
          errors.get(client.label)?.push(`round ${round + 1}: exit ${run.code}${run.timedOut ? ' (timed out)' : ''}: ${run.stderr.trim().slice(-300)}`);
          kept.get(client.label)?.push([]);
          log(`  round ${round + 1}/${options.rounds} ${client.label}: failed`);
          continue;
        }
        // CASTELLAN_BENCH_PHASES=1: the pipeline client's phase line (bench/phases.ts).
        for (const line of run.stderr.split('\n')) if (line.startsWith('phases ')) log(`  round ${round + 1} ${client.label}: ${line}`);
        const samples = keptWarm(measurement, options.keep);
        rss.get(client.label)?.push(measurement.maxRssMb);
        kept.get(client.label)?.push(samples);
        const short = samples.filter((s) => s.hostsOk < s.hosts);
        if (short.length) errors.get(client.label)?.push(`round ${round + 1}: ${short.length} fan-outs with hosts not ok`);
        log(`  round ${round + 1}/${options.rounds} ${client.label}: warm median ${ms(spread(samples.map((s) => s.wallMs)).median)} ms, cold ${ms(measurement.cold.wallMs)} ms, peak RSS ${ms(measurement.maxRssMb)} MB (load ${load()})`);
      }
    }
  } finally {
    process.removeListener('SIGINT', interrupted);
    process.removeListener('SIGTERM', interrupted);
    await cleanup();
  }
  const rows = clients.map((c) => summarize(c.label, kept.get(c.label) ?? [], errors.get(c.label) ?? [], rss.get(c.label) ?? []));
  const markdown = renderWarm(title, rows, options, loadStart, load(), nodes);
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `warm-${kind}${nodes}-${startedAt.toISOString().replace(/[:.]/g, '').slice(0, 15)}.json`);
  await writeFile(file, `${JSON.stringify({ title, options, clients, loadStart, loadEnd: load(), rows, kept: Object.fromEntries(kept) }, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  process.stdout.write(markdown);
  log(`written: ${file}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`bench:warm: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
