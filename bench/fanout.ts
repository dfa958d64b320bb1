// The fan-out comparison: every client configuration runs the same trivial command on the
// same fleet, round-robin (run 1 of every configuration, then run 2 of every configuration…,
// starting each round one configuration further on), so a slow minute on this shared 2-core
// machine spreads over all of them instead of sinking one. Castellan runs in its own process
// per sample, exactly like the OpenSSH tools.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CastellanMeasurement, CastellanShape, CastellanSpec, FanoutSample } from './castellan-client.js';
import { competitorCommand, DEFAULT_WINDOW, hostsOk, type CompetitorName } from './competitors.js';
import type { FleetFiles } from './fleet.js';
import { runMeasured, type ProcessRun } from './measure-process.js';
import { readNodeCpuMs } from './node-cpu.js';
import { spread, type Spread } from './stats.js';

export const CASTELLAN_WINDOW = 64;
export const CLIENT_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'castellan-client.js');

export type ClientConfig =
  | { readonly id: string; readonly kind: 'castellan'; readonly shape: CastellanShape; readonly window: number; readonly hosts?: number; readonly warmRuns?: number; readonly nodeHelper?: 'auto' | 'off' }
  | { readonly id: string; readonly kind: 'competitor'; readonly tool: CompetitorName; readonly window: number };

/** One figure set of one run of one row (a Castellan process yields a cold and a warm row). */
export interface RunSample {
  readonly wallMs: number;
  readonly cpuMs: number;
  /** CPU the fleet's nodes spent (node-cpu.ts); NaN when not measured. */
  readonly nodeCpuMs: number;
  readonly peakRssMb: number;
  readonly hostsOk: number;
  readonly hostP50Ms: number;
  readonly hostP95Ms: number;
  /** Whole process, start to exit (interpreter start-up included). */
  readonly processWallMs: number;
  readonly error?: string | undefined;
}

export interface RowResult {
  readonly id: string;
  readonly label: string;
  readonly client: string;
  readonly window: number;
  readonly defaultWindow: boolean;
  readonly hosts: number;
  readonly wallMs: Spread;
  readonly cpuMs: Spread;
  readonly nodeCpuMs: Spread;
  readonly peakRssMb: Spread;
  readonly hostP50Ms: Spread;
  readonly hostP95Ms: Spread;
  readonly processWallMs: Spread;
  /** Lowest hosts-ok count over the runs (a single bad run shows). */
  readonly hostsOkMin: number;
  readonly runs: number;
  readonly errors: readonly string[];
  readonly samples: readonly RunSample[];
}

export interface FleetResult {
  readonly fleet: string;
  readonly kind: FleetFiles['kind'];
  readonly nodes: number;
  readonly rows: readonly RowResult[];
}

/** Runs a Castellan client: a child process in `npm run bench`, in-process in the smoke test. */
export type CastellanRunner = (spec: CastellanSpec) => Promise<{ measurement: CastellanMeasurement | null; process: ProcessRun }>;

export function childProcessRunner(timeoutMs: number): CastellanRunner {
  return async (spec) => {
    const run = await runMeasured(process.execPath, [CLIENT_SCRIPT, JSON.stringify(spec)], { timeoutMs });
    const line = run.stdout.trim().split('\n').pop() ?? '';
    try {
      return { measurement: run.code === 0 ? (JSON.parse(line) as CastellanMeasurement) : null, process: run };
    } catch {
      return { measurement: null, process: run };
    }
  };
}

export interface FanoutPlan {
  readonly fleet: FleetFiles;
  readonly label: string;
  readonly configs: readonly ClientConfig[];
  readonly runs: number;
  readonly redisUrl?: string | undefined;
  readonly workDir: string;
  readonly runCastellan: CastellanRunner;
  readonly competitorTimeoutMs: number;
  readonly log: (line: string) => void;
}

function tail(text: string, chars = 400): string {
  const t = text.trim();
  return t.length > chars ? `…${t.slice(-chars)}` : t;
}

