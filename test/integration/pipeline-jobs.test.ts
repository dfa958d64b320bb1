// The job layer end to end against real sshd nodes and a real Redis: approvals (self, role,
// expiry, plan change, M of N), idempotency, cancellation, audit completeness and the
// secret canary. Different people are different OIDC identities handed to the service, the
// way the MCP and HTTP front ends hand them over.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { pgrepFull } from '../support/processes.js';
import { stringify, parse } from 'yaml';
import { rolesForGroups } from '../../auth/roles.js';
import type { Origin, Requester } from '../../auth/types.js';
import { loadConfig } from '../../config/load.js';
import { createRuntime } from '../../src/runtime.js';
import { useCastellan } from '../support/castellan.js';

const CANARY = `canary-${randomBytes(12).toString('hex')}`;
const ROLE_MAP = { admin: ['admins'], operator: ['ops'], approver: ['leads'], viewer: ['everyone'] };

const c = useCastellan({
  nodes: 4,
  env: { CASTELLAN_TEST_OIDC_SECRET: CANARY },
  config: {
    auth: { oidc: { issuer: 'http://127.0.0.1:9', client_id: 'castellan', client_secret_env: 'CASTELLAN_TEST_OIDC_SECRET' } },
  },
});

function person(subject: string, groups: string[], origin: Origin = 'cli'): Requester {
  return { subject, displayName: subject, groups, roles: rolesForGroups(groups, ROLE_MAP), origin };
}
const alice = person('alice', ['admins']);
const oscar = person('oscar', ['ops']);
const april = person('april', ['leads']);
const victor = person('victor', ['everyone']);

const marker = (name: string): string => `/tmp/castellan-${name}-${randomBytes(4).toString('hex')}`;
const pgrep = pgrepFull;

