// MCP end to end with opaque (Authelia-default) access tokens: the SDK's own Client over
// Streamable HTTP, Castellan's server and worker, the real-sshd lab and the lab OIDC provider.
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult, Progress } from '@modelcontextprotocol/sdk/types.js';
import { runStdio } from '../../src/mcp/stdio.js';
import { createRuntime } from '../../src/runtime.js';
import { startServer } from '../../src/server.js';
import { expiredAccessToken, forgedAccessToken, wrongAudienceToken } from '../support/oidc.js';
import { useRedis } from '../support/redis.js';
import { eventually, OTHER_RESOURCE, startHarness, type Harness } from './mcp-harness.js';

const redis = useRedis();
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ redisUrl: redis.url, nodes: 3, tokenFormat: 'opaque' });
  await h.startWorker();
});

afterAll(async () => {
  await h?.close();
});

type Outcome = {
  job_id: string;
  state: string;
  finished: boolean;
  summary: string;
  next?: string;
  plan: { hosts: string[]; steps: Array<{ command: string; hosts: string[] }> };
  approval?: { required: number; cli: string; api: string };
  hosts?: Array<{ host: string; status: string }>;
  folded?: Array<{ nodeset: string; count: number; status: string }>;
  data?: unknown;
};

async function call(client: Client, name: string, args: Record<string, unknown>, onprogress?: (p: Progress) => void): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args }, undefined, onprogress ? { onprogress } : {})) as CallToolResult;
}

function outcome(result: CallToolResult): Outcome {
  expect(result.isError ?? false).toBe(false);
  return result.structuredContent as Outcome;
}

function errorText(result: CallToolResult): string {
  expect(result.isError).toBe(true);
  return (result.content as Array<{ text: string }>).map((c) => c.text).join('\n');
}

async function jobCount(): Promise<number> {
  return (await h.runtime.service.list(h.runtime.localRequester('cli'), { limit: 200 })).length;
}

describe('tools/list', () => {
  it('shows a viewer only read tools and the job tools; an operator everything; no role nothing', async () => {
    const names = async (user: string) => (await (await h.mcp(user)).listTools()).tools.map((t) => t.name);
    const viewer = await names('victor');
    expect(viewer).toEqual(expect.arrayContaining(['ping', 'uptime', 'service_status', 'list_nodes', 'job_status', 'job_output', 'jobs_list', 'job_cancel']));
    expect(viewer).not.toContain('service_restart');
    expect(viewer).not.toContain('exec');
    expect(viewer).not.toContain('reboot');

    const operator = await names('oscar');
    expect(operator).toEqual(expect.arrayContaining(['ping', 'service_restart', 'exec', 'reboot', 'k8s_drain', 'job_approve', 'job_deny']));
    expect(operator.length).toBeGreaterThan(viewer.length);

    expect(await names('mallory')).toEqual([]);
  });

  it('with mcp.toolsets, lists per role only the chosen toolsets\' tools and the job tools, and refuses the others', async () => {
    const narrow = await h.extraServer({}, { mcp: { toolsets: ['inventory', 'services'] } });
    const listed = async (user: string) => (await (await h.mcp(user, `${narrow.server.url}/mcp`)).listTools()).tools.map((t) => t.name).sort();
    const jobTools = ['audit_list', 'job_approve', 'job_cancel', 'job_deny', 'job_output', 'job_status', 'jobs_list'];
    // A viewer: the read tools of the two toolsets; an operator: their change tools too.
    expect(await listed('victor')).toEqual(['audit_list', 'job_cancel', 'job_output', 'job_status', 'jobs_list', 'journal', 'list_groups', 'list_nodes', 'service_status']);
    expect(await listed('oscar')).toEqual([...jobTools, 'journal', 'list_groups', 'list_nodes', 'service_reload', 'service_restart', 'service_status'].sort());
    const before = await jobCount();
    const refused = errorText(await call(await h.mcp('oscar', `${narrow.server.url}/mcp`), 'ping', { targets: 'all' }));
    expect(refused).toBe("ping is in toolset 'health', which this server does not offer over MCP (mcp.toolsets: inventory, services); nothing was run. Ask a person to run it with the CLI or Slack.");
    expect(await jobCount()).toBe(before);
    // Smaller for it: what every conversation of that assistant pays before any work.
    const size = async (url: string) => JSON.stringify((await (await h.mcp('oscar', url)).listTools()).tools).length;
    expect(await size(`${narrow.server.url}/mcp`)).toBeLessThan((await size(`${h.base}/mcp`)) / 2);
  });

  it('publishes zod-derived input schemas, output schemas and risk annotations', async () => {
    const { tools } = await (await h.mcp('oscar')).listTools();
    const ping = tools.find((t) => t.name === 'ping')!;
    expect(ping.inputSchema.properties).toHaveProperty('targets');
    expect(ping.outputSchema?.properties).toHaveProperty('job_id');
    expect(ping.outputSchema?.properties).toHaveProperty('data');
    expect(ping.annotations).toMatchObject({ readOnlyHint: true, destructiveHint: false, idempotentHint: true });
    const exec = tools.find((t) => t.name === 'exec')!;
    expect(exec.annotations).toMatchObject({ readOnlyHint: false, destructiveHint: true });
    const restart = tools.find((t) => t.name === 'service_restart')!;
    expect(restart.annotations).toMatchObject({ readOnlyHint: false, destructiveHint: false });
  });
});

