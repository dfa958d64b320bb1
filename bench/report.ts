// Turns one benchmark run into the report: a JSON document with every figure, and Markdown
// tables with each figure's ratio to the best competitor in the same run, plus a verdict per
// target of issues 5 and 15 (met / missed / not measured, with the numbers behind it).
import os from 'node:os';
import type { FleetResult, RowResult } from './fanout.js';
import type { QueueResult } from './queue.js';
import { ratio, type Spread } from './stats.js';

export interface Verdict {
  readonly target: string;
  readonly status: 'met' | 'missed' | 'not measured';
  readonly detail: string;
}

export interface BenchReport {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly machine: { readonly cpus: number; readonly model: string; readonly memoryGiB: number; readonly node: string; readonly loadAverageAtStart: readonly number[] };
  readonly options: Record<string, unknown>;
  readonly installed: readonly string[];
  readonly fleets: readonly FleetResult[];
  readonly queue: QueueResult | null;
  readonly verdicts: readonly Verdict[];
  readonly notes: readonly string[];
}

const COMPETITORS = new Set(['parallel-ssh', 'clush', 'pdsh', 'ansible']);
const OPENSSH_FANOUT = new Set(['parallel-ssh', 'clush', 'pdsh']);

export function machineInfo(): BenchReport['machine'] {
  const cpus = os.cpus();
  return { cpus: cpus.length, model: cpus[0]?.model ?? 'unknown', memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100) };
}

/** A row counts as a competitor's result only if every run reached every host. */
function complete(row: RowResult): boolean {
  return row.runs > 0 && row.hostsOkMin === row.hosts && Number.isFinite(row.wallMs.median);
}

function best(rows: readonly RowResult[], pick: (r: RowResult) => number, among: ReadonlySet<string>): RowResult | undefined {
  return rows.filter((r) => among.has(r.client) && complete(r)).sort((a, b) => pick(a) - pick(b))[0];
}

function find(fleets: readonly FleetResult[], kind: 'farm' | 'sshd', nodes: number, id: string): RowResult | undefined {
  return fleets.find((f) => f.kind === kind && f.nodes === nodes)?.rows.find((r) => r.id === id);
}

const s = (ms: number): string => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : '—');
const msf = (ms: number): string => (Number.isFinite(ms) ? `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms` : '—');
const x = (r: number): string => (Number.isFinite(r) ? `${r.toFixed(2)}×` : '—');
const mb = (v: number): string => (Number.isFinite(v) ? `${Math.round(v)} MB` : '—');
const range = (sp: Spread, f: (v: number) => string): string => (sp.n > 1 ? `${f(sp.median)} (${f(sp.min)}–${f(sp.max)})` : f(sp.median));

