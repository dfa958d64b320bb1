// `as_root` runs through `sudo -n --` only where the login user is not root (a root login runs
// the command directly: src/ssh/remote-run.ts). What an approver is shown says the same, per
// host, from the plan's binding: one rule (asRootArgv) for the command line and the plan.
import { describe, expect, it } from 'vitest';
import type { PlanBinding } from '../../queues/plan-binding.js';
import { bindingUsers, planCommands, stepArgv } from '../../queues/plan-commands.js';
import { planView } from '../../src/present/job-view.js';
import { planText } from '../../src/present/render/text.js';
import { wrapCommand } from '../../src/ssh/remote-run.js';
import { execStep, singleBatchPlan } from '../../tools/planning.js';
import type { Plan } from '../../tools/types.js';

const host = (user: string): PlanBinding['hosts'][string] => ({ address: '10.0.0.1', port: 22, user, keyFile: null, hostKeys: [] });
const bound = (users: Record<string, string>): PlanBinding => ({ hosts: Object.fromEntries(Object.entries(users).map(([h, u]) => [h, host(u)])), files: {} });
const plan = (hosts: string[]): Plan => singleBatchPlan('exec', hosts, [execStep({ id: 'exec', hosts, argv: ['systemctl', 'restart', 'nginx'], asRoot: true, timeoutMs: 60_000 })]);

describe('the command an as_root step shows', () => {
  it('has no sudo where every host logs in as root, as the remote command line has none', () => {
    const p = plan(['a', 'b']);
    const users = bindingUsers(bound({ a: 'root', b: 'root' }));
    expect(stepArgv(p.batches[0]!.steps[0]!, users)).toEqual({ command: ['systemctl', 'restart', 'nginx'] });
    expect(planCommands(p, users)).toEqual([['systemctl', 'restart', 'nginx']]);
    expect(planText(planView(p, users), { color: false })).not.toContain('sudo');
    const line = (user: string): string => wrapCommand(['systemctl', 'restart', 'nginx'], { runId: 'j1.exec.a', asRoot: true, loginUser: user, deadlineMs: 1000, killGraceMs: 100, stdinBytes: 0 });
    expect(line('root')).not.toMatch(/sudo/);
    expect(line('pi')).toMatch(/^'sudo' '-n' '--' /);
  });

  it('keeps sudo -n -- for other logins, and names the hosts that run it directly', () => {
    const p = plan(['a', 'b', 'c']);
    const users = bindingUsers(bound({ a: 'root', b: 'pi', c: 'pi' }));
    expect(stepArgv(p.batches[0]!.steps[0]!, users)).toEqual({ command: ['sudo', '-n', '--', 'systemctl', 'restart', 'nginx'], direct: { command: ['systemctl', 'restart', 'nginx'], rootLogin: ['a'] } });
    expect(planCommands(p, users)).toEqual([['sudo', '-n', '--', 'systemctl', 'restart', 'nginx'], ['systemctl', 'restart', 'nginx']]);
    const step = planView(p, users).batches[0]!.steps[0]!;
    expect(step.root_login).toEqual({ hosts: ['a'], command: ['systemctl', 'restart', 'nginx'], command_display: 'systemctl restart nginx' });
    expect(planText(planView(p, users), { color: false })).toContain('on a (logged in as root, no sudo): systemctl restart nginx');
    // Not bound (no login users known): the sudo form, as before.
    expect(planView(p).batches[0]!.steps[0]!).toMatchObject({ command_display: 'sudo -n -- systemctl restart nginx' });
    expect(planView(p).batches[0]!.steps[0]!.root_login).toBeUndefined();
  });
});
