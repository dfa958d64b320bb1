// A worker killed with SIGKILL in the middle of a destructive job: the job must end up
// `interrupted`, naming the hosts whose outcome is unknown, and must never run again on any
// host. The remote commands must not outlive the dead worker.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { pgrepFull } from '../support/processes.js';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { useCastellan } from '../support/castellan.js';
import { startWorkerProcess } from '../support/castellan-process.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });

const c = useCastellan({
  nodes: 4,
  worker: false,
  config: { jobs: { worker: { lock_duration: '2s', stalled_interval: '1s' } } },
});

const pgrep = pgrepFull;

describe('worker crash', () => {
  it('a SIGKILLed worker leaves the job interrupted, never re-run, with nothing left running', async () => {
    const oscar = person('oscar', ['ops']);
    const april = person('april', ['leads']);
    const tag = `castellan-crash-${randomBytes(4).toString('hex')}`;
    const ranFile = `/tmp/${tag}.log`;
    const worker = await startWorkerProcess(c.configFile);

    const { job } = await c.runtime.service.submit({
      tool: 'exec',
      input: { targets: 'lab', command: `echo ran >> ${ranFile}; sleep 60 # ${tag}` },
      requester: oscar,
      replyTo: { kind: 'cli' },
    });
    await c.runtime.service.approve(job.id, april);
    // Kill the worker once the command really runs on all four hosts.
    const ranLines = async (): Promise<number> => (await readFile(ranFile, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean).length;
    for (let i = 0; i < 200 && (await ranLines()) < 4; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await ranLines()).toBe(4);
    await worker.kill('SIGKILL');

    // A new worker finds the job stalled and reports it, instead of running it again.
    await c.runtime.startWorker();
    const final = await c.runtime.service.wait(job.id, oscar, 30_000);
    expect(final.state).toBe('interrupted');
    expect(final.reason).toMatch(/outcome unknown on: node01, node02, node03, node04/);
    expect([...(final.result?.unknownHosts ?? [])].sort()).toEqual(['node01', 'node02', 'node03', 'node04']);

    const ledger = await c.runtime.ctx.ledger.entries(job.id);
    expect(ledger).toHaveLength(4);
    expect(ledger.every((e) => e.attempt === 0 && e.finishedAt === undefined)).toBe(true);

    // The remote commands died with their connection (no orphan), and each host ran the
    // command exactly once, even after the new worker took over.
    let left = pgrep(tag);
    for (let i = 0; i < 40 && left !== ''; i++) {
      await new Promise((r) => setTimeout(r, 250));
      left = pgrep(tag);
    }
    expect(left).toBe('');
    await new Promise((r) => setTimeout(r, 1500));
    expect((await readFile(ranFile, 'utf8')).trim().split('\n')).toHaveLength(4);

    const audit = await c.runtime.ctx.audit.read({ jobId: job.id });
    expect(audit.at(-1)).toMatchObject({ kind: 'outcome', state: 'interrupted' });
  });
});
