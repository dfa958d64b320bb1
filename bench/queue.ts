// The queue benchmark: what the job layer adds, with no SSH in the way. The tool is
// `list_nodes` on one host (inventory only), so every figure is Castellan + BullMQ + Redis:
//   1. throughput: jobs submitted while the worker is paused, then drained by ONE worker
//      process; measured twice (two halves), which also gives…
//   2. memory: Redis used_memory before, after the first half and after the second half,
//      with the retained BullMQ jobs and Castellan job records, under the config's retention;
//   3. latency at a steady offered load: enqueue → worker start (BullMQ's own `timestamp`
//      and `processedOn`), and request → first progress event from the worker (the
//      `running` state event in the job's stream, stamped by Redis).
import type { Redis } from 'ioredis';
import type { Config } from '../config/load.js';
import { createLogger } from '../src/log.js';
import { Redactor } from '../queues/redact.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import { isFinal } from '../queues/states.js';
import { percentile } from './stats.js';

export const QUEUE_TOOL = 'list_nodes';

export interface QueueSpec {
  readonly config: Config;
  /** Target of every job (one inventory host). */
  readonly target: string;
  /** Jobs for the throughput / memory phase (split in two halves). */
  readonly jobs: number;
  /** Offered load of the latency phase. */
  readonly ratePerSecond: number;
  readonly durationSeconds: number;
  /** Worker concurrency (Castellan's config default when absent). */
  readonly concurrency?: number | undefined;
  readonly log?: ((line: string) => void) | undefined;
}

export interface Percentiles {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  readonly n: number;
}

export interface QueueResult {
  readonly tool: string;
  readonly concurrency: number;
  readonly submitPerSecond: number;
  readonly throughput: { readonly jobs: number; readonly seconds: number; readonly jobsPerSecond: number; readonly failed: number };
  readonly latency: {
    readonly offeredPerSecond: number;
    readonly durationSeconds: number;
    readonly jobs: number;
    readonly succeeded: number;
    readonly enqueueToStartMs: Percentiles;
    readonly requestToFirstProgressMs: Percentiles;
  };
  readonly memory: {
    readonly beforeBytes: number;
    readonly afterHalfBytes: number;
    readonly afterAllBytes: number;
    /** Growth per job over the second half: ~0 when retention holds memory flat. */
    readonly secondHalfBytesPerJob: number;
    readonly retainedBullmqJobs: number;
    readonly retainedJobRecords: number;
    readonly policy: string;
  };
}

const DRAIN_TIMEOUT_MS = 180_000;
const SUBMIT_CONCURRENCY = 16;
const POLL_WINDOW = 200;

function percentiles(values: readonly number[]): Percentiles {
  return { p50: percentile(values, 50), p95: percentile(values, 95), p99: percentile(values, 99), max: values.length ? Math.max(...values) : Number.NaN, n: values.length };
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
}

