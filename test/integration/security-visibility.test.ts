// Attack class: "who may see what". Oscar (operator) runs jobs whose input and output carry a
// canary; Victor (viewer) and an AI client acting for Victor try to read them through every
// read path: the API (job, list, events, long poll, output), MCP (job_status, job_output,
// jobs_list) and the real CLI in remote mode (job, job --log, jobs --json). The rule
// (auth/policy.ts jobAccess) lets others see summaries, and output for read jobs only; the
// requester, approvers and admins see everything. Garbage event positions are a 400 that
// names the parameter, on every front end.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { runCli } from '../support/castellan.js';
import { useRedis } from '../support/redis.js';
import { eventually, startHarness, type Harness } from './mcp-harness.js';

const redis = useRedis();
let h: Harness;
const canary = `vis-canary-${randomBytes(5).toString('hex')}`;
/** A change job (exec lowered to change in this config so it runs without approval). */
let changeJob = '';
/** A read job whose output others may read by default. */
let readJob = '';

interface Answer {
  readonly status: number;
  readonly text: string;
  readonly body: Record<string, unknown> & { error?: { code: string; message: string; field?: string } };
}

async function api(path: string, token: string): Promise<Answer> {
  const response = await fetch(`${h.base}/api/v1${path}`, { headers: { authorization: `Bearer ${token}` } });
  const text = await response.text();
  return { status: response.status, text, body: (text ? JSON.parse(text) : {}) as Answer['body'] };
}

