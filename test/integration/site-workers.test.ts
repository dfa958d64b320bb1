// Site workers against real processes: hosts carry a site (inventory var castellan_site), two
// `castellan worker --site` processes each serve one site, and a job spanning both is split
// into one shard per site (a BullMQ flow). Each host runs on a worker of its site (the ledger
// records who ran it), people see one job with one merged result, and a site without a worker
// makes the job say what it waits for. Batches and the failure budget stay global across
// shards (checked through the runner with the real barrier).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { ThrottledPublisher } from '../../queues/events.js';
import { runPlan } from '../../queues/runner.js';
import { ShardBoard, ShardHalt, shardBoardKey, shardPlan, shardRunField, splitBySite } from '../../queues/shards.js';
import type { Plan } from '../../tools/types.js';
import { useCastellan } from '../support/castellan.js';
import { startWorkerProcess, type WorkerProcess } from '../support/castellan-process.js';
import { pgrepFull } from '../support/processes.js';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

const varsDir = mkdtempSync(path.join(os.tmpdir(), 'castellan-sites-inv-'));
const varsFile = path.join(varsDir, 'sites.yaml');
writeFileSync(
  varsFile,
  stringify({ all: { hosts: { node01: { castellan_site: 'rack-a' }, node02: { castellan_site: 'rack-a' }, node03: { castellan_labels: { site: 'rack-b' } }, node04: { castellan_labels: { site: 'rack-b' } }, node05: { castellan_site: 'rack-c' } } } }),
);

const c = useCastellan({ nodes: 5, worker: false, extraInventory: varsFile, config: { jobs: { worker: { lock_duration: '2s', stalled_interval: '1s' } } } });
const children: WorkerProcess[] = [];
const bySite = new Map<string, WorkerProcess>();
afterAll(async () => {
  // A graceful stop (SIGTERM) of an idle worker ends it.
  await Promise.all(children.map((w) => w.stop(120_000)));
  await rm(varsDir, { recursive: true, force: true });
});

function startSiteWorker(configFile: string, sites: string[]): Promise<WorkerProcess> {
  return startWorkerProcess(configFile, { sites }).then((w) => {
    children.push(w);
    return w;
  });
}

describe('site workers', () => {
  it('a job spanning two sites runs each host on a worker of its site and reads as one job', async () => {
    const [a, b] = await Promise.all([startSiteWorker(c.configFile, ['rack-a']), startSiteWorker(c.configFile, ['rack-b'])]);
    bySite.set('rack-a', a);
    bySite.set('rack-b', b);
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node[01-04]', command: 'echo "ran on $CASTELLAN_RUN"' }, requester: oscar, replyTo: { kind: 'cli' } });
    await c.runtime.service.approve(job.id, april);
    const final = await c.runtime.service.wait(job.id, oscar, 90_000);
    expect(final.state).toBe('succeeded');
    expect(final.result?.hosts.map((h) => h.host)).toEqual(['node01', 'node02', 'node03', 'node04']);
    // Each host's run carries its own id: job, step and host.
    expect(final.result?.hosts.map((h) => `${h.status} ${h.stdout}`)).toEqual(['node01', 'node02', 'node03', 'node04'].map((h) => `ok ran on ${job.id}.exec.${h}\n`));
    // One step report with every host, in plan order.
    expect(final.result?.steps).toHaveLength(1);
    expect(final.result?.steps[0]!.results.map((r) => r.host)).toEqual(['node01', 'node02', 'node03', 'node04']);

    // Who ran what: the ledger names the worker of each host, exactly once.
    const ledger = await c.runtime.ctx.ledger.entries(job.id);
    expect(ledger).toHaveLength(4);
    const byHost = Object.fromEntries(ledger.map((e) => [e.host, e.worker]));
    expect(byHost).toEqual({ node01: a.id, node02: a.id, node03: b.id, node04: b.id });
    // Each shard's delivery took its shard with a run token of its own (the token its claims
    // are confirmed with before a step, queues/claims.ts), naming the worker that runs it.
    const board = await c.runtime.ctx.redis.hgetall(shardBoardKey(c.runtime.ctx.keys, job.id));
    const tokens = ['rack-a', 'rack-b'].map((site) => board[shardRunField(site)] ?? '');
    expect(tokens).toEqual([expect.stringMatching(new RegExp(`^[0-9a-f]{12}@${a.id}$`)), expect.stringMatching(new RegExp(`^[0-9a-f]{12}@${b.id}$`))]);
    expect(tokens[0]).not.toBe(tokens[1]);

    const events = (await c.runtime.ctx.events.read(job.id)).map((e) => e.event);
    expect(events.some((e) => e.type === 'state' && e.state === 'queued' && /split by site into 2 shards: site rack-a \(2 hosts\), site rack-b \(2 hosts\)/.test(e.reason ?? ''))).toBe(true);
    // One final event, one audit outcome.
    expect(events.filter((e) => e.type === 'state' && e.state === 'succeeded')).toHaveLength(1);
    const audit = await c.runtime.ctx.audit.read({ jobId: job.id });
    expect(audit.filter((r) => r.kind === 'outcome')).toHaveLength(1);
    expect(audit.filter((r) => r.kind === 'execution').map((r) => r.host).sort()).toEqual(['node01', 'node02', 'node03', 'node04']);

    // Through the CLI as people read it.
    const shown = await c.cli(['job', job.id]);
    expect(shown.stdout).toMatch(/succeeded/);
  }, 180_000);

  it('a site with no worker: the job says it waits for a worker of that site, and runs once one starts', async () => {
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node01,node05', command: 'echo hi' }, requester: oscar, replyTo: { kind: 'cli' } });
    await c.runtime.service.approve(job.id, april);
    let waiting: string | undefined;
    for (let i = 0; i < 300 && waiting === undefined; i++) {
      const events = (await c.runtime.ctx.events.read(job.id)).map((e) => e.event);
      waiting = events.flatMap((e) => (e.type === 'state' && e.state === 'queued' && e.reason?.includes('waiting for a worker') ? [e.reason] : [])).at(0);
      if (waiting === undefined) await new Promise((r) => setTimeout(r, 100));
    }
    expect(waiting).toMatch(/waiting for a worker of site rack-c: none is running \(start one: castellan worker --site rack-c\)/);
    const record = await c.runtime.service.get(job.id, oscar);
    expect(record.state).toBe('running'); // rack-a's shard started; rack-c's waits
    const shown = await c.cli(['job', job.id]);
    expect(shown.stdout).toMatch(/next: part of it is waiting for a worker of site rack-c: none is running \(start one: castellan worker --site rack-c\)/);

    await startSiteWorker(c.configFile, ['rack-c']);
    const final = await c.runtime.service.wait(job.id, oscar, 90_000);
    expect(final.state).toBe('succeeded');
    expect(final.result?.hosts.map((h) => `${h.host}:${h.status}`)).toEqual(['node01:ok', 'node05:ok']);
  }, 180_000);
});

