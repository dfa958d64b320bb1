// `as_root` on nodes Castellan logs in to as root (the lab's default login when tests run as
// root): nothing goes through sudo there (src/ssh/remote-run.ts), and what the approver is shown
// and what the audit records is exactly what ran — no `sudo -n --` that never ran.
import { describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { jobView } from '../../src/present/job-view.js';
import { planText } from '../../src/present/render/text.js';
import { useCastellan } from '../support/castellan.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

const c = useCastellan({ nodes: 2, lab: { loginUser: 'root' } });

describe('as_root under a root login', () => {
  it('shows, audits and runs the command without sudo', async () => {
    const inventory = await c.runtime.ctx.inventory.current();
    expect(['node01', 'node02'].map((h) => c.runtime.ctx.targetFor(inventory, h).user)).toEqual(['root', 'root']);
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node[01-02]', command: 'id -un', as_root: true }, requester: oscar, replyTo: { kind: 'cli' } });

    // What the approver reads.
    const step = jobView(job).plan.batches[0]!.steps[0]!;
    expect(step.command).toEqual(['/bin/sh', '-c', 'id -un']);
    expect(step.root_login).toBeUndefined();
    expect(planText(jobView(job).plan, { color: false })).not.toContain('sudo -n');

    if (job.state === 'awaiting_approval') await c.runtime.service.approve(job.id, april);
    const done = await c.runtime.service.wait(job.id, oscar, 60_000);
    expect(done.state, done.reason).toBe('succeeded');
    expect(done.result?.hosts.map((h) => h.stdout)).toEqual(['root\n', 'root\n']);

    // What the audit trail says was asked for and what ran on each host.
    const entries = (await c.runtime.ctx.redis.xrange(c.runtime.ctx.keys.audit(), '-', '+'))
      .map(([, fields]) => JSON.parse(fields[1] ?? '{}') as { kind: string; jobId?: string; commands?: string[][]; argv?: string[]; results?: { host: string }[] })
      .filter((e) => e.jobId === job.id);
    expect(entries.find((e) => e.kind === 'request')?.commands).toEqual([['/bin/sh', '-c', 'id -un']]);
    // One entry per command run, naming each host it ran on.
    const ran = entries.filter((e) => e.kind === 'execution');
    expect(ran.flatMap((e) => e.results ?? []).map((r) => r.host).sort()).toEqual(['node01', 'node02']);
    for (const e of ran) expect(e.argv).toEqual(['/bin/sh', '-c', 'id -un']);
  }, 120_000);
});