beforeAll(async () => {
  h = await startHarness({ redisUrl: redis.url, nodes: 2, tokenFormat: 'opaque', config: { policy: { tool_risk: { exec: 'change' } } } });
  await h.startWorker();
  const oscar = await h.token('oscar');
  const submit = async (tool: string, input: unknown): Promise<string> => {
    const response = await fetch(`${h.base}/api/v1/jobs?wait=20s`, {
      method: 'POST',
      headers: { authorization: `Bearer ${oscar}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tool, input }),
    });
    const body = (await response.json()) as { job: { id: string; state: string } };
    return body.job.id;
  };
  changeJob = await submit('exec', { targets: 'node01', argv: ['echo', canary] });
  readJob = await submit('service_status', { targets: 'node01', unit: `${canary}.service` });
  for (const id of [changeJob, readJob]) {
    await eventually(async () => ((await h.runtime.ctx.store.get(id))?.finishedAt !== undefined ? true : undefined), 30_000, `job ${id} to end`);
  }
  // The canary really is in what the requester sees: the checks below are not vacuous.
  const own = await api(`/jobs/${changeJob}/output`, oscar);
  expect(own.text).toContain(canary);
  expect((await api(`/jobs/${changeJob}`, oscar)).text).toContain(canary);
}, 120_000);

afterAll(async () => {
  await h?.close();
});

describe('the HTTP API applies the visibility rule on every read', () => {
  it("a viewer sees the summary of someone else's change job, never its input, commands or output", async () => {
    const victor = await h.token('victor');
    const job = await api(`/jobs/${changeJob}`, victor);
    expect(job.status).toBe(200);
    expect(job.text).not.toContain(canary);
    const view = job.body['job'] as { state: string; tool: string; hidden?: { details: boolean; output: boolean; reason: string }; plan: { hosts: string[]; batches: unknown[] } };
    expect(view).toMatchObject({ tool: 'exec', state: 'succeeded', hidden: { details: true, output: true } });
    expect(view.hidden?.reason).toMatch(/policy\.visibility/);
    expect(view.plan.hosts).toEqual(['node01']);
    expect(view.plan.batches).toEqual([]);

    const list = await api('/jobs?limit=50', victor);
    expect(list.status).toBe(200);
    expect(list.text).not.toContain(canary);
    const events = await api(`/jobs/${changeJob}/events?after=0`, victor);
    expect(events.status).toBe(200);
    expect(events.text).not.toContain(canary);
    expect((events.body['events'] as Array<{ event: { type: string } }>).some((e) => e.event.type === 'output')).toBe(false);
    const longPoll = await api(`/jobs/${changeJob}/events?after=0&wait_ms=200`, victor);
    expect(longPoll.text).not.toContain(canary);
    const output = await api(`/jobs/${changeJob}/output`, victor);
    expect(output.status).toBe(200);
    expect(output.text).not.toContain(canary);
    expect(output.body['output_hidden']).toMatch(/policy\.visibility/);
  });

  it("a viewer reads a read job's output but not its input; an approver and an admin see everything", async () => {
    const victor = await api(`/jobs/${readJob}`, await h.token('victor'));
    const view = victor.body['job'] as { hidden?: { details: boolean; output: boolean } };
    expect(view.hidden).toMatchObject({ details: true, output: false });
    expect(JSON.stringify((victor.body['job'] as { input: unknown }).input)).not.toContain(canary);
    // A person with the approver role who did not vote sees only summaries of a job that needed no approval.
    expect((await api(`/jobs/${changeJob}`, await h.token('april'))).text).not.toContain(canary);
    const admin = await api(`/jobs/${changeJob}`, await h.token('alice'));
    expect(admin.text).toContain(canary);
    expect(admin.body['job']).not.toHaveProperty('hidden');
  });

  it('a token without any Castellan role is refused every read with the reason', async () => {
    const mallory = await h.token('mallory');
    for (const path of [`/jobs/${changeJob}`, '/jobs', `/jobs/${changeJob}/events`, `/jobs/${changeJob}/output`]) {
      const answer = await api(path, mallory);
      expect(answer.status, path).toBe(403);
      expect(answer.text).not.toContain(canary);
      expect(answer.body.error?.message).toMatch(/role/);
    }
  });

  it.each(['99999999999999999999-0', '1-99999999999999999999', 'abc', '-1', '1712345678901-0-0'])('events?after=%s is a 400 naming the parameter', async (after) => {
    const answer = await api(`/jobs/${changeJob}/events?after=${encodeURIComponent(after)}`, await h.token('oscar'));
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatchObject({ code: 'invalid_input', field: 'after' });
    expect(answer.body.error?.message).toMatch(/^after: /);
  });
});

function textOf(result: CallToolResult): string {
  return (result.content as Array<{ text: string }>).map((c) => c.text).join('\n') + JSON.stringify(result.structuredContent ?? {});
}

describe('MCP applies the same rule', () => {
  it('job_status, job_output and jobs_list for an AI client acting for a viewer show no canary', async () => {
    const client = await h.mcp('victor', undefined, 'claude-code');
    const status = (await client.callTool({ name: 'job_status', arguments: { job_id: changeJob } })) as CallToolResult;
    expect(status.isError).not.toBe(true);
    expect(textOf(status)).not.toContain(canary);
    expect(textOf(status)).toMatch(/hidden from this caller: input and commands and output/);
    const output = (await client.callTool({ name: 'job_output', arguments: { job_id: changeJob } })) as CallToolResult;
    expect(output.isError).not.toBe(true);
    expect(textOf(output)).not.toContain(canary);
    expect(textOf(output)).toContain('output_hidden');
    const list = (await client.callTool({ name: 'jobs_list', arguments: {} })) as CallToolResult;
    expect(textOf(list)).toContain(changeJob);
    expect(textOf(list)).not.toContain(canary);
  });

  it('the requester sees its own output over MCP; a cursor that is not one is refused naming it', async () => {
    const client = await h.mcp('oscar', undefined, 'claude-code');
    const output = (await client.callTool({ name: 'job_output', arguments: { job_id: changeJob } })) as CallToolResult;
    expect(textOf(output)).toContain(canary);
    const bad = (await client.callTool({ name: 'job_output', arguments: { job_id: changeJob, after: '99999999999999999999-0' } })) as CallToolResult;
    expect(bad.isError).toBe(true);
    expect(textOf(bad)).toMatch(/after: .*is not a cursor from next_after/);
  });
});

describe('the CLI in remote mode', () => {
  it('job, job --log and jobs --json as a viewer print no canary and say what is hidden', async () => {
    const env = { CASTELLAN_TOKEN: await h.token('victor'), CASTELLAN_CONFIG: '/nonexistent' };
    const job = await runCli(['--server', h.base, 'job', changeJob, '--log'], { env });
    expect(job.code).toBe(0);
    expect(job.stdout + job.stderr).not.toContain(canary);
    expect(job.stdout).toMatch(/hidden from you: input and commands and output: .*policy\.visibility/);
    const jobs = await runCli(['--server', h.base, '--json', 'jobs', '--limit', '50'], { env });
    expect(jobs.code).toBe(0);
    expect(jobs.stdout).toContain(changeJob);
    expect(jobs.stdout).not.toContain(canary);
    const own = await runCli(['--server', h.base, 'job', changeJob], { env: { ...env, CASTELLAN_TOKEN: await h.token('oscar') } });
    expect(own.stdout).toContain(canary);
  });
});
