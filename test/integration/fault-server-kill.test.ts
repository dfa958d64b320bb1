// A `castellan serve` process SIGKILLed while clients follow a job through it. The job lives in
// Redis and runs on a separate worker process, so it goes on; the CLI following it in remote
// mode (--server) says once that contact was lost and that the job goes on, keeps trying, says
// when it is back (the server restarted on its address), prints every event exactly once and
// exits with the job's outcome. An MCP client whose job_status wait was cut off is told its
// request failed (nothing that reads as the job's outcome), and finds the job finished through
// the restarted server: a dropped connection is not a cancel.
// Checked on the nodes: each host ran once, nothing is left; the audit is complete.
// (Spawns dist/: run `npx tsc -p tsconfig.build.json` first.)
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import { LAB_ROLES } from '../../src/lab/oidc.js';
import { runCli } from '../support/castellan.js';
import { startServeProcess, startWorkerProcess, type ServeProcess, type WorkerProcess } from '../support/castellan-process.js';
import { pgrepFull } from '../support/processes.js';
import { useRedis } from '../support/redis.js';
import { eventually, processConfigs, startHarness, type Harness } from './mcp-harness.js';

const redis = useRedis();
let h: Harness;
let serveConfig = '';
let server: ServeProcess | undefined;
let worker: WorkerProcess | undefined;
const april = { subject: 'april', displayName: 'April Approver', groups: ['leads'], roles: rolesForGroups(['leads'], LAB_ROLES), origin: 'cli' as const };

beforeAll(async () => {
  h = await startHarness({ redisUrl: redis.url, nodes: 2, tokenFormat: 'jwt' });
  const configs = await processConfigs(h);
  serveConfig = configs.serveConfig;
  const workerConfig = configs.workerConfig;
  [server, worker] = await Promise.all([startServeProcess(serveConfig, { env: h.env }), startWorkerProcess(workerConfig, { env: h.env })]);
}, 300_000);

afterAll(async () => {
  await Promise.all([server?.stop(), worker?.stop()]);
  await h?.close();
});

const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);

