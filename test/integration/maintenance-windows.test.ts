// Maintenance windows through the real job pipeline (service, Redis, BullMQ worker, sshd
// nodes) with a fake wall clock: a destructive job on a governed host waits, shown in its
// state, job view and approval card, and runs once the clock reaches the window; a host no
// window governs runs at once; `outside_window: refuse` refuses at submit; a waiting job can
// be cancelled.
import { describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { JobService } from '../../queues/service.js';
import type { JobState } from '../../queues/states.js';
import { jobView } from '../../src/present/job-view.js';
import { slackJobMessage } from '../../src/present/render/slack.js';
import { useCastellan } from '../support/castellan.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

// Saturday 5 Dec 2026, 10:00 in Berlin; the window opens at 22:00 Berlin (21:00Z).
let now = Date.parse('2026-12-05T09:00:00Z');
const c = useCastellan({
  nodes: 3,
  config: { policy: { maintenance_windows: [{ name: 'weekend-night', targets: 'node02', days: 'sat,sun', hours: '22:00-04:00', time_zone: 'Europe/Berlin' }] } },
  jobSettings: { clock: () => now },
});

async function until(jobId: string, states: readonly JobState[]): Promise<JobState> {
  for (let i = 0; i < 200; i++) {
    const job = await c.runtime.service.get(jobId, oscar);
    if (states.includes(job.state)) return job.state;
    await new Promise((r) => setTimeout(r, 100));
  }
  return (await c.runtime.service.get(jobId, oscar)).state;
}

describe('maintenance windows', () => {
  it('parks a destructive job outside its window, shows why, and runs it when the window opens', async () => {
    const { service } = c.runtime;
    const { job } = await service.submit({ tool: 'exec', input: { targets: 'node02', argv: ['true'] }, requester: oscar, replyTo: { kind: 'cli' } });
    expect(job.state).toBe('awaiting_approval');
    const detail = "node02 may only be changed in maintenance window 'weekend-night' (sat,sun 22:00-04:00 Europe/Berlin); next opening Sat 5 Dec 22:00 GMT+1; it will wait for that";
    expect(job.maintenance).toEqual({ windows: ['weekend-night'], opensAt: '2026-12-05T21:00:00.000Z', detail });
    expect(jobView(job).maintenance).toEqual({ windows: ['weekend-night'], opens_at: '2026-12-05T21:00:00.000Z', detail });
    // The approver sees it on the card before deciding.
    const card = JSON.stringify(slackJobMessage(jobView(job), 'card', 'http://127.0.0.1:8080').blocks);
    expect(card).toContain(':calendar: node02 may only be changed in maintenance window');

    await service.approve(job.id, april);
    expect(await until(job.id, ['waiting_window'])).toBe('waiting_window');
    const parked = await service.get(job.id, oscar);
    expect(parked.reason).toMatch(/^waiting for its maintenance window: node02 may only be changed/);
    const bull = await c.runtime.ctx.queue.getJob(job.id);
    expect(await bull?.isDelayed()).toBe(true);
    expect(c.lab.nodes.length).toBe(3);

    // The clock reaches the window; the delayed job wakes (BullMQ's timer, fired now).
    now = Date.parse('2026-12-05T21:00:30Z');
    await bull?.promote();
    const done = await service.wait(job.id, oscar, 30_000);
    expect(done.state).toBe('succeeded');
    expect(done.result?.hosts.map((h) => [h.host, h.status])).toEqual([['node02', 'ok']]);
    now = Date.parse('2026-12-05T09:00:00Z');
  }, 60_000);

  it('runs at once on hosts no window governs, and reads are never held', async () => {
    const { service } = c.runtime;
    const { job } = await service.submit({ tool: 'exec', input: { targets: 'node03', argv: ['true'] }, requester: oscar, replyTo: { kind: 'cli' } });
    expect(job.maintenance).toBeUndefined();
    await service.approve(job.id, april);
    expect((await service.wait(job.id, oscar, 30_000)).state).toBe('succeeded');
    const read = await service.submit({ tool: 'ping', input: { targets: 'node02' }, requester: oscar, replyTo: { kind: 'cli' } });
    expect((await service.wait(read.job.id, oscar, 30_000)).state).toBe('succeeded');
  }, 60_000);

  it('cancels a job that waits for its window', async () => {
    const { service } = c.runtime;
    const { job } = await service.submit({ tool: 'exec', input: { targets: 'node02', argv: ['true'] }, requester: oscar, replyTo: { kind: 'cli' } });
    await service.approve(job.id, april);
    expect(await until(job.id, ['waiting_window'])).toBe('waiting_window');
    const cancelled = await service.cancel(job.id, oscar, 'not this weekend');
    expect(cancelled.state).toBe('cancelled');
    expect(await until(job.id, ['cancelled'])).toBe('cancelled');
  }, 60_000);

  it('refuses at submit when the policy says refuse, and records nothing to run', async () => {
    const { ctx, auth } = c.runtime;
    const strict = new JobService({ ...ctx, settings: { ...ctx.settings, maintenance: { ...ctx.settings.maintenance, outside: 'refuse' } } }, auth);
    const before = (await ctx.store.list(200)).length;
    await expect(strict.submit({ tool: 'exec', input: { targets: 'node01,node02', argv: ['true'] }, requester: oscar, replyTo: { kind: 'cli' } })).rejects.toMatchObject({
      code: 'conflict',
      message: expect.stringMatching(/^refused: node02 may only be changed in maintenance window 'weekend-night' .*next opening Sat 5 Dec 22:00 GMT\+1\. Submit it again inside the window\.$/),
    });
    expect((await ctx.store.list(200)).length).toBe(before);
  });
});
