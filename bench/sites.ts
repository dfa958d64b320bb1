// Many workers and site workers, measured in one run (ratios within the run are the figures to
// compare; absolute times depend on the machine):
//   1. throughput of trivial jobs (`ping` of one fake node each, over warm connections to 16
//      nodes, a backlog of --jobs) drained
//      by 1, 2 and 4 worker processes on one Redis; enqueue → start p50/p99 under that load;
//   2. one fan-out job (`ping` of every node of a fake-node farm, --nodes in 4 sites):
//      one worker without sites (no sharding) · one worker serving all 4 sites (4 shards in one
//      process: the pipeline overhead of sharding) · 4 site workers, one per site. With
//      --sleep S the job is `exec sleep S` instead (a fake node answers after S seconds, using
//      no CPU), and --window W bounds each fan-out (ssh.window): one job does N / W rounds of
//      S seconds, a site's shard a quarter of them. That is the case site workers exist for
//      (commands that take time, more hosts than one window); `ping` is CPU-bound and on a
//      2-core machine cannot show more than the cores.
// Workers are real `castellan worker` processes, as deployed; the farm runs in its own process.
//
//   npm run build && node dist/bench/sites.js [--nodes 2000] [--jobs 600] [--runs 3]
//        [--sleep 0.5 --window 64] [--no-throughput] [--no-fanout]
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { loadConfig } from '../config/load.js';
import { startWorkerProcess, type WorkerProcess } from '../src/lab/castellan-process.js';
import { startRedis } from '../src/lab/redis.js';
import { createLogger } from '../src/log.js';
import { Redactor } from '../queues/redact.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import { isFinal } from '../queues/states.js';
import { startFarmProcess, type Fleet } from './fleet.js';
import { percentile } from './stats.js';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const SITES = ['site-a', 'site-b', 'site-c', 'site-d'];

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '2000' },
    jobs: { type: 'string', default: '600' },
    runs: { type: 'string', default: '3' },
    /** list_nodes: inventory only (no SSH): the queue's own figure. */
    tool: { type: 'string', default: 'ping' },
    'no-fanout': { type: 'boolean', default: false },
    'no-throughput': { type: 'boolean', default: false },
    /** Fan-out: `exec sleep S` on every node instead of `ping` (seconds; 0: ping). */
    sleep: { type: 'string', default: '0' },
    /** Fan-out: ssh.window of each worker (hosts in flight per job or shard). */
    window: { type: 'string', default: '64' },
  },
});
const TOOL = values.tool === 'list_nodes' ? 'list_nodes' : 'ping';
const NODES = Number(values.nodes);
const JOBS = Number(values.jobs);
const RUNS = Number(values.runs);
const SLEEP = Number(values.sleep);
const WINDOW = Number(values.window);
if (!Number.isFinite(SLEEP) || SLEEP < 0 || SLEEP > 60) throw new Error(`--sleep must be 0..60 seconds, not ${values.sleep}`);
if (!Number.isInteger(WINDOW) || WINDOW < 1 || WINDOW > 1024) throw new Error(`--window must be an integer in 1..1024, not ${values.window}`);
/** The fan-out job: `ping`, or a command that takes SLEEP seconds on every node. */
const FANOUT = SLEEP > 0 ? { tool: 'exec', input: (targets: string) => ({ targets, argv: ['sleep', String(SLEEP)] }), label: `\`exec sleep ${SLEEP}\`` } : { tool: 'ping', input: (targets: string) => ({ targets }), label: '`ping`' };

const log = (line: string): void => {
  process.stderr.write(`[bench:sites] ${line}\n`);
};

