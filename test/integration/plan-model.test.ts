// The plan model against real sshd nodes, real Redis (ledger, audit, events) and the real
// SSH executor: failure is tracked per subject, gates poll a real read check, on-failure
// steps run for the failed subject only and are reported. Each host proves it ran a step by
// appending its sshd's own address ($SSH_CONNECTION) to a file: a real side effect per host.
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { planHash } from '../../queues/plan-hash.js';
import { planView } from '../../src/present/job-view.js';
import { notOkWords, progressFrom } from '../../src/present/progress.js';
import { ping } from '../../tools/ping.js';
import { execStep } from '../../tools/planning.js';
import { validatedOrThrow } from '../../tools/registry.js';
import { gateStep } from '../../tools/steps/index.js';
import type { Plan } from '../../tools/types.js';
import { useCastellan } from '../support/castellan.js';
import { JobStop } from '../../queues/job-stop.js';
import { planJobId, runPlanOn } from '../support/run-plan.js';
import { firstClaimOf } from '../../queues/runner.js';

const c = useCastellan({ nodes: 3, worker: false });
// The lab's login user writes these, so they live in /tmp rather than the test's private dir.
const scratchFiles: string[] = [];
function scratch(name: string): string {
  const file = path.join(os.tmpdir(), `castellan-plan-${name}-${randomBytes(4).toString('hex')}`);
  scratchFiles.push(file);
  return file;
}
afterAll(async () => {
  await Promise.all(scratchFiles.map((f) => rm(f, { force: true })));
});

/** A step that records which host ran it (by the sshd address it came in on). */
function mark(id: string, hosts: string[], file: string, extra: { subject?: string } = {}) {
  return execStep({ id, hosts, argv: ['/bin/sh', '-c', 'f=$1; set -- $SSH_CONNECTION; echo "$3" >> "$f"', 'mark', file], asRoot: false, timeoutMs: 20_000, ...extra });
}

async function marked(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const byAddress = new Map(c.lab.nodes.map((n) => [n.address, n.name]));
  return text.split('\n').filter(Boolean).map((addr) => byAddress.get(addr.trim()) ?? `?${addr}`).sort();
}

const run = (plan: Plan) => runPlanOn(c, plan);

