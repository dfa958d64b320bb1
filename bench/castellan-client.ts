// The Castellan side of the fan-out benchmark, run in a process of its own (one per sample,
// like every other client) so its CPU and memory can be measured apart from the farm and from
// the harness. Three shapes:
//   - executor: SshExecutor.fanout, the bare SSH layer;
//   - pipeline: a whole Castellan (runtime + worker + Redis): `ping` submitted as a job,
//     waited for through the job's event stream until the folded result is recorded;
//   - raw-ssh2: ssh2 Clients and nothing else (the floor for the warm figure).
// Each process measures one cold fan-out (no open connection) and then `warmRuns` warm ones
// over the connections the first one left open. Usage (prints one JSON line):
//   node dist/bench/castellan-client.js '<CastellanSpec as JSON>'
import { mkdir, writeFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import ssh2 from 'ssh2';
import { stringify } from 'yaml';
import { loadConfig, type Config } from '../config/load.js';
import { KnownHosts } from '../src/ssh/known-hosts.js';
import { SshExecutor } from '../src/ssh/executor.js';
import type { HostResult, SshTarget } from '../src/ssh/types.js';
import type { FleetFiles } from './fleet.js';
import { readNodeCpuMs } from './node-cpu.js';
import { percentile } from './stats.js';

export type CastellanShape = 'executor' | 'pipeline' | 'raw-ssh2';

export interface CastellanSpec {
  readonly shape: CastellanShape;
  readonly fleet: FleetFiles;
  readonly window: number;
  /** Only the first `hosts` nodes (default: all), e.g. 1 for the per-request overhead. */
  readonly hosts?: number | undefined;
  /** Warm fan-outs measured after the cold one (default 1). */
  readonly warmRuns?: number | undefined;
  /** Pipeline only: the private Redis. */
  readonly redisUrl?: string | undefined;
  /** Where the generated castellan.yaml goes. */
  readonly workDir: string;
  /** `ssh.node_helper` for the executor and pipeline (default: Castellan's default). */
  readonly nodeHelper?: 'auto' | 'off' | undefined;
}

export interface FanoutSample {
  readonly wallMs: number;
  /** user + sys of this process during the fan-out only. */
  readonly cpuMs: number;
  /** CPU the fleet's nodes spent during the fan-out (node-cpu.ts; NaN when not measured). */
  readonly nodeCpuMs: number;
  readonly hostsOk: number;
  readonly hosts: number;
  readonly hostP50Ms: number;
  readonly hostP95Ms: number;
}

export interface CastellanMeasurement {
  readonly shape: CastellanShape;
  readonly cold: FanoutSample;
  readonly warm: readonly FanoutSample[];
  /** process.resourceUsage().maxRSS at the end, MB. */
  readonly maxRssMb: number;
}

const RUN_TIMEOUT_MS = 10 * 60_000;

/** castellan.yaml for the fleet, with Castellan's own defaults for everything not fleet-specific. */
export async function writeBenchConfig(spec: Pick<CastellanSpec, 'fleet' | 'window' | 'redisUrl' | 'workDir' | 'nodeHelper'>): Promise<string> {
  const file = path.join(spec.workDir, `castellan-${spec.fleet.kind}-${spec.fleet.nodes.length}${spec.nodeHelper ? `-${spec.nodeHelper}` : ''}.yaml`);
  const doc = {
    inventory: spec.fleet.inventoryFile,
    known_hosts: spec.fleet.knownHostsFile,
    ssh: { user: spec.fleet.user, private_key_file: spec.fleet.clientKeyFile, window: spec.window, ...(spec.nodeHelper ? { node_helper: spec.nodeHelper } : {}) },
    redis: { url: spec.redisUrl ?? 'redis://127.0.0.1:6379', prefix: 'castellan' },
    auth: {
      roles: { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] },
      local_identity: { subject: 'bench', display_name: 'Benchmark', groups: ['admins'] },
    },
    jobs: { files_root: path.join(spec.workDir, 'files') },
  };
  await writeFile(file, stringify(doc));
  return file;
}

function targetsOf(spec: CastellanSpec, config: Config): SshTarget[] {
  const nodes = spec.fleet.nodes.slice(0, spec.hosts ?? spec.fleet.nodes.length);
  return nodes.map((n) => ({ name: n.name, address: n.address, port: n.port, user: config.ssh.user, privateKeyFile: config.ssh.privateKeyFile }));
}

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

function sampleOf(wallMs: number, cpuMs: number, nodeCpuMs: number, durations: readonly number[], ok: number, hosts: number): FanoutSample {
  return { wallMs, cpuMs, nodeCpuMs, hostsOk: ok, hosts, hostP50Ms: percentile(durations, 50), hostP95Ms: percentile(durations, 95) };
}

