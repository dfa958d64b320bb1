// Attack class: copy_file used to write where it must not, or to hand out privileges. With
// real lab tokens and real sshd nodes: a symlink inside files_root (as the destination, deeper
// in its path, or as `<destination>/<host>`) must not lead a download outside it, and no
// directory may be created before the check passes; setuid/setgid bits never travel with a
// copied file's own mode (download, upload, relay); an explicit setuid upload mode makes the
// plan destructive even where policy.tool_risk lowered copy_file; devices and FIFOs are refused.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { runCli } from '../support/castellan.js';
import { useRedis } from '../support/redis.js';
import { startHarness, type Harness } from './mcp-harness.js';

const redis = useRedis();
let h: Harness;
let root = '';
let outside = '';
let scratch = '';

interface Job {
  readonly id: string;
  readonly state: string;
  readonly risk: string;
  readonly result?: { hosts: Array<{ host: string; status: string; error?: string }> };
}

async function run(input: Record<string, unknown>, user = 'oscar'): Promise<Job> {
  const response = await fetch(`${h.base}/api/v1/jobs?wait=20s`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await h.token(user)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tool: 'copy_file', input }),
  });
  const body = (await response.json()) as { job: Job; error?: { message: string } };
  expect(response.status, JSON.stringify(body)).toBeLessThan(300);
  return body.job;
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'castellan-files-'));
  outside = await mkdtemp(path.join(os.tmpdir(), 'castellan-outside-'));
  scratch = await mkdtemp(path.join(os.tmpdir(), 'castellan-remote-'));
  await chmod(scratch, 0o755);
  // Lowered on purpose: the setuid test shows a plan can raise it back.
  h = await startHarness({ redisUrl: redis.url, nodes: 2, tokenFormat: 'opaque', config: { jobs: { files_root: root }, policy: { tool_risk: { copy_file: 'change' } } } });
  await h.startWorker();
}, 120_000);

afterAll(async () => {
  await h?.close();
  for (const dir of [root, outside, scratch]) await rm(dir, { recursive: true, force: true });
});

describe('downloads stay inside files_root after realpath', () => {
  it('a symlinked destination, or one under a symlinked folder, is refused before anything is created', async () => {
    const remote = path.join(scratch, `plain-${randomBytes(3).toString('hex')}.txt`);
    await writeFile(remote, 'hello\n');
    await symlink(outside, path.join(root, 'escape'));
    const direct = await run({ targets: 'node01', direction: 'download', source: remote, destination: 'escape' });
    expect(direct.state).toBe('failed');
    expect(direct.result?.hosts[0]?.error).toMatch(/refused: .*outside the files root/);
    const deeper = await run({ targets: 'node01', direction: 'download', source: remote, destination: 'escape/new/dir' });
    expect(deeper.state).toBe('failed');
    expect(deeper.result?.hosts[0]?.error).toMatch(/outside the files root/);
    expect(await readdir(outside)).toEqual([]);
  });

  it('the same through MCP and the CLI: an AI client asks for a download into the symlink; approved, it is refused too', async () => {
    const remote = path.join(scratch, `via-mcp-${randomBytes(3).toString('hex')}.txt`);
    await writeFile(remote, 'hello\n');
    const client = await h.mcp('oscar', undefined, 'claude-code');
    const asked = (await client.callTool({ name: 'copy_file', arguments: { targets: 'node01', direction: 'download', source: remote, destination: 'escape/mcp' } })) as CallToolResult;
    const jobId = /\[job (j[a-z0-9]+)\]/.exec((asked.content as Array<{ text: string }>).map((c) => c.text).join('\n'))?.[1] ?? '';
    expect(jobId).not.toBe('');
    const vote = await runCli(['--server', h.base, 'approve', jobId], { env: { CASTELLAN_TOKEN: await h.token('april'), CASTELLAN_CONFIG: '/nonexistent' } });
    expect(vote.code, vote.stderr).toBe(0);
    const done = await h.runtime.service.wait(jobId, h.runtime.localRequester('cli'), 60_000);
    expect(done.state).toBe('failed');
    expect(done.result?.hosts[0]?.error).toMatch(/outside the files root/);
    expect(await readdir(outside)).toEqual([]);
  });

  it('a symlink at <destination>/<host> is caught for that host only', async () => {
    const remote = path.join(scratch, `per-host-${randomBytes(3).toString('hex')}.txt`);
    await writeFile(remote, 'per host\n');
    await mkdir(path.join(root, 'dl'));
    await symlink(outside, path.join(root, 'dl', 'node01'));
    const job = await run({ targets: 'node01,node02', direction: 'download', source: remote, destination: 'dl' });
    expect(job.result?.hosts.find((x) => x.host === 'node01')).toMatchObject({ status: 'failed', error: expect.stringMatching(/outside the files root/) });
    expect(job.result?.hosts.find((x) => x.host === 'node02')?.status).toBe('ok');
    expect(await readdir(outside)).toEqual([]);
    expect((await lstat(path.join(root, 'dl', 'node02', path.basename(remote)))).isFile()).toBe(true);
  });
});

