// The quick start's `castellan up`: everything comes up on loopback, the CLI works against
// it, /healthz answers, and SIGTERM stops every process it started.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findFreePort } from '../../src/lab/net.js';
import { CLI, runCli } from '../support/castellan.js';

const dirs: string[] = [];
const ups: ChildProcess[] = [];
afterAll(async () => {
  // A failed assertion must not leave `up` (and its Redis, lab and server) running: SIGTERM
  // stops everything it started; SIGKILL as a last resort (its children carry pdeathsig).
  for (const up of ups) {
    if (up.exitCode !== null || up.signalCode !== null) continue;
    const gone = new Promise((resolve) => up.once('exit', resolve));
    up.kill('SIGTERM');
    const kill = setTimeout(() => up.kill('SIGKILL'), 15_000);
    await gone;
    clearTimeout(kill);
  }
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}, 30_000);

const pgrep = (pattern: string): string => {
  try {
    // Zombies (state Z) are already dead; the sandbox's init does not reap them.
    return execFileSync('sh', ['-c', `ps -eo pid=,stat=,args= | grep -F -- "$1" | grep -v grep | awk '$2 !~ /^Z/'`, 'sh', pattern], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
};

describe('castellan up', () => {
  it('starts redis, a lab, OIDC, the server and a worker, serves the CLI, and stops everything on SIGTERM', { timeout: 180_000 }, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-up-'));
    dirs.push(dir);
    const port = await findFreePort('127.0.0.1');
    const up = spawn(process.execPath, [CLI, 'up', '--dir', dir, '--nodes', '2', '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    ups.push(up);
    let out = '';
    up.stdout.on('data', (d: Buffer) => (out += d.toString()));
    up.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => up.on('exit', resolve));
    // Start-up is dominated by the machine's load (lab host keys, OIDC provider, Redis): wait
    // for the line, or for `up` to give up, within most of the test's budget.
    const deadline = Date.now() + 120_000;
    while (!out.includes('Castellan is up') && up.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(out).toContain('Castellan is up');
    expect(out).toContain(`http://127.0.0.1:${port}`);
    // Node 20 is supported: the lab provider's runtime warning is not shown to newcomers.
    expect(out).not.toContain('Unsupported runtime');

    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    const unauthenticated = await fetch(`http://127.0.0.1:${port}/mcp`, { method: 'POST' });
    expect(unauthenticated.status).toBe(401);
    expect(unauthenticated.headers.get('www-authenticate')).toMatch(/resource_metadata=/);

    const ping = await runCli(['--config', path.join(dir, 'castellan.yaml'), 'ping', 'all']);
    expect(ping.stderr).toContain('succeeded');
    expect(ping.code).toBe(0);
    expect(ping.stdout).toMatch(/node\[01-02\] \(2\)/);

    // Lab nodes have units of their own (systemctl/journalctl stand-ins in each node's bin dir):
    // the quick start's service and journal commands act on them, not on this machine's init.
    const config = path.join(dir, 'castellan.yaml');
    const status = await runCli(['--config', config, 'service_status', 'all', '--unit', 'ssh']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/node\[01-02\] \(2\)[\s\S]*active/);
    const failed = await runCli(['--config', config, '--json', 'service_status', 'node01', '--unit', 'backup']);
    const unit = (JSON.parse(failed.stdout) as { result: { data: { hosts: Array<{ active_state: string; sub_state: string }> } } }).result.data.hosts[0];
    expect(unit).toMatchObject({ active_state: 'failed', sub_state: 'failed' });
    const restart = await runCli(['--config', config, 'service_restart', 'node02', '--unit', 'nginx']);
    expect(restart.code, restart.stderr).toBe(0);
    const journal = await runCli(['--config', config, 'journal', 'node02', '--unit', 'nginx', '--lines', '5']);
    expect(journal.code, journal.stderr).toBe(0);
    expect(journal.stdout).toContain('Stopped A high performance web server and a reverse proxy server.');
    expect(journal.stdout).toMatch(/node02 systemd\[1\]: Started A high performance web server/);

    expect(pgrep(dir)).not.toBe('');
    up.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toContain('stopped');
    expect(pgrep(dir)).toBe('');
  });
});