describe('approvals', () => {
  it('a destructive request waits, is not run, and refuses self-approval by default', async () => {
    const file = marker('self');
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node01', argv: ['touch', file] }, requester: oscar, replyTo: { kind: 'cli' } });
    expect(job.state).toBe('awaiting_approval');
    expect(job.plan.hosts).toEqual(['node01']);
    await expect(c.runtime.service.approve(job.id, oscar)).rejects.toThrow(/someone else must approve|approver role/);
    const asAdmin = person('oscar', ['admins']); // same subject, more groups: still the requester
    await expect(c.runtime.service.approve(job.id, asAdmin)).rejects.toThrow(/someone else must approve/);
    expect(existsSync(file)).toBe(false);
    await c.runtime.service.cancel(job.id, oscar, 'test done');
  });

  it('refuses an approver without the approver role, and a viewer asking for a change', async () => {
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node01', command: 'true' }, requester: alice, replyTo: { kind: 'cli' } });
    await expect(c.runtime.service.approve(job.id, oscar)).rejects.toThrow(/approver role/);
    await expect(c.runtime.service.submit({ tool: 'service_restart', input: { targets: 'node01', unit: 'nginx' }, requester: victor, replyTo: { kind: 'cli' } })).rejects.toThrow(
      /needs the operator role/,
    );
    await c.runtime.service.cancel(job.id, alice);
  });

  it('an approval through an AI client (MCP) is always refused', async () => {
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node01', command: 'true' }, requester: oscar, replyTo: { kind: 'cli' } });
    await expect(c.runtime.service.approve(job.id, person('april', ['leads'], 'mcp'))).rejects.toThrow(/MCP/);
    await c.runtime.service.cancel(job.id, oscar);
  });

  it('runs after a different identity approves, and the audit trail has every part', async () => {
    const file = marker('approved');
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'odd', argv: ['touch', file] }, requester: oscar, replyTo: { kind: 'cli' } });
    const approved = await c.runtime.service.approve(job.id, april, 'change ticket 42');
    expect(['queued', 'running', 'succeeded']).toContain(approved.state);
    const done = await c.runtime.service.wait(job.id, oscar, 30_000);
    expect(done.state).toBe('succeeded');
    expect(done.votes).toMatchObject([{ subject: 'april', decision: 'approve', reason: 'change ticket 42' }]);
    expect(existsSync(file)).toBe(true);

    const audit = await c.runtime.ctx.audit.read({ jobId: job.id });
    const kinds = audit.map((a) => a.kind);
    expect(kinds[0]).toBe('request');
    expect(audit[0]).toMatchObject({ subject: 'oscar', origin: 'cli', tool: 'exec', hosts: ['node01', 'node03'], commands: [['touch', file]] });
    expect(audit.find((a) => a.kind === 'decision')).toMatchObject({ subject: 'april', decision: 'approve' });
    const executions = audit.filter((a) => a.kind === 'execution');
    expect(executions.map((e) => e.host).sort()).toEqual(['node01', 'node03']);
    expect(executions[0]).toMatchObject({ argv: ['touch', file], status: 'ok', exitCode: 0 });
    expect(audit.at(-1)).toMatchObject({ kind: 'outcome', state: 'succeeded', subject: 'oscar' });
    // The file copy of the audit trail has the same records, mode 0600.
    // (an execution entry covers the hosts of a write: `read` gives it once per host).
    const fileAudit = (await readFile(path.join(c.dir, 'audit.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { jobId?: string; results?: unknown[] });
    expect(fileAudit.filter((r) => r.jobId === job.id).flatMap((r) => r.results ?? [r])).toHaveLength(audit.length);
    expect((await import('node:fs')).statSync(path.join(c.dir, 'audit.jsonl')).mode & 0o777).toBe(0o600);
  });

  it('denial by an approver ends the request without running it', async () => {
    const file = marker('denied');
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node02', argv: ['touch', file] }, requester: oscar, replyTo: { kind: 'cli' } });
    const denied = await c.runtime.service.deny(job.id, april, 'not during business hours');
    expect(denied.state).toBe('denied');
    expect(denied.reason).toContain('not during business hours');
    await new Promise((r) => setTimeout(r, 500));
    expect(existsSync(file)).toBe(false);
  });

  it('expires when nobody decides in time', async () => {
    const config = await loadConfig(c.configFile);
    const shortLived = await createRuntime(config, {
      mode: 'client',
      jobSettings: { approvals: { required: 1, allowSelfApproval: false, expiryMs: 1500 } },
    });
    try {
      const { job } = await shortLived.service.submit({ tool: 'exec', input: { targets: 'node01', command: 'true' }, requester: oscar, replyTo: { kind: 'cli' } });
      const final = await shortLived.service.wait(job.id, oscar, 20_000);
      expect(final.state).toBe('expired');
      await expect(shortLived.service.approve(job.id, april)).rejects.toThrow(/expired|not awaiting approval/);
    } finally {
      await shortLived.close();
    }
  });

  it('refuses to run an approved plan when the inventory changed it', async () => {
    const file = marker('replanned');
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'odd', argv: ['touch', file] }, requester: oscar, replyTo: { kind: 'cli' } });
    const inventoryText = await readFile(c.lab.inventoryFile, 'utf8');
    try {
      // node03 leaves the `odd` group: the same input now plans a different host list.
      const doc = parse(inventoryText) as { all: { children: Record<string, { hosts?: Record<string, unknown> }> } };
      delete doc.all.children.odd!.hosts!.node03;
      await writeFile(c.lab.inventoryFile, stringify(doc));
      await c.runtime.service.approve(job.id, april);
      const final = await c.runtime.service.wait(job.id, oscar, 20_000);
      expect(final.state).toBe('denied');
      expect(final.reason).toMatch(/plan changed since it was approved/);
      expect(existsSync(file)).toBe(false);
    } finally {
      await writeFile(c.lab.inventoryFile, inventoryText);
    }
  });

  it('needs M distinct approvals when configured (M of N)', async () => {
    const configText = await readFile(c.configFile, 'utf8');
    const doc = parse(configText) as { policy: { approvals: { required: number } } };
    doc.policy.approvals.required = 2;
    const twoFile = path.join(c.dir, 'two-approvals.yaml');
    await writeFile(twoFile, stringify(doc));
    const strict = await createRuntime(await loadConfig(twoFile), { mode: 'client' });
    try {
      const file = marker('two');
      const { job } = await strict.service.submit({ tool: 'exec', input: { targets: 'node04', argv: ['touch', file] }, requester: oscar, replyTo: { kind: 'cli' } });
      expect(job.approvalsRequired).toBe(2);
      const one = await strict.service.approve(job.id, april);
      expect(one.state).toBe('awaiting_approval');
      await expect(strict.service.approve(job.id, april)).rejects.toThrow(/already voted/);
      const two = await strict.service.approve(job.id, alice);
      expect(['queued', 'running', 'succeeded']).toContain(two.state);
      const final = await strict.service.wait(job.id, oscar, 30_000);
      expect(final.state).toBe('succeeded');
      expect(final.votes.map((v) => v.subject)).toEqual(['april', 'alice']);
      expect(existsSync(file)).toBe(true);
    } finally {
      await strict.close();
    }
  });
});