async function countJobRecords(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let count = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:job:*`, 'COUNT', 1000);
    cursor = next;
    count += keys.length;
  } while (cursor !== '0');
  return count;
}

async function submitMany(runtime: Runtime, target: string, count: number): Promise<string[]> {
  const requester = runtime.localRequester('cli');
  const ids: string[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: SUBMIT_CONCURRENCY }, async () => {
    while (next < count) {
      next++;
      const { job } = await runtime.service.submit({ tool: QUEUE_TOOL, input: { targets: target }, requester, replyTo: { kind: 'cli' } });
      ids.push(job.id);
    }
  }));
  return ids;
}

/**
 * Wait until every job is final; returns how many succeeded. Jobs run roughly in submission
 * order, so only a small window at the head of the pending list is polled (polling all
 * 5,000 every few ms would load the very Redis being measured).
 */
async function waitFinal(runtime: Runtime, ids: readonly string[]): Promise<number> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  let pending = [...ids];
  let succeeded = 0;
  while (pending.length > 0) {
    if (Date.now() > deadline) throw new Error(`${pending.length} of ${ids.length} jobs not finished within ${DRAIN_TIMEOUT_MS} ms`);
    const head = pending.slice(0, POLL_WINDOW);
    const states = await Promise.all(head.map((id) => runtime.ctx.store.state(id)));
    const still: string[] = [];
    states.forEach((state, i) => {
      if (state && isFinal(state)) succeeded += state === 'succeeded' ? 1 : 0;
      else still.push(head[i] as string);
    });
    pending = [...still, ...pending.slice(POLL_WINDOW)];
    if (still.length > 0) await new Promise((r) => setTimeout(r, 20));
  }
  return succeeded;
}

export async function measureQueue(spec: QueueSpec): Promise<QueueResult> {
  const log = spec.log ?? (() => undefined);
  const logger = createLogger({ level: 'warn', redactor: new Redactor(spec.config.secrets.values()) });
  const concurrency = spec.concurrency ?? spec.config.jobs.worker.concurrency;
  const runtime = await createRuntime(spec.config, { mode: 'all', logger, jobSettings: { worker: { concurrency, lockDurationMs: spec.config.jobs.worker.lockDurationMs, stalledIntervalMs: spec.config.jobs.worker.stalledIntervalMs, readRetries: 1, shutdownGraceMs: spec.config.jobs.worker.shutdownGraceMs, heartbeatTtlMs: 10_000, goneConfirmMs: spec.config.jobs.worker.goneConfirmMs } } });
  try {
    const redis = runtime.redis;
    const prefix = runtime.ctx.keys.prefix;
    const half = Math.max(1, Math.floor(spec.jobs / 2));
    const beforeBytes = await usedMemory(redis);

    // --- throughput and memory: submit with no worker running, then drain ---------------
    let drainMs = 0;
    let failed = 0;
    let submitMs = 0;
    let afterHalfBytes = Number.NaN;
    // The worker is up (connected, listening) but paused: the drain measures processing, not start-up.
    const worker = await runtime.startWorker();
    await worker.worker.pause();
    for (let part = 0; part < 2; part++) {
      const t0 = performance.now();
      const ids = await submitMany(runtime, spec.target, half);
      submitMs += performance.now() - t0;
      const started = performance.now();
      await worker.worker.resume();
      const ok = await waitFinal(runtime, ids);
      drainMs += performance.now() - started;
      failed += ids.length - ok;
      await worker.worker.pause();
      log(`  queue: ${ids.length} jobs drained in ${((performance.now() - started) / 1000).toFixed(2)} s`);
      if (part === 0) afterHalfBytes = await usedMemory(redis);
    }
    const afterAllBytes = await usedMemory(redis);
    const counts = await runtime.ctx.queue.getJobCounts('completed', 'failed');
    const retainedBullmqJobs = (counts.completed ?? 0) + (counts.failed ?? 0);
    const retainedJobRecords = await countJobRecords(redis, prefix);
    await worker.worker.resume();

    // --- latency at a steady offered load --------------------------------------------------
    const total = Math.max(1, Math.round(spec.ratePerSecond * spec.durationSeconds));
    const interval = 1000 / spec.ratePerSecond;
    const requester = runtime.localRequester('cli');
    const requests: Array<Promise<{ id: string; at: number }>> = [];
    const t0 = performance.now();
    for (let i = 0; i < total; i++) {
      const wait = t0 + i * interval - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const at = Date.now();
      requests.push(runtime.service.submit({ tool: QUEUE_TOOL, input: { targets: spec.target }, requester, replyTo: { kind: 'cli' } }).then(({ job }) => ({ id: job.id, at })));
    }
    const sent = await Promise.all(requests);
    const succeeded = await waitFinal(runtime, sent.map((s) => s.id));
    const enqueueToStart: number[] = [];
    const firstProgress: number[] = [];
    for (const { id, at } of sent) {
      const bull = await runtime.ctx.queue.getJob(id);
      if (bull?.processedOn && bull.timestamp) enqueueToStart.push(bull.processedOn - bull.timestamp);
      const events = await runtime.ctx.events.read(id, '0', 20);
      const running = events.find((e) => e.event.type === 'state' && e.event.state === 'running');
      if (running) firstProgress.push(running.at - at);
    }
    log(`  queue: ${total} jobs at ${spec.ratePerSecond}/s, ${succeeded} succeeded`);

    const retention = spec.config.jobs.retention;
    return {
      tool: QUEUE_TOOL,
      concurrency,
      submitPerSecond: (2 * half) / (submitMs / 1000),
      throughput: { jobs: 2 * half, seconds: drainMs / 1000, jobsPerSecond: (2 * half) / (drainMs / 1000), failed },
      latency: {
        offeredPerSecond: spec.ratePerSecond,
        durationSeconds: spec.durationSeconds,
        jobs: total,
        succeeded,
        enqueueToStartMs: percentiles(enqueueToStart),
        requestToFirstProgressMs: percentiles(firstProgress),
      },
      memory: {
        beforeBytes,
        afterHalfBytes,
        afterAllBytes,
        secondHalfBytesPerJob: (afterAllBytes - afterHalfBytes) / half,
        retainedBullmqJobs,
        retainedJobRecords,
        policy: `BullMQ jobs: ${retention.completedCount} completed / ${retention.failedCount} failed kept; Castellan job records: ${Math.round(retention.completedAgeMs / 3_600_000)} h after success, ${Math.round(retention.failedAgeMs / 3_600_000)} h after failure`,
      },
    };
  } finally {
    await runtime.close();
  }
}