let nodeCpuSource: FleetFiles['nodeCpu'];

async function timed(run: () => Promise<{ durations: number[]; ok: number; hosts: number }>): Promise<FanoutSample> {
  const node0 = readNodeCpuMs(nodeCpuSource);
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const { durations, ok, hosts } = await run();
  const wallMs = performance.now() - t0;
  const cpuMs = cpuMsSince(cpu);
  return sampleOf(wallMs, cpuMs, readNodeCpuMs(nodeCpuSource) - node0, durations, ok, hosts);
}

/**
 * The warm fan-outs; with CASTELLAN_BENCH_WARM_PROFILE=<dir> (bench/warm.ts --cpu-prof) a CPU
 * profile of them only goes there: node's own --cpu-prof would mostly show start-up and the cold run.
 */
async function warmRuns(spec: CastellanSpec, once: () => Promise<{ durations: number[]; ok: number; hosts: number }>): Promise<FanoutSample[]> {
  const dir = process.env.CASTELLAN_BENCH_WARM_PROFILE;
  const session = dir ? new (await import('node:inspector/promises')).Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 250 }); // µs: a fan-out is ~150 ms
    await session.post('Profiler.start');
  }
  // CASTELLAN_BENCH_WARM_HEAP=<dir>: a sampling heap profile of the same fan-outs, every sampled
  // allocation counted (collected ones too): where the garbage the GC pays for comes from.
  const heapDir = process.env.CASTELLAN_BENCH_WARM_HEAP;
  const heap = heapDir ? new (await import('node:inspector/promises')).Session() : undefined;
  if (heap) {
    heap.connect();
    await heap.post('HeapProfiler.enable');
    await heap.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  }
  const warm: FanoutSample[] = [];
  for (let i = 0; i < (spec.warmRuns ?? 1); i++) warm.push(await timed(once));
  if (session && dir) {
    const { profile } = await session.post('Profiler.stop');
    await writeFile(path.join(dir, `warm-${spec.shape}-${process.pid}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
  if (heap && heapDir) {
    const { profile } = await heap.post('HeapProfiler.stopSampling');
    await mkdir(heapDir, { recursive: true });
    await writeFile(path.join(heapDir, `warm-${spec.shape}-${process.pid}.heapprofile`), JSON.stringify(profile));
    heap.disconnect();
  }
  return warm;
}

function fromResults(results: readonly HostResult[]): { durations: number[]; ok: number; hosts: number } {
  return { durations: results.map((r) => r.durationMs), ok: results.filter((r) => r.status === 'ok').length, hosts: results.length };
}

async function measureExecutor(spec: CastellanSpec, config: Config): Promise<Omit<CastellanMeasurement, 'maxRssMb'>> {
  const executor = await SshExecutor.fromKnownHostsFile(config.knownHosts, {
    limits: { connectTimeoutMs: config.ssh.connectTimeoutMs, commandTimeoutMs: config.ssh.commandTimeoutMs, maxOutputBytes: config.ssh.maxOutputBytes, killGraceMs: config.ssh.killGraceMs },
    window: spec.window,
    nodeHelper: config.ssh.nodeHelper,
    maxChannelsPerHost: config.ssh.maxChannelsPerHost,
    idleCloseMs: config.ssh.idleCloseMs,
    keepaliveIntervalMs: config.ssh.keepaliveIntervalMs,
  });
  try {
    const targets = targetsOf(spec, config);
    let run = 0;
    const once = async () => fromResults(await executor.fanout(targets, { argv: ['true'], runId: `bench.${process.pid}.${run++}` }, { window: spec.window }));
    const cold = await timed(once);
    const warm = await warmRuns(spec, once);
    return { shape: 'executor', cold, warm };
  } finally {
    await executor.close();
  }
}

async function measurePipeline(spec: CastellanSpec, config: Config): Promise<Omit<CastellanMeasurement, 'maxRssMb'>> {
  // Loaded here, not at the top: the executor and raw shapes must not pay for the whole server in RSS.
  const { createLogger } = await import('../src/log.js');
  const { Redactor } = await import('../queues/redact.js');
  const { createRuntime } = await import('../src/runtime.js');
  const logger = createLogger({ level: config.log.level, redactor: new Redactor(config.secrets.values()) });
  const runtime = await createRuntime(config, { mode: 'all', logger });
  try {
    await runtime.startWorker();
    const requester = runtime.localRequester('cli');
    const names = targetsOf(spec, config).map((t) => t.name);
    // Every node (`all`) or the first one by name: the same hosts the executor shape runs on.
    const targets = names.length === spec.fleet.nodes.length ? 'all' : names.join(',');
    const phases = process.env.CASTELLAN_BENCH_PHASES === '1' ? (await import('./phases.js')).jobPhases(runtime) : undefined;
    const once = async () => {
      const started = Date.now();
      const { job } = await runtime.service.submit({ tool: 'ping', input: { targets }, requester, replyTo: { kind: 'cli' } });
      const done = await runtime.service.wait(job.id, requester, RUN_TIMEOUT_MS);
      await phases?.add(job.id, started, Date.now());
      const hosts = done.result?.hosts ?? [];
      return { durations: hosts.map((h) => h.durationMs), ok: hosts.filter((h) => h.status === 'ok').length, hosts: names.length };
    };
    // "Cold" means no open SSH connection, not a cold server: one inventory-only job first
    // loads the inventory and warms the job path, as in a server that has been up a while.
    const { job: warmup } = await runtime.service.submit({ tool: 'list_nodes', input: { targets: names[0] ?? 'all' }, requester, replyTo: { kind: 'cli' } });
    await runtime.service.wait(warmup.id, requester, RUN_TIMEOUT_MS);
    const cold = await timed(once);
    await phases?.reset();
    const warm = await warmRuns(spec, once);
    await phases?.print();
    return { shape: 'pipeline', cold, warm };
  } finally {
    await runtime.close();
  }
}

// --- raw ssh2: the floor -------------------------------------------------------------------

const { Client } = ssh2;
type RawClient = InstanceType<typeof Client>;

function rawConnect(target: SshTarget, key: Buffer, knownHosts: KnownHosts): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    socket.setNoDelay(true); // as Castellan does: without it each handshake round trip waits on delayed ACKs
    socket.once('error', reject);
    socket.connect({ host: target.address, port: target.port }, () => {
      const client = new Client();
      client.once('ready', () => resolve(client));
      client.once('error', reject);
      client.connect({
        sock: socket,
        username: target.user,
        privateKey: key,
        readyTimeout: 30_000,
        algorithms: { serverHostKey: knownHosts.preferredAlgorithms(target) },
        hostVerifier: (hostKey: Buffer) => knownHosts.verify(target, hostKey).ok,
      });
    });
  });
}

function rawExec(client: RawClient): Promise<boolean> {
  return new Promise((resolve) => {
    client.exec('true', (error, stream) => {
      if (error) return resolve(false);
      let code: number | null = null;
      stream.on('exit', (exitCode: number | null) => (code = exitCode));
      stream.on('data', () => undefined);
      stream.stderr.on('data', () => undefined);
      stream.once('close', () => resolve(code === 0));
    });
  });
}

async function windowed<T, R>(items: readonly T[], window: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(window, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await task(items[i] as T);
    }
  }));
  return out;
}

async function measureRaw(spec: CastellanSpec, config: Config): Promise<Omit<CastellanMeasurement, 'maxRssMb'>> {
  const knownHosts = await KnownHosts.load(config.knownHosts);
  const { readFile } = await import('node:fs/promises');
  const key = await readFile(config.ssh.privateKeyFile ?? spec.fleet.clientKeyFile);
  const targets = targetsOf(spec, config);
  const clients = new Map<string, RawClient>();
  try {
    const hostRun = async (target: SshTarget): Promise<{ ms: number; ok: boolean }> => {
      const t0 = performance.now();
      try {
        let client = clients.get(target.name);
        if (!client) {
          client = await rawConnect(target, key, knownHosts);
          clients.set(target.name, client);
        }
        const ok = await rawExec(client);
        return { ms: performance.now() - t0, ok };
      } catch {
        return { ms: performance.now() - t0, ok: false };
      }
    };
    const once = async () => {
      const results = await windowed(targets, spec.window, hostRun);
      return { durations: results.map((r) => r.ms), ok: results.filter((r) => r.ok).length, hosts: targets.length };
    };
    const cold = await timed(once);
    const warm = await warmRuns(spec, once);
    return { shape: 'raw-ssh2', cold, warm };
  } finally {
    for (const client of clients.values()) client.end();
  }
}

/** One cold and `warmRuns` warm fan-outs of `true` in this process. */
export async function measureCastellan(spec: CastellanSpec): Promise<CastellanMeasurement> {
  nodeCpuSource = spec.fleet.nodeCpu;
  const config = await loadConfig(await writeBenchConfig(spec));
  const measure = spec.shape === 'executor' ? measureExecutor : spec.shape === 'pipeline' ? measurePipeline : measureRaw;
  const result = await measure(spec, config);
  return { ...result, maxRssMb: process.resourceUsage().maxRSS / 1024 };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '') as CastellanSpec;
  const result = await measureCastellan(spec);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`castellan-client: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