export function verdicts(fleets: readonly FleetResult[], queue: QueueResult | null): Verdict[] {
  const out: Verdict[] = [];
  const farm1000 = fleets.find((f) => f.kind === 'farm' && f.nodes === 1000);
  const notMeasured = (target: string, why: string): Verdict => ({ target, status: 'not measured', detail: why });
  const judge = (target: string, ok: boolean, detail: string): Verdict => ({ target, status: ok ? 'met' : 'missed', detail });

  const pipeCold = find(fleets, 'farm', 1000, 'castellan-pipeline-w64:cold');
  const pipeWarm = find(fleets, 'farm', 1000, 'castellan-pipeline-w64:warm');
  const execCold = find(fleets, 'farm', 1000, 'castellan-executor-w64:cold');
  const execWarm = find(fleets, 'farm', 1000, 'castellan-executor-w64:warm');
  const rawWarm = find(fleets, 'farm', 1000, 'castellan-raw-ssh2-w64:warm');

  let t = 'N = 1000 fake nodes, full pipeline, cold ≤ 0.4 × best of parallel-ssh / clush / pdsh';
  const bestOpenssh = farm1000 ? best(farm1000.rows, (r) => r.wallMs.median, OPENSSH_FANOUT) : undefined;
  if (!pipeCold || !bestOpenssh) out.push(notMeasured(t, farm1000 ? 'no complete competitor or pipeline run' : 'N = 1000 not run'));
  else {
    const r = ratio(pipeCold.wallMs.median, bestOpenssh.wallMs.median);
    out.push(judge(t, r <= 0.4 && complete(pipeCold), `${s(pipeCold.wallMs.median)} vs ${bestOpenssh.label} ${s(bestOpenssh.wallMs.median)} = ${x(r)}; hosts ok ${pipeCold.hostsOkMin}/${pipeCold.hosts}`));
  }

  t = 'Same, warm pool ≤ 1.5 × a raw ssh2 loop over open connections';
  if (!pipeWarm || !rawWarm) out.push(notMeasured(t, 'N = 1000 not run'));
  else {
    const r = ratio(pipeWarm.wallMs.median, rawWarm.wallMs.median);
    const re = execWarm ? ratio(execWarm.wallMs.median, rawWarm.wallMs.median) : Number.NaN;
    out.push(judge(t, r <= 1.5 && complete(pipeWarm), `pipeline ${msf(pipeWarm.wallMs.median)} vs raw ssh2 ${msf(rawWarm.wallMs.median)} = ${x(r)}; bare executor ${msf(execWarm?.wallMs.median ?? Number.NaN)} = ${x(re)}`));
  }

  t = 'Pipeline overhead over the bare executor ≤ 10 % at N = 1000';
  if (!pipeCold || !execCold) out.push(notMeasured(t, 'N = 1000 not run'));
  else {
    const cold = ratio(pipeCold.wallMs.median, execCold.wallMs.median) - 1;
    const warm = pipeWarm && execWarm ? ratio(pipeWarm.wallMs.median, execWarm.wallMs.median) - 1 : Number.NaN;
    const warmMs = pipeWarm && execWarm ? pipeWarm.wallMs.median - execWarm.wallMs.median : Number.NaN;
    out.push(judge(t, cold <= 0.1, `cold: ${s(pipeCold.wallMs.median)} vs ${s(execCold.wallMs.median)} = ${(cold * 100).toFixed(1)} %; warm: ${msf(pipeWarm?.wallMs.median ?? Number.NaN)} vs ${msf(execWarm?.wallMs.median ?? Number.NaN)} = ${(warm * 100).toFixed(1)} % (+${msf(warmMs)})`));
  }

  t = 'Pipeline overhead over the bare executor ≤ 15 ms at N = 1';
  const fleetWithOne = fleets.find((f) => f.rows.some((r) => r.id === 'castellan-pipeline-w64-n1:warm'));
  const p1 = fleetWithOne?.rows.find((r) => r.id === 'castellan-pipeline-w64-n1:warm');
  const e1 = fleetWithOne?.rows.find((r) => r.id === 'castellan-executor-w64-n1:warm');
  if (!p1 || !e1) out.push(notMeasured(t, 'N = 1 rows not run'));
  else {
    const d = p1.wallMs.median - e1.wallMs.median;
    const p1c = fleetWithOne?.rows.find((r) => r.id === 'castellan-pipeline-w64-n1:cold');
    const e1c = fleetWithOne?.rows.find((r) => r.id === 'castellan-executor-w64-n1:cold');
    const dc = p1c && e1c ? p1c.wallMs.median - e1c.wallMs.median : Number.NaN;
    out.push(judge(t, d <= 15, `warm (pooled connection): ${msf(p1.wallMs.median)} vs ${msf(e1.wallMs.median)} = +${msf(d)}; cold: +${msf(dc)}`));
  }

  t = 'Client cost ≤ 4 ms CPU per new connection (N = 1000, executor cold)';
  if (!execCold) out.push(notMeasured(t, 'N = 1000 not run'));
  else {
    const per = execCold.cpuMs.median / execCold.hosts;
    const pipePer = pipeCold ? pipeCold.cpuMs.median / pipeCold.hosts : Number.NaN;
    out.push(judge(t, per <= 4, `executor ${per.toFixed(2)} ms/connection (${s(execCold.cpuMs.median)} CPU for ${execCold.hosts}); full pipeline ${pipePer.toFixed(2)} ms/host`));
  }

  t = 'Peak RSS ≤ 200 MB at N = 1000 (full pipeline process)';
  if (!pipeCold) out.push(notMeasured(t, 'N = 1000 not run'));
  else out.push(judge(t, pipeCold.peakRssMb.median <= 200, `${mb(pipeCold.peakRssMb.median)} (max ${mb(pipeCold.peakRssMb.max)}); executor alone ${mb(execCold?.peakRssMb.median ?? Number.NaN)}`));

  t = 'Real sshd, N = 50: no slower than parallel-ssh -p 64 on the same fleet';
  const sshd = fleets.find((f) => f.kind === 'sshd');
  const sshdPipe = sshd?.rows.find((r) => r.id === 'castellan-pipeline-w64:cold');
  const sshdExec = sshd?.rows.find((r) => r.id === 'castellan-executor-w64:cold');
  const sshdPssh = sshd?.rows.find((r) => r.id === 'parallel-ssh-w64');
  if (!sshd || !sshdPipe || !sshdPssh) out.push(notMeasured(t, 'real-sshd fleet not run'));
  else {
    const r = ratio(sshdPipe.wallMs.median, sshdPssh.wallMs.median);
    out.push(judge(t, r <= 1 && complete(sshdPipe), `pipeline cold ${s(sshdPipe.wallMs.median)} (executor ${s(sshdExec?.wallMs.median ?? Number.NaN)}) vs parallel-ssh -p 64 ${s(sshdPssh.wallMs.median)} = ${x(r)}; hosts ok ${sshdPipe.hostsOkMin}/${sshdPipe.hosts}`));
  }

  // Issue 15: what operators have (real sshd, often on Raspberry Pis where every process costs).
  const sshdRaw = sshd?.rows.find((r) => r.id === 'castellan-raw-ssh2-w64:warm');
  const sshdPipeWarm = sshd?.rows.find((r) => r.id === 'castellan-pipeline-w64:warm');
  const sshdExecWarm = sshd?.rows.find((r) => r.id === 'castellan-executor-w64:warm');
  const sshdBest = sshd ? best(sshd.rows, (r) => r.wallMs.median, COMPETITORS) : undefined;
  const perHost = (row: RowResult | undefined): string => (row ? msf(row.nodeCpuMs.median / row.hosts) : '—');
  t = `Real sshd, N = ${sshd?.nodes ?? 50}: Castellan cold ≤ 0.8 × the best competitor`;
  if (!sshd || !sshdPipe || !sshdBest) out.push(notMeasured(t, 'real-sshd fleet not run'));
  else {
    const r = ratio(sshdPipe.wallMs.median, sshdBest.wallMs.median);
    const re = ratio(sshdExec?.wallMs.median ?? Number.NaN, sshdBest.wallMs.median);
    out.push(judge(t, r <= 0.8 && complete(sshdPipe), `pipeline cold ${s(sshdPipe.wallMs.median)} vs ${sshdBest.label} ${s(sshdBest.wallMs.median)} = ${x(r)} (executor ${s(sshdExec?.wallMs.median ?? Number.NaN)} = ${x(re)}); node CPU per host: Castellan ${perHost(sshdPipe)}, ${sshdBest.label} ${perHost(sshdBest)}`));
  }
  t = `Real sshd, N = ${sshd?.nodes ?? 50}: Castellan warm ≤ 1.1 × the raw ssh2 floor`;
  if (!sshd || !sshdPipeWarm || !sshdRaw) out.push(notMeasured(t, 'real-sshd fleet not run'));
  else {
    const r = ratio(sshdPipeWarm.wallMs.median, sshdRaw.wallMs.median);
    const re = ratio(sshdExecWarm?.wallMs.median ?? Number.NaN, sshdRaw.wallMs.median);
    out.push(judge(t, r <= 1.1 && complete(sshdPipeWarm), `pipeline warm ${s(sshdPipeWarm.wallMs.median)} vs raw ssh2 warm ${s(sshdRaw.wallMs.median)} = ${x(r)} (executor ${s(sshdExecWarm?.wallMs.median ?? Number.NaN)} = ${x(re)}); node CPU per command: Castellan ${perHost(sshdExecWarm)}, bare \`true\` ${perHost(sshdRaw)}`));
  }

  if (!queue) {
    for (const q of ['Enqueue → start p99 ≤ 10 ms', 'Request → first progress ≤ 300 ms p95', '≥ 1000 trivial jobs/s on one worker', 'Redis memory flat under retention']) out.push(notMeasured(q, 'queue benchmark not run'));
  } else {
    const l = queue.latency;
    out.push(judge('Enqueue → start p99 ≤ 10 ms', l.enqueueToStartMs.p99 <= 10, `p50 ${msf(l.enqueueToStartMs.p50)}, p99 ${msf(l.enqueueToStartMs.p99)} at ${l.offeredPerSecond} jobs/s for ${l.durationSeconds} s (${l.enqueueToStartMs.n} jobs)`));
    out.push(judge('Request → first progress ≤ 300 ms p95', l.requestToFirstProgressMs.p95 <= 300, `p50 ${msf(l.requestToFirstProgressMs.p50)}, p95 ${msf(l.requestToFirstProgressMs.p95)} (first worker event: state running)`));
    out.push(judge('≥ 1000 trivial jobs/s on one worker', queue.throughput.jobsPerSecond >= 1000, `${Math.round(queue.throughput.jobsPerSecond)} jobs/s (${queue.throughput.jobs} ${queue.tool} jobs in ${queue.throughput.seconds.toFixed(2)} s, concurrency ${queue.concurrency})`));
    const m = queue.memory;
    const flat = m.secondHalfBytesPerJob <= 100;
    out.push(judge('Redis memory flat under retention', flat, `used_memory ${mb(m.beforeBytes / 2 ** 20)} → ${mb(m.afterHalfBytes / 2 ** 20)} → ${mb(m.afterAllBytes / 2 ** 20)} over ${queue.throughput.jobs} jobs (${Math.round(m.secondHalfBytesPerJob)} B/job in the second half); retained: ${m.retainedBullmqJobs} BullMQ jobs, ${m.retainedJobRecords} Castellan job records. Policy: ${m.policy}`));
  }
  return out;
}