describe('privilege bits never travel with a copy', () => {
  it('download and upload drop setuid/setgid from the source mode', async () => {
    const name = `suid-${randomBytes(3).toString('hex')}`;
    const remote = path.join(scratch, name);
    await writeFile(remote, '#!/bin/sh\necho hi\n');
    await chmod(remote, 0o6755);
    expect((await stat(remote)).mode & 0o7777).toBe(0o6755);
    const down = await run({ targets: 'node01', direction: 'download', source: remote, destination: 'suid' });
    expect(down.state).toBe('succeeded');
    expect((await stat(path.join(root, 'suid', 'node01', name))).mode & 0o7777).toBe(0o755);

    await writeFile(path.join(root, name), 'payload\n');
    await chmod(path.join(root, name), 0o4755);
    const uploaded = path.join(scratch, `${name}-up`);
    const up = await run({ targets: 'node01', direction: 'upload', source: name, destination: uploaded });
    expect(up.state).toBe('succeeded');
    expect((await stat(uploaded)).mode & 0o7777).toBe(0o755);
  });

  it('a relay through the real CLI drops them too', async () => {
    const name = `relay-${randomBytes(3).toString('hex')}`;
    const remote = path.join(scratch, name);
    await writeFile(remote, 'relay\n');
    await chmod(remote, 0o2755);
    const dest = path.join(scratch, `${name}-copy`);
    const cli = await runCli(['--server', h.base, 'cp', `node01:${remote}`, `node02:${dest}`], { env: { CASTELLAN_TOKEN: await h.token('oscar'), CASTELLAN_CONFIG: '/nonexistent' } });
    expect(cli.code, cli.stderr).toBe(0);
    expect((await stat(dest)).mode & 0o7777).toBe(0o755);
  });

  it('an explicit setuid mode makes the upload destructive: it waits for approval although tool_risk lowered copy_file', async () => {
    await writeFile(path.join(root, 'tool'), 'tool\n');
    const dest = path.join(scratch, `setuid-${randomBytes(3).toString('hex')}`);
    const job = await run({ targets: 'node01', direction: 'upload', source: 'tool', destination: dest, mode: '4755' });
    expect(job).toMatchObject({ state: 'awaiting_approval', risk: 'destructive' });
    await expect(stat(dest)).rejects.toThrow();
    const plain = await run({ targets: 'node01', direction: 'upload', source: 'tool', destination: `${dest}-plain`, mode: '0755' });
    expect(plain).toMatchObject({ state: 'succeeded', risk: 'change' });
  });
});

describe('only regular files', () => {
  it('a device on the node and a FIFO in files_root are refused', async () => {
    const device = await run({ targets: 'node01', direction: 'download', source: '/dev/zero', destination: 'dev' });
    expect(device.state).toBe('failed');
    expect(device.result?.hosts[0]?.error).toMatch(/not a regular file/);
    execFileSync('mkfifo', [path.join(root, 'pipe')]);
    const fifo = await run({ targets: 'node01', direction: 'upload', source: 'pipe', destination: path.join(scratch, 'fifo-copy') });
    expect(fifo.state).toBe('failed');
    expect(fifo.result?.hosts[0]?.error).toMatch(/not a regular file/);
  });
});