describe('a site worker that dies mid-shard', () => {
  it('its hosts are checked on the nodes, the other site finishes its batch, the job ends interrupted and says why', async () => {
    const b = bySite.get('rack-b')!;
    const tag = `castellan-shard-${randomBytes(4).toString('hex')}`;
    const ranFile = `/tmp/${tag}.log`;
    const slow = c.lab.nodes.filter((n) => n.name === 'node03' || n.name === 'node04').map((n) => n.address);
    // rack-a's hosts still run (8 s) when rack-b's hosts are checked and stopped: lab nodes are one
    // machine, and a run id names one host's run (job, step, host), so looking for node03's run and
    // stopping it never finds or stops node01's. (rack-b's runs may already have ended: SIGKILL drops
    // the worker's connections and the remote lifeline stops them.)
    const command = `echo ran >> ${ranFile}; case "$SSH_CONNECTION" in *" ${slow[0]} "*|*" ${slow[1]} "*) sleep 120 ;; *) sleep 8 ;; esac # ${tag}`;
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node[01-04]', command }, requester: oscar, replyTo: { kind: 'cli' } });
    await c.runtime.service.approve(job.id, april);
    const lines = async (): Promise<number> => (await readFile(ranFile, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean).length;
    for (let i = 0; i < 300 && (await lines()) < 4; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await lines()).toBe(4);
    await b.kill('SIGKILL');

    const final = await c.runtime.service.wait(job.id, oscar, 90_000);
    expect(final.state).toBe('interrupted');
    expect(final.reason).toMatch(/the worker running site rack-b is gone; outcome unknown on: node03, node04\. Checked on the nodes: node03: (its run had already ended|was still running, stopped[^;]*); node04: /);
    expect(final.result?.hosts.map((h) => `${h.host}:${h.status}`)).toEqual(['node01:ok', 'node02:ok', 'node03:failed', 'node04:failed']);
    expect([...(final.result?.unknownHosts ?? [])]).toEqual(['node03', 'node04']);
    let left = pgrepFull(tag);
    for (let i = 0; i < 40 && left !== ''; i++) {
      await new Promise((r) => setTimeout(r, 250));
      left = pgrepFull(tag);
    }
    expect(left).toBe('');
    expect(await lines()).toBe(4);
  }, 180_000);
});

describe('global batches across shards', () => {
  it('batch 2 starts on no shard before batch 1 ended on all; a failure in one shard spends the budget for all', async () => {
    const { ctx } = c.runtime;
    const inventory = await ctx.inventory.current();
    const node01 = c.lab.nodes.find((n) => n.name === 'node01')!.address;
    const exec = (id: string, hosts: string[], command: string): Plan['batches'][number]['steps'][number] => ({
      id,
      description: command,
      hosts,
      action: { kind: 'exec', argv: ['/bin/sh', '-c', command], asRoot: false },
      timeoutMs: 60_000,
    });
    // Batch 1: rack-a's node01 is slow (and fails when told to); rack-b's node03 is fast.
    // Batch 2: one host of each site. SSH_CONNECTION names the node's own address.
    const planWith = (budget: number, node01Exit: number, node01Sleep = 1.5): Plan => ({
      tool: 'exec',
      hosts: ['node01', 'node03', 'node02', 'node04'],
      batches: [
        { steps: [exec('one', ['node01', 'node03'], `case "$SSH_CONNECTION" in *" ${node01} "*) sleep ${node01Sleep}; exit ${node01Exit} ;; esac`)] },
        { steps: [exec('two', ['node02', 'node04'], 'true')] },
      ],
      failureBudget: budget,
    });
    // `stop`: the job's stop, shared by its shards (a cancel reaches every shard's worker).
    const runShards = async (plan: Plan, stop?: (jobId: string) => AbortSignal): Promise<{ jobId: string; statuses: Record<string, string> }> => {
      const split = splitBySite(plan, inventory);
      expect([...split]).toEqual([
        ['rack-a', ['node01', 'node02']],
        ['rack-b', ['node03', 'node04']],
      ]);
      const jobId = `jshard${Date.now().toString(36)}${plan.failureBudget}${stop ? 's' : ''}`;
      const stopped = stop?.(jobId);
      const board = new ShardBoard(ctx.redis, ctx.keys);
      const sites = [...split.keys()];
      const run = (site: string) => {
        const publisher = new ThrottledPublisher(ctx.events, jobId);
        const signal = stopped ?? new AbortController().signal;
        return runPlan({
          jobId,
          attempt: 0,
          worker: `test-${site}`,
          subject: 'tester',
          tool: 'exec',
          plan: shardPlan(plan, site, inventory),
          targetFor: (h) => ctx.targetFor(inventory, h),
          executor: ctx.executor,
          ledger: ctx.ledger,
          audit: ctx.audit,
          publisher,
          signal,
          redactor: ctx.redactor,
          abortStatus: () => 'cancelled',
          // As the worker does: a shard stopped while it waits for the others does not announce.
          barrier: (index, counts) => board.arrive(jobId, site, sites, index, counts, signal).catch((err: unknown) => {
            if (err instanceof ShardHalt) return { ...counts, last: false };
            throw err;
          }),
        }).finally(() => publisher.drain());
      };
      const parts = await Promise.all(sites.map(run));
      return { jobId, statuses: Object.fromEntries(parts.flatMap((p) => p.hosts).map((h) => [h.host, h.status])) };
    };

    // Budget 0, node01 fails: rack-b's shard, whose own batch went fine, skips batch 2 too.
    const spent = await runShards(planWith(0, 3));
    expect(spent.statuses).toEqual({ node01: 'failed', node03: 'ok', node02: 'skipped', node04: 'skipped' });
    expect((await ctx.ledger.entries(spent.jobId)).filter((e) => e.step === 'two')).toEqual([]);
    const lines = (await ctx.events.read(spent.jobId)).flatMap((e) => (e.event.type === 'state' && e.event.reason?.startsWith('batch ') ? [e.event.reason] : []));
    // One line per batch for the whole job, with both shards' counts.
    expect(lines).toEqual(['batch 1/2 done: 1 ok, 1 failed']);

    // All fine: batch 2 started on neither site before node01 (the slow one) ended batch 1.
    const ordered = await runShards(planWith(0, 0));
    expect(ordered.statuses).toEqual({ node01: 'ok', node03: 'ok', node02: 'ok', node04: 'ok' });
    const ledger = await ctx.ledger.entries(ordered.jobId);
    const slowEnd = Date.parse(ledger.find((e) => e.step === 'one' && e.host === 'node01')!.finishedAt!);
    for (const e of ledger.filter((x) => x.step === 'two')) expect(Date.parse(e.startedAt)).toBeGreaterThanOrEqual(slowEnd);

    // Cancelled while node01 runs (node03 done): one line, both shards' counts, the stopped
    // host counted as cancelled, not failed.
    const cancel = new AbortController();
    const cancelled = runShards(planWith(0, 0, 600), (jobId) => {
      void (async () => {
        for (let i = 0; i < 600 && !(await ctx.ledger.entries(jobId)).some((e) => e.host === 'node03' && e.finishedAt !== undefined); i++) await new Promise((r) => setTimeout(r, 100));
        cancel.abort(new Error('cancelled by test'));
      })();
      return cancel.signal;
    });
    const stoppedRun = await cancelled;
    expect(stoppedRun.statuses).toEqual({ node01: 'cancelled', node03: 'ok', node02: 'cancelled', node04: 'cancelled' });
    const stoppedLines = (await ctx.events.read(stoppedRun.jobId)).flatMap((e) => (e.event.type === 'state' && e.event.reason?.startsWith('batch ') ? [e.event.reason] : []));
    expect(stoppedLines).toEqual(['batch 1/2 stopped: 1 ok, 1 cancelled']);
  }, 120_000);
});