describe('server SIGKILL with clients following', () => {
  it('the remote CLI rides it: says the job goes on, follows again once the server is back, prints each event once, exits 0', async () => {
    const tag = `castellan-serverkill-${randomBytes(4).toString('hex')}`;
    const file = `/tmp/${tag}.log`;
    const url = server!.url;
    const env = { CASTELLAN_TOKEN: await h.token('oscar'), CASTELLAN_CONFIG: '/nonexistent' };
    const cli = runCli(['--server', url, 'exec', 'node[01-02]', '--command', `echo "$CASTELLAN_RUN" >> ${file}; sleep 8; echo done # ${tag}`], { env, timeoutMs: 240_000 });

    const admin = h.runtime.localRequester('cli');
    const job = await eventually(async () => (await h.runtime.service.list(admin, { limit: 20 })).find((j) => JSON.stringify(j.input).includes(tag) && j.state === 'awaiting_approval'), 60_000, 'the CLI job');
    await h.runtime.service.approve(job.id, april);
    await eventually(async () => ((await lines(file)).length === 2 ? true : undefined), 60_000, 'the command to run on both nodes');

    // The server dies mid-job (no shutdown code runs) and comes back on the same address.
    await server!.kill('SIGKILL');
    await eventually(async () => (await h.runtime.service.get(job.id, admin)).state === 'running' ? true : undefined, 10_000, 'the job to still be running');
    server = await startServeProcess(serveConfig, { env: h.env });

    const waited = await cli;
    expect(waited.code, waited.stderr).toBe(0);
    expect(waited.stderr.match(/lost contact with the job store/g)).toHaveLength(1);
    expect(waited.stderr).toMatch(new RegExp(`job ${job.id} goes on on its worker`));
    expect(waited.stderr).toMatch(/back in contact after \d+ s; following job/);
    const said = waited.stderr.split('\n');
    expect(said.filter((l) => l === '» running')).toHaveLength(1);
    for (const host of ['node01', 'node02']) expect(said.filter((l) => l.startsWith(`${host}: ok`)), host).toHaveLength(1);
    expect(said.filter((l) => l.startsWith('» succeeded'))).toHaveLength(1);
    expect(waited.stdout).toMatch(/done/);

    const final = await h.runtime.service.get(job.id, admin);
    expect(final.state).toBe('succeeded');
    expect((await lines(file)).sort()).toEqual([`${job.id}.exec.node01`, `${job.id}.exec.node02`]);
    const audit = await h.runtime.ctx.audit.read({ jobId: job.id });
    expect(audit.filter((a) => a.kind === 'request')).toHaveLength(1);
    expect(audit.filter((a) => a.kind === 'decision')).toHaveLength(1);
    expect(audit.filter((a) => a.kind === 'execution').map((a) => a.host).sort()).toEqual(['node01', 'node02']);
    expect(audit.filter((a) => a.kind === 'outcome').map((a) => a.state)).toEqual(['succeeded']);
    expect(pgrepFull(tag)).toBe('');
  }, 300_000);

  it('an MCP call cut off by the kill: the client is told the connection failed (not a job outcome), and finds the job finished through the restarted server', async () => {
    const tag = `castellan-serverkill-${randomBytes(4).toString('hex')}`;
    const file = `/tmp/${tag}.log`;
    const client = await h.mcp('alice', `${server!.url}/mcp`);
    // A change tool answers at once with awaiting_approval and the job id (the AI cannot approve).
    const submitted = await client.callTool({ name: 'exec', arguments: { targets: 'node01', command: `echo "$CASTELLAN_RUN" >> ${file}; sleep 8 # ${tag}` } });
    const jobId = (submitted.structuredContent as { job_id?: string } | undefined)?.job_id ?? '';
    expect(jobId).toMatch(/^j/);
    expect((submitted.structuredContent as { state?: string }).state).toBe('awaiting_approval');
    await h.runtime.service.approve(jobId, april);
    await eventually(async () => ((await lines(file)).length === 1 ? true : undefined), 60_000, 'the command to run');

    // The AI follows the job with job_status: a call that is pending when the server dies.
    const progress: string[] = [];
    let settled = false;
    const following = client
      .callTool({ name: 'job_status', arguments: { job_id: jobId, wait_seconds: 120 } }, undefined, { onprogress: (p) => progress.push(String(p.message)), timeout: 15_000 })
      .then(
        (r) => ({ ok: r }),
        (err: unknown) => ({ err }),
      )
      .finally(() => {
        settled = true;
      });
    await eventually(async () => (progress.length > 0 ? true : undefined), 30_000, 'a progress notification of the wait');
    expect(settled).toBe(false);
    await server!.kill('SIGKILL');
    const cutOff = await following;
    // What the client was told: its request failed, with no answer about the job (neither a
    // result nor an error *result* that could read as the job's outcome). The MCP SDK's client
    // resumes a cut-off response stream only when the server sent event ids (an event store);
    // without, the request ends at the client's own timeout (here 15 s).
    expect('err' in cutOff, JSON.stringify(cutOff)).toBe(true);
    const told = 'err' in cutOff ? String((cutOff.err as Error).message ?? cutOff.err) : '';
    expect(told).toMatch(/timed out|disconnect|fetch failed|closed/i);
    expect(told).not.toMatch(/cancel|interrupted|succeeded/i);

    // The dropped call cancelled nothing: through the restarted server the same question, from a
    // new MCP session, gets the job's real outcome and output.
    server = await startServeProcess(serveConfig, { env: h.env });
    const again = await h.mcp('alice', `${server.url}/mcp`);
    const answer = await again.callTool({ name: 'job_status', arguments: { job_id: jobId, wait_seconds: 60 } });
    expect((answer.structuredContent as { state?: string }).state).toBe('succeeded');
    expect(JSON.stringify(answer.content)).toContain(jobId);
    expect(await lines(file)).toEqual([`${jobId}.exec.node01`]);
    expect((await h.runtime.ctx.audit.read({ jobId })).filter((a) => a.kind === 'outcome').map((a) => a.state)).toEqual(['succeeded']);
    expect(pgrepFull(tag)).toBe('');
  }, 300_000);
});
