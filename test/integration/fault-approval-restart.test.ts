// Jobs awaiting approval across a restart of every Castellan process and of Redis: a
// `castellan worker` process and redis-server are SIGKILLed (Redis comes back from its AOF),
// and the CLI that submitted has long exited. Afterwards a job whose deadline is still ahead is
// approvable and runs once; a job whose deadline passed while everything was down ends
// `expired` — not before its deadline, and without running anything; a late vote on it is
// refused as expired. (Spawns dist/: run `npx tsc -p tsconfig.build.json` first.)
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { loadConfig } from '../../config/load.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { useCastellan } from '../support/castellan.js';
import { startWorkerProcess, type WorkerProcess } from '../support/castellan-process.js';
import { eventually } from './mcp-harness.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

const c = useCastellan({ nodes: 2, worker: false });
let worker: WorkerProcess | undefined;
/** A front end whose approvals expire after 20 s (the deadline is fixed at submission). */
let hasty: Runtime | undefined;
beforeAll(async () => {
  worker = await startWorkerProcess(c.configFile);
  hasty = await createRuntime(await loadConfig(c.configFile), { mode: 'client', jobSettings: { approvals: { required: 1, allowSelfApproval: false, expiryMs: 20_000 } } });
}, 180_000);
afterAll(async () => {
  await worker?.stop();
  await hasty?.close();
});

const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);

describe('approvals across a full restart', () => {
  it('a job still within its deadline is approvable and runs once; one whose deadline passed while all was down ends expired', async () => {
    const tag = `castellan-approval-${randomBytes(4).toString('hex')}`;
    const file = `/tmp/${tag}.log`;
    const command = (name: string): string => `echo "${name} $CASTELLAN_RUN" >> ${file} # ${tag}`;
    // Submitted through the CLI (its own process, gone right after), and through the hasty front end.
    const submitted = await c.cli(['--no-wait', 'exec', 'node01', '--command', command('patient')]);
    expect(submitted.code, submitted.stderr).toBe(3);
    const patientId = submitted.stdout.trim();
    const admin = c.runtime.localRequester('cli');
    const { job: hastyJob } = await hasty!.service.submit({ tool: 'exec', input: { targets: 'node02', command: command('hasty') }, requester: oscar, replyTo: { kind: 'cli' } });
    expect(hastyJob.state).toBe('awaiting_approval');
    const hastyDeadline = hastyJob.expiresAt!;
    expect((await c.runtime.service.get(patientId, admin)).state).toBe('awaiting_approval');

    // Everything down at once: the worker and Redis, SIGKILLed.
    await Promise.all([worker!.kill('SIGKILL'), c.redis.kill()]);
    // Down past the hasty job's deadline (the patient one has 15 min).
    await eventually(async () => (Date.now() > hastyDeadline + 1000 ? true : undefined), 60_000, "the hasty job's deadline to pass");
    await c.redis.restart();
    await eventually(async () => ((await c.runtime.redis.ping().catch(() => '')) === 'PONG' ? true : undefined), 60_000, 'Redis to answer');
    worker = await startWorkerProcess(c.configFile);

    // Both still there, from the AOF. The hasty one expires (its delayed BullMQ job fires).
    const expired = await c.runtime.service.wait(hastyJob.id, oscar, 60_000);
    expect(expired.state).toBe('expired');
    expect(expired.reason).toMatch(/no approval within/);
    expect(Date.parse(expired.updatedAt)).toBeGreaterThanOrEqual(hastyDeadline);
    await expect(c.runtime.service.approve(hastyJob.id, april)).rejects.toThrow(/expired/);

    // The patient one is approvable, through the restarted store, and runs once.
    expect((await c.runtime.service.get(patientId, admin)).state).toBe('awaiting_approval');
    await c.runtime.service.approve(patientId, april);
    const done = await c.runtime.service.wait(patientId, admin, 60_000);
    expect(done.state, done.reason).toBe('succeeded');
    expect(await lines(file)).toEqual([`patient ${patientId}.exec.node01`]);

    const audit = (id: string) => c.runtime.ctx.audit.read({ jobId: id });
    const patientAudit = await audit(patientId);
    expect(patientAudit.filter((a) => a.kind === 'decision').map((a) => a.subject)).toEqual(['april']);
    expect(patientAudit.filter((a) => a.kind === 'execution').map((a) => a.host)).toEqual(['node01']);
    expect(patientAudit.filter((a) => a.kind === 'outcome').map((a) => a.state)).toEqual(['succeeded']);
    const hastyAudit = await audit(hastyJob.id);
    expect(hastyAudit.filter((a) => a.kind === 'execution')).toEqual([]);
    expect(hastyAudit.filter((a) => a.kind === 'outcome').map((a) => a.state)).toEqual(['expired']);
  }, 300_000);
});