/** Resolves once the run's events show `step` started on a host (the job is then mid-change). */
async function started(jobId: string, step: string): Promise<void> {
  const until = Date.now() + 60_000;
  for (;;) {
    const events = (await c.runtime.ctx.events.read(jobId)).map((e) => e.event);
    if (events.some((e) => e.type === 'host_started' && e.step === step)) return;
    if (Date.now() > until) throw new Error(`step ${step} did not start within 60 s: ${JSON.stringify(events)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** prepare (arms `undo` on each host) → a long change on node02 only; node03 is done after prepare. */
function midChangePlan(rollbacks: string, undoFirst: string[] = []): Plan {
  const undo = execStep({ id: 'undo', hosts: ['node02', 'node03'], argv: [...undoFirst, '/bin/sh', '-c', 'f=$1; set -- $SSH_CONNECTION; echo "$3" >> "$f"', 'mark', rollbacks], asRoot: false, timeoutMs: 60_000 });
  return {
    tool: 'test_stopped',
    hosts: ['node02', 'node03'],
    failureBudget: 5,
    batches: [
      {
        steps: [
          execStep({ id: 'prepare', hosts: ['node02', 'node03'], argv: ['true'], asRoot: false, timeoutMs: 20_000, onFailure: [undo] }),
          execStep({ id: 'change', hosts: ['node02'], argv: ['sleep', '120'], asRoot: false, timeoutMs: 180_000 }),
        ],
      },
    ],
  };
}

describe('plan model on real nodes', () => {
  it("a first step claimed with the job's running transition runs on that claim; stopped before it, its hosts are finished as not run", async () => {
    const { ledger } = c.runtime.ctx;
    const file = scratch('preclaimed');
    const plan: Plan = { tool: 'test_preclaimed', hosts: ['node01', 'node02'], failureBudget: 0, batches: [{ steps: [mark('first', ['node01', 'node02'], file)] }] };
    const first = firstClaimOf(plan, '2026-01-02T03:04:05.000Z');
    expect(first).toEqual({ step: 'first', hosts: ['node01', 'node02'], claimedAt: '2026-01-02T03:04:05.000Z' });
    // Claimed beforehand (node02 only, as if node01 had been claimed by an earlier delivery):
    // the step runs where the claim was got and claims nothing again.
    const jobId = planJobId();
    expect(await ledger.claim(jobId, 0, 'first', ['node02'], 'test', first!.claimedAt)).toEqual(['node02']);
    const { outcome } = await runPlanOn(c, plan, jobId, new JobStop(), { ...first!, claimed: ['node02'] });
    expect(await marked(file)).toEqual(['node02']);
    expect(outcome.steps[0]?.results.map((r) => [r.host, r.status])).toEqual([['node01', 'skipped'], ['node02', 'ok']]);
    const entries = await ledger.entries(jobId);
    expect(entries).toEqual([expect.objectContaining({ host: 'node02', step: 'first', startedAt: first!.claimedAt, status: 'ok', finishedAt: expect.any(String) })]);

    // Stopped between the claim and the step: nothing is sent, and the ledger shows the claimed
    // hosts finished (cancelled), not mid-step.
    const stoppedId = planJobId();
    expect(await ledger.claim(stoppedId, 0, 'first', ['node01', 'node02'], 'test', first!.claimedAt)).toEqual(['node01', 'node02']);
    const halt = new JobStop();
    halt.stop('cancel', 'cancelled by tester');
    const stopped = await runPlanOn(c, plan, stoppedId, halt, { ...first!, claimed: ['node01', 'node02'] });
    expect(stopped.outcome.steps[0]?.results.map((r) => r.status)).toEqual(['cancelled', 'cancelled']);
    expect(await marked(file)).toEqual(['node02']);
    expect(await ledger.unfinished(stoppedId)).toEqual([]);
    expect((await ledger.entries(stoppedId)).map((e) => [e.host, e.status]).sort()).toEqual([['node01', 'cancelled'], ['node02', 'cancelled']]);
  });

  it('a drain that fails skips only its own subject\'s reboot', async () => {
    const file = scratch('reboots');
    // kubectl-like steps run on node01 about node02 and node03; the reboot runs on them.
    const plan: Plan = {
      tool: 'test_roll',
      hosts: ['node01', 'node02', 'node03'],
      failureBudget: 5,
      batches: [
        {
          steps: [
            execStep({ id: 'drain-node02', hosts: ['node01'], subject: 'node02', argv: ['/bin/sh', '-c', 'echo "cannot evict pod web-1" >&2; exit 1'], asRoot: false, timeoutMs: 20_000 }),
            execStep({ id: 'drain-node03', hosts: ['node01'], subject: 'node03', argv: ['true'], asRoot: false, timeoutMs: 20_000 }),
            mark('reboot', ['node02', 'node03'], file),
          ],
        },
      ],
    };
    const { outcome } = await run(plan);
    expect(await marked(file)).toEqual(['node03']);
    const reboot = outcome.steps.find((s) => s.id === 'reboot');
    expect(reboot?.results.map((r) => [r.host, r.status])).toEqual([['node02', 'skipped'], ['node03', 'ok']]);
    // Outcomes are per subject: node02 failed at its drain (which ran on node01), node01 is fine.
    const by = new Map(outcome.hosts.map((h) => [h.host, h]));
    expect(by.get('node02')).toMatchObject({ status: 'failed', step: 'drain-node02' });
    expect(by.get('node02')?.stderr).toContain('cannot evict pod web-1');
    expect(by.get('node03')).toMatchObject({ status: 'ok', step: 'reboot' });
    expect(by.has('node01')).toBe(false);
  });

  it('a gate that times out runs its subject\'s on-failure steps, reported, and keeps the last observation', async () => {
    const rollbacks = scratch('rollback');
    const reboots = scratch('reboot');
    const { ctx } = c.runtime;
    const planCtx = ctx.planContext(await ctx.inventory.current());
    const cordon = (node: string) =>
      execStep({ id: `cordon-${node}`, hosts: ['node01'], subject: node, argv: ['true'], asRoot: false, timeoutMs: 20_000, onFailure: [mark(`uncordon-${node}`, ['node01'], rollbacks, { subject: node })] });
    const plan: Plan = {
      tool: 'test_gate',
      hosts: ['node01', 'node02', 'node03'],
      failureBudget: 5,
      batches: [
        {
          steps: [
            cordon('node02'),
            cordon('node03'),
            // node02 stays up, so "stops answering" never holds: the gate times out.
            gateStep({ id: 'gone-node02', subject: 'node02', check: ping, input: { targets: 'node02', connect_timeout: '3s' }, until: 'unreachable', intervalMs: 500, timeoutMs: 2500 }, planCtx, validatedOrThrow),
            gateStep({ id: 'up-node03', subject: 'node03', check: ping, input: { targets: 'node03' }, until: 'reachable', intervalMs: 500, timeoutMs: 10_000 }, planCtx, validatedOrThrow),
            mark('reboot', ['node02', 'node03'], reboots),
          ],
        },
      ],
    };
    const { outcome, events } = await run(plan);

    const gone = outcome.steps.find((s) => s.id === 'gone-node02');
    expect(gone?.results[0]).toMatchObject({ host: 'node02', status: 'timed_out' });
    expect(gone?.results[0]?.error).toMatch(/did not hold within 2500ms .*last seen: answers over SSH/);
    expect(gone?.observations?.[0]).toMatchObject({ subject: 'node02', state: 'timed_out', observed: 'answers over SSH' });
    expect(gone?.observations?.[0]?.polls).toBeGreaterThanOrEqual(2);
    expect(outcome.steps.find((s) => s.id === 'up-node03')?.observations?.[0]).toMatchObject({ state: 'holds', polls: 1 });

    // The rollback ran once, for node02 only (on node01, where kubectl would run), and is reported.
    expect(await marked(rollbacks)).toEqual(['node01']);
    const rollback = outcome.steps.find((s) => s.id === 'uncordon-node02');
    expect(rollback).toMatchObject({ subject: 'node02', onFailure: { subject: 'node02', armedBy: 'cordon-node02' } });
    expect(rollback?.results[0]?.status).toBe('ok');
    expect(outcome.steps.some((s) => s.id === 'uncordon-node03')).toBe(false);
    // Only node03 went on to the reboot.
    expect(await marked(reboots)).toEqual(['node03']);
    expect(outcome.hosts.map((h) => [h.host, h.status, h.step])).toEqual([['node02', 'timed_out', 'gone-node02'], ['node03', 'ok', 'reboot']]);
    // People following the job saw the gate's observation.
    expect(events).toContainEqual(expect.objectContaining({ type: 'gate', step: 'gone-node02', subject: 'node02' }));

    // Pure data: the plan survives JSON, hashes stably, and its view shows the gate's check and the rollback.
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
    expect(planHash(JSON.parse(JSON.stringify(plan)) as Plan)).toBe(planHash(plan));
    const view = planView(plan);
    const cordonView = view.batches[0]?.steps.find((s) => s.id === 'cordon-node02');
    expect(cordonView?.on_failure?.[0]).toMatchObject({ id: 'uncordon-node02', armed_by: 'cordon-node02', subject: 'node02' });
    const gateView = view.batches[0]?.steps.find((s) => s.id === 'gone-node02');
    expect(gateView).toMatchObject({ kind: 'gate', subject: 'node02', command: ['gate', 'ping', 'until', 'unreachable'], gate: { check: 'ping', check_hosts: ['node02'], until: 'unreachable', interval_ms: 500, timeout_ms: 2500 } });
  }, 60_000);

  it('a step that runs past its own timeout is a failure of its subject: the subject\'s rollback runs and is reported', async () => {
    const rollbacks = scratch('timeout-rollback');
    const plan: Plan = {
      tool: 'test_timeout',
      hosts: ['node02', 'node03'],
      failureBudget: 5,
      batches: [
        {
          steps: [
            execStep({ id: 'prepare', hosts: ['node02', 'node03'], argv: ['true'], asRoot: false, timeoutMs: 20_000, onFailure: [mark('undo', ['node02', 'node03'], rollbacks)] }),
            execStep({ id: 'slow', hosts: ['node02'], argv: ['sleep', '30'], asRoot: false, timeoutMs: 1500 }),
          ],
        },
      ],
    };
    const { outcome } = await run(plan);
    expect(outcome.steps.find((s) => s.id === 'slow')?.results[0]).toMatchObject({ host: 'node02', status: 'timed_out' });
    expect(outcome.steps.find((s) => s.id === 'undo')).toMatchObject({ onFailure: { subject: 'node02', armedBy: 'prepare' }, results: [expect.objectContaining({ host: 'node02', status: 'ok' })] });
    expect(await marked(rollbacks)).toEqual(['node02']);
    expect(outcome.hosts.map((h) => [h.host, h.status])).toEqual([['node02', 'timed_out'], ['node03', 'ok']]);
  }, 60_000);

  it('a job cancelled with a subject mid-change still runs that subject\'s on-failure steps and reports them; a finished subject keeps its outcome', async () => {
    const rollbacks = scratch('cancel-rollback');
    const halt = new JobStop();
    const jobId = planJobId();
    const running = runPlanOn(c, midChangePlan(rollbacks), jobId, halt);
    await started(jobId, 'change');
    halt.stop('cancel', 'cancelled by tester');
    const { outcome } = await running;
    expect(outcome.steps.find((s) => s.id === 'change')?.results[0]).toMatchObject({ host: 'node02', status: 'cancelled' });
    expect(outcome.steps.find((s) => s.id === 'undo')).toMatchObject({ onFailure: { subject: 'node02', armedBy: 'prepare' }, results: [expect.objectContaining({ host: 'node02', status: 'ok' })] });
    expect(await marked(rollbacks)).toEqual(['node02']);
    expect(outcome.hosts.map((h) => [h.host, h.status])).toEqual([['node02', 'cancelled'], ['node03', 'ok']]);
  }, 120_000);

  it('at the job\'s deadline the stopped subject\'s on-failure steps run too (the hosts read timed_out)', async () => {
    const rollbacks = scratch('deadline-rollback');
    const halt = new JobStop();
    const jobId = planJobId();
    const running = runPlanOn(c, midChangePlan(rollbacks), jobId, halt);
    await started(jobId, 'change');
    halt.stop('timeout', 'job timed out after 5s');
    // The deadline passing again (a second timer) does not cut the rollback short.
    halt.stop('timeout', 'job timed out after 5s');
    const { outcome } = await running;
    expect(outcome.steps.find((s) => s.id === 'change')?.results[0]).toMatchObject({ host: 'node02', status: 'timed_out', error: expect.stringMatching(/^the job's deadline was reached; remote run stopped/) });
    expect(outcome.steps.find((s) => s.id === 'undo')?.results).toEqual([expect.objectContaining({ host: 'node02', status: 'ok' })]);
    expect(await marked(rollbacks)).toEqual(['node02']);
    // The progress of the step the deadline caught says so: timed out, neither failed nor cancelled.
    const events = await c.runtime.ctx.events.read(jobId);
    const change = progressFrom(events.slice(0, events.findIndex((e) => e.event.type === 'step' && e.event.step === 'undo')), 2);
    expect(change).toMatchObject({ step: { id: 'change' }, hosts_done: 1, hosts_failed: 0, hosts_timed_out: 1 });
    expect(notOkWords(change)).toBe(', 1 timed out');
    const caught = events.find((e) => e.event.type === 'host_finished' && e.event.step === 'change')?.event;
    expect(caught).toMatchObject({ status: 'timed_out', stopped: true, error: expect.stringMatching(/^the job's deadline was reached; /) });
    expect(JSON.stringify(caught)).not.toContain('cancelled');
  }, 120_000);

  it('a second cancel stops the on-failure steps themselves; a stop that is no cancel (shutdown) runs none', async () => {
    const rollbacks = scratch('second-cancel');
    const halt = new JobStop();
    const jobId = planJobId();
    // The rollback takes long before it marks: the second cancel lands while it runs.
    const running = runPlanOn(c, midChangePlan(rollbacks, ['/bin/sh', '-c', 'sleep 120; exec "$@"', 'slow']), jobId, halt);
    await started(jobId, 'change');
    halt.stop('cancel', 'cancelled by tester');
    await started(jobId, 'undo');
    // While it runs, the shared view's progress says which subject is being rolled back, and how.
    const during = progressFrom(await c.runtime.ctx.events.read(jobId), 2);
    expect(during.rolling_back).toEqual({ subject: 'node02', step: 'undo', text: expect.stringContaining('/bin/sh -c') });
    expect(during.step?.id).toBe('undo');
    halt.stop('cancel', 'cancelled again by tester');
    const { outcome, events } = await running;
    expect(outcome.steps.find((s) => s.id === 'undo')).toMatchObject({ onFailure: { subject: 'node02' }, results: [expect.objectContaining({ host: 'node02', status: 'cancelled' })] });
    expect(events).toContainEqual(expect.objectContaining({ type: 'step', step: 'undo', description: expect.stringMatching(/^on failure of node02: /) }));
    expect(await marked(rollbacks)).toEqual([]);

    const quiet = scratch('shutdown');
    const down = new JobStop();
    const id2 = planJobId();
    const second = runPlanOn(c, midChangePlan(quiet), id2, down);
    await started(id2, 'change');
    down.stop('shutdown', 'worker shutting down');
    const stopped = (await second).outcome;
    expect(stopped.steps.find((s) => s.id === 'undo')?.results).toEqual([expect.objectContaining({ host: 'node02', status: 'cancelled', error: 'not started: job stopped' })]);
    expect(await marked(quiet)).toEqual([]);
  }, 180_000);
});
