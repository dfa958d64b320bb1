// Retention is bounded by total bytes (jobs.retention.max_bytes): Redis runs under
// `noeviction`, so finished jobs' output must not be able to fill it. With a 2 MiB bound and
// jobs that each print 150 KB, a run of jobs leaves Redis holding about the bound, not the sum;
// the oldest finished jobs go first, a running job and one awaiting approval are never touched,
// every listing index forgets the pruned ones, each pruning is audited and counted in metrics.
import { describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { metrics } from '../../queues/metrics.js';
import { retainedBytes } from '../../queues/retention.js';
import { JOB_STATES } from '../../queues/states.js';
import { useCastellan } from '../support/castellan.js';
import { eventually } from './mcp-harness.js';

const MAX_BYTES = 2 * 1024 * 1024;
const PRINTED = 150_000;

const c = useCastellan({
  nodes: 2,
  config: {
    jobs: { retention: { max_bytes: '2MiB' } },
    limits: { output_per_host: '256KiB', output_per_job: '512KiB' },
    policy: { tool_risk: { exec: 'change' } },
  },
});

function person(subject: string, groups: string[], origin: Requester['origin'] = 'cli'): Requester {
  return { subject, displayName: subject, groups, roles: rolesForGroups(groups, { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] }), origin };
}
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

async function run(command: string, who = oscar, targets = 'node01'): Promise<string> {
  const s = c.runtime.service;
  const { job } = await s.submit({ tool: 'exec', input: { targets, command }, requester: who, replyTo: { kind: 'cli' } });
  if (job.state === 'awaiting_approval') await s.approve(job.id, april);
  return job.id;
}

