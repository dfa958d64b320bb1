// Attack class: "who may read the audit trail". Audit entries name exact commands, inputs and
// reasons, so reading them is reading the job. Oscar (operator) runs a read job and asks for a
// destructive one that April (approver) denies; Victor (viewer) runs his own ping. Each tries
// to read the trail through the API, MCP (as an AI client) and the real CLI in remote mode:
// everyone reads what they did and what was done on their jobs, approvers also the entries of
// jobs that asked for approval, admins everything (auth/policy.ts auditScope). Filters, paging
// and bad parameters behave the same on every front end.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { runCli } from '../support/castellan.js';
import { useRedis } from '../support/redis.js';
import { eventually, startHarness, type Harness } from './mcp-harness.js';

const redis = useRedis();
let h: Harness;
const tag = randomBytes(4).toString('hex');
/** In Oscar's read job's input (no approval needed). */
const canaryRead = `audit-read-${tag}`;
/** In the command of Oscar's destructive job (waits for approval). */
const canaryGated = `audit-gated-${tag}`;
/** In April's reason for denying it. */
const canaryDeny = `audit-deny-${tag}`;
let readJob = '';
let gatedJob = '';
let pingJob = '';

interface Entry {
  readonly id: string;
  readonly kind: string;
  readonly subject: string;
  readonly jobId?: string;
  readonly host?: string;
  readonly hosts?: string[];
}
interface Answer {
  readonly status: number;
  readonly text: string;
  readonly body: { entries?: Entry[]; total?: number; next_cursor?: string; error?: { code: string; message: string; field?: string } };
}

async function api(path: string, token: string): Promise<Answer> {
  const response = await fetch(`${h.base}/api/v1${path}`, { headers: { authorization: `Bearer ${token}` } });
  const text = await response.text();
  return { status: response.status, text, body: (text ? JSON.parse(text) : {}) as Answer['body'] };
}

async function submit(user: string, tool: string, input: unknown): Promise<string> {
  const response = await fetch(`${h.base}/api/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await h.token(user)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tool, input }),
  });
  const body = (await response.json()) as { job: { id: string } };
  return body.job.id;
}

beforeAll(async () => {
  h = await startHarness({ redisUrl: redis.url, nodes: 2, tokenFormat: 'opaque' });
  await h.startWorker();
  readJob = await submit('oscar', 'service_status', { targets: 'node01', unit: `${canaryRead}.service` });
  gatedJob = await submit('oscar', 'exec', { targets: 'node01,node02', argv: ['echo', canaryGated] });
  pingJob = await submit('victor', 'ping', { targets: 'node02' });
  const deny = await fetch(`${h.base}/api/v1/jobs/${gatedJob}/deny`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await h.token('april')}`, 'content-type': 'application/json' },
    body: JSON.stringify({ reason: canaryDeny }),
  });
  expect(deny.status).toBe(200);
  for (const id of [readJob, gatedJob, pingJob]) {
    await eventually(async () => ((await h.runtime.ctx.store.get(id))?.finishedAt !== undefined ? true : undefined), 60_000, `job ${id} to end`);
  }
  // The outcome entries are written right after the state: wait until each job has one.
  for (const id of [readJob, gatedJob, pingJob]) {
    await eventually(async () => ((await h.runtime.ctx.audit.read({ jobId: id })).some((e) => e.kind === 'outcome') ? true : undefined), 30_000, `outcome of ${id}`);
  }
}, 180_000);

afterAll(async () => {
  await h?.close();
});

