// The chaos soak (issue 15): two `castellan serve` processes take a steady stream of read and
// change jobs through the HTTP API while three `castellan worker` processes run them on real
// sshd nodes, and workers and Redis (with its AOF) are SIGKILLed and restarted at random, from
// a seeded RNG (the seed is printed; CASTELLAN_SOAK_SEED repeats a run). Bounded in CI
// (CASTELLAN_SOAK_SECONDS, default 120 s of submissions); `bench/soak.ts` runs it longer.
//
// At the end: every submission got a job id or a clear "unavailable … nothing was run"; every
// job ends succeeded or interrupted (none lost); no host ran a change twice (each run appends
// its CASTELLAN_RUN to a marker file on the node); nothing of any run is left on the nodes; the
// audit has each job's request, decision and outcome, and an execution record per host that
// finished. The report (submitted, finished, interrupted, lost, run twice) is printed.
// (Spawns dist/: run `npx tsc -p tsconfig.build.json` first.)
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { findFreePort } from '../../src/lab/net.js';
import type { JobRecord } from '../../queues/records.js';
import { FINAL_STATES } from '../../queues/states.js';
import { startServeProcess, startWorkerProcess, type ServeProcess, type WorkerProcess } from '../support/castellan-process.js';
import { pgrepFull } from '../support/processes.js';
import { useRedis } from '../support/redis.js';
import { eventually, startHarness, type Harness } from './mcp-harness.js';

const SOAK_MS = Number(process.env.CASTELLAN_SOAK_SECONDS ?? 120) * 1000;
const SEED = Number(process.env.CASTELLAN_SOAK_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** One submission every this many ms, alternating between the two servers. */
const INTERVAL_MS = Number(process.env.CASTELLAN_SOAK_INTERVAL_MS ?? 1500);
const WORKERS = 3;
const FINAL: ReadonlySet<string> = FINAL_STATES;

/** mulberry32: a small seeded RNG, so a failing run can be repeated with its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Submission {
  readonly n: number;
  readonly kind: 'read' | 'change';
  readonly server: number;
  readonly tag: string;
  jobId?: string;
  /** A clear refusal: 503 unavailable, "nothing was run". */
  refused?: string;
  /** Anything else (must stay empty). */
  unclear?: string;
  approved?: boolean;
  approveError?: string;
}

const redis = useRedis();
let h: Harness;
const servers: ServeProcess[] = [];
const workers: Array<WorkerProcess | undefined> = [];
let workerConfig = '';
const runTag = `castellan-soak-${randomBytes(4).toString('hex')}`;
const markerFile = `/tmp/${runTag}.ran`;

beforeAll(async () => {
  h = await startHarness({
    redisUrl: redis.url,
    nodes: 3,
    tokenFormat: 'jwt',
    config: {
      limits: { jobs_per_requester: 0, rate: { per_minute: 0, burst: 1 } },
      log: { level: 'warn' },
    },
  });
  const doc = parse(h.yaml) as { server: Record<string, unknown> };
  workerConfig = path.join(h.dir, 'worker.yaml');
  await writeFile(workerConfig, h.yaml);
  for (const name of ['a', 'b']) {
    doc.server.listen = `127.0.0.1:${await findFreePort()}`;
    const file = path.join(h.dir, `serve-${name}.yaml`);
    await writeFile(file, stringify(doc));
    servers.push(await startServeProcess(file, { env: h.env }));
  }
  for (let i = 0; i < WORKERS; i++) workers.push(await startWorkerProcess(workerConfig, { env: h.env }));
}, 600_000);

afterAll(async () => {
  await Promise.all([...servers, ...workers].map(async (p) => p?.stop()));
  await h?.close();
});

