// ansible_playbook as a job: an allowlisted playbook from castellan.yaml, check mode that
// changes nothing, the playbook's configured risk requiring approval, typed extra vars, and
// Debian's real ansible-playbook reaching the lab's sshd nodes with pinned host keys.
import { existsSync } from 'node:fs';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import type { JobRecord } from '../../queues/records.js';
import { jobView } from '../../src/present/job-view.js';
import { jobOutcome, outcomeText } from '../../src/present/render/mcp.js';
import { jobText, planText } from '../../src/present/render/text.js';
import { slackJobMessage } from '../../src/present/render/slack.js';
import { useCastellan } from '../support/castellan.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

const dir = mkdtempSync(path.join(os.tmpdir(), 'castellan-playbooks-'));
const playbook = path.join(dir, 'motd.yml');
writeFileSync(
  playbook,
  [
    '- hosts: all',
    '  gather_facts: false',
    '  tasks:',
    '    - name: write the motd',
    '      tags: [motd]',
    '      ansible.builtin.copy:',
    `        dest: "${dir}/{{ inventory_hostname }}.motd"`,
    '        content: "{{ greeting }}\\n"',
    '',
  ].join('\n'),
);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const c = useCastellan({
  nodes: 3,
  config: {
    ansible: {
      playbooks: {
        motd: {
          path: playbook,
          risk: 'destructive',
          description: 'Write the message of the day',
          tags: ['motd'],
          extra_vars: { greeting: { type: 'string', pattern: '^[A-Za-z ]{1,40}$', required: true } },
        },
      },
    },
  },
});

describe('ansible_playbook', () => {
  it('refuses what the allowlist does not allow, naming the field', async () => {
    const submit = (input: Record<string, unknown>) => c.runtime.service.submit({ tool: 'ansible_playbook', input, requester: oscar, replyTo: { kind: 'cli' } });
    await expect(submit({ playbook: 'site', targets: 'node01' })).rejects.toThrow(/'site' is not an allowed playbook \(configured: motd\)/);
    await expect(submit({ playbook: 'motd', targets: 'node01', extra_vars: { greeting: '{{ lookup("pipe", "id") }}' } })).rejects.toThrow(/extra_vars.greeting: must not contain Jinja/);
    await expect(submit({ playbook: 'motd', targets: 'node01', extra_vars: { greeting: 'hi', ansible_user: 'root' } })).rejects.toThrow(/extra var names|declares no extra var/);
    await expect(submit({ playbook: 'motd', targets: 'node01', extra_vars: {} })).rejects.toThrow(/extra_vars.greeting: 'motd' requires it/);
  });

  it('check mode shows the diff per host and changes nothing', async () => {
    const { job } = await c.runtime.service.submit({ tool: 'ansible_playbook', input: { playbook: 'motd', targets: 'node01,node02', extra_vars: { greeting: 'Hello' }, check: true }, requester: oscar, replyTo: { kind: 'cli' } });
    expect(job.risk).toBe('change');
    // A check run previews nothing: it is itself what it would change.
    expect(job.preview).toBeUndefined();
    if (job.state === 'awaiting_approval') await c.runtime.service.approve(job.id, april);
    const done = await c.runtime.service.wait(job.id, oscar, 180_000);
    expect(done.state).toBe('succeeded');
    const node01 = done.result!.hosts.find((h) => h.host === 'node01')!;
    expect(node01.stdout).toContain('changed     write the motd');
    expect(node01.stdout).toContain('+Hello');
    expect(existsSync(path.join(dir, 'node01.motd'))).toBe(false);
  }, 200_000);

  it("carries the playbook's configured risk: waits for approval with its check-mode diff on the card, then writes only on the targets", async () => {
    const { job } = await c.runtime.service.submit({ tool: 'ansible_playbook', input: { playbook: 'motd', targets: 'node02', tags: ['motd'], extra_vars: { greeting: 'Hello world' } }, requester: oscar, replyTo: { kind: 'cli' } });
    expect(job.risk).toBe('destructive');
    expect(job.state).toBe('awaiting_approval');
    expect(planText(jobView(job).plan, { color: false })).toContain('ansible-playbook --limit node02 --tags motd --extra-vars \'{"greeting":"Hello world"}\' -- ' + playbook);

    // The preview: the same run in check mode, started at once as a read job without approval.
    expect(job.preview).toMatchObject({ state: 'queued' });
    const previewJob = await c.runtime.service.wait(job.preview!.jobId, oscar, 180_000);
    expect(previewJob).toMatchObject({ state: 'succeeded', risk: 'read', approvalsRequired: 0, previewOf: job.id, input: { check: true } });
    expect(previewJob.plan.batches[0]!.steps[0]!.id).toBe('check');
    expect(existsSync(path.join(dir, 'node02.motd'))).toBe(false);
    let waiting: JobRecord = job;
    for (let i = 0; i < 100 && waiting.preview?.state !== 'succeeded'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      waiting = await c.runtime.service.get(job.id, oscar);
    }
    expect(waiting.state).toBe('awaiting_approval');
    // Every card shows the diff: terminal, MCP, Slack.
    const card = jobText(jobView(waiting), { color: false });
    expect(card).toContain(`preview: a run that changes nothing (job ${previewJob.id}), succeeded`);
    expect(card).toContain('changed     write the motd');
    expect(card).toContain('+Hello world');
    expect(card.indexOf('+Hello world')).toBeLessThan(card.indexOf('approval: 0 of 1'));
    const mcp = outcomeText(jobOutcome(waiting, {}));
    expect(mcp).toContain(`preview (a run that changes nothing, job ${previewJob.id}): succeeded`);
    expect(mcp).toContain('+Hello world');
    const slack = JSON.stringify(slackJobMessage(jobView(waiting), 'card', 'http://castellan.test').blocks);
    expect(slack).toContain('*Preview* (a run that changes nothing');
    expect(slack).toContain('+Hello world');

    await c.runtime.service.approve(job.id, april);
    const done = await c.runtime.service.wait(job.id, oscar, 180_000);
    expect(done.state).toBe('succeeded');
    expect(readFileSync(path.join(dir, 'node02.motd'), 'utf8')).toBe('Hello world\n');
    expect(existsSync(path.join(dir, 'node01.motd'))).toBe(false);
    expect(existsSync(path.join(dir, 'node03.motd'))).toBe(false);
  }, 200_000);
});
