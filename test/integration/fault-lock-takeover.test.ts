// Host locks an earlier delivery of the same job left behind (issue 15). A delivery takes its
// hosts' locks before its run token reaches the job record, so a worker that dies in between —
// or a failover that loses the job's `running` but not its locks — leaves locks that no record
// names. The next delivery of the job waited them out (their TTL, 60 s; here they are planted
// with ten minutes, so the wait is unmistakable) although the job holding them is its own.
// Now it takes them over once their delivery's worker is gone and what that delivery left
// running on the hosts was found and stopped; while that worker lives, it waits.
// (Spawns dist/: run `npx tsc -p tsconfig.build.json` first.)
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { hostRunId } from '../../queues/execution.js';
import { lockOwner } from '../../queues/host-locks.js';
import type { HostResult } from '../../tools/host-result.js';
import { REPO, useCastellan } from '../support/castellan.js';
import { survivors, survivorsAfterSettling, uniqueSleep } from '../support/processes.js';
import { eventually } from './mcp-harness.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

const children: ChildProcess[] = [];
const c = useCastellan({
  nodes: 2,
  worker: false,
  // Heartbeat TTL 4 s: a gone worker is judged so within seconds.
  config: { jobs: { worker: { lock_duration: '2s', stalled_interval: '1s' } } },
});
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
});

/** A worker's heartbeat in its own process (alive until killed), as test/support/heartbeat-process.ts. */
async function heartbeatOf(id: string): Promise<ChildProcess> {
  const script = path.join(REPO, 'dist', 'test', 'support', 'heartbeat-process.js');
  const child = spawn(process.execPath, [script, c.redis.url, c.runtime.ctx.keys.prefix, id, '4000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`heartbeat process exited ${code}`)));
  });
  return child;
}

/** A job on both nodes, approved, queued with no worker running, its hosts' locks left by an earlier delivery of worker `ghost`. */
async function jobWithLeftLocks(ghost: string, command: string): Promise<{ id: string; step: string; owner: string }> {
  const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node[01-02]', command }, requester: oscar, replyTo: { kind: 'cli' } });
  await c.runtime.service.approve(job.id, april);
  const record = await c.runtime.ctx.store.get(job.id);
  const step = record?.plan.batches[0]?.steps[0]?.id ?? '?';
  const owner = lockOwner(job.id, `0123456789ab@${ghost}`);
  for (const host of ['node01', 'node02']) await c.runtime.ctx.redis.set(c.runtime.ctx.keys.hostLock(host), owner, 'PX', 600_000);
  return { id: job.id, step, owner };
}

describe('host locks left by an earlier delivery of the same job', () => {
  it("are taken over once its worker is gone, after what it left running was stopped", async () => {
    const ghost = 'ghost-host-1-aaaaaa';
    const beat = await heartbeatOf(ghost);
    const marker = uniqueSleep();
    const job = await jobWithLeftLocks(ghost, `echo ran-${marker}`);
    // The earlier delivery had claimed the step on node01 and its run is still there.
    await c.runtime.ctx.ledger.claim(job.id, 0, job.step, ['node01'], ghost);
    const inventory = await c.runtime.ctx.inventory.current();
    let leftoverEnded = 0;
    const leftover = c.runtime.ctx.executor.exec([c.runtime.ctx.targetFor(inventory, 'node01')], () => ({ argv: ['sleep', marker], runId: hostRunId(`${job.id}.${job.step}`, 'node01') }), {}).then(([r]) => {
      leftoverEnded = Date.now();
      return r as HostResult;
    });
    await eventually(async () => (survivors(marker).length > 0 ? true : undefined), 10_000, 'the leftover run to start');
    beat.kill('SIGKILL');

    await c.runtime.startWorker();
    const done = await c.runtime.service.wait(job.id, oscar, 90_000);
    expect(done.state, done.reason).toBe('partially_failed');
    // node01: the earlier delivery's claim stands (never run twice); node02 ran.
    const hosts = new Map(done.result?.hosts.map((h) => [h.host, h]));
    expect(hosts.get('node01')?.error).toMatch(/already started/);
    expect(hosts.get('node02')?.status).toBe('ok');
    // The leftover run was stopped, and before anything of the new delivery ran.
    expect((await leftover).status).not.toBe('ok');
    expect(await survivorsAfterSettling(marker)).toEqual([]);
    const node02 = (await c.runtime.ctx.ledger.entries(job.id)).find((e) => e.host === 'node02');
    expect(leftoverEnded).toBeGreaterThan(0);
    expect(leftoverEnded).toBeLessThanOrEqual(Date.parse(node02?.startedAt ?? ''));
    // The left locks went with the job's ending.
    expect(await c.runtime.ctx.redis.get(c.runtime.ctx.keys.hostLock('node02'))).toBeNull();
  }, 150_000);

  it('are waited for while its worker is alive', async () => {
    const ghost = 'ghost-host-2-bbbbbb';
    const beat = await heartbeatOf(ghost);
    const job = await jobWithLeftLocks(ghost, 'true');
    let waited = '';
    const done = c.runtime.service.wait(job.id, oscar, 120_000, (e) => {
      if (e.event.type === 'lock_wait') waited = e.event.holder;
    });
    await eventually(async () => (waited ? true : undefined), 30_000, 'the job to wait for its hosts');
    expect(waited).toBe(job.id);
    // Well past a heartbeat TTL and a few takeover checks: still waiting, nothing ran.
    await new Promise((r) => setTimeout(r, 10_000));
    expect(await c.runtime.ctx.store.state(job.id)).toBe('queued');
    expect(await c.runtime.ctx.ledger.entries(job.id)).toEqual([]);
    expect(await c.runtime.ctx.redis.get(c.runtime.ctx.keys.hostLock('node01'))).toBe(job.owner);
    // Its worker dies: the locks are taken over and the job runs.
    beat.kill('SIGKILL');
    const ended = await done;
    expect(ended.state, ended.reason).toBe('succeeded');
  }, 150_000);
});
