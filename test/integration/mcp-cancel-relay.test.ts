// MCP cancellation across server processes: a tool call served by one `castellan serve`
// process is cancelled by a `notifications/cancelled` that reaches another one (two processes
// behind one address, as a load balancer would spread them). Only the caller's own calls can
// be cancelled: the same request id from another person cancels nothing.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { findFreePort } from '../../src/lab/net.js';
import { startCastellanProcess, type CastellanProcess } from '../support/castellan-process.js';
import { useRedis } from '../support/redis.js';
import { eventually, startHarness, type Harness } from './mcp-harness.js';

const redis = useRedis();
let h: Harness;
const servers: CastellanProcess[] = [];
const urls: string[] = [];

/** A `castellan serve --no-worker` process on its own port, same Redis, same public URL. */
async function serveProcess(name: string): Promise<string> {
  const port = await findFreePort();
  const doc = parse(h.yaml) as { server: Record<string, unknown> };
  doc.server.listen = `127.0.0.1:${port}`;
  const file = path.join(h.dir, `${name}.yaml`);
  await writeFile(file, stringify(doc));
  servers.push(await startCastellanProcess(['--config', file, 'serve', '--no-worker'], { env: { ...h.env }, ready: /castellan serving on/ }));
  return `http://127.0.0.1:${port}`;
}

beforeAll(async () => {
  h = await startHarness({ redisUrl: redis.url, nodes: 1, tokenFormat: 'jwt' });
  urls.push(await serveProcess('a'), await serveProcess('b'));
}, 120_000);

afterAll(async () => {
  for (const s of servers) await s.stop();
  await h.close();
});

/** One JSON-RPC message to /mcp; returns the HTTP response. */
function post(base: string, token: string, message: unknown): Promise<Response> {
  return fetch(`${base}/mcp`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-06-18',
    },
    body: JSON.stringify(message),
  });
}

/** The JSON-RPC response with this id from an SSE (or JSON) body. */
function responseWithId(body: string, id: string): { result?: { structuredContent?: Record<string, unknown>; isError?: boolean } } | undefined {
  const messages = body.trim().startsWith('{') ? [body] : body.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
  for (const text of messages) {
    const message = JSON.parse(text) as { id?: unknown };
    if (message.id === id) return message as never;
  }
  return undefined;
}

describe('MCP cancellation relayed between serve processes', () => {
  it('a notifications/cancelled sent to server B stops the call running on server A, and only the caller can do it', async () => {
    const [a, b] = urls as [string, string];
    const victor = await h.token('victor');
    const oscar = await h.token('oscar');
    const requestId = 'relay-call-1';
    const started = Date.now();
    // No worker runs: the ping job stays queued and the call on A keeps waiting for it.
    const call = post(a, victor, { jsonrpc: '2.0', id: requestId, method: 'tools/call', params: { name: 'ping', arguments: { targets: 'node01' } } }).then((r) => r.text());
    const viewer = h.runtime.localRequester('cli');
    const job = await eventually(async () => {
      const jobs = await h.runtime.service.list(viewer, { limit: 20, state: 'queued' });
      return jobs.find((j) => j.tool === 'ping' && j.requester.subject === 'victor' && Date.parse(j.createdAt) >= started - 1000);
    }, 20_000, 'the queued ping job');

    // Someone else sending the same request id cancels nothing.
    const foreign = await post(b, oscar, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId, reason: 'not yours' } });
    expect(foreign.status).toBe(202);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await h.runtime.service.get(job.id, viewer)).state).toBe('queued');

    // The caller's own cancellation, through the other process.
    const cancel = await post(b, victor, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId, reason: 'changed my mind on B' } });
    expect(cancel.status).toBe(202);
    const cancelled = await eventually(async () => {
      const j = await h.runtime.service.get(job.id, viewer);
      return j.state === 'cancelled' ? j : undefined;
    }, 15_000, 'the job to be cancelled');
    expect(cancelled.reason).toMatch(/changed my mind on B/);
    expect(cancelled.reason).not.toMatch(/not yours/);
    // A answered the call it was serving (the job's final state), well before its wait budget.
    const answered = responseWithId(await call, requestId);
    expect(answered?.result?.structuredContent).toMatchObject({ job_id: job.id, state: 'cancelled' });
  }, 90_000);
});
