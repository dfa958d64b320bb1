// The quick start's `castellan up`: everything comes up on loopback, the CLI works against
// it, /healthz answers, and SIGTERM stops every process it started.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findFreePort } from '../../src/lab/net.js';
import { CLI, runCli } from '../support/castellan.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const pgrep = (pattern: string): string => {
  try {
    // Zombies (state Z) are already dead; the sandbox's init does not reap them.
    return execFileSync('sh', ['-c', `ps -eo pid=,stat=,args= | grep -F -- "$1" | grep -v grep | awk '$2 !~ /^Z/'`, 'sh', pattern], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
};

describe('castellan up', () => {
  it('starts redis, a lab, OIDC, the server and a worker, serves the CLI, and stops everything on SIGTERM', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-up-'));
    dirs.push(dir);
    const port = await findFreePort('127.0.0.1');
    const up = spawn(process.execPath, [CLI, 'up', '--dir', dir, '--nodes', '2', '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    up.stdout.on('data', (d: Buffer) => (out += d.toString()));
    up.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => up.on('exit', resolve));
    for (let i = 0; i < 300 && !out.includes('Castellan is up'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(out).toContain('Castellan is up');
    expect(out).toContain(`http://127.0.0.1:${port}`);

    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    const unauthenticated = await fetch(`http://127.0.0.1:${port}/mcp`, { method: 'POST' });
    expect(unauthenticated.status).toBe(401);
    expect(unauthenticated.headers.get('www-authenticate')).toMatch(/resource_metadata=/);

    const ping = await runCli(['--config', path.join(dir, 'castellan.yaml'), 'ping', 'all']);
    expect(ping.stderr).toContain('succeeded');
    expect(ping.code).toBe(0);
    expect(ping.stdout).toMatch(/node\[01-02\] \(2\)/);

    expect(pgrep(dir)).not.toBe('');
    up.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toContain('stopped');
    expect(pgrep(dir)).toBe('');
  });
});
