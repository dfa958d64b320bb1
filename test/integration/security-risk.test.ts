// Attack class: "risk follows what a tool can do". With real lab tokens, through the HTTP API,
// MCP and the real CLI in remote mode:
// - an operator runs arbitrary code with run_script or overwrites a file with copy_file: both are
//   destructive by capability, so they wait for an approver; the marker stays absent, the ledger
//   empty, the audit records the request as awaiting approval (and an approval then runs it, so
//   the marker check can fail);
// - a viewer (or an AI client acting for one) hands a read tool a kubeconfig whose exec plugin
//   would run a command: the request is refused naming the field, nothing is recorded or run;
// - a read tool pointed at a device or FIFO gives up at once ("not a regular file") instead of
//   holding a worker.
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { runCli } from '../support/castellan.js';
import { useRedis } from '../support/redis.js';
import { eventually, startHarness, type Harness } from './mcp-harness.js';

const redis = useRedis();
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ redisUrl: redis.url, nodes: 1, tokenFormat: 'opaque', config: { jobs: { wait_budget: '2s' } } });
  await h.startWorker();
}, 120_000);

afterAll(async () => {
  await h?.close();
});

function marker(): string {
  return `/tmp/castellan-sec-risk-${randomBytes(6).toString('hex')}`;
}

function textOf(result: CallToolResult): string {
  return (result.content as Array<{ text: string }>).map((c) => c.text).join('\n');
}