/** What Redis itself says a job's keys hold (not Castellan's accounting). */
async function footprint(id: string): Promise<number> {
  const { redis, keys } = c.runtime.ctx;
  let sum = 0;
  for (const key of [keys.job(id), keys.events(id), keys.ledger(id)]) sum += Number((await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0);
  return sum;
}

async function counter(name: string): Promise<number> {
  const metric = await metrics().registry.getSingleMetric(name)?.get();
  return metric?.values.reduce((sum, v) => sum + v.value, 0) ?? 0;
}

describe('retention by total bytes (jobs.retention.max_bytes)', () => {
  it('prunes the oldest finished jobs to the bound, never a running or waiting one, and leaves no index entry behind', async () => {
    const { redis, keys, store, audit } = c.runtime.ctx;
    const s = c.runtime.service;
    const before = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);

    // In flight through the whole run: one waiting for approval (an AI client's request always
    // waits), one running until cancelled.
    const maria = person('maria', ['ops'], 'mcp');
    const waiting = (await s.submit({ tool: 'exec', input: { targets: 'node01', command: `head -c ${PRINTED} /dev/zero | tr '\\0' w` }, requester: maria, replyTo: { kind: 'mcp' } })).job.id;
    expect(await store.state(waiting)).toBe('awaiting_approval');
    // (On node02: a running change job holds its host's lock.)
    const running = await run(`head -c ${PRINTED} /dev/zero | tr '\\0' r; sleep 600`, oscar, 'node02');
    await eventually(async () => ((await store.state(running)) === 'running' ? true : undefined), 60_000, 'the long job to run');

    // Twenty finished jobs of ~150 KB output each: far more than 2 MiB if they were all kept.
    const finished: string[] = [];
    for (let i = 0; i < 20; i++) {
      const id = await run(`head -c ${PRINTED} /dev/zero | tr '\\0' ${String.fromCharCode(97 + i)}`);
      const done = await s.wait(id, oscar, 120_000);
      expect(done.state, done.reason).toBe('succeeded');
      expect(done.result?.hosts[0]?.stdout.length).toBe(PRINTED);
      finished.push(id);
    }

    // A job's state is final before its ending has applied retention: wait for the last one's.
    await eventually(async () => ((await redis.zscore(keys.retainedOrder(), finished.at(-1) ?? '')) !== null ? true : undefined), 60_000, 'the last ending to be accounted');
    const present = await Promise.all(finished.map(async (id) => (await store.get(id)) !== undefined));
    const kept = finished.filter((_id, i) => present[i]);
    const pruned = finished.filter((_id, i) => !present[i]);
    // Oldest first: the kept ones are exactly the newest.
    expect(pruned.length).toBeGreaterThan(5);
    expect(kept).toEqual(finished.slice(pruned.length));

    // What the kept finished jobs hold, measured by Redis: within the bound plus the job that
    // just ended (kept for its requester however large).
    const sizes = await Promise.all(kept.map(footprint));
    const held = sizes.reduce((a, b) => a + b, 0);
    expect(held).toBeLessThanOrEqual(MAX_BYTES + Math.max(...sizes));
    // The accounting agrees with Redis and names exactly the kept jobs.
    expect(await retainedBytes(redis, keys)).toBe(held);
    expect((await redis.zrange(keys.retainedOrder(), 0, -1)).sort()).toEqual([...kept].sort());
    // Redis as a whole grew by about the bound, not by 20 × 150 KB × (record + events).
    const after = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
    expect(after - before).toBeLessThan(MAX_BYTES + 4 * 1024 * 1024);

    // In-flight jobs untouched.
    expect(await store.state(waiting)).toBe('awaiting_approval');
    expect(await store.state(running)).toBe('running');

    // No listing or index still names a pruned job.
    const page = await s.page(c.runtime.localRequester('cli'), { limit: 200 });
    const listed = page.jobs.map((j) => j.id);
    for (const id of pruned) expect(listed).not.toContain(id);
    for (const id of kept) expect(listed).toContain(id);
    expect(page.total).toBe(listed.length);
    const byTool = await s.page(c.runtime.localRequester('cli'), { tool: 'exec', states: ['succeeded'], limit: 200 });
    expect(byTool.jobs.map((j) => j.id).sort()).toEqual([...kept].sort());
    for (const id of pruned) {
      expect(await redis.zscore(keys.jobIndex(), id)).toBeNull();
      for (const state of JOB_STATES) expect(await redis.zscore(keys.jobsBy('state', state), id)).toBeNull();
      expect(await redis.zscore(keys.jobsBy('tool', 'exec'), id)).toBeNull();
      expect(await redis.zscore(keys.jobsBy('requester', 'oscar'), id)).toBeNull();
      expect(await redis.zscore(keys.jobsBy('host', 'node01'), id)).toBeNull();
      expect(await redis.hexists(keys.jobsWhere(), id)).toBe(0);
      expect(await redis.exists(keys.events(id), keys.ledger(id), keys.job(id))).toBe(0);
    }
    await expect(s.get(pruned[0] ?? '', oscar)).rejects.toThrow(/no job .*retention/);

    // Each pruning is in the audit, under the job it removed; the metrics count them.
    const entries = (await audit.read({ count: 10_000 })).filter((r) => r.kind === 'pruned');
    expect(entries.map((e) => e.jobId).sort()).toEqual([...pruned].sort());
    for (const e of entries) expect(e.reason).toMatch(/deleted: finished jobs held more than jobs\.retention\.max_bytes \(2097152 bytes\)/);
    expect(await counter('castellan_retention_pruned_jobs_total')).toBe(pruned.length);
    expect(await counter('castellan_retention_pruned_bytes_total')).toBeGreaterThan(pruned.length * PRINTED);
    expect(await counter('castellan_retained_job_bytes')).toBe(held);

    // The waiting and running jobs are still whole when they end.
    await s.cancel(running, oscar, 'test over');
    expect((await s.wait(running, oscar, 60_000)).state).toBe('cancelled');
    await s.approve(waiting, april);
    const approved = await s.wait(waiting, maria, 120_000);
    expect(approved.state).toBe('succeeded');
    expect(approved.result?.hosts[0]?.stdout.length).toBe(PRINTED);
  }, 600_000);
});
