// Faults injected into a real redis-server while real processes use it: a separate
// `castellan worker` process, the CLI, the HTTP API and MCP. After each fault: every
// submission got a job id or a clear "unavailable … nothing was run", every job ends in a
// correct state, no host ran a step twice (counted on the nodes), the audit is complete.
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { CastellanError } from '../../config/errors.js';
import { createRecord, claimValue, confirmSubmitted, hashPart, reconcileSubmissions, requestFingerprint } from '../../queues/submission.js';
import { newJobId, recordFields, type JobDoc } from '../../queues/records.js';
import { wakeDecided } from '../../queues/wake.js';
import { useCastellan } from '../support/castellan.js';
import { startCastellanProcess, type CastellanProcess } from '../support/castellan-process.js';
import { useRedis } from '../support/redis.js';
import { eventually, startHarness, type Harness } from './mcp-harness.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

const c = useCastellan({ nodes: 4, worker: false });

let worker: CastellanProcess | undefined;
beforeAll(async () => {
  worker = await startCastellanProcess(['--config', c.configFile, 'worker'], { ready: /worker .* started/ });
}, 90_000);
afterAll(async () => {
  await worker?.stop();
});

const tagged = (): { tag: string; file: string } => {
  const tag = `castellan-fault-${randomBytes(4).toString('hex')}`;
  return { tag, file: `/tmp/${tag}.log` };
};
const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);

/**
 * The record a submitter makes for an `exec` before it confirms it (what it leaves behind when
 * it dies, or when a worker finds the job first): planned as submit plans it, never confirmed.
 */
async function unconfirmedExec(input: { targets: string; command: string }, extra: Partial<JobDoc> = {}): Promise<JobDoc> {
  const preview = await c.runtime.service.preview({ tool: 'exec', input, requester: oscar });
  return {
    id: newJobId(),
    tool: 'exec',
    risk: 'change',
    input: preview.input,
    plan: preview.plan,
    planHash: 'unbound',
    requester: oscar,
    replyTo: { kind: 'cli' },
    createdAt: new Date().toISOString(),
    approvalsRequired: 0,
    timeoutMs: 60_000,
    ...extra,
  };
}

/** Wait until the test runtime's front connection answers again after a restart. */
async function redisAnswers(): Promise<void> {
  await eventually(async () => ((await c.runtime.redis.ping().catch(() => '')) === 'PONG' ? true : undefined), 30_000, 'Redis to answer again');
}

describe('Redis down at submission', () => {
  it('answers unavailable, nothing was run (service and CLI), and leaves no job behind', async () => {
    const { tag, file } = tagged();
    const command = `echo ran >> ${file} # ${tag}`;
    await c.redis.kill();
    try {
      const error = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'lab', command }, requester: oscar, replyTo: { kind: 'cli' } }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(CastellanError);
      expect((error as CastellanError).code).toBe('unavailable');
      expect((error as CastellanError).message).toMatch(/^unavailable: .*nothing was run/);

      const cli = await c.cli(['exec', 'lab', '--command', command]);
      expect(cli.code).toBe(69);
      expect(cli.stderr).toMatch(/unavailable: cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+ .*nothing was run/);
      expect(cli.stderr).not.toMatch(/at .*\.js:\d+/); // a sentence, not a stack trace
    } finally {
      await c.redis.restart();
      await redisAnswers();
    }
    const jobs = await c.runtime.service.list(oscar, { limit: 50 });
    expect(jobs.filter((j) => JSON.stringify(j.input).includes(tag))).toEqual([]);
    expect(await lines(file)).toEqual([]);
  });
});