async function api(token: string, tool: string, input: unknown): Promise<{ status: number; body: { error?: { message: string; field?: string }; job?: { id: string; state: string } } }> {
  const response = await fetch(`${h.base}/api/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tool, input }),
  });
  return { status: response.status, body: (await response.json()) as never };
}

function cliEnv(token: string): Record<string, string> {
  return { CASTELLAN_TOKEN: token, CASTELLAN_CONFIG: '/nonexistent' };
}

async function jobIdsOf(subject: string): Promise<string[]> {
  return (await h.runtime.service.list(h.runtime.localRequester('cli'), { limit: 200 })).filter((j) => j.requester.subject === subject).map((j) => j.id);
}

/** The job waits for approval, did not run, and the audit says so. */
async function waitingAndNotRun(jobId: string, file: string): Promise<void> {
  // Time for a wrongly queued job to reach the running worker before concluding it did not run.
  await new Promise((resolve) => setTimeout(resolve, 700));
  expect(existsSync(file)).toBe(false);
  expect(await h.runtime.ctx.ledger.entries(jobId)).toEqual([]);
  const record = await h.runtime.ctx.store.get(jobId);
  expect(record?.state).toBe('awaiting_approval');
  expect(record?.risk).toBe('destructive');
  const audit = await h.runtime.ctx.audit.read({ jobId });
  expect(audit.filter((a) => a.kind === 'request').map((a) => a.state)).toEqual(['awaiting_approval']);
  expect(audit.filter((a) => a.kind === 'execution')).toEqual([]);
}

describe('run_script and copy_file are destructive: an operator waits for an approver', () => {
  it('run_script through the API, MCP and the CLI; approved, it runs (the marker check can fail)', async () => {
    const files = [marker(), marker(), marker()];
    const viaApi = await api(await h.token('oscar'), 'run_script', { targets: 'node01', script: `touch ${files[0]}` });
    expect(viaApi.status).toBe(202);
    expect(viaApi.body.job?.state).toBe('awaiting_approval');

    const client = await h.mcp('oscar', undefined, 'claude-code');
    const viaMcp = (await client.callTool({ name: 'run_script', arguments: { targets: 'node01', script: `touch ${files[1]}` } })) as CallToolResult;
    expect(viaMcp.isError, textOf(viaMcp)).not.toBe(true);
    const mcpJob = /\[job (j[a-z0-9]+)\]/.exec(textOf(viaMcp))?.[1] ?? '';
    expect(textOf(viaMcp)).toMatch(/approv/i);

    const before = await jobIdsOf('oscar');
    const viaCli = await runCli(['--server', h.base, '--no-wait', 'run_script', 'node01', '--script', `touch ${files[2]}`], { env: cliEnv(await h.token('oscar')) });
    // Exit 3: submitted and still pending (waiting for an approver).
    expect(viaCli.code, viaCli.stderr).toBe(3);
    const cliJob = (await jobIdsOf('oscar')).find((id) => !before.includes(id)) ?? '';
    expect(cliJob).not.toBe('');

    const ids = [viaApi.body.job?.id ?? '', mcpJob, cliJob];
    for (const [i, id] of ids.entries()) await waitingAndNotRun(id, files[i] ?? '');

    // The marker check is live: an approver's vote runs the first one.
    const vote = await fetch(`${h.base}/api/v1/jobs/${ids[0]}/approve`, { method: 'POST', headers: { authorization: `Bearer ${await h.token('april')}` } });
    expect(vote.status).toBeLessThan(300);
    await eventually(async () => (existsSync(files[0] ?? '') ? true : undefined), 60_000, 'the approved script to run');
  }, 180_000);

  it('copy_file overwriting a remote path waits too', async () => {
    await mkdir(h.config.jobs.filesRoot, { recursive: true });
    const source = path.join(h.config.jobs.filesRoot, `payload-${randomBytes(4).toString('hex')}`);
    await writeFile(source, 'overwritten\n');
    const target = marker();
    const viaApi = await api(await h.token('oscar'), 'copy_file', { targets: 'node01', direction: 'upload', source: path.basename(source), destination: target });
    expect(viaApi.status, JSON.stringify(viaApi.body)).toBe(202);
    expect(viaApi.body.job?.state).toBe('awaiting_approval');
    await waitingAndNotRun(viaApi.body.job?.id ?? '', target);
  }, 120_000);
});

describe('a read tool takes no file that a node program would run as code', () => {
  it('a kubeconfig in the request is refused naming the field, through the API, MCP and the CLI; nothing is recorded', async () => {
    const plugin = marker();
    const evil = `${plugin}.kubeconfig`;
    // What an attacker would hand kubectl: an exec credential plugin that runs a command.
    await writeFile(evil, `apiVersion: v1\nkind: Config\nusers: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: [-c, "touch ${plugin}"]}}}]\n`);
    const before = await jobIdsOf('victor');

    const viaApi = await api(await h.token('victor'), 'k8s_nodes', { kubeconfig: evil });
    expect(viaApi.status).toBe(400);
    expect(viaApi.body.error?.message).toMatch(/kubeconfig/);

    const client = await h.mcp('victor', undefined, 'claude-code');
    const viaMcp = (await client.callTool({ name: 'k8s_nodes', arguments: { kubeconfig: evil } })) as CallToolResult;
    expect(viaMcp.isError).toBe(true);
    expect(textOf(viaMcp)).toMatch(/kubeconfig/);

    const viaCli = await runCli(['--server', h.base, 'k8s_nodes', '--kubeconfig', evil], { env: cliEnv(await h.token('victor')) });
    expect(viaCli.code).toBe(64);
    expect(viaCli.stderr).toMatch(/kubeconfig/);

    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(existsSync(plugin)).toBe(false);
    expect(await jobIdsOf('victor')).toEqual(before);
  }, 120_000);
});

describe('a read tool cannot hold a worker on a device or a FIFO', () => {
  it('cert_expiry on /dev/zero ends at once with "not a regular file", through the API, MCP and the CLI', async () => {
    const token = await h.token('victor');
    const response = await fetch(`${h.base}/api/v1/jobs?wait=60s`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tool: 'cert_expiry', input: { targets: 'node01', paths: ['/dev/zero'], timeout: '24h' } }),
    });
    const { job } = (await response.json()) as { job: { id: string; state: string } };
    expect(job.state).not.toMatch(/queued|running/);
    const record = await h.runtime.ctx.store.get(job.id);
    expect(JSON.stringify(record?.result)).toMatch(/not a regular file/);

    const client = await h.mcp('victor', undefined, 'claude-code');
    const viaMcp = (await client.callTool({ name: 'cert_expiry', arguments: { targets: 'node01', paths: ['/dev/zero'], timeout: '24h' } })) as CallToolResult;
    expect(textOf(viaMcp)).toMatch(/not a regular file/);

    const viaCli = await runCli(['--server', h.base, 'cert_expiry', 'node01', '--paths', '/dev/zero', '--timeout', '24h'], { env: cliEnv(token), timeoutMs: 90_000 });
    expect(viaCli.stdout + viaCli.stderr).toMatch(/not a regular file/);
  }, 180_000);
});
