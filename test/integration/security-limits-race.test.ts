// Attack class: "bounded resources", at the same instant. One person fires many requests at
// once, through the API, MCP and the real CLI together, hoping that several of them see the
// last free slot before any takes it. The in-flight count and the claim of a slot are one Redis
// script (queues/submission.ts), as is the token bucket (queues/limits.ts): exactly the limit
// gets through, every other request is refused naming the limit, and only the admitted jobs
// exist (ledger, audit, listing).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { takeTokens } from '../../queues/limits.js';
import { runCli } from '../support/castellan.js';
import { useRedis } from '../support/redis.js';
import { startHarness, type Harness } from './mcp-harness.js';

const redis = useRedis();
let h: Harness;

beforeAll(async () => {
  // No worker: admitted jobs stay queued, so they keep holding their slots.
  h = await startHarness({
    redisUrl: redis.url,
    nodes: 1,
    tokenFormat: 'opaque',
    config: { limits: { rate: { per_minute: 1, burst: 5 }, jobs_per_requester: 2 }, jobs: { wait_budget: '1s' }, policy: { tool_risk: { exec: 'change' } } },
  });
}, 120_000);

afterAll(async () => {
  await h?.close();
});

function textOf(result: CallToolResult): string {
  return (result.content as Array<{ text: string }>).map((c) => c.text).join('\n');
}

async function jobsOf(subject: string): Promise<Array<{ id: string; state: string; origin: string }>> {
  const jobs = await h.runtime.service.list(h.runtime.localRequester('cli'), { limit: 200 });
  return jobs.filter((j) => j.requester.subject === subject).map((j) => ({ id: j.id, state: j.state, origin: j.requester.origin }));
}

async function apiSubmit(token: string, tool: string, input: unknown): Promise<{ status: number; message: string }> {
  const response = await fetch(`${h.base}/api/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tool, input }),
  });
  const body = (await response.json()) as { error?: { message: string } };
  return { status: response.status, message: body.error?.message ?? '' };
}

describe('jobs in flight per person, requested at the same instant (limits.jobs_per_requester)', () => {
  it('eight requests at once through the API, MCP and the CLI: exactly two are admitted, six refused naming the limit', async () => {
    const cliToken = await h.token('oscar');
    const client = await h.mcp('oscar', undefined, 'claude-code');
    const cliEnv = { CASTELLAN_TOKEN: cliToken, CASTELLAN_CONFIG: '/nonexistent' };

    // Started together; each front end's round trips interleave with the others'.
    const outcomes = await Promise.all([
      ...[1, 2, 3].map(async () => {
        const a = await apiSubmit(cliToken, 'ping', { targets: 'node01' });
        return { via: 'api', admitted: a.status === 202, text: a.message };
      }),
      ...[1, 2, 3].map(async () => {
        const r = (await client.callTool({ name: 'ping', arguments: { targets: 'node01' } })) as CallToolResult;
        return { via: 'mcp', admitted: r.isError !== true, text: textOf(r) };
      }),
      ...[1, 2].map(async () => {
        const r = await runCli(['--server', h.base, '--no-wait', 'ping', 'node01'], { env: cliEnv });
        return { via: 'cli', admitted: r.code === 0, text: r.stderr };
      }),
    ]);

    const admitted = outcomes.filter((o) => o.admitted);
    const refused = outcomes.filter((o) => !o.admitted);
    expect(admitted, JSON.stringify(outcomes)).toHaveLength(2);
    for (const r of refused) expect(r.text, r.via).toMatch(/you already have 2 jobs queued or running \(limits\.jobs_per_requester is 2\)/);

    // Only the admitted jobs exist; the refusals are audited; nothing else was recorded.
    const jobs = await jobsOf('oscar');
    expect(jobs).toHaveLength(2);
    expect(jobs.every((j) => j.state === 'queued')).toBe(true);
    const audit = await h.runtime.ctx.audit.read({ count: 1000 });
    expect(audit.filter((r) => r.kind === 'request' && r.subject === 'oscar')).toHaveLength(2);
    expect(audit.filter((r) => r.kind === 'refused' && r.subject === 'oscar' && /limits\.jobs_per_requester/.test(String(r.reason)))).toHaveLength(6);
    const ledgers = await h.runtime.ctx.redis.keys(h.runtime.ctx.keys.ledger('*'));
    expect(ledgers).toEqual([]);

    // Once they end the slots are free again: one more is admitted.
    for (const j of jobs) await h.runtime.service.cancel(j.id, h.runtime.localRequester('cli'), 'test');
    const again = (await client.callTool({ name: 'ping', arguments: { targets: 'node01' } })) as CallToolResult;
    expect(again.isError, textOf(again)).not.toBe(true);
  }, 180_000);
});

describe('the token bucket at the same instant (limits.rate)', () => {
  it('twelve API requests at once take exactly the burst; the rest get 429 and nothing is recorded for them', async () => {
    // An AI client's change request waits for approval, which holds no worker slot: only the
    // rate limit is in play.
    const token = await h.token('alice', 'claude-code');
    const answers = await Promise.all(Array.from({ length: 12 }, () => apiSubmit(token, 'exec', { targets: 'node01', command: 'touch /tmp/castellan-race-marker' })));
    const admitted = answers.filter((a) => a.status === 202);
    const limited = answers.filter((a) => a.status === 429);
    // One token comes back per minute; twelve requests take far less than that on any machine.
    expect(admitted.length, JSON.stringify(answers)).toBe(5);
    expect(limited).toHaveLength(7);
    for (const l of limited) expect(l.message).toMatch(/rate limit: at most 1 jobs a minute \(bursts of 5\)/);
    const jobs = await jobsOf('alice');
    expect(jobs).toHaveLength(5);
    expect(jobs.every((j) => j.state === 'awaiting_approval' && j.origin === 'mcp')).toBe(true);
  }, 120_000);

  it('the bucket itself: sixty takes at once from separate connections, exactly the burst succeed', async () => {
    const connections = Array.from({ length: 6 }, () => new Redis(redis.url));
    try {
      const rate = { perMinute: 1, burst: 7 };
      const takes = await Promise.all(Array.from({ length: 60 }, (_, i) => takeTokens(connections[i % connections.length]!, 'race-test', 'someone', 'cli', rate)));
      expect(takes.filter((t) => t.ok)).toHaveLength(7);
      for (const t of takes) if (!t.ok) expect(t.retryAfterMs).toBeGreaterThan(0);
    } finally {
      for (const c of connections) c.disconnect();
    }
  });
});