function castellanRows(config: Extract<ClientConfig, { kind: 'castellan' }>, m: CastellanMeasurement | null, run: ProcessRun): Array<[string, RunSample]> {
  const fail = (why: string): RunSample => ({
    wallMs: Number.NaN, cpuMs: Number.NaN, nodeCpuMs: Number.NaN, peakRssMb: run.peakRssMb, hostsOk: 0, hostP50Ms: Number.NaN, hostP95Ms: Number.NaN, processWallMs: run.wallMs, error: why,
  });
  if (!m) {
    const why = `exit ${run.code}${run.timedOut ? ' (timed out)' : ''}: ${tail(run.stderr)}`;
    return [[`${config.id}:cold`, fail(why)], [`${config.id}:warm`, fail(why)]];
  }
  const row = (s: FanoutSample): RunSample => ({
    wallMs: s.wallMs,
    cpuMs: s.cpuMs,
    nodeCpuMs: s.nodeCpuMs ?? Number.NaN,
    peakRssMb: Math.max(run.peakRssMb, m.maxRssMb),
    hostsOk: s.hostsOk,
    hostP50Ms: s.hostP50Ms,
    hostP95Ms: s.hostP95Ms,
    processWallMs: run.wallMs,
    error: s.hostsOk < s.hosts ? `${s.hosts - s.hostsOk} of ${s.hosts} hosts not ok` : undefined,
  });
  // Several warm runs in one process (the N = 1 overhead): their median is the process's figure.
  const warmRuns = m.warm;
  const warm: FanoutSample = warmRuns.length === 1 && warmRuns[0] ? warmRuns[0] : {
    wallMs: spread(warmRuns.map((w) => w.wallMs)).median,
    cpuMs: spread(warmRuns.map((w) => w.cpuMs)).median,
    nodeCpuMs: spread(warmRuns.map((w) => w.nodeCpuMs ?? Number.NaN)).median,
    hostsOk: Math.min(...warmRuns.map((w) => w.hostsOk)),
    hosts: warmRuns[0]?.hosts ?? 0,
    hostP50Ms: spread(warmRuns.map((w) => w.hostP50Ms)).median,
    hostP95Ms: spread(warmRuns.map((w) => w.hostP95Ms)).median,
  };
  return [[`${config.id}:cold`, row(m.cold)], [`${config.id}:warm`, row(warm)]];
}

async function runOnce(plan: FanoutPlan, config: ClientConfig, runIndex: number): Promise<Array<[string, RunSample]>> {
  if (config.kind === 'castellan') {
    const spec: CastellanSpec = {
      shape: config.shape,
      fleet: plan.fleet,
      window: config.window,
      hosts: config.hosts,
      warmRuns: config.warmRuns,
      redisUrl: plan.redisUrl,
      workDir: plan.workDir,
      nodeHelper: config.nodeHelper,
    };
    const { measurement, process: run } = await plan.runCastellan(spec);
    return castellanRows(config, measurement, run);
  }
  const line = competitorCommand(config.tool, config.window, plan.fleet);
  const node0 = readNodeCpuMs(plan.fleet.nodeCpu);
  const run = await runMeasured(line.command, line.args, { env: line.env, timeoutMs: plan.competitorTimeoutMs });
  const nodeCpuMs = readNodeCpuMs(plan.fleet.nodeCpu) - node0;
  const ok = hostsOk(config.tool, run, plan.fleet);
  const n = plan.fleet.nodes.length;
  const error = ok < n ? `run ${runIndex + 1}: ${n - ok} of ${n} hosts not ok (exit ${run.code}${run.timedOut ? ', timed out' : ''}): ${tail(run.stderr || run.stdout)}` : undefined;
  return [[config.id, { wallMs: run.wallMs, cpuMs: run.cpuMs, nodeCpuMs, peakRssMb: run.peakRssMb, hostsOk: ok, hostP50Ms: Number.NaN, hostP95Ms: Number.NaN, processWallMs: run.wallMs, error }]];
}