async function post(base: string, route: string, token: string, body: unknown): Promise<{ status: number; body: { job?: { id: string; state: string }; error?: { code: string; message: string } } }> {
  const response = await fetch(`${base}/api/v1${route}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as never) : {} };
}

const isClearRefusal = (r: { status: number; body: { error?: { code: string; message: string } } }): boolean =>
  r.status === 503 && r.body.error?.code === 'unavailable' && /nothing was run/.test(r.body.error.message);

/** Submit as a careful client would: with an idempotency key, retrying only answers that say nothing. */
async function submit(s: Submission, token: string): Promise<void> {
  const sleepS = 1 + (s.n % 3);
  const request =
    s.kind === 'change'
      ? { tool: 'exec', input: { targets: 'lab', command: `echo "$CASTELLAN_RUN" >> ${markerFile}; sleep ${sleepS} # ${s.tag}` } }
      : { tool: 'uptime', input: { targets: 'lab' } };
  const base = servers[s.server]!.url;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const r = await post(base, '/jobs', token, { ...request, idempotency_key: s.tag });
      if (r.status === 200 || r.status === 202) {
        s.jobId = r.body.job!.id;
        delete s.unclear;
        return;
      }
      if (isClearRefusal(r)) {
        // Said so clearly; a person would come back later. Unless an earlier attempt was
        // unclear, this request ends here.
        if (s.unclear === undefined) {
          s.refused = r.body.error!.message;
          return;
        }
      } else s.unclear = `HTTP ${r.status}: ${JSON.stringify(r.body)}`;
    } catch (err) {
      s.unclear = `no answer: ${String(err)}`;
    }
    await sleep(2000);
  }
}

/** Approve as april through the other server, retrying while Redis is away. */
async function approve(s: Submission, token: string): Promise<void> {
  const base = servers[1 - s.server]!.url;
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    try {
      const r = await post(base, `/jobs/${s.jobId}/approve`, token, { reason: 'soak' });
      if (r.status === 200) {
        s.approved = true;
        delete s.approveError;
        return;
      }
      s.approveError = `HTTP ${r.status}: ${JSON.stringify(r.body)}`;
      if (r.status !== 503) return;
    } catch (err) {
      s.approveError = String(err);
    }
    await sleep(1000);
  }
}

