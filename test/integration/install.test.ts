// Installs as operators get them: a fresh checkout whose launcher compiles itself on first use
// (help never needs a separate build), and the npm package (`npm pack`, then a global install
// into a scratch prefix) whose `castellan up` starts and stops cleanly.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findFreePort } from '../../src/lab/net.js';
import { REPO } from '../support/castellan.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function run(file: string, args: string[], cwd: string, timeoutMs = 240_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('installs', () => {
  it('a fresh checkout answers `castellan up --help` without a build step', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-checkout-'));
    dirs.push(dir);
    // The tracked files as they are in this working tree (a clean clone has exactly these).
    const files = execFileSync('git', ['ls-files', '-z'], { cwd: REPO, encoding: 'utf8' }).split('\0').filter(Boolean);
    for (const f of files) {
      if (!existsSync(path.join(REPO, f))) continue;
      mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      cpSync(path.join(REPO, f), path.join(dir, f));
    }
    symlinkSync(path.join(REPO, 'node_modules'), path.join(dir, 'node_modules'));
    expect(existsSync(path.join(dir, 'dist'))).toBe(false);
    const help = await run(process.execPath, ['bin/castellan.js', 'up', '--help'], dir);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stderr).toContain('first run in this checkout: compiling');
    expect(help.stdout).toMatch(/Usage: castellan up \[options\]/);
    expect(help.stdout).toContain('--nodes');
    const again = await run(process.execPath, ['bin/castellan.js', 'help'], dir);
    expect(again.stderr).not.toContain('compiling');
    expect(again.stdout).toMatch(/Tools \(castellan <tool>/);
  }, 300_000);

  it('npm pack gives a package whose globally installed castellan up starts and stops', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-pack-'));
    dirs.push(dir);
    // dist/ is built by `npm test` already; prepack would rebuild it under running tests.
    const pack = await run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], REPO);
    expect(pack.code, pack.stderr).toBe(0);
    const tarball = readdirSync(dir).find((f) => /^castellan-.*\.tgz$/.test(f));
    expect(tarball).toBeDefined();
    const prefix = path.join(dir, 'prefix');
    // --ignore-scripts: ssh2's optional native speed-ups would compile for minutes; it runs without them.
    const install = await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error', path.join(dir, tarball!)], dir, 600_000);
    expect(install.code, install.stderr).toBe(0);
    const castellan = path.join(prefix, 'bin', 'castellan');
    expect(existsSync(castellan)).toBe(true);
    expect(existsSync(path.join(prefix, 'lib', 'node_modules', 'castellan', 'dist', 'test'))).toBe(false);

    const port = await findFreePort('127.0.0.1');
    const up = spawn(castellan, ['up', '--dir', path.join(dir, 'up'), '--nodes', '1', '--port', String(port)], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    up.stdout.on('data', (d: Buffer) => (out += d.toString()));
    up.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => up.on('exit', resolve));
    for (let i = 0; i < 900 && !out.includes('Castellan is up') && up.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
    expect(out).toContain('Castellan is up');
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/ui/assets/dashboard.css`)).status).toBe(200);
    up.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 600_000);
});