async function writeConfig(file: string, fleet: Fleet, redisUrl: string, prefix: string, inventories: string[], window = 64): Promise<void> {
  await writeFile(
    file,
    stringify({
      inventory: inventories,
      known_hosts: fleet.knownHostsFile,
      ssh: { user: fleet.user, private_key_file: fleet.clientKeyFile, connect_timeout: '10s', command_timeout: '2m', window },
      redis: { url: redisUrl, prefix },
      server: { listen: '127.0.0.1:0', public_url: 'http://127.0.0.1:8080' },
      auth: {
        roles: { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] },
        local_identity: { subject: 'bench', display_name: 'Bench', groups: ['admins'] },
      },
      // `exec` (the --sleep fan-out) as a change: run at once from the CLI, with host locks, as
      // a change an operator lowered from destructive would be; no approval round in the figure.
      policy: { tool_risk: { exec: 'change' } },
      jobs: { worker: { concurrency: 8 }, retention: { completed_count: 1000 } },
      log: { level: 'warn' },
    }),
  );
}

async function startWorkers(configFile: string, sites: readonly string[][]): Promise<WorkerProcess[]> {
  const started = await Promise.allSettled(sites.map((s) => startWorkerProcess(configFile, { sites: s })));
  const workers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stopWorkers(workers);
    throw failed.reason;
  }
  return workers;
}

async function stopWorkers(workers: readonly WorkerProcess[]): Promise<void> {
  await Promise.all(workers.map((w) => w.stop(15_000)));
}

async function runtimeFor(configFile: string): Promise<Runtime> {
  const config = await loadConfig(configFile);
  return createRuntime(config, { mode: 'server', logger: createLogger({ level: 'warn', redactor: new Redactor([]) }) });
}

async function waitAll(runtime: Runtime, ids: readonly string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let pending = [...ids];
  while (pending.length > 0) {
    if (Date.now() > deadline) throw new Error(`${pending.length} job(s) not finished within ${timeoutMs} ms`);
    const states = await Promise.all(pending.map((id) => runtime.ctx.store.state(id)));
    pending = pending.filter((_, i) => !isFinal(states[i] ?? 'queued'));
    if (pending.length) await new Promise((r) => setTimeout(r, 250));
  }
}

interface Throughput {
  workers: number;
  jobs: number;
  seconds: number;
  jobsPerSecond: number;
  startP50Ms: number;
  startP99Ms: number;
}

async function throughput(configFile: string, workers: number, fleet: Fleet): Promise<Throughput> {
  const runtime = await runtimeFor(configFile);
  const procs = await startWorkers(configFile, Array.from({ length: workers }, () => []));
  try {
    const requester = runtime.localRequester('cli');
    // Trivial jobs: one of 16 nodes each, over connections the warm-up opened (the figure is
    // the job pipeline's, not SSH handshakes').
    const target = (i: number): string => fleet.nodes[i % Math.min(16, fleet.nodes.length)]!.name;
    const warm = await Promise.all(Array.from({ length: 64 }, (_, i) => runtime.service.submit({ tool: TOOL, input: { targets: target(i) }, requester, replyTo: { kind: 'cli' } })));
    await waitAll(runtime, warm.map((w) => w.job.id), 120_000);
    const t0 = performance.now();
    const submitted = await Promise.all(
      Array.from({ length: JOBS }, (_, i) => runtime.service.submit({ tool: TOOL, input: { targets: target(i) }, requester, replyTo: { kind: 'cli' } })),
    );
    const ids = submitted.map((s) => s.job.id);
    await waitAll(runtime, ids, 600_000);
    const seconds = (performance.now() - t0) / 1000;
    const waits: number[] = [];
    for (const id of ids) {
      const job = await runtime.ctx.queue.getJob(id);
      if (job?.processedOn && job.timestamp) waits.push(job.processedOn - job.timestamp);
    }
    return { workers, jobs: JOBS, seconds, jobsPerSecond: JOBS / seconds, startP50Ms: percentile(waits, 50), startP99Ms: percentile(waits, 99) };
  } finally {
    await stopWorkers(procs);
    await runtime.close();
  }
}

interface FanoutRow {
  label: string;
  runs: number[];
  median: number;
  hostsOk: number;
}