describe('Redis killed mid-job and restarted from its AOF', () => {
  it('the job finishes succeeded, ran once per host, the audit is complete, and the waiting CLI rode the outage', async () => {
    const { tag, file } = tagged();
    // The CLI submits and waits (local mode: it talks to Redis itself).
    const cli = c.cli(['exec', 'lab', '--command', `echo ran >> ${file}; sleep 6 # ${tag}`], { timeoutMs: 150_000 });
    // The CLI acts as the local identity; an admin sees its job.
    const admin = c.runtime.localRequester('cli');
    const job = await eventually(async () => (await c.runtime.service.list(admin, { limit: 20 })).find((j) => JSON.stringify(j.input).includes(tag) && j.state === 'awaiting_approval'), 30_000, 'the CLI job');
    await c.runtime.service.approve(job.id, april);
    await eventually(async () => ((await lines(file)).length === 4 ? true : undefined), 30_000, 'the command to run on all four nodes');

    const workerSaidBefore = worker!.stderr().length;
    await c.redis.kill();
    await new Promise((r) => setTimeout(r, 3000));
    await c.redis.restart();
    await redisAnswers();

    const final = await c.runtime.service.wait(job.id, admin, 90_000);
    expect(final.state).toBe('succeeded');
    expect(final.result?.hosts.map((h) => h.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
    // Once per host, and never again after Redis came back.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await lines(file)).toHaveLength(4);
    const ledger = await c.runtime.ctx.ledger.entries(job.id);
    expect(ledger).toHaveLength(4);
    expect(ledger.every((e) => e.attempt === 0 && e.finishedAt !== undefined)).toBe(true);

    const audit = await c.runtime.ctx.audit.read({ jobId: job.id });
    expect(audit.filter((a) => a.kind === 'request')).toHaveLength(1);
    expect(audit.filter((a) => a.kind === 'decision')).toHaveLength(1);
    expect(audit.filter((a) => a.kind === 'execution').map((a) => a.host).sort()).toEqual(['node01', 'node02', 'node03', 'node04']);
    expect(audit.filter((a) => a.kind === 'outcome')).toMatchObject([{ state: 'succeeded' }]);

    const waited = await cli;
    expect(waited.code).toBe(0);
    // Said once that contact was lost and the job goes on, then that it was back.
    expect(waited.stderr.match(/lost contact with the job store/g)).toHaveLength(1);
    expect(waited.stderr).toMatch(new RegExp(`job ${job.id} goes on on its worker`));
    expect(waited.stderr).toMatch(/back in contact after \d+ s/);
    // Each event printed exactly once, although the CLI followed the job twice.
    const stderrLines = waited.stderr.split('\n');
    expect(stderrLines.filter((l) => l === '» running')).toHaveLength(1);
    for (const host of ['node01', 'node02', 'node03', 'node04']) {
      expect(stderrLines.filter((l) => l.startsWith(`${host}: ok`)), host).toHaveLength(1);
    }
    expect(stderrLines.filter((l) => l.startsWith('» succeeded'))).toHaveLength(1);
    expect(waited.stdout).toMatch(/node\[01-04\]/);
    // The worker said so once per state change, without a stack trace per retry.
    const said = worker!.stderr().slice(workerSaidBefore);
    expect(said.match(/lost contact with Redis \(worker\)/g)).toHaveLength(1);
    expect(said).toMatch(/Redis \(worker\) back at 127\.0\.0\.1:\d+ after [\d.]+ s/);
    expect(said).not.toMatch(/Unhandled error event|\n\s+at .*\(node:net/);
    await rm(file, { force: true });
  }, 180_000);
});

describe('submissions that never completed', () => {
  it('a record whose submitter died is ended failed "never queued, nothing was run", its BullMQ job removed and its key freed', async () => {
    const { tag, file } = tagged();
    const input = { targets: 'node01', command: `echo ran >> ${file} # ${tag}` };
    // What a submitter leaves when Redis dies between recording the job and confirming it:
    // the record with its marker and idempotency claim, even the queue job, never confirmed.
    const key = `retry-${tag}`;
    const doc = await unconfirmedExec(input, { idempotencyKey: key });
    const fields = recordFields(doc, 'queued', { queuedAt: doc.createdAt });
    const claim = { key: c.runtime.ctx.keys.idempotency(hashPart(oscar.subject), hashPart(key)), value: claimValue(doc.id, requestFingerprint('exec', doc.input)), ttlS: 3600 };
    expect(await createRecord(c.runtime.ctx, doc, fields, claim)).toEqual({ created: true });
    await c.runtime.ctx.queue.add('exec', doc, { jobId: doc.id, attempts: 1 });

    // The worker process holds it (unconfirmed); the reconcile of a long-lived process ends it.
    await new Promise((r) => setTimeout(r, 500));
    expect((await c.runtime.ctx.store.get(doc.id))?.state).toBe('queued');
    expect(await reconcileSubmissions(c.runtime.ctx, 0)).toBe(1);
    const ended = await c.runtime.service.get(doc.id, oscar);
    expect(ended.state).toBe('failed');
    expect(ended.reason).toMatch(/^never queued: .*nothing was run/);
    const audit = await c.runtime.ctx.audit.read({ jobId: doc.id });
    expect(audit.filter((a) => a.kind === 'outcome')).toMatchObject([{ state: 'failed' }]);

    // The worker saw it final and never ran it.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await lines(file)).toEqual([]);
    expect(await c.runtime.ctx.ledger.entries(doc.id)).toEqual([]);

    // The same key again is a new request, not the dead job.
    const retry = await c.runtime.service.submit({ tool: 'exec', input, requester: oscar, replyTo: { kind: 'cli' }, idempotencyKey: key });
    expect(retry.duplicate).toBe(false);
    expect(retry.job.id).not.toBe(doc.id);
    await c.runtime.service.cancel(retry.job.id, oscar, 'test over');
  });

  it('a job the worker finds before its submitter confirmed it waits, then runs once when the confirmation comes', async () => {
    const { tag, file } = tagged();
    const input = { targets: 'node02', command: `echo ran >> ${file} # ${tag}` };
    const doc = await unconfirmedExec(input);
    // A submitter between its BullMQ add and its confirmation: the worker process takes the job.
    expect(await createRecord(c.runtime.ctx, doc, recordFields(doc, 'queued', { queuedAt: doc.createdAt }), undefined)).toEqual({ created: true });
    await c.runtime.ctx.queue.add('exec', { id: doc.id }, { jobId: doc.id, attempts: 1 });
    await new Promise((r) => setTimeout(r, 700));
    expect((await c.runtime.ctx.store.get(doc.id))?.state).toBe('queued');
    expect(await lines(file)).toEqual([]);

    // The confirmation wakes the waiting worker (its message; the timer only covers a lost one).
    expect(await confirmSubmitted(c.runtime.ctx, doc.id)).toBe(true);
    const done = await c.runtime.service.wait(doc.id, oscar, 30_000);
    expect(done.state).toBe('succeeded');
    expect(await lines(file)).toEqual(['ran']);
    expect((await c.runtime.ctx.ledger.entries(doc.id)).map((e) => e.host)).toEqual(['node02']);
    await rm(file, { force: true });
  }, 60_000);
});

describe('an approval whose wake-up was lost', () => {
  it('the decider died between the vote and waking the job: a reconcile round wakes it and it runs once, long before its approval deadline', async () => {
    const { tag, file } = tagged();
    const submitted = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node01', command: `echo ran >> ${file} # ${tag}` }, requester: oscar, replyTo: { kind: 'cli' } });
    const job = submitted.job;
    expect(job.state).toBe('awaiting_approval');
    // What the decider does first: the atomic vote (record now `queued`). It "dies" before waking the job.
    const vote = { subject: april.subject, displayName: april.displayName, origin: april.origin, roles: [...april.roles], decision: 'approve' as const, planHash: job.planHash, at: new Date().toISOString() };
    expect(await c.runtime.ctx.store.vote(job.id, vote, job.approvalsRequired, 'denied')).toMatchObject({ kind: 'approved' });
    // Still asleep in BullMQ: without a wake-up it would start only at its approval deadline.
    expect(await (await c.runtime.ctx.queue.getJob(job.id))?.isDelayed()).toBe(true);
    expect(await wakeDecided(c.runtime.ctx)).toBe(1);
    const final = await c.runtime.service.wait(job.id, oscar, 60_000);
    expect(final.state).toBe('succeeded');
    expect(await lines(file)).toEqual(['ran']);
    // Nothing left to wake; a second round changes nothing.
    expect(await wakeDecided(c.runtime.ctx)).toBe(0);
    await rm(file, { force: true });
  }, 90_000);
});

describe('idempotency under concurrency', () => {
  it('the same key twice at once gives one job; the same key with a different request is a conflict naming the job', async () => {
    // As the CLI's own identity, so the CLI's retry below uses the same (subject, key).
    const me = c.runtime.localRequester('cli');
    const key = `same-${randomBytes(4).toString('hex')}`;
    const input = { targets: 'node02', command: 'true' };
    const [a, b] = await Promise.all([
      c.runtime.service.submit({ tool: 'exec', input, requester: me, replyTo: { kind: 'cli' }, idempotencyKey: key }),
      c.runtime.service.submit({ tool: 'exec', input, requester: me, replyTo: { kind: 'cli' }, idempotencyKey: key }),
    ]);
    expect(a.job.id).toBe(b.job.id);
    expect([a.duplicate, b.duplicate].sort()).toEqual([false, true]);

    const other = c.runtime.service.submit({ tool: 'exec', input: { targets: 'node02', command: 'rm -rf /srv/x' }, requester: me, replyTo: { kind: 'cli' }, idempotencyKey: key });
    await expect(other).rejects.toMatchObject({ code: 'conflict', message: expect.stringContaining(`job ${a.job.id}`) as unknown });

    const cli = await c.cli(['--idempotency-key', key, 'exec', 'node02', '--command', 'echo different']);
    expect(cli.code).toBe(75);
    expect(cli.stderr).toMatch(new RegExp(`already used for a different request: job ${a.job.id}`));
    const jobs = await c.runtime.service.list(me, { limit: 50 });
    expect(jobs.filter((j) => j.idempotencyKey === key)).toHaveLength(1);
    await c.runtime.service.cancel(a.job.id, me, 'test over');
  });
});

describe('Redis down, through the HTTP API and MCP', () => {
  const redis = useRedis();
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ redisUrl: redis.url, nodes: 1, tokenFormat: 'jwt' });
  }, 90_000);
  afterAll(async () => {
    await h.close();
  });

  it('answers 503 with Retry-After and "nothing was run", at once, and MCP says the same', async () => {
    const token = await h.token('oscar');
    const client = await h.mcp('oscar');
    await redis.server.kill();
    try {
      const response = await fetch(`${h.base}/api/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ tool: 'ping', input: { targets: 'node01' } }),
      });
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('5');
      const body = (await response.json()) as { error: { code: string; message: string } };
      expect(body.error).toMatchObject({ code: 'unavailable' });
      expect(body.error.message).toMatch(/^unavailable: the job store \(Redis\) is not reachable .*nothing was run/);

      const health = await fetch(`${h.base}/healthz`);
      expect(health.status).toBe(503);

      const result = (await client.callTool({ name: 'ping', arguments: { targets: 'node01' } })) as { isError?: boolean; content: Array<{ text: string }> };
      expect(result.isError).toBe(true);
      expect(result.content[0]!.text).toMatch(/^unavailable: .*nothing was run/);
    } finally {
      await redis.server.restart();
    }
    await eventually(async () => ((await fetch(`${h.base}/healthz`)).status === 200 ? true : undefined), 30_000, 'health to come back');
    expect(await h.runtime.service.list(h.runtime.localRequester('cli'), { limit: 10 })).toEqual([]);
  });
});