export function rowLabel(id: string): { label: string; client: string; window: number; defaultWindow: boolean } {
  // ids: castellan-<shape>-w<window>[-n<hosts>][-wrapper]:<cold|warm>, or <tool>-w<window>
  const m = /^castellan-(executor|pipeline|raw-ssh2)-w(\d+)(?:-n(\d+))?(-wrapper)?:(cold|warm)$/.exec(id);
  if (m) {
    const [, shape, window, hosts, wrapper, temp] = m;
    const client = shape === 'raw-ssh2' ? 'raw ssh2 loop' : `Castellan ${shape}${wrapper ? ' (wrapper, node_helper off)' : ''}`;
    return { label: `${client} ${temp}${hosts ? ` (N = ${hosts})` : ''}`, client, window: Number(window), defaultWindow: Number(window) === CASTELLAN_WINDOW };
  }
  const t = /^(parallel-ssh|clush|pdsh|ansible)-w(\d+)$/.exec(id);
  if (t) {
    const tool = t[1] as CompetitorName;
    const window = Number(t[2]);
    const flag = { 'parallel-ssh': '-p', clush: '-f', pdsh: '-f', ansible: '-f' }[tool];
    const shown = tool === 'pdsh' ? 'pdsh -R ssh' : tool === 'ansible' ? 'ansible -m raw' : tool;
    return { label: `${shown} ${flag} ${window}`, client: tool, window, defaultWindow: DEFAULT_WINDOW[tool] === window };
  }
  return { label: id, client: id, window: Number.NaN, defaultWindow: false };
}

export function castellanConfig(shape: CastellanShape, window = CASTELLAN_WINDOW, hosts?: number, warmRuns?: number, nodeHelper?: 'auto' | 'off'): ClientConfig {
  const suffix = nodeHelper === 'off' ? '-wrapper' : '';
  return { id: `castellan-${shape}-w${window}${hosts ? `-n${hosts}` : ''}${suffix}`, kind: 'castellan', shape, window, hosts, warmRuns, nodeHelper };
}

export function competitorConfig(tool: CompetitorName, window: number): ClientConfig {
  return { id: `${tool}-w${window}`, kind: 'competitor', tool, window };
}

export async function runFanout(plan: FanoutPlan): Promise<FleetResult> {
  const samples = new Map<string, RunSample[]>();
  const configs = plan.configs;
  for (let run = 0; run < plan.runs; run++) {
    for (let k = 0; k < configs.length; k++) {
      const config = configs[(k + run) % configs.length] as ClientConfig;
      const rows = await runOnce(plan, config, run);
      for (const [id, sample] of rows) {
        const list = samples.get(id) ?? [];
        list.push(sample);
        samples.set(id, list);
      }
      const [firstId, first] = rows[0] ?? [];
      if (firstId && first) {
        plan.log(`  ${plan.label} run ${run + 1}/${plan.runs} ${rowLabel(firstId).label}: ${(first.wallMs / 1000).toFixed(2)} s, ${first.hostsOk}/${config.kind === 'castellan' && config.hosts ? config.hosts : plan.fleet.nodes.length} ok${first.error ? ` — ${first.error.slice(0, 160)}` : ''}`);
      }
    }
  }
  const order = configs.flatMap((c) => (c.kind === 'castellan' ? [`${c.id}:cold`, `${c.id}:warm`] : [c.id]));
  const rows = order.map((id): RowResult => {
    const list = samples.get(id) ?? [];
    const meta = rowLabel(id);
    const config = configs.find((c) => c.id === id.split(':')[0]);
    const hosts = config?.kind === 'castellan' && config.hosts ? config.hosts : plan.fleet.nodes.length;
    return {
      id,
      ...meta,
      hosts,
      wallMs: spread(list.map((s) => s.wallMs)),
      cpuMs: spread(list.map((s) => s.cpuMs)),
      nodeCpuMs: spread(list.map((s) => s.nodeCpuMs)),
      peakRssMb: spread(list.map((s) => s.peakRssMb)),
      hostP50Ms: spread(list.map((s) => s.hostP50Ms)),
      hostP95Ms: spread(list.map((s) => s.hostP95Ms)),
      processWallMs: spread(list.map((s) => s.processWallMs)),
      hostsOkMin: list.length ? Math.min(...list.map((s) => s.hostsOk)) : 0,
      runs: list.length,
      errors: list.flatMap((s) => (s.error ? [s.error] : [])),
      samples: list,
    };
  });
  return { fleet: plan.label, kind: plan.fleet.kind, nodes: plan.fleet.nodes.length, rows };
}