describe('GET /api/v1/audit lists only what the caller may read', () => {
  it('the requester reads their own entries and the denial of their job, with its reason', async () => {
    const answer = await api('/audit?limit=1000', await h.token('oscar'));
    expect(answer.status).toBe(200);
    for (const canary of [canaryRead, canaryGated, canaryDeny]) expect(answer.text).toContain(canary);
    const entries = answer.body.entries ?? [];
    expect(entries.some((e) => e.kind === 'decision' && e.subject !== entries[0]?.subject)).toBe(true);
    expect(entries.map((e) => e.jobId)).not.toContain(pingJob);
    expect(answer.body.total).toBe(entries.length);
  });

  it('an approver reads the entries of jobs that asked for approval, not the rest', async () => {
    const answer = await api('/audit?limit=1000', await h.token('april'));
    expect(answer.status).toBe(200);
    expect(answer.text).toContain(canaryGated);
    expect(answer.text).toContain(canaryDeny);
    expect(answer.text).not.toContain(canaryRead);
    expect((answer.body.entries ?? []).map((e) => e.jobId)).not.toContain(pingJob);
  });

  it('a viewer reads only their own trail; an admin reads everything', async () => {
    const victor = await api('/audit?limit=1000', await h.token('victor'));
    expect(victor.status).toBe(200);
    for (const canary of [canaryRead, canaryGated, canaryDeny]) expect(victor.text).not.toContain(canary);
    const jobs = new Set((victor.body.entries ?? []).map((e) => e.jobId));
    expect([...jobs]).toEqual([pingJob]);
    const admin = await api('/audit?limit=1000', await h.token('alice'));
    for (const canary of [canaryRead, canaryGated, canaryDeny]) expect(admin.text).toContain(canary);
  });

  it('a token with no Castellan role is refused with the reason', async () => {
    const answer = await api('/audit', await h.token('mallory'));
    expect(answer.status).toBe(403);
    expect(answer.body.error?.message).toMatch(/role/);
  });

  it('filters narrow and the cursor walks the rest without repeats', async () => {
    const alice = await h.token('alice');
    const hosts = await api('/audit?kind=request&host=node02&limit=1000', alice);
    const ids = (hosts.body.entries ?? []).map((e) => e.jobId);
    expect(ids).toEqual(expect.arrayContaining([gatedJob, pingJob]));
    expect(ids).not.toContain(readJob);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await api(`/audit?job=${gatedJob}&limit=1${cursor ? `&cursor=${cursor}` : ''}`, alice);
      expect(page.status).toBe(200);
      seen.push(...(page.body.entries ?? []).map((e) => e.kind));
      cursor = page.body.next_cursor;
    } while (cursor !== undefined);
    // Newest first: the outcome, the decision, the request.
    expect(seen).toEqual(['outcome', 'decision', 'request']);
  });

  it.each([
    ['cursor=abc', 'cursor'],
    ['outcome=exploded', 'outcome'],
    ['kind=gossip', 'kind'],
    ['since=yesterday', 'since'],
    ['limit=0', 'limit'],
    ['colour=red', ''],
  ])('?%s is a 400 that names what was wrong', async (query, field) => {
    const answer = await api(`/audit?${query}`, await h.token('alice'));
    expect(answer.status).toBe(400);
    expect(answer.body.error?.code).toBe('invalid_input');
    expect(answer.body.error?.message).toContain(field || 'colour');
  });
});

function textOf(result: CallToolResult): string {
  return (result.content as Array<{ text: string }>).map((c) => c.text).join('\n');
}

describe('MCP audit_list', () => {
  it('an AI client acting for the viewer reads only their trail; for the requester, the denial too', async () => {
    const victor = await h.mcp('victor', undefined, 'claude-code');
    const mine = (await victor.callTool({ name: 'audit_list', arguments: { limit: 200 } })) as CallToolResult;
    expect(mine.isError).not.toBe(true);
    const text = textOf(mine) + JSON.stringify(mine.structuredContent);
    expect(text).toContain(pingJob);
    for (const canary of [canaryRead, canaryGated, canaryDeny]) expect(text).not.toContain(canary);
    const oscar = await h.mcp('oscar', undefined, 'claude-code');
    const his = (await oscar.callTool({ name: 'audit_list', arguments: { job: gatedJob } })) as CallToolResult;
    expect(textOf(his)).toMatch(new RegExp(`denied: ${canaryDeny}`));
    expect(textOf(his)).toMatch(new RegExp(`requested echo ${canaryGated} on node\\[01-02\\] \\(2 hosts\\), waiting for approval`));
    const paged = (await oscar.callTool({ name: 'audit_list', arguments: { limit: 1 } })) as CallToolResult;
    expect(textOf(paged)).toMatch(/call audit_list with cursor \d+-\d+ for more/);
  });
});

describe('castellan audit (remote mode)', () => {
  it('prints one line an entry for what the caller may read, and pages with --cursor', async () => {
    const env = { CASTELLAN_TOKEN: await h.token('oscar'), CASTELLAN_CONFIG: '/nonexistent' };
    const out = await runCli(['--server', h.base, 'audit', '--job', gatedJob], { env });
    expect(out.code).toBe(0);
    const lines = out.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/outcome +oscar.* exec j\S+ +ended denied/);
    expect(lines[1]).toMatch(new RegExp(`decision .* denied: ${canaryDeny}`));
    const first = await runCli(['--server', h.base, 'audit', '--limit', '1'], { env });
    const cursor = /more with --cursor (\S+)/.exec(first.stderr)?.[1];
    expect(cursor).toMatch(/^\d+-\d+$/);
    const next = await runCli(['--server', h.base, 'audit', '--limit', '1', '--cursor', cursor!], { env });
    expect(next.code).toBe(0);
    expect(next.stdout).not.toBe(first.stdout);
    const viewer = await runCli(['--server', h.base, 'audit', '--jsonl'], { env: { ...env, CASTELLAN_TOKEN: await h.token('victor') } });
    expect(viewer.code).toBe(0);
    const entries = viewer.stdout.trim().split('\n').map((l) => JSON.parse(l) as Entry);
    expect(new Set(entries.map((e) => e.jobId))).toEqual(new Set([pingJob]));
    const bad = await runCli(['--server', h.base, 'audit', '--outcome', 'exploded'], { env });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/outcome/);
  });
});
