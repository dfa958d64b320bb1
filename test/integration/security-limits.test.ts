// Attack class: "bounded resources". With real lab tokens, one person tries to make Castellan do
// unbounded work: a node set of a hundred million names, a flood of job requests (token bucket
// per subject and origin, in Redis), more jobs in flight than allowed, a read tool asked to
// wait a day, and a JSON-RPC batch on /mcp. Each is refused (or capped) with a reason that
// names the limit, through the API, MCP and the real CLI, and nothing extra is recorded.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { runCli } from '../support/castellan.js';
import { useRedis } from '../support/redis.js';
import { startHarness, type Harness } from './mcp-harness.js';

const redis = useRedis();
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    redisUrl: redis.url,
    nodes: 2,
    tokenFormat: 'opaque',
    config: {
      limits: { max_hosts: 64, rate: { per_minute: 2, burst: 3 }, jobs_per_requester: 2, read_timeout: '30s', output_per_host: '2KiB', output_per_job: '5KiB' },
      policy: { tool_risk: { exec: 'change' } },
    },
  });
  await h.startWorker();
}, 120_000);

afterAll(async () => {
  await h?.close();
});

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: { error?: { code: string; message: string; field?: string }; job?: { id: string; timeout_ms: number; plan: { batches: Array<{ steps: Array<{ timeout_ms: number }> }> } } };
}

async function submit(token: string, tool: string, input: unknown): Promise<Answer> {
  const response = await fetch(`${h.base}/api/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tool, input }),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Answer['body'] };
}

async function jobsOf(subject: string): Promise<number> {
  return (await h.runtime.service.list(h.runtime.localRequester('cli'), { limit: 200 })).filter((j) => j.requester.subject === subject).length;
}

function textOf(result: CallToolResult): string {
  return (result.content as Array<{ text: string }>).map((c) => c.text).join('\n');
}

describe('node sets are bounded before they are expanded (limits.max_hosts)', () => {
  const huge = 'node[1-100000000]';

  it('the API refuses with 400 naming the limit; MCP and the CLI say the same; nothing is recorded', async () => {
    const before = await jobsOf('alice');
    const api = await submit(await h.token('alice'), 'ping', { targets: huge });
    expect(api.status).toBe(400);
    expect(api.body.error?.message).toMatch(/expands to more than 64 names \(limits\.max_hosts\); nothing was expanded/);
    expect(api.body.error?.field).toBe('targets');
    const client = await h.mcp('alice', undefined, 'claude-code');
    const mcp = (await client.callTool({ name: 'ping', arguments: { targets: `${huge},node01` } })) as CallToolResult;
    expect(mcp.isError).toBe(true);
    expect(textOf(mcp)).toMatch(/limits\.max_hosts/);
    const cli = await runCli(['--server', h.base, 'ping', 'n[1-100000]-eth[0-100000]'], { env: { CASTELLAN_TOKEN: await h.token('alice'), CASTELLAN_CONFIG: '/nonexistent' } });
    expect(cli.code).toBe(64);
    expect(cli.stderr).toMatch(/limits\.max_hosts/);
    expect(await jobsOf('alice')).toBe(before);
  });
});

describe('job creation is rate limited per person and origin (limits.rate)', () => {
  it('the burst passes, the next request is a 429 with Retry-After; another origin has its own bucket; MCP and the CLI say why', async () => {
    const token = await h.token('oscar');
    for (let i = 0; i < 3; i++) expect((await submit(token, 'list_nodes', { targets: 'all' })).status).toBeLessThan(300);
    const refused = await submit(token, 'list_nodes', { targets: 'all' });
    expect(refused.status).toBe(429);
    expect(refused.body.error?.code).toBe('rate_limited');
    expect(refused.body.error?.message).toMatch(/at most 2 jobs a minute \(bursts of 3\).*limits\.rate.*try again in \d+ s/);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await jobsOf('oscar')).toBe(3);

    // The CLI client is the same origin (cli): the same bucket, exit 75 and the reason.
    const cli = await runCli(['--server', h.base, 'list-nodes'], { env: { CASTELLAN_TOKEN: await h.token('oscar'), CASTELLAN_CONFIG: '/nonexistent' } });
    expect(cli.code).toBe(75);
    expect(cli.stderr).toMatch(/rate limit/);

    // An AI client acting for Oscar draws from its own bucket, then is refused the same way.
    const client = await h.mcp('oscar', undefined, 'claude-code');
    for (let i = 0; i < 3; i++) expect(((await client.callTool({ name: 'list_nodes', arguments: { targets: 'all' } })) as CallToolResult).isError).not.toBe(true);
    const mcp = (await client.callTool({ name: 'list_nodes', arguments: { targets: 'all' } })) as CallToolResult;
    expect(mcp.isError).toBe(true);
    expect(textOf(mcp)).toMatch(/rate limit: .*limits\.rate/);
    expect(await jobsOf('oscar')).toBe(6);
    const refusals = (await h.runtime.ctx.audit.read({ count: 1000 })).filter((r) => r.kind === 'refused' && r.subject === 'oscar' && /limits\.rate/.test(String(r.reason)));
    expect(refusals.length).toBe(3);
  });

  it('a JSON-RPC batch on /mcp is refused whole, and nothing runs', async () => {
    const before = await jobsOf('victor');
    const call = (id: number) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'list_nodes', arguments: { targets: 'all' } } });
    const response = await fetch(`${h.base}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await h.token('victor', 'claude-code')}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify(Array.from({ length: 50 }, (_, i) => call(i + 1))),
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: number; message: string } };
    expect(body.error.code).toBe(-32600);
    expect(body.error.message).toMatch(/batches are refused.*limits\.mcp_batches/);
    expect(await jobsOf('victor')).toBe(before);
  });
});