describe('tool calls', () => {
  it('runs ping on the lab with one progress notification per host, then the folded result', async () => {
    const client = await h.mcp('victor');
    await client.listTools(); // lets the client validate structuredContent against outputSchema
    const progress: Progress[] = [];
    const result = await call(client, 'ping', { targets: 'all' }, (p) => progress.push(p));
    const out = outcome(result);
    expect(out.state).toBe('succeeded');
    expect(out.finished).toBe(true);
    expect(out.hosts?.map((x) => x.host).sort()).toEqual(['node01', 'node02', 'node03']);
    expect(out.hosts?.every((x) => x.status === 'ok')).toBe(true);
    expect(out.folded?.[0]).toMatchObject({ nodeset: 'node[01-03]', count: 3, status: 'ok' });
    expect((out.data as { hosts: unknown[] }).hosts).toHaveLength(3);

    // Every stage is a notification (running, each host, the end), progress always increasing.
    const messages = progress.map((p) => p.message ?? '');
    expect(messages.filter((m) => /^node0\d ping: ok$/.test(m))).toHaveLength(3);
    expect(messages).toContain('running');
    expect(messages.at(-1)).toMatch(/^succeeded/);
    const values = progress.map((p) => p.progress);
    expect(values).toEqual([...values].sort((a, b) => a - b));
    expect(new Set(values).size).toBe(values.length);
    expect(progress.every((p) => p.total === undefined || p.total >= p.progress)).toBe(true);
    // The text for the model is the tool's table, not raw output or the JSON again.
    const text = (result.content as Array<{ text: string }>).map((c) => c.text).join('\n');
    expect(text).toMatch(/^node\[01-03\] \(3\) ok {2}p50 \S+ m?s {2}max \S+ m?s$/m);
    expect(text).not.toContain('"hosts"');
    // The table is the text's; structuredContent has the data behind it, not the table again.
    expect(result.structuredContent).not.toHaveProperty('view');
  });

  it('answers an inventory-only tool with its structured data', async () => {
    const client = await h.mcp('victor');
    const out = outcome(await call(client, 'list_nodes', { targets: 'node[01-02]' }));
    expect(out.state).toBe('succeeded');
    expect((out.data as { nodes: Array<{ name: string }> }).nodes.map((n) => n.name)).toEqual(['node01', 'node02']);
  });

  it('returns a job handle when the wait budget runs out, and job_status later shows the job finished', async () => {
    const quick = await h.extraServer({ waitBudgetMs: 300 });
    const client = await h.mcp('victor', `${quick.server.url}/mcp`);
    await h.stopWorker(); // the job stays queued, as behind a busy worker
    let id: string;
    try {
      const out = outcome(await call(client, 'ping', { targets: 'node01' }));
      expect(out.state).toBe('queued');
      expect(out.finished).toBe(false);
      expect(out.job_id).toMatch(/^j[a-z0-9]+$/);
      expect(out.next).toContain('job_status');
      id = out.job_id;
    } finally {
      await h.startWorker();
    }
    const later = outcome(await call(await h.mcp('victor'), 'job_status', { job_id: id, wait_seconds: 20 }));
    expect(later.job_id).toBe(id);
    expect(later.state).toBe('succeeded');
    expect(later.hosts).toEqual([expect.objectContaining({ host: 'node01', status: 'ok' })]);
  });

  it('pages output with job_output: numbered lines per host, alike hosts folded, stderr marked, the cursor going on', async () => {
    const client = await h.mcp('victor');
    await client.listTools(); // the client checks structuredContent against job_output's outputSchema
    const done = outcome(await call(client, 'service_status', { targets: 'all', unit: 'castellan-no-such-unit.service' }));
    expect(done.finished).toBe(true);
    type Page = { hosts: Array<{ hosts: string; count: number; total_lines: number; lines: Array<{ n: number; stream: string; text: string }> }>; next_after?: string };
    const whole = await call(client, 'job_output', { job_id: done.job_id });
    const all = whole.structuredContent as Page;
    expect(all.next_after).toBeUndefined();
    // The three lab nodes answer alike: one group, its lines numbered from 1.
    expect(all.hosts).toEqual([expect.objectContaining({ hosts: 'node[01-03]', count: 3 })]);
    const lines = all.hosts[0]!.lines;
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.map((l) => l.n)).toEqual(lines.map((_l, i) => i + 1));
    const text = (whole.content as Array<{ text: string }>).map((c) => c.text).join('\n');
    expect(text.split('\n')[0]).toBe(`job ${done.job_id} ${done.state.replaceAll('_', ' ')}`);
    expect(text).toContain(`node[01-03] (3)`);
    expect(text).toContain(`  1 ${lines[0]!.stream === 'stderr' ? '!' : '│'} ${lines[0]!.text}`);
    expect(text).not.toContain('"lines"');

    // One line a page, narrowed to two hosts: every line once, then no cursor.
    const seen: string[] = [];
    let after: string | undefined;
    for (let i = 0; i < 50; i++) {
      const result = await call(client, 'job_output', { job_id: done.job_id, hosts: 'node[02-03]', max_lines: 1, ...(after !== undefined ? { after } : {}) });
      const page = result.structuredContent as Page;
      seen.push(...page.hosts.flatMap((g) => g.lines.map((l) => `${g.hosts} ${l.n} ${l.text}`)));
      after = page.next_after;
      if (after === undefined) break;
      expect((result.content as Array<{ text: string }>).at(-1)?.text).toContain(`after "${after}"`);
    }
    expect(seen).toEqual(lines.map((l) => `node[02-03] ${l.n} ${l.text}`));
    expect(errorText(await call(client, 'job_output', { job_id: done.job_id, hosts: 'node07' }))).toMatch(/hosts: node07 not in job/);
  });
});