describe('idempotency', () => {
  it('the same key from the same person yields the same job, never a second one', async () => {
    const key = `retry-${randomBytes(4).toString('hex')}`;
    const first = await c.runtime.service.submit({ tool: 'ping', input: { targets: 'lab' }, requester: oscar, replyTo: { kind: 'cli' }, idempotencyKey: key });
    const again = await c.runtime.service.submit({ tool: 'ping', input: { targets: 'lab' }, requester: oscar, replyTo: { kind: 'cli' }, idempotencyKey: key });
    expect(first.duplicate).toBe(false);
    expect(again.duplicate).toBe(true);
    expect(again.job.id).toBe(first.job.id);
    const other = await c.runtime.service.submit({ tool: 'ping', input: { targets: 'lab' }, requester: april, replyTo: { kind: 'cli' }, idempotencyKey: key });
    expect(other.job.id).not.toBe(first.job.id);
    await c.runtime.service.wait(first.job.id, oscar, 20_000);
    await c.runtime.service.wait(other.job.id, april, 20_000);
  });
});

describe('cancellation', () => {
  it('cancelling a running job stops the remote command on every host', async () => {
    const tag = `castellan-cancel-${randomBytes(4).toString('hex')}`;
    const { job } = await c.runtime.service.submit({
      tool: 'exec',
      input: { targets: 'lab', command: `sleep 120 # ${tag}` },
      requester: oscar,
      replyTo: { kind: 'cli' },
    });
    await c.runtime.service.approve(job.id, april);
    // Wait until every host has started, then cancel from "another front end".
    const started = new Set<string>();
    let cancelling: Promise<unknown> | undefined;
    await c.runtime.service.wait(job.id, oscar, 15_000, (e) => {
      if (e.event.type === 'host_started') started.add(e.event.host);
      if (started.size === 4) cancelling ??= c.runtime.service.cancel(job.id, april, 'wrong window');
    });
    await cancelling;
    const final = await c.runtime.service.wait(job.id, oscar, 30_000);
    expect(final.state).toBe('cancelled');
    expect(final.result?.hosts.map((h) => h.status)).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled']);
    expect(pgrep(tag)).toBe('');
  });

  it('cancelling a job that awaits approval ends it at once', async () => {
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node01', command: 'true' }, requester: oscar, replyTo: { kind: 'cli' } });
    const cancelled = await c.runtime.service.cancel(job.id, oscar);
    expect(cancelled.state).toBe('cancelled');
    await expect(c.runtime.service.approve(job.id, april)).rejects.toThrow(/cancelled/);
  });
});

describe('secrets', () => {
  it('a configured secret appears in no log, job data, audit record, Redis key or output', async () => {
    // The canary is the OIDC client secret of this config. It reaches a node's file, which a job
    // then prints; and someone tries to type it into a command.
    const file = marker('canary');
    await writeFile(file, `token=${CANARY}\n`);
    const { job } = await c.runtime.service.submit({ tool: 'exec', input: { targets: 'node01', argv: ['cat', file] }, requester: oscar, replyTo: { kind: 'cli' } });
    await c.runtime.service.approve(job.id, april);
    const done = await c.runtime.service.wait(job.id, oscar, 30_000);
    expect(done.state).toBe('succeeded');
    expect(done.result?.hosts[0]?.stdout).toContain('[REDACTED]');

    await expect(
      c.runtime.service.submit({ tool: 'exec', input: { targets: 'node01', argv: ['echo', CANARY] }, requester: oscar, replyTo: { kind: 'cli' } }),
    ).rejects.toThrow(/configured secrets/);
    const cli = await c.cli(['job', job.id, '--log']);
    expect(cli.stdout + cli.stderr).not.toContain(CANARY);

    // Every value in Redis: strings, hashes, streams, lists, sets.
    const redis = new Redis(c.redis.url);
    try {
      const keys = await redis.keys('*');
      expect(keys.length).toBeGreaterThan(10);
      for (const key of keys) {
        const type = await redis.type(key);
        let dump = '';
        if (type === 'string') dump = (await redis.get(key)) ?? '';
        else if (type === 'hash') dump = JSON.stringify(await redis.hgetall(key));
        else if (type === 'stream') dump = JSON.stringify(await redis.xrange(key, '-', '+'));
        else if (type === 'list') dump = JSON.stringify(await redis.lrange(key, 0, -1));
        else if (type === 'zset') dump = JSON.stringify(await redis.zrange(key, 0, -1));
        else if (type === 'set') dump = JSON.stringify(await redis.smembers(key));
        expect(dump, key).not.toContain(CANARY);
      }
    } finally {
      redis.disconnect();
    }
    expect(await readFile(path.join(c.dir, 'audit.jsonl'), 'utf8')).not.toContain(CANARY);
    expect(c.logs.join('')).not.toContain(CANARY);
    expect(c.logs.length).toBeGreaterThan(0);
  });
});