function fleetTable(fleet: FleetResult): string {
  const bestWall = best(fleet.rows, (r) => r.wallMs.median, COMPETITORS);
  const bestCpu = best(fleet.rows, (r) => r.cpuMs.median, COMPETITORS);
  const bestRss = best(fleet.rows, (r) => r.peakRssMb.median, COMPETITORS);
  const lines = [
    `### ${fleet.fleet} (${fleet.nodes} ${fleet.kind === 'farm' ? 'fake ssh2 nodes, farm in its own process' : 'real OpenSSH sshd nodes'})`,
    '',
    `Best competitor: wall ${bestWall ? `${bestWall.label} ${s(bestWall.wallMs.median)}` : '—'}; CPU ${bestCpu ? `${bestCpu.label} ${s(bestCpu.cpuMs.median)}` : '—'}; RSS ${bestRss ? `${bestRss.label} ${mb(bestRss.peakRssMb.median)}` : '—'}.`,
    '',
    '| Client | Window | Wall, median (min–max) | × best | Per-host p50 / p95 | Client CPU | × best | Node CPU per host | Peak RSS | × best | Hosts ok | Runs |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of fleet.rows) {
    // Ratios only against the same host count (the N = 1 rows are an overhead probe).
    const rel = (value: number, against: number | undefined): string => (r.hosts === fleet.nodes ? x(ratio(value, against ?? Number.NaN)) : '—');
    const window = `${r.window}${r.defaultWindow ? ' (default)' : ''}`;
    const perHost = Number.isFinite(r.hostP50Ms.median) ? `${msf(r.hostP50Ms.median)} / ${msf(r.hostP95Ms.median)}` : 'n/a';
    lines.push(`| ${r.label} | ${window} | ${range(r.wallMs, s)} | ${rel(r.wallMs.median, bestWall?.wallMs.median)} | ${perHost} | ${s(r.cpuMs.median)} | ${rel(r.cpuMs.median, bestCpu?.cpuMs.median)} | ${msf(r.nodeCpuMs.median / r.hosts)} | ${mb(r.peakRssMb.median)} | ${rel(r.peakRssMb.median, bestRss?.peakRssMb.median)} | ${r.hostsOkMin}/${r.hosts} | ${r.runs} |`);
  }
  const errors = fleet.rows.flatMap((r) => r.errors.slice(0, 3).map((e) => `- ${r.label}: ${e.replace(/\s+/g, ' ').slice(0, 300)}`));
  if (errors.length) lines.push('', 'Failures seen (first 3 per row):', '', ...errors);
  return lines.join('\n');
}