describe('approvals', () => {
  it('a destructive call waits for approval with the exact plan, never runs on its own, and runs once another person approves over the HTTP API', async () => {
    const marker = `/tmp/castellan-mcp-marker-${randomBytes(6).toString('hex')}`;
    // alice is an admin (so an approver too): only the MCP rule and the self-approval rule stop her.
    const alice = await h.mcp('alice');
    const out = outcome(await call(alice, 'exec', { targets: 'node01', argv: ['touch', marker] }));
    try {
      expect(out.state).toBe('awaiting_approval');
      expect(out.summary).toMatch(/nothing has run/);
      expect(out.plan.hosts).toEqual(['node01']);
      expect(out.plan.steps[0]?.command).toBe(`touch ${marker}`);
      expect(out.approval).toMatchObject({ required: 1, cli: `castellan approve ${out.job_id}`, api: `POST ${h.base}/api/v1/jobs/${out.job_id}/approve` });

      // The requester cannot approve through MCP, and neither can another approver (an AI client never approves).
      const self = errorText(await call(alice, 'job_approve', { job_id: out.job_id }));
      expect(self).toMatch(/cannot be given by an AI client/);
      expect(self).toContain(`castellan approve ${out.job_id}`);
      const viaMcp = errorText(await call(await h.mcp('april'), 'job_approve', { job_id: out.job_id }));
      expect(viaMcp).toMatch(/cannot be given by an AI client/);

      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(existsSync(marker)).toBe(false);
      expect((await h.runtime.service.get(out.job_id, h.runtime.localRequester('cli'))).state).toBe('awaiting_approval');

      // Nor over HTTP: someone else must approve.
      const selfHttp = await fetch(`${h.base}/api/v1/jobs/${out.job_id}/approve`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await h.token('alice')}`, 'content-type': 'application/json' },
        body: '{}',
      });
      expect(selfHttp.status).toBe(403);
      expect(JSON.stringify(await selfHttp.json())).toMatch(/someone else must approve/);

      const approved = await fetch(`${h.base}/api/v1/jobs/${out.job_id}/approve`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await h.token('april')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ reason: 'looks right' }),
      });
      expect(approved.status).toBe(200);

      const final = outcome(await call(alice, 'job_status', { job_id: out.job_id, wait_seconds: 20 }));
      expect(final.state).toBe('succeeded');
      expect(existsSync(marker)).toBe(true);
    } finally {
      await rm(marker, { force: true });
    }
  });

  it('refuses a viewer calling a change tool, naming the role, and records no job', async () => {
    const before = await jobCount();
    const text = errorText(await call(await h.mcp('victor'), 'service_restart', { targets: 'node01', unit: 'nginx' }));
    expect(text).toMatch(/needs the operator role/);
    expect(text).toMatch(/you have viewer/);
    expect(await jobCount()).toBe(before);
  });
});

describe('hostile and malformed arguments', () => {
  it('names the bad field and runs nothing', async () => {
    const oscar = await h.mcp('oscar');
    const before = await jobCount();
    const unit = errorText(await call(oscar, 'service_status', { targets: 'all', unit: 'nginx; rm -rf /' }));
    expect(unit).toMatch(/\bunit\b/);
    const targets = errorText(await call(oscar, 'exec', { targets: '$(reboot)', argv: ['true'] }));
    expect(targets).toMatch(/\btargets\b/);
    const unknownParam = errorText(await call(oscar, 'ping', { targets: 'all', hosts: 'node01' }));
    expect(unknownParam).toMatch(/hosts/);
    const noSuchHost = errorText(await call(oscar, 'ping', { targets: 'node99' }));
    expect(noSuchHost).toMatch(/node99/);
    const badJobId = errorText(await call(oscar, 'job_status', { job_id: '../../etc/passwd' }));
    expect(badJobId).toMatch(/job_id/);
    expect(await jobCount()).toBe(before);
  });

  it('answers an unknown tool name with a protocol error suggesting the closest one', async () => {
    await expect((await h.mcp('oscar')).callTool({ name: 'pnig', arguments: {} })).rejects.toThrow(/did you mean.*ping/i);
  });
});

describe('cancellation', () => {
  it('cancels the job on notifications/cancelled', async () => {
    const client = await h.mcp('victor');
    await h.stopWorker();
    try {
      const abort = new AbortController();
      const started = Date.now();
      const pending = client.callTool({ name: 'ping', arguments: { targets: 'node02' } }, undefined, { signal: abort.signal });
      const job = await eventually(async () => {
        const jobs = await h.runtime.service.list(h.runtime.localRequester('cli'), { limit: 20, state: 'queued' });
        return jobs.find((j) => j.tool === 'ping' && j.requester.subject === 'victor' && Date.parse(j.createdAt) >= started - 1000);
      }, 15_000, 'the queued ping job');
      abort.abort('the user changed their mind');
      await expect(pending).rejects.toThrow();
      const cancelled = await eventually(async () => {
        const j = await h.runtime.service.get(job.id, h.runtime.localRequester('cli'));
        return j.state === 'cancelled' ? j : undefined;
      }, 10_000, 'the job to be cancelled');
      expect(cancelled.reason).toMatch(/the user changed their mind/);
    } finally {
      await h.startWorker();
    }
  });

  it('does not cancel the job when the connection drops', async () => {
    const client = await h.mcp('victor');
    await h.stopWorker();
    let jobId: string;
    try {
      const started = Date.now();
      const pending = client.callTool({ name: 'ping', arguments: { targets: 'node03' } }).catch((error: unknown) => error);
      const job = await eventually(async () => {
        const jobs = await h.runtime.service.list(h.runtime.localRequester('cli'), { limit: 20, state: 'queued' });
        return jobs.find((j) => j.tool === 'ping' && j.plan.hosts[0] === 'node03' && Date.parse(j.createdAt) >= started - 1000);
      }, 15_000, 'the queued ping job');
      jobId = job.id;
      await client.close();
      expect(await pending).toBeInstanceOf(Error);
      await eventually(async () => (h.server.calls.size === 0 ? true : undefined), 10_000, 'the server to notice the dropped call');
      expect((await h.runtime.service.get(jobId, h.runtime.localRequester('cli'))).state).toBe('queued');
    } finally {
      await h.startWorker();
    }
    const done = await h.runtime.service.wait(jobId, h.runtime.localRequester('cli'), 20_000);
    expect(done.state).toBe('succeeded');
  });

  it('job_cancel cancels a waiting job', async () => {
    const oscar = await h.mcp('oscar');
    const out = outcome(await call(oscar, 'reboot', { targets: 'node02' }));
    expect(out.state).toBe('awaiting_approval');
    const cancelled = outcome(await call(oscar, 'job_cancel', { job_id: out.job_id, reason: 'wrong node' }));
    expect(cancelled.state).toBe('cancelled');
    expect(cancelled.finished).toBe(true);
  });
});

describe('bearer authentication on /mcp', () => {
  const initialize = {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
  };
  const post = (token?: string) =>
    fetch(`${h.base}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify(initialize),
    });
  const metadata = () => `resource_metadata="${h.base}/.well-known/oauth-protected-resource"`;

  it('answers a good token and serves the protected-resource metadata', async () => {
    const ok = await post(await h.token('victor'));
    expect(ok.status).toBe(200);
    await ok.body?.cancel();
    const stream = await fetch(`${h.base}/mcp`, { headers: { authorization: `Bearer ${await h.token('victor')}`, accept: 'text/event-stream' } });
    expect(stream.status).toBe(405); // stateless: no standalone SSE stream
    await stream.body?.cancel();
    const prm = (await (await fetch(`${h.base}/.well-known/oauth-protected-resource`)).json()) as Record<string, unknown>;
    expect(prm).toMatchObject({ resource: h.base, authorization_servers: [h.oidc.issuer] });
  });

  it('refuses missing, expired, wrong-audience, forged and revoked tokens with 401 and the metadata pointer', async () => {
    const revoked = await h.oidc.mintAccessToken({ username: 'oscar' });
    await h.oidc.revoke(revoked);
    const cases: Array<[string, string | undefined]> = [
      ['missing', undefined],
      ['expired', await expiredAccessToken(h.oidc, 'oscar')],
      ['wrong audience', await wrongAudienceToken(h.oidc, 'oscar', OTHER_RESOURCE)],
      ['forged', await forgedAccessToken(h.oidc, 'oscar')],
      ['revoked', revoked],
    ];
    for (const [what, token] of cases) {
      const response = await post(token);
      expect(response.status, what).toBe(401);
      expect(response.headers.get('www-authenticate'), what).toContain(metadata());
      await response.body?.cancel();
    }
  });

  it('refuses a foreign Host or Origin (DNS rebinding)', async () => {
    const token = await h.token('victor');
    const origin = await fetch(`${h.base}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, origin: 'https://evil.example', 'content-type': 'application/json' },
      body: JSON.stringify(initialize),
    });
    expect(origin.status).toBe(403);
    const allowed = await fetch(`${h.base}/mcp`, { method: 'OPTIONS', headers: { origin: 'http://localhost:6274', 'access-control-request-method': 'POST' } });
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-headers')).toMatch(/Mcp-Protocol-Version/);
  });
});

describe('stdio', () => {
  it('serves the same tools as the configured local identity, over newline-delimited JSON-RPC', async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const replies = new Map<number, Record<string, unknown>>();
    let buffered = '';
    output.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const message = JSON.parse(buffered.slice(0, nl)) as Record<string, unknown> & { id?: number };
        buffered = buffered.slice(nl + 1);
        if (typeof message.id === 'number') replies.set(message.id, message);
      }
    });
    const handle = await runStdio(h.runtime, { input, output });
    const request = async (id: number, method: string, params: unknown) => {
      input.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
      return eventually(async () => replies.get(id), 30_000, `reply ${id}`);
    };
    await request(1, 'initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'stdio-test', version: '0' } });
    input.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
    const list = (await request(2, 'tools/list', {})) as { result: { tools: Array<{ name: string }> } };
    expect(list.result.tools.map((t) => t.name)).toEqual(expect.arrayContaining(['ping', 'exec', 'job_status']));
    const ping = (await request(3, 'tools/call', { name: 'ping', arguments: { targets: 'node01' } })) as { result: CallToolResult };
    const out = outcome(ping.result);
    expect(out.state).toBe('succeeded');
    const job = await h.runtime.service.get(out.job_id, h.runtime.localRequester('cli'));
    expect(job.requester).toMatchObject({ subject: 'local-admin', origin: 'mcp' });
    input.end();
    await handle.closed;
  });
});

describe('retries and read-only mode', () => {
  const toolCall = (token: string, id: number, args: Record<string, unknown>) =>
    fetch(`${h.base}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'list_nodes', arguments: args } }),
    }).then(async (response) => {
      // The answer comes as an SSE stream; its data line is the JSON-RPC response.
      const data = (await response.text()).split('\n').find((line) => line.startsWith('data: {'));
      return (JSON.parse(data!.slice(6)) as { result: { structuredContent: { job_id: string } } }).result.structuredContent.job_id;
    });

  it('gives a client re-sending the same request the same job, and a new request a new one', async () => {
    const token = await h.token('victor');
    const first = await toolCall(token, 4242, { targets: 'node01' });
    expect(await toolCall(token, 4242, { targets: 'node01' })).toBe(first);
    expect(await toolCall(token, 4243, { targets: 'node01' })).not.toBe(first);
    expect(await toolCall(token, 4242, { targets: 'node02' })).not.toBe(first);
    expect(await toolCall(await h.token('oscar'), 4242, { targets: 'node01' })).not.toBe(first);
  });

  it('in read-only mode lists only read tools, even to an admin, and refuses the rest', async () => {
    const runtime = await createRuntime({ ...h.config, policy: { ...h.config.policy, readOnly: true } }, { mode: 'server' });
    const server = await startServer(runtime, { port: 0 });
    try {
      const alice = await h.mcp('alice', `${server.url}/mcp`);
      const names = (await alice.listTools()).tools.map((t) => t.name);
      expect(names).toContain('ping');
      expect(names).not.toContain('exec');
      expect(names).not.toContain('service_restart');
      const text = errorText(await call(alice, 'exec', { targets: 'node01', argv: ['true'] }));
      expect(text).toMatch(/read-only mode/);
    } finally {
      await server.close();
      await runtime.close();
    }
  });
});
