// Operations through the CLI and the job layer that the other pipeline tests do not cover:
// cp in every direction, heredoc and batch, per-host locks, and the Redis safety check.
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { rolesForGroups } from '../../auth/roles.js';
import type { Requester } from '../../auth/types.js';
import { loadConfig } from '../../config/load.js';
import { createRuntime } from '../../src/runtime.js';
import { useCastellan, type CliResult } from '../support/castellan.js';

const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };
const person = (subject: string, groups: string[]): Requester => ({ subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin: 'cli' });
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);

// run_script and copy_file are destructive by capability; lowered here explicitly (policy.tool_risk).
const c = useCastellan({ nodes: 3, config: { policy: { tool_risk: { run_script: 'change', copy_file: 'change' } } } });
const tmp = (name: string): string => `/tmp/castellan-ops-${name}-${randomBytes(4).toString('hex')}`;

/** Submit through the CLI without waiting, approve as someone else, wait for the end. */
async function cliApproved(args: string[], stdin?: string): Promise<{ submitted: CliResult; state: string; jobId: string }> {
  const submitted = await c.cli(['--no-wait', ...args], { stdin });
  const jobId = submitted.stdout.trim();
  expect(jobId, submitted.stderr).toMatch(/^j[a-z0-9]+$/);
  const me = c.runtime.localRequester('cli');
  const job = await c.runtime.service.get(jobId, me);
  if (job.state === 'awaiting_approval') await c.runtime.service.approve(jobId, april);
  const done = await c.runtime.service.wait(jobId, me, 30_000);
  return { submitted, state: done.state, jobId };
}

describe('cp', () => {
  it('copies a local file to hosts with its mode, back from a host, and from host to host', async () => {
    const local = path.join(c.dir, 'motd.txt');
    await writeFile(local, 'hello from castellan\n', { mode: 0o640 });
    const remote = tmp('cp');
    const up = await c.cli(['cp', local, `node01:${remote}`]);
    expect(up.stderr).toContain('succeeded');
    expect(up.code).toBe(0);
    expect(await readFile(remote, 'utf8')).toBe('hello from castellan\n');
    expect(statSync(remote).mode & 0o777).toBe(0o640);

    const back = path.join(c.dir, 'back.txt');
    const down = await c.cli(['cp', `node01:${remote}`, back]);
    expect(down.code).toBe(0);
    expect(await readFile(back, 'utf8')).toBe('hello from castellan\n');

    const relayed = tmp('relay');
    const relay = await c.cli(['cp', `node01:${remote}`, `node02,node03:${relayed}`]);
    expect(relay.code).toBe(0);
    expect(await readFile(relayed, 'utf8')).toBe('hello from castellan\n');
  });

  it('refuses a copy_file whose local side leaves the files root', async () => {
    const r = await c.cli(['copy_file', 'node01', '--direction', 'upload', '--source', '../../etc/passwd', '--destination', tmp('x')]);
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/source.*inside the local transfer directory/);
  });
});

describe('heredoc and batch', () => {
  it('heredoc runs stdin as one script', async () => {
    const out = tmp('heredoc');
    const r = await cliApproved(['heredoc', 'node01'], `set -e\nX=castellan\necho "$X" > ${out}\n`);
    expect(r.state).toBe('succeeded');
    expect(await readFile(out, 'utf8')).toBe('castellan\n');
  });

  it('batch runs each line of a file, in order, skipping comments', async () => {
    const out = tmp('batch');
    const script = path.join(c.dir, 'steps.sh');
    await writeFile(script, `# steps\necho one >> ${out}\n\necho two >> ${out}\n`);
    const r = await cliApproved(['batch', script, 'node02']);
    expect(r.state).toBe('succeeded');
    expect(await readFile(out, 'utf8')).toBe('one\ntwo\n');
  });
});

describe('per-host locks', () => {
  it('two change jobs on the same host never overlap; the second says who it waits for', async () => {
    const log = tmp('locks');
    const mk = (tag: string) =>
      c.runtime.service.submit({
        tool: 'exec',
        input: { targets: 'node03', command: `echo start-${tag} >> ${log}; sleep 2; echo end-${tag} >> ${log}` },
        requester: oscar,
        replyTo: { kind: 'cli' },
      });
    const first = (await mk('a')).job;
    const second = (await mk('b')).job;
    await c.runtime.service.approve(first.id, april);
    await c.runtime.service.approve(second.id, april);
    const waits: string[] = [];
    const [a, b] = await Promise.all([
      c.runtime.service.wait(first.id, oscar, 30_000),
      c.runtime.service.wait(second.id, oscar, 30_000, (e) => {
        if (e.event.type === 'lock_wait') waits.push(e.event.holder);
      }),
    ]);
    expect([a.state, b.state]).toEqual(['succeeded', 'succeeded']);
    const lines = (await readFile(log, 'utf8')).trim().split('\n');
    // Strictly one after the other: start, end, start, end.
    expect(lines.map((l) => l.split('-')[0])).toEqual(['start', 'end', 'start', 'end']);
    expect(lines[0]!.split('-')[1]).toBe(lines[1]!.split('-')[1]);
    expect(waits.length + (await c.runtime.ctx.events.read(first.id)).filter((e) => e.event.type === 'lock_wait').length).toBeGreaterThan(0);
  });
});

describe('Redis safety', () => {
  it('refuses to start a server or worker on a Redis that may evict keys', async () => {
    const redis = new Redis(c.redis.url);
    try {
      await redis.config('SET', 'maxmemory-policy', 'allkeys-lru');
      const config = await loadConfig(c.configFile);
      await expect(createRuntime(config, { mode: 'worker' })).rejects.toThrow(/maxmemory-policy is 'allkeys-lru'.*noeviction/);
    } finally {
      await redis.config('SET', 'maxmemory-policy', 'noeviction');
      redis.disconnect();
    }
  });
});

describe('retention', () => {
  it('keeps at most completed_count + failed_count job records: Redis stays bounded', async () => {
    const doc = parse(await readFile(c.configFile, 'utf8')) as Record<string, Record<string, unknown>>;
    doc.redis = { ...doc.redis, prefix: 'retention' };
    doc.jobs = { ...doc.jobs, retention: { completed_count: 3, failed_count: 2 } };
    const file = path.join(c.dir, 'retention.yaml');
    await writeFile(file, stringify(doc));
    const small = await createRuntime(await loadConfig(file), { mode: 'all' });
    try {
      await small.startWorker();
      const me = small.localRequester('cli');
      for (let i = 0; i < 12; i++) {
        const { job } = await small.service.submit({ tool: 'list_nodes', input: {}, requester: me, replyTo: { kind: 'cli' } });
        expect((await small.service.wait(job.id, me, 10_000)).state).toBe('succeeded');
      }
      const redis = new Redis(c.redis.url);
      try {
        expect(await redis.zcard('retention:jobs')).toBeLessThanOrEqual(5);
        expect((await redis.keys('retention:job:*')).length).toBeLessThanOrEqual(5);
        expect((await redis.keys('retention:events:*')).length).toBeLessThanOrEqual(5);
      } finally {
        redis.disconnect();
      }
    } finally {
      await small.close();
    }
  });
});