describe('jobs in flight per person (limits.jobs_per_requester)', () => {
  it('with two jobs queued, a third is refused with the ids to wait for; once they end, it goes through', async () => {
    await h.stopWorker();
    try {
      const token = await h.token('april');
      const first = await submit(token, 'ping', { targets: 'node01' });
      const second = await submit(token, 'ping', { targets: 'node02' });
      expect([first.status, second.status]).toEqual([202, 202]);
      const third = await submit(token, 'ping', { targets: 'node01' });
      expect(third.status).toBe(429);
      expect(third.body.error?.message).toMatch(/you already have 2 jobs queued or running \(limits\.jobs_per_requester is 2\)/);
      const named = /castellan cancel (j[a-z0-9]+)/.exec(third.body.error?.message ?? '')?.[1];
      expect([first.body.job?.id, second.body.job?.id]).toContain(named);
      expect(await jobsOf('april')).toBe(2);
      for (const id of [first.body.job?.id, second.body.job?.id]) await h.runtime.service.cancel(id ?? '', h.runtime.localRequester('cli'), 'test');
    } finally {
      await h.startWorker();
    }
    // Once they ended the limit no longer applies (through MCP: the refused request above spent
    // the last token of April's cli bucket, and each origin has its own).
    const client = await h.mcp('april', undefined, 'claude-code');
    const again = (await client.callTool({ name: 'ping', arguments: { targets: 'node01' } })) as CallToolResult;
    expect(again.isError, textOf(again)).not.toBe(true);
  });
});

describe('read tools cannot hold a worker (limits.read_timeout)', () => {
  it("a read job's step and job timeouts are capped, whatever it asked for", async () => {
    const answer = await submit(await h.token('victor'), 'cert_expiry', { targets: 'node01', paths: ['/etc/hostname'], timeout: '24h' });
    expect(answer.status).toBeLessThan(300);
    const job = answer.body.job;
    expect(job?.timeout_ms).toBeLessThanOrEqual(30_000);
    for (const step of job?.plan.batches.flatMap((b) => b.steps) ?? []) expect(step.timeout_ms).toBeLessThanOrEqual(30_000);
    expect(job?.plan.batches.length).toBeGreaterThan(0);
  });
});

describe('stored output is bounded per host and per job (limits.output_per_host, output_per_job)', () => {
  it('each cut is marked with the limit that made it, in the result and in the live preview', async () => {
    const token = await h.token('alice');
    const response = await fetch(`${h.base}/api/v1/jobs?wait=20s`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tool: 'exec', input: { targets: 'node01,node02', command: "head -c 3000 /dev/zero | tr '\\0' a" } }),
    });
    const { job } = (await response.json()) as { job: { id: string; state: string } };
    expect(job.state).toBe('succeeded');
    const page = (await (await fetch(`${h.base}/api/v1/jobs/${job.id}/output?max_chars=100000`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
      folded: Array<{ text: string }>;
      hosts: Array<{ host: string; stdout: string; truncated: boolean }>;
    };
    expect(page.folded[0]?.text).toMatch(/^a{2048}\n\[… 952 more bytes of output not kept \(limits\.output_per_host\)\]$/);
    const [first, second] = page.hosts;
    expect(first).toMatchObject({ truncated: true });
    expect(first?.stdout).toMatch(/^a{2048}\n\[… 952 more bytes .*limits\.output_per_host/);
    // 5 KiB per job: 2 KiB folded + 2 KiB node01 leaves 1 KiB for node02.
    expect(second?.stdout).toMatch(/^a{1024}\n\[… 1976 more bytes .*limits\.output_per_job/);
    const events = (await (await fetch(`${h.base}/api/v1/jobs/${job.id}/events`, { headers: { authorization: `Bearer ${token}` } })).json()) as { events: Array<{ event: { type: string; text?: string } }> };
    const preview = events.events.filter((e) => e.event.type === 'output').map((e) => e.event.text ?? '').join('');
    expect(preview).toMatch(/live output preview stopped: limits\.output_per_job/);
    expect(preview.replace(/\n\[….*\]\n/, '').length).toBeLessThanOrEqual(5120 + 4096);
  });
});
