// `castellan login` end to end against `castellan up`: the CLI finds the issuer through the
// server's protected-resource metadata, runs code + PKCE with a loopback redirect (the test
// plays the browser against the lab provider's real sign-in and consent pages), stores the
// tokens 0600, and the remote CLI uses and refreshes them; whoami, token, logout. Also: the
// client ids and redirect URIs `castellan up` prints for Claude Code and the MCP Inspector
// are the ones the lab provider accepts.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync, existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findFreePort } from '../../src/lab/net.js';
import { CLI, runCli } from '../support/castellan.js';
import { approveDeviceCode, signInAt } from '../support/oidc.js';

let dir = '';
let server = '';
let issuer = '';
let up: ChildProcess | undefined;
let upOutput = '';
const env = (): Record<string, string> => ({ XDG_CONFIG_HOME: path.join(dir, 'home-config'), CASTELLAN_TOKEN: '' });
const credentials = (): string => path.join(dir, 'home-config', 'castellan', 'credentials.json');

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-login-'));
  const port = await findFreePort('127.0.0.1');
  up = spawn(process.execPath, [CLI, 'up', '--dir', path.join(dir, 'up'), '--nodes', '1', '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  up.stdout!.on('data', (d: Buffer) => (upOutput += d.toString()));
  up.stderr!.on('data', (d: Buffer) => (upOutput += d.toString()));
  for (let i = 0; i < 900 && !upOutput.includes('Castellan is up'); i++) await new Promise((r) => setTimeout(r, 100));
  expect(upOutput).toContain('Castellan is up');
  server = `http://127.0.0.1:${port}`;
  issuer = /lab OIDC\s+(\S+)/.exec(upOutput)?.[1] ?? '';
});

