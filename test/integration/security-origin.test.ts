// Attack class: "the origin is a property of the credential, never of the request".
// Real lab OIDC tokens issued to an AI client (claude-code, and mcp-inspector which
// auth.clients does not list) try to pass as a person through every front end: the HTTP API
// (with forged origin headers), /mcp (even with a CLI-client token), `castellan mcp --stdio`
// as the local admin, and the real CLI in remote mode. Each attempt must be refused with a
// reason, and nothing may run: marker files stay absent, the ledger stays empty, and the audit
// log records the refusal with the origin the token really carries.
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { runStdio } from '../../src/mcp/stdio.js';
import { runCli } from '../support/castellan.js';
import { useRedis } from '../support/redis.js';
import { eventually, startHarness, type Harness } from './mcp-harness.js';

const redis = useRedis();
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ redisUrl: redis.url, nodes: 2, tokenFormat: 'opaque' });
  await h.startWorker();
});

afterAll(async () => {
  await h?.close();
});

interface ApiAnswer {
  readonly status: number;
  readonly body: { error?: { code: string; message: string }; job?: { id: string; state: string; requester: { origin: string } }; origin?: string };
}

async function api(method: string, path: string, token: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiAnswer> {
  const response = await fetch(`${h.base}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as ApiAnswer['body'] };
}

/** Headers an attacker might hope a front end reads its origin from. */
const FORGED = { 'x-castellan-client': 'cli', 'x-castellan-origin': 'dashboard', 'x-forwarded-for': '127.0.0.1', 'user-agent': 'castellan-cli/0.1.0' };

function marker(): string {
  return `/tmp/castellan-sec-origin-${randomBytes(6).toString('hex')}`;
}

async function nothingRan(jobId: string, file: string): Promise<void> {
  // Give a wrongly-promoted job time to reach a worker before concluding it did not run.
  await new Promise((resolve) => setTimeout(resolve, 700));
  expect(existsSync(file)).toBe(false);
  expect(await h.runtime.ctx.ledger.entries(jobId)).toEqual([]);
  const record = await h.runtime.ctx.store.get(jobId);
  expect(record?.state).toBe('awaiting_approval');
  expect(record?.votes).toEqual([]);
}

async function pendingExec(file: string): Promise<string> {
  // Oscar (operator) asks through the CLI client; the attacks below try to approve it.
  const submitted = await api('POST', '/jobs', await h.token('oscar'), { tool: 'exec', input: { targets: 'node01', argv: ['touch', file] } });
  expect(submitted.status).toBe(202);
  expect(submitted.body.job?.state).toBe('awaiting_approval');
  return submitted.body.job?.id ?? '';
}

describe('the HTTP API takes the origin from the token, never from a header', () => {
  it.each([
    ['claude-code', 'mcp'],
    ['mcp-inspector', 'mcp'],
    ['castellan-cli', 'cli'],
  ])('a token issued to %s is origin %s, whatever the request headers claim', async (client, origin) => {
    const me = await api('GET', '/whoami', await h.token('alice', client), undefined, FORGED);
    expect(me.status).toBe(200);
    expect(me.body.origin).toBe(origin);
  });

  it('an AI-client token cannot approve or deny (not even as an admin or an approver); nothing runs', async () => {
    const file = marker();
    const id = await pendingExec(file);
    for (const [who, client] of [['april', 'claude-code'], ['alice', 'claude-code'], ['april', 'mcp-inspector']] as const) {
      const token = await h.token(who, client);
      for (const action of ['approve', 'deny'] as const) {
        const answer = await api('POST', `/jobs/${id}/${action}`, token, {}, FORGED);
        expect(answer.status, `${who} via ${client} ${action}`).toBe(403);
        expect(answer.body.error?.message).toMatch(/cannot be given by an AI client/);
      }
    }
    await nothingRan(id, file);
    const refusals = (await h.runtime.ctx.audit.read({ jobId: id })).filter((r) => r.kind === 'refused');
    expect(refusals).toHaveLength(6);
    expect(refusals.every((r) => r.origin === 'mcp')).toBe(true);

    // The same approver through the person-driven client: the gate opens, and the job runs once.
    const approved = await api('POST', `/jobs/${id}/approve`, await h.token('april'));
    expect(approved.status).toBe(200);
    await eventually(async () => (existsSync(file) ? true : undefined), 20_000, 'the approved exec to run');
  });

  it('an AI-client token waits for approval on a change tool that a person runs at once', async () => {
    const ai = await api('POST', '/jobs', await h.token('oscar', 'claude-code'), { tool: 'service_restart', input: { targets: 'node01', unit: 'castellan-none.service' } }, FORGED);
    expect(ai.status).toBe(202);
    expect(ai.body.job).toMatchObject({ state: 'awaiting_approval', requester: { origin: 'mcp' } });
    const id = ai.body.job?.id ?? '';
    expect(await h.runtime.ctx.ledger.entries(id)).toEqual([]);
    // Its own user may still stop it.
    expect((await api('POST', `/jobs/${id}/cancel`, await h.token('oscar', 'claude-code'))).body.job?.state).toBe('cancelled');
    const person = await api('POST', '/jobs', await h.token('oscar'), { tool: 'service_restart', input: { targets: 'node01', unit: 'castellan-none.service' } }, FORGED);
    expect(person.body.job).toMatchObject({ requester: { origin: 'cli' } });
    expect(person.body.job?.state).not.toBe('awaiting_approval');
  });

  it("an AI-client token cannot cancel another person's job", async () => {
    const file = marker();
    const id = await pendingExec(file);
    const answer = await api('POST', `/jobs/${id}/cancel`, await h.token('alice', 'claude-code'));
    expect(answer.status).toBe(403);
    expect(answer.body.error?.message).toMatch(/AI client may cancel only its own/);
    await nothingRan(id, file);
    await h.runtime.service.cancel(id, h.runtime.localRequester('cli'), 'test cleanup');
  });
});

function errorText(result: CallToolResult): string {
  expect(result.isError).toBe(true);
  return (result.content as Array<{ text: string }>).map((c) => c.text).join('\n');
}

describe('MCP refuses every vote', () => {
  it('over /mcp, even with a token from the CLI client, with the reason and where a person can decide', async () => {
    const file = marker();
    const id = await pendingExec(file);
    const client = await h.mcp('april', undefined, 'castellan-cli');
    for (const name of ['job_approve', 'job_deny']) {
      const text = errorText((await client.callTool({ name, arguments: { job_id: id } })) as CallToolResult);
      expect(text).toMatch(/cannot be given by an AI client/);
      expect(text).toContain(`castellan ${name.slice(4)} ${id}`);
    }
    await nothingRan(id, file);
    await h.runtime.service.cancel(id, h.runtime.localRequester('cli'), 'test cleanup');
  });

  it('over `castellan mcp --stdio`, running as the local admin', async () => {
    const file = marker();
    const id = await pendingExec(file);
    const input = new PassThrough();
    const output = new PassThrough();
    const replies = new Map<number, { result: CallToolResult }>();
    let buffered = '';
    output.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const message = JSON.parse(buffered.slice(0, nl)) as { id?: number; result: CallToolResult };
        buffered = buffered.slice(nl + 1);
        if (typeof message.id === 'number') replies.set(message.id, message);
      }
    });
    const handle = await runStdio(h.runtime, { input, output });
    const request = async (rid: number, method: string, params: unknown) => {
      input.write(`${JSON.stringify({ jsonrpc: '2.0', id: rid, method, params })}\n`);
      return eventually(async () => replies.get(rid), 30_000, `reply ${rid}`);
    };
    await request(1, 'initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'attacker', version: '0' } });
    input.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
    const approve = await request(2, 'tools/call', { name: 'job_approve', arguments: { job_id: id } });
    expect(errorText(approve.result)).toMatch(/cannot be given by an AI client/);
    const deny = await request(3, 'tools/call', { name: 'job_deny', arguments: { job_id: id } });
    expect(errorText(deny.result)).toMatch(/cannot be given by an AI client/);
    input.end();
    await handle.closed;
    await nothingRan(id, file);
    await h.runtime.service.cancel(id, h.runtime.localRequester('cli'), 'test cleanup');
  });
});

describe('the CLI in remote mode', () => {
  it('with an AI-client token cannot approve, and says why (exit 77); nothing runs', async () => {
    const file = marker();
    const id = await pendingExec(file);
    const env = { CASTELLAN_TOKEN: await h.token('april', 'claude-code'), CASTELLAN_CONFIG: '/nonexistent' };
    const approve = await runCli(['--server', h.base, 'approve', id], { env });
    expect(approve.code).toBe(77);
    expect(approve.stderr).toMatch(/cannot be given by an AI client/);
    await nothingRan(id, file);
    await h.runtime.service.cancel(id, h.runtime.localRequester('cli'), 'test cleanup');
  });
});
