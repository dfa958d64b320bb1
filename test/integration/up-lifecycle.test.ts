// `castellan up` never outlives itself: whatever signal ends it (Ctrl-C, kill, a closed
// terminal, SIGKILL), no sshd node, redis-server or listener of its --dir is left running, the
// next `up` on the same dir finds and stops what an older run left, refuses to start beside a
// live one, and brings the lab issuer back on the same port.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findFreePort } from '../../src/lab/net.js';
import { labUp } from '../../src/lab/sshd-lab.js';
import { startRedis } from '../../src/lab/redis.js';
import { CLI, runCli } from '../support/castellan.js';

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterAll(async () => {
  // SIGKILL is enough: every process `up` starts carries a parent-death signal.
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) {
    await runCli(['lab', 'down', '--dir', path.join(d, 'lab')]).catch(() => undefined);
    await rm(d, { recursive: true, force: true });
  }
});

/** Live processes tied to `dir`: its path in their argv (sshd), or their working directory in it (redis-server). */
function processesOf(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      let cwd = '';
      try {
        cwd = readlinkSync(`/proc/${entry}/cwd`);
      } catch {
        // not ours to read
      }
      if (argv.includes(dir) || cwd.startsWith(dir)) found.push(`${entry} ${argv.trim()}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Running {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function up(dir: string): Promise<Running> {
  const port = await findFreePort('127.0.0.1');
  const child = spawn(process.execPath, [CLI, 'up', '--dir', dir, '--nodes', '1', '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  await until('castellan up', () => out.includes('Castellan is up') || child.exitCode !== null, 90_000);
  expect(out).toContain('Castellan is up');
  return { child, output: () => out, exited };
}

const issuerOf = (out: string): string => /lab OIDC\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1] ?? '';

describe('castellan up lifecycle', () => {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGKILL'] as const) {
    // Each test starts a whole `up` (Redis, a lab, OIDC, server, worker), up to 90 s on a loaded
    // 2-core machine: the default 60 s would end the test before `up` could say it is up.
    it(`leaves nothing running after ${signal}`, { timeout: 180_000 }, async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), `castellan-up-${signal.toLowerCase()}-`));
      dirs.push(dir);
      const running = await up(dir);
      const before = processesOf(dir);
      expect(before.some((p) => p.includes('sshd'))).toBe(true);
      expect(before.some((p) => p.includes('redis-server'))).toBe(true);
      running.child.kill(signal);
      const how = await running.exited;
      if (signal === 'SIGKILL') expect(how.signal).toBe('SIGKILL');
      else {
        expect(how.code).toBe(0);
        expect(running.output()).toContain(`${signal}: stopping everything`);
      }
      // SIGKILL gives no chance to clean up: the parent-death signal does it.
      await until(`every process of ${dir} to be gone`, () => processesOf(dir).length === 0);
      expect(processesOf(dir)).toEqual([]);
    });
  }

  it('stops what an earlier run left on the dir, refuses a second live up, and keeps the issuer port', { timeout: 300_000 }, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-up-again-'));
    dirs.push(dir);
    const first = await up(dir);
    const issuer = issuerOf(first.output());
    expect(issuer).not.toBe('');

    const second = await runCli(['up', '--dir', dir, '--nodes', '1']);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toMatch(new RegExp(`castellan up already runs on ${dir} \\(pid ${first.child.pid}\\)`));
    first.child.kill('SIGTERM');
    await first.exited;

    // What an older version (or a crash) could leave: a lab and a redis that outlive their owner.
    await labUp({ nodes: 1, dir: path.join(dir, 'lab') });
    const strayRedis = await startRedis({ dir: path.join(dir, 'redis'), detached: true });
    expect(processesOf(dir).length).toBeGreaterThanOrEqual(2);

    const third = await up(dir);
    expect(third.output()).toMatch(/stopped what an earlier run left on .*: 1 sshd, 1 redis-server/);
    expect(issuerOf(third.output())).toBe(issuer);
    const discovery = await fetch(`${issuer}/.well-known/openid-configuration`);
    expect(discovery.status).toBe(200);
    expect(processesOf(dir).some((p) => p.startsWith(`${strayRedis.pid} `))).toBe(false);
    third.child.kill('SIGINT');
    await third.exited;
    await until(`every process of ${dir} to be gone`, () => processesOf(dir).length === 0);
  });
});