async function fanout(label: string, configFile: string, workerSites: string[][]): Promise<FanoutRow> {
  const runtime = await runtimeFor(configFile);
  const procs = await startWorkers(configFile, workerSites);
  try {
    const requester = runtime.localRequester('cli');
    const once = async (): Promise<{ seconds: number; ok: number }> => {
      const t0 = performance.now();
      const { job } = await runtime.service.submit({ tool: FANOUT.tool, input: FANOUT.input('all'), requester, replyTo: { kind: 'cli' } });
      if (job.state !== 'queued') throw new Error(`the fan-out job is ${job.state}, not queued (an approval required?)`);
      await waitAll(runtime, [job.id], 600_000);
      const seconds = (performance.now() - t0) / 1000;
      const done = await runtime.ctx.store.get(job.id);
      return { seconds, ok: done?.result?.hosts.filter((h) => h.status === 'ok').length ?? 0 };
    };
    log(`${label}: warm-up (connects every node)`);
    await once();
    const runs: number[] = [];
    let hostsOk = NODES;
    for (let i = 0; i < RUNS; i++) {
      const r = await once();
      runs.push(r.seconds);
      hostsOk = Math.min(hostsOk, r.ok);
      log(`${label}: run ${i + 1}: ${r.seconds.toFixed(2)} s, ${r.ok} ok`);
    }
    return { label, runs, median: percentile(runs, 50), hostsOk };
  } finally {
    await stopWorkers(procs);
    await runtime.close();
  }
}