function queueTable(q: QueueResult): string {
  const l = q.latency;
  const m = q.memory;
  return [
    `### Queue (tool \`${q.tool}\` on one inventory host: no SSH, only Castellan + BullMQ + Redis; one worker process, concurrency ${q.concurrency})`,
    '',
    '| Figure | Value |',
    '|---|---|',
    `| Enqueue → worker start (BullMQ timestamp → processedOn) at ${l.offeredPerSecond} jobs/s for ${l.durationSeconds} s | p50 ${msf(l.enqueueToStartMs.p50)}, p95 ${msf(l.enqueueToStartMs.p95)}, p99 ${msf(l.enqueueToStartMs.p99)}, max ${msf(l.enqueueToStartMs.max)} (${l.enqueueToStartMs.n} jobs, ${l.succeeded} succeeded) |`,
    `| Request → first progress event from the worker | p50 ${msf(l.requestToFirstProgressMs.p50)}, p95 ${msf(l.requestToFirstProgressMs.p95)}, max ${msf(l.requestToFirstProgressMs.max)} |`,
    `| Trivial jobs per second, one worker (drain of a backlog) | ${Math.round(q.throughput.jobsPerSecond)} jobs/s (${q.throughput.jobs} jobs in ${q.throughput.seconds.toFixed(2)} s, ${q.throughput.failed} not succeeded) |`,
    `| Submissions per second (16 concurrent submitters) | ${Math.round(q.submitPerSecond)} |`,
    `| Redis used_memory before / after ${q.throughput.jobs / 2} / after ${q.throughput.jobs} jobs | ${mb(m.beforeBytes / 2 ** 20)} / ${mb(m.afterHalfBytes / 2 ** 20)} / ${mb(m.afterAllBytes / 2 ** 20)} (${Math.round(m.secondHalfBytesPerJob)} B per job in the second half) |`,
    `| Retained after ${q.throughput.jobs} jobs | ${m.retainedBullmqJobs} BullMQ jobs, ${m.retainedJobRecords} Castellan job records |`,
    `| Retention policy | ${m.policy} |`,
  ].join('\n');
}