describe('chaos soak', () => {
  it(
    'two servers, three workers, workers and Redis SIGKILLed at random: nothing lost, nothing run twice',
    async () => {
      const random = rng(SEED);
      console.log(`chaos soak: seed ${SEED} (CASTELLAN_SOAK_SEED=${SEED} repeats it), ${SOAK_MS / 1000} s, one job every ${INTERVAL_MS} ms`);
      const [oscar, april] = await Promise.all([h.token('oscar'), h.token('april')]);
      const submissions: Submission[] = [];
      const inFlight: Array<Promise<void>> = [];
      const faults = { workerKills: 0, redisKills: 0, log: [] as string[] };
      const started = Date.now();
      const over = (): boolean => Date.now() - started >= SOAK_MS;

      // The steady stream: 40 % change (approved through the other server), 60 % read.
      const stream = (async () => {
        for (let n = 0; !over(); n++) {
          const s: Submission = { n, kind: random() < 0.4 ? 'change' : 'read', server: n % 2, tag: `${runTag}-${n}` };
          submissions.push(s);
          inFlight.push(
            submit(s, oscar).then(async () => {
              if (s.kind === 'change' && s.jobId !== undefined) await approve(s, april);
            }),
          );
          await sleep(INTERVAL_MS);
        }
      })();

      // The faults: every 6-14 s a worker (70 %) or Redis (30 %) is SIGKILLed and restarted
      // 0.5-3 s later. At least two worker kills and one Redis kill happen in any run.
      const restartWorker = async (i: number): Promise<void> => {
        for (;;) {
          try {
            workers[i] = await startWorkerProcess(workerConfig, { env: h.env });
            return;
          } catch (err) {
            // It can die at start when Redis is being restarted under it: try again.
            faults.log.push(`worker ${i} restart failed (${String(err).slice(0, 120)}); again`);
            await sleep(1000);
          }
        }
      };
      const restarts: Array<Promise<void>> = [];
      const chaos = (async () => {
        let round = 0;
        while (!over()) {
          await sleep(6000 + random() * 8000);
          if (over()) break;
          round += 1;
          const left = SOAK_MS - (Date.now() - started);
          const mustRedis = faults.redisKills === 0 && (round >= 3 || left < 40_000);
          if (mustRedis || (random() < 0.3 && faults.workerKills >= 1)) {
            faults.redisKills += 1;
            faults.log.push(`${Math.round((Date.now() - started) / 1000)} s: SIGKILL redis-server`);
            await redis.server.kill();
            await sleep(1000 + random() * 2000);
            await redis.server.restart();
          } else {
            const alive = workers.flatMap((w, i) => (w !== undefined && !w.gone ? [i] : []));
            if (alive.length === 0) continue;
            const i = alive[Math.floor(random() * alive.length)]!;
            faults.workerKills += 1;
            faults.log.push(`${Math.round((Date.now() - started) / 1000)} s: SIGKILL worker ${workers[i]!.id}`);
            await workers[i]!.kill('SIGKILL');
            workers[i] = undefined;
            await sleep(500 + random() * 2500);
            restarts.push(restartWorker(i));
          }
        }
      })();

      await Promise.all([stream, chaos]);
      await Promise.all(restarts);
      // Quiet again: Redis up, every worker running; every request answered, every approval given.
      await eventually(async () => ((await h.runtime.redis.ping().catch(() => '')) === 'PONG' ? true : undefined), 60_000, 'Redis to answer');
      for (let i = 0; i < WORKERS; i++) if (workers[i] === undefined || workers[i]!.gone) await restartWorker(i);
      await Promise.all(inFlight);

      // Every job to its end (a killed worker's jobs are reconciled by the others).
      const records = new Map<string, JobRecord | undefined>();
      const withJob = submissions.filter((s) => s.jobId !== undefined);
      const drainUntil = Date.now() + 180_000;
      for (;;) {
        for (const s of withJob) {
          if (FINAL.has(records.get(s.jobId!)?.state ?? '')) continue;
          records.set(s.jobId!, await h.runtime.ctx.store.get(s.jobId!));
        }
        const open = withJob.filter((s) => !FINAL.has(records.get(s.jobId!)?.state ?? ''));
        if (open.length === 0 || Date.now() > drainUntil) break;
        await sleep(500);
      }

      // What ran where: one marker line per run (job.step.host) that started on a node.
      const ran = new Map<string, number>();
      for (const line of (await readFile(markerFile, 'utf8').catch(() => '')).split('\n').filter(Boolean)) ran.set(line, (ran.get(line) ?? 0) + 1);
      const runsOf = (jobId: string): string[] => [...ran.keys()].filter((k) => k.startsWith(`${jobId}.`));

      const states = new Map<string, number>();
      for (const s of withJob) {
        const state = records.get(s.jobId!)?.state ?? 'missing';
        states.set(state, (states.get(state) ?? 0) + 1);
      }
      const lost = withJob.filter((s) => !FINAL.has(records.get(s.jobId!)?.state ?? ''));
      const runTwice = [...ran].filter(([, count]) => count > 1).map(([run]) => run);
      const report = {
        seed: SEED,
        seconds: SOAK_MS / 1000,
        submitted: submissions.length,
        withJob: withJob.length,
        refusedClearly: submissions.filter((s) => s.refused !== undefined).length,
        unclear: submissions.filter((s) => s.unclear !== undefined).length,
        finished: states.get('succeeded') ?? 0,
        interrupted: states.get('interrupted') ?? 0,
        otherStates: Object.fromEntries([...states].filter(([k]) => k !== 'succeeded' && k !== 'interrupted')),
        lost: lost.length,
        runTwice: runTwice.length,
        workerKills: faults.workerKills,
        redisKills: faults.redisKills,
      };
      console.log(`chaos soak report: ${JSON.stringify(report, null, 2)}\nfaults:\n  ${faults.log.join('\n  ')}`);

      // The faults really happened, and work really got done through them.
      expect(faults.workerKills).toBeGreaterThanOrEqual(2);
      expect(faults.redisKills).toBeGreaterThanOrEqual(1);
      expect(report.finished).toBeGreaterThan(0);
      // Every request has a job or a clear error.
      expect(submissions.filter((s) => s.unclear !== undefined).map((s) => `${s.tag}: ${s.unclear}`)).toEqual([]);
      // Every change job was approved (or had ended already when the approval came).
      expect(withJob.filter((s) => s.kind === 'change' && !s.approved).map((s) => `${s.jobId}: ${s.approveError} (${records.get(s.jobId!)?.state})`)).toEqual([]);
      // Nothing lost, nothing run twice.
      expect(lost.map((s) => `${s.jobId}: ${records.get(s.jobId!)?.state ?? 'no record'}`)).toEqual([]);
      expect(runTwice).toEqual([]);

      // A job that did not end well is shown whole: its events, its ledger, its runs on the nodes.
      const story = async (record: JobRecord): Promise<string> => {
        const events = (await h.runtime.ctx.events.read(record.id)).map((e) => `${e.id} ${JSON.stringify(e.event).slice(0, 300)}`);
        const ledger = (await h.runtime.ctx.ledger.entries(record.id)).map((e) => JSON.stringify(e));
        return `\n  events:\n    ${events.join('\n    ')}\n  ledger:\n    ${ledger.join('\n    ')}\n  runs: ${runsOf(record.id).join(', ')}`;
      };
      for (const s of withJob) {
        const record = records.get(s.jobId!)!;
        const why = `${s.kind} job ${record.id}: ${record.state} ${record.reason ?? ''}${record.state === 'succeeded' ? '' : await story(record)}`;
        // A correct ending: done, or interrupted by a killed worker, saying so.
        expect(['succeeded', 'interrupted'], why).toContain(record.state);
        if (record.state === 'succeeded') expect(record.result?.hosts.map((x) => x.status), why).toEqual(['ok', 'ok', 'ok']);
        else expect(record.reason, why).toMatch(/worker|outcome unknown/);
        if (s.kind === 'change') {
          const runs = runsOf(record.id);
          // Succeeded: ran on each node exactly once. Interrupted: at most once each (runTwice above).
          if (record.state === 'succeeded') expect(runs.sort(), why).toEqual(['node01', 'node02', 'node03'].map((n) => `${record.id}.exec.${n}`));
        }
        // The audit: the request, the decision (change), one outcome matching the record, an
        // execution record for every host the job reported finished.
        const audit = await h.runtime.ctx.audit.read({ jobId: record.id });
        expect(audit.filter((a) => a.kind === 'request'), why).toHaveLength(1);
        if (s.kind === 'change') expect(audit.filter((a) => a.kind === 'decision'), why).toHaveLength(1);
        expect(audit.filter((a) => a.kind === 'outcome').map((a) => a.state), why).toEqual([record.state]);
        if (record.state === 'succeeded') expect(audit.filter((a) => a.kind === 'execution').map((a) => a.host).sort(), why).toEqual(['node01', 'node02', 'node03']);
      }

      // A clear refusal left nothing that ran: no job of its request, or one ended "never queued".
      const refusedTags = new Set(submissions.filter((s) => s.refused !== undefined).map((s) => s.tag));
      const ids = await h.runtime.redis.zrange(h.runtime.ctx.keys.jobIndex(), 0, -1);
      for (const id of ids) {
        const record = await h.runtime.ctx.store.get(id);
        const key = record?.idempotencyKey;
        if (key === undefined || !refusedTags.has(key)) continue;
        expect(record!.state, `${id} of a refused request`).toBe('failed');
        expect(record!.reason, `${id} of a refused request`).toMatch(/never queued/);
        expect(runsOf(id), `${id} of a refused request`).toEqual([]);
      }

      // Nothing of any run is left on the nodes.
      await eventually(async () => (pgrepFull(runTag) === '' ? true : undefined), 30_000, 'no process of the soak left on the nodes');
    },
    SOAK_MS + 900_000,
  );
});