async function main(): Promise<void> {
  const loadStart = os.loadavg();
  const work = await mkdtemp(path.join(os.tmpdir(), 'castellan-bench-sites-'));
  const redis = await startRedis({ dir: path.join(work, 'redis'), appendOnly: false });
  let fleet: Fleet | undefined;
  try {
    log(`starting a farm of ${NODES} fake nodes`);
    fleet = await startFarmProcess(NODES, path.join(work, 'farm'));
    const sitesFile = path.join(work, 'sites.yaml');
    await writeFile(sitesFile, stringify({ all: { hosts: Object.fromEntries(fleet.nodes.map((n, i) => [n.name, { castellan_site: SITES[i % SITES.length] }])) } }));
    await mkdir(path.join(work, 'cfg'), { recursive: true });
    const plain = (prefix: string): string => path.join(work, 'cfg', `${prefix}.yaml`);

    const rows: Throughput[] = [];
    for (const workers of values['no-throughput'] ? [] : [1, 2, 4]) {
      const file = plain(`tp${workers}`);
      await writeConfig(file, fleet, redis.url, `tp${workers}`, [fleet.inventoryFile]);
      log(`throughput: ${JOBS} ${TOOL} jobs, ${workers} worker process(es)`);
      const row = await throughput(file, workers, fleet);
      log(`throughput: ${workers} worker(s): ${row.jobsPerSecond.toFixed(1)} jobs/s, enqueue→start p99 ${row.startP99Ms.toFixed(0)} ms`);
      rows.push(row);
    }

    const fan: FanoutRow[] = [];
    if (!values['no-fanout']) {
    const unsited = plain('fan-plain');
    await writeConfig(unsited, fleet, redis.url, 'fanplain', [fleet.inventoryFile], WINDOW);
    const sited = plain('fan-sites');
    await writeConfig(sited, fleet, redis.url, 'fansites', [fleet.inventoryFile, sitesFile], WINDOW);
    fan.push(await fanout('1 worker, no sites (one job, no shards)', unsited, [[]]));
    fan.push(await fanout('1 worker serving all 4 sites (4 shards, one process)', sited, [SITES]));
    fan.push(await fanout('4 site workers (one per site)', sited, SITES.map((s) => [s])));
    }

    const base = rows[0];
    const loadEnd = os.loadavg();
    const lines = [
      `# Site workers and many workers (${new Date().toISOString()})`,
      '',
      `Machine: ${os.cpus().length} CPU(s), ${os.cpus()[0]?.model ?? ''}; Node ${process.version}. Fake-node farm of ${NODES} nodes in its own process; one private Redis; workers are separate \`castellan worker\` processes (concurrency 8). Load average (1 min) ${loadStart[0]?.toFixed(1)} at the start, ${loadEnd[0]?.toFixed(1)} at the end (5 min: ${loadEnd[1]?.toFixed(1)}); the machine is shared.`,
      '',
      ...(base
        ? [
            `## Throughput of trivial jobs (${JOBS} \`${TOOL}\` jobs of one node each${TOOL === 'ping' ? ', 16 nodes over warm connections' : ' (inventory only, no SSH)'}, submitted at once)`,
            '',
            '| Worker processes | Drain time | Jobs/s | × 1 worker | Enqueue → start p50 | p99 |',
            '|---|---|---|---|---|---|',
            ...rows.map((r) => `| ${r.workers} | ${r.seconds.toFixed(2)} s | ${r.jobsPerSecond.toFixed(1)} | ${(r.jobsPerSecond / base.jobsPerSecond).toFixed(2)} | ${r.startP50Ms.toFixed(0)} ms | ${r.startP99Ms.toFixed(0)} ms |`),
            '',
          ]
        : []),
      ...(fan.length
        ? [
            `## One fan-out job to ${NODES} nodes in ${SITES.length} sites (${FANOUT.label} of all, ssh.window ${WINDOW} per job or shard, warm pools, median of ${RUNS})`,
            '',
            ...(SLEEP > 0 ? [`Each node answers after ${SLEEP} s (the fake farm's \`sleep\`, no CPU): one job takes at least ⌈${NODES} / ${WINDOW}⌉ = ${Math.ceil(NODES / WINDOW)} rounds (${(Math.ceil(NODES / WINDOW) * SLEEP).toFixed(1)} s), a site's shard ⌈${NODES / SITES.length} / ${WINDOW}⌉ = ${Math.ceil(NODES / SITES.length / WINDOW)} (${(Math.ceil(NODES / SITES.length / WINDOW) * SLEEP).toFixed(1)} s).`, ''] : []),
            '| Configuration | Median | Runs | Hosts ok | × 1 worker, no sites |',
            '|---|---|---|---|---|',
            ...fan.map((f) => `| ${f.label} | ${f.median.toFixed(2)} s | ${f.runs.map((r) => r.toFixed(2)).join(', ')} | ${f.hostsOk} | ${(fan[0]!.median / f.median).toFixed(2)} |`),
            '',
          ]
        : []),
      !fan.length
        ? '"× 1 worker" above 1 means faster. On a 2-core machine the submitter, Redis, the farm and the workers share the CPUs: more processes add throughput only as far as there is idle CPU. The enqueue → start figures are the queue wait of a backlog submitted at once, not a latency under steady load.'
        : SLEEP > 0
        ? '"× 1 worker" above 1 means faster. Each shard fans out with its own window, so the second row (four shards in one process) already does a quarter of the rounds per site; the third runs each shard in a process of its own, as site workers next to their nodes would. On one machine the processes share the same CPUs: what the rows show is the parallelism of shards beyond one job\'s window, not more CPU.'
        : '"× 1 worker" above 1 means faster. The second row against the first is the pipeline overhead of sharding (a flow, a barrier per batch, the merge); the third adds the parallelism of one process per site, which only pays where there are cores (or machines) to run them: here the farm, Redis and the workers share the same CPUs.',
      '',
    ];
    const report = lines.join('\n');
    await mkdir(path.join(REPO, 'bench', 'results'), { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
    await writeFile(path.join(REPO, 'bench', 'results', `sites-${stamp}.md`), report);
    await writeFile(path.join(REPO, 'bench', 'results', `sites-${stamp}.json`), JSON.stringify({ nodes: NODES, jobs: JOBS, runs: RUNS, sleepSeconds: SLEEP, window: WINDOW, loadStart, loadEnd, throughput: rows, fanout: fan }, null, 2));
    process.stdout.write(`${report}\n`);
  } finally {
    await fleet?.stop();
    await redis.stop();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:sites failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