export function renderMarkdown(report: BenchReport): string {
  const m = report.machine;
  const parts = [
    `# Castellan benchmark, ${report.startedAt}`,
    '',
    `Machine: ${m.cpus} × ${m.model}, ${m.memoryGiB} GiB, Node ${m.node}, load average at start ${m.loadAverageAtStart.join(' / ')}. Loopback only.`,
    `Options: ${JSON.stringify(report.options)}. Finished ${report.finishedAt}.`,
    '',
    '## Verdicts (targets of issues 5 and 15)',
    '',
    '| Target | Verdict | Numbers |',
    '|---|---|---|',
    ...report.verdicts.map((v) => `| ${v.target} | **${v.status}** | ${v.detail.replace(/\|/g, '/')} |`),
    '',
    '## Fan-out',
    '',
    'Wall: Castellan rows time the request in a running process (executor: `fanout()`; pipeline: submit → job → fan-out → folded result recorded; a CLI tool is a whole process run, interpreter start-up included). Cold = no open connection; warm = the same process again over its pooled connections. Client CPU = user + sys (Castellan rows: of the measured request only; tools: the whole process tree). Node CPU per host = what the fleet spent serving the request (sshd, login shell, the remote wrapper, the command; for the fake farm, the farm process), divided by the hosts: per command when warm, connection + command when cold. Peak RSS = sampled sum over the client process tree. × best = ratio to the best competitor (parallel-ssh, clush, pdsh, Ansible) in the same run.',
    '',
    ...report.fleets.map(fleetTable).flatMap((t) => [t, '']),
  ];
  if (report.queue) parts.push('## Queue', '', queueTable(report.queue), '');
  if (report.notes.length) parts.push('## Notes', '', ...report.notes.map((n) => `- ${n}`), '');
  return parts.join('\n');
}