afterAll(async () => {
  if (up && up.exitCode === null) {
    const exited = new Promise((r) => up!.once('exit', r));
    up.kill('SIGTERM');
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});

/** Run `castellan login`, play the browser for `username` once it prints the URL, return its result. */
async function login(username: string, extra: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'login', '--server', server, '--no-browser', ...extra], { env: { ...process.env, ...env(), NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  for (let i = 0; i < 300 && !/Waiting for the redirect to (\S+) …/.test(stderr); i++) await new Promise((r) => setTimeout(r, 100));
  const authorize = /^\s+(http\S+\/api\/oidc\/authorization\S+)$/m.exec(stderr)?.[1];
  const redirect = /Waiting for the redirect to (\S+) …/.exec(stderr)?.[1];
  expect(authorize, stderr).toBeDefined();
  const callback = await signInAt(new URL(authorize!), username, `${username}-lab-password`, redirect!);
  const page = await fetch(callback); // the browser lands on the CLI's loopback server
  expect(page.status).toBe(200);
  expect(await page.text()).toContain('Logged in to Castellan');
  return { code: await closed, stdout, stderr };
}

describe('castellan login', () => {
  it('finds the issuer through the protected-resource metadata, at both well-known forms', async () => {
    for (const wellKnown of ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp']) {
      const response = await fetch(`${server}${wellKnown}`);
      expect(response.status, wellKnown).toBe(200);
      expect(await response.json()).toMatchObject({ authorization_servers: [issuer] });
    }
  });

  it('refuses remote commands before a login, naming the command that fixes it', async () => {
    const r = await runCli(['--server', server, 'ping', 'all'], { env: env() });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`not logged in to ${server}: run castellan login --server ${server}`);
  });

  it('logs in with code + PKCE on a loopback redirect and stores the tokens 0600', async () => {
    const r = await login('alice');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`logged in to ${server} as alice \\(.*admin.*\\); token stored`));
    expect(statSync(credentials()).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(credentials())).mode & 0o777).toBe(0o700);
    const stored = JSON.parse(readFileSync(credentials(), 'utf8')) as { servers: Record<string, { accessToken: string; refreshToken?: string; clientId: string }> };
    expect(stored.servers[server]?.clientId).toBe('castellan-cli');
    expect(stored.servers[server]?.refreshToken).toBeTruthy();
  });

  it('whoami shows subject, groups, roles and expiry; the remote CLI runs tools as that person', async () => {
    const who = await runCli(['whoami', '--server', server], { env: env() });
    expect(who.code, who.stderr).toBe(0);
    expect(who.stdout).toMatch(/^subject\s+alice$/m);
    expect(who.stdout).toMatch(/^groups\s+admins$/m);
    expect(who.stdout).toMatch(/^roles\s+.*\badmin\b/m);
    expect(who.stdout).toMatch(/^expires\s+\d{4}-\d\d-\d\dT.*\(in \d+ min; refreshed automatically\)$/m);

    const ping = await runCli(['--server', server, '--json', 'ping', 'all'], { env: env() });
    expect(ping.code, ping.stderr).toBe(0);
    const job = JSON.parse(ping.stdout) as { requester: { subject: string; display_name: string; origin: string } };
    expect(job.requester).toEqual({ subject: 'alice', display_name: 'Alice Admin', origin: 'cli' });
  });

  it('refreshes an expired access token by itself and stores the new one', async () => {
    const file = JSON.parse(readFileSync(credentials(), 'utf8')) as { servers: Record<string, { accessToken: string; expiresAt: number }> };
    const before = file.servers[server]!.accessToken;
    file.servers[server]!.expiresAt = Math.floor(Date.now() / 1000) - 5;
    writeFileSync(credentials(), JSON.stringify(file), { mode: 0o600 });
    const jobs = await runCli(['--server', server, 'jobs', '--limit', '1'], { env: env() });
    expect(jobs.code, jobs.stderr).toBe(0);
    const after = JSON.parse(readFileSync(credentials(), 'utf8')) as { servers: Record<string, { accessToken: string; expiresAt: number }> };
    expect(after.servers[server]!.accessToken).not.toBe(before);
    expect(after.servers[server]!.expiresAt).toBeGreaterThan(Date.now() / 1000 + 60);
  });

  it('prints a token header-based clients can send', async () => {
    const token = await runCli(['token', '--server', server], { env: env() });
    expect(token.code).toBe(0);
    const me = await fetch(`${server}/api/v1/whoami`, { headers: { authorization: `Bearer ${token.stdout.trim()}` } });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ subject: 'alice' });
  });

  it('POST /api/v1/jobs answers at once by default, or when the job ends with ?wait=', async () => {
    const token = (await runCli(['token', '--server', server], { env: env() })).stdout.trim();
    const submit = (query: string) =>
      fetch(`${server}/api/v1/jobs${query}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ tool: 'ping', input: { targets: 'all' } }) });
    const handle = await submit('');
    expect(handle.status).toBe(202);
    const waited = await submit('?wait=40s');
    expect(waited.status).toBe(200);
    expect(((await waited.json()) as { job: { state: string } }).job.state).toBe('succeeded');
    const bad = await submit('?wait=soon');
    expect(bad.status).toBe(400);
    expect(JSON.stringify(await bad.json())).toMatch(/wait.*expected seconds/);
  });

  it('logs out: the refresh token is revoked and the stored login is gone', async () => {
    const out = await runCli(['logout', '--server', server], { env: env() });
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`logged out of ${server} (refresh token revoked)`);
    expect(existsSync(credentials())).toBe(false);
    const who = await runCli(['whoami', '--server', server], { env: env() });
    expect(who.code).not.toBe(0);
    expect(who.stderr).toContain('not logged in');
  });

  it('logs in with the device authorization grant: the code is typed on another device', async () => {
    const child = spawn(process.execPath, [CLI, 'login', '--server', server, '--device'], { env: { ...process.env, ...env(), NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    const prompt = /To log in, open (\S+) and enter the code (\S+)/;
    for (let i = 0; i < 300 && !prompt.test(stderr); i++) await new Promise((r) => setTimeout(r, 100));
    const [, uri, userCode] = prompt.exec(stderr) ?? [];
    expect(uri, stderr).toBeDefined();
    expect(new URL(uri!).origin).toBe(new URL(issuer).origin);
    // A wrong code is refused on the page, and nothing is granted.
    await expect(approveDeviceCode(new URL('/device', issuer).href, 'WRONG-CODE', 'oscar', 'oscar-lab-password')).rejects.toThrow(/no form op\.deviceConfirmForm.*not right/s);
    const done = await approveDeviceCode(new URL('/device', issuer).href, userCode!, 'oscar', 'oscar-lab-password');
    expect(done).toContain('Signed in. Return to your terminal');
    expect(await closed, stderr).toBe(0);
    expect(stdout).toMatch(new RegExp(`logged in to ${server} as oscar \\(.*operator.*\\); token stored`));
    const who = await runCli(['whoami', '--server', server], { env: env() });
    expect(who.stdout).toMatch(/^subject\s+oscar$/m);
    expect(who.stdout).toMatch(/refreshed automatically/);
    await runCli(['logout', '--server', server], { env: env() });
  });

  it('a user without a role logs in but is told so', async () => {
    const r = await login('mallory');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('as mallory (no role)');
    await runCli(['logout', '--server', server], { env: env() });
  });

  it('the printed Claude Code and Inspector commands name clients and redirects the lab accepts', async () => {
    expect(upOutput).toMatch(new RegExp(`claude mcp add --transport http --client-id claude-code --callback-port (\\d+) castellan ${server}/mcp`));
    const port = /--callback-port (\d+)/.exec(upOutput)![1]!;
    const authorize = (clientId: string, redirectUri: string): URL => {
      const url = new URL('/api/oidc/authorization', issuer);
      url.search = new URLSearchParams({ client_id: clientId, response_type: 'code', redirect_uri: redirectUri, scope: 'openid groups', state: 's', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256', resource: server }).toString();
      return url;
    };
    const claude = await signInAt(authorize('claude-code', `http://localhost:${port}/callback`), 'oscar', 'oscar-lab-password', `http://localhost:${port}/callback`);
    expect(claude.searchParams.get('code')).toBeTruthy();
    for (const redirect of ['http://localhost:6274/oauth/callback', 'http://localhost:6274/oauth/callback/debug']) {
      const inspector = await signInAt(authorize('mcp-inspector', redirect), 'victor', 'victor-lab-password', redirect);
      expect(inspector.searchParams.get('code')).toBeTruthy();
    }
    // The Inspector's UI exchanges the code from its own origin: the token endpoint allows it.
    const preflight = await fetch(new URL('/api/oidc/token', issuer), { method: 'OPTIONS', headers: { origin: 'http://localhost:6274', 'access-control-request-method': 'POST' } });
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://localhost:6274');
    expect(upOutput).toContain('OAuth client id mcp-inspector');
  });
});
