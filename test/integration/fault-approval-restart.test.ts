// Jobs awaiting approval across a restart of every Castellan process and of Redis: the
// `castellan serve` process that took the submission, the `castellan worker` process and
// redis-server are SIGKILLed together (Redis comes back from its AOF), and the CLI that
// submitted has long exited. Afterwards, through a new serve process: a job whose deadline is
// still ahead is approvable and runs once; a job whose deadline passed while everything was down
// ends `expired` — not before its deadline, and without running anything; a late vote on it is
// refused as expired. (Spawns dist/: run `npx tsc -p tsconfig.build.json` first.)
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { LAB_ROLES } from '../../src/lab/oidc.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { runCli } from '../support/castellan.js';
import { startServeProcess, startWorkerProcess, type ServeProcess, type WorkerProcess } from '../support/castellan-process.js';
import { useRedis } from '../support/redis.js';
import { eventually, processConfigs, startHarness, type Harness } from './mcp-harness.js';

const oscar: Requester = { subject: 'oscar', displayName: 'Oscar Operator', groups: ['ops'], roles: rolesForGroups(['ops'], LAB_ROLES), origin: 'cli' };

// AOF on (the default of the lab's redis-server): Redis comes back with what it had.
const redis = useRedis();
let h: Harness;
let serveConfig = '';
let workerConfig = '';
let server: ServeProcess | undefined;
let worker: WorkerProcess | undefined;
/** A front end whose approvals expire after 20 s (the deadline is fixed at submission). */
let hasty: Runtime | undefined;

beforeAll(async () => {
  h = await startHarness({ redisUrl: redis.url, nodes: 2, tokenFormat: 'jwt' });
  ({ serveConfig, workerConfig } = await processConfigs(h));
  [server, worker] = await Promise.all([startServeProcess(serveConfig, { env: h.env }), startWorkerProcess(workerConfig, { env: h.env })]);
  hasty = await createRuntime(h.config, { mode: 'client', jobSettings: { approvals: { required: 1, allowSelfApproval: false, expiryMs: 20_000 } } });
}, 300_000);

afterAll(async () => {
  await Promise.all([server?.stop(), worker?.stop()]);
  await hasty?.close();
  await h?.close();
});

const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);

/** POST /api/v1/jobs/<id>/approve on the serve process, as April (an approver). */
async function approveOverHttp(jobId: string): Promise<{ status: number; body: string }> {
  const token = await h.token('april');
  const r = await fetch(`${server!.url}/api/v1/jobs/${jobId}/approve`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });
  return { status: r.status, body: await r.text() };
}

describe('approvals across a full restart', () => {
  it('a job still within its deadline is approvable and runs once; one whose deadline passed while all was down ends expired', async () => {
    const tag = `castellan-approval-${randomBytes(4).toString('hex')}`;
    const file = `/tmp/${tag}.log`;
    const command = (name: string): string => `echo "${name} $CASTELLAN_RUN" >> ${file} # ${tag}`;
    // Submitted by a remote CLI through the serve process (the CLI is gone right after), and
    // through the hasty front end.
    const env = { CASTELLAN_TOKEN: await h.token('oscar'), CASTELLAN_CONFIG: '/nonexistent' };
    const submitted = await runCli(['--server', server!.url, '--no-wait', 'exec', 'node01', '--command', command('patient')], { env });
    expect(submitted.code, submitted.stderr).toBe(3);
    const patientId = submitted.stdout.trim();
    const admin = h.runtime.localRequester('cli');
    const { job: hastyJob } = await hasty!.service.submit({ tool: 'exec', input: { targets: 'node02', command: command('hasty') }, requester: oscar, replyTo: { kind: 'cli' } });
    expect(hastyJob.state).toBe('awaiting_approval');
    const hastyDeadline = hastyJob.expiresAt!;
    expect((await h.runtime.service.get(patientId, admin)).state).toBe('awaiting_approval');

    // Everything down at once: serve, worker and Redis, SIGKILLed.
    await Promise.all([server!.kill('SIGKILL'), worker!.kill('SIGKILL'), redis.server.kill()]);
    // Down past the hasty job's deadline (the patient one has 15 min).
    await eventually(async () => (Date.now() > hastyDeadline + 1000 ? true : undefined), 60_000, "the hasty job's deadline to pass");
    await redis.server.restart();
    await eventually(async () => ((await h.runtime.redis.ping().catch(() => '')) === 'PONG' ? true : undefined), 60_000, 'Redis to answer');
    [server, worker] = await Promise.all([startServeProcess(serveConfig, { env: h.env }), startWorkerProcess(workerConfig, { env: h.env })]);

    // Both still there, from the AOF. The hasty one expires (its delayed BullMQ job fires).
    const expired = await h.runtime.service.wait(hastyJob.id, oscar, 60_000);
    expect(expired.state).toBe('expired');
    expect(expired.reason).toMatch(/no approval within/);
    expect(Date.parse(expired.updatedAt)).toBeGreaterThanOrEqual(hastyDeadline);
    const late = await approveOverHttp(hastyJob.id);
    expect(late.status, late.body).toBeGreaterThanOrEqual(400);
    expect(late.body).toMatch(/expired/);

    // The patient one is approvable through the new serve process, and runs once.
    expect((await h.runtime.service.get(patientId, admin)).state).toBe('awaiting_approval');
    const approved = await approveOverHttp(patientId);
    expect(approved.status, approved.body).toBeLessThan(300);
    const done = await h.runtime.service.wait(patientId, admin, 60_000);
    expect(done.state, done.reason).toBe('succeeded');
    expect(await lines(file)).toEqual([`patient ${patientId}.exec.node01`]);

    const audit = (id: string) => h.runtime.ctx.audit.read({ jobId: id });
    const patientAudit = await audit(patientId);
    expect(patientAudit.filter((a) => a.kind === 'request').map((a) => a.subject)).toEqual(['oscar']);
    expect(patientAudit.filter((a) => a.kind === 'decision').map((a) => a.subject)).toEqual(['april']);
    expect(patientAudit.filter((a) => a.kind === 'execution').map((a) => a.host)).toEqual(['node01']);
    expect(patientAudit.filter((a) => a.kind === 'outcome').map((a) => a.state)).toEqual(['succeeded']);
    const hastyAudit = await audit(hastyJob.id);
    expect(hastyAudit.filter((a) => a.kind === 'execution')).toEqual([]);
    expect(hastyAudit.filter((a) => a.kind === 'outcome').map((a) => a.state)).toEqual(['expired']);
  }, 300_000);
});
