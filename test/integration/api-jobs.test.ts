// The HTTP JSON API and the CLI's RemoteClient with JWT access tokens (the Authelia
// per-client variant): real server, worker, sshd lab and OIDC provider.
import http from 'node:http';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CastellanError } from '../../config/errors.js';
import { openRemoteJobClient, RemoteClient, remoteToken } from '../../src/cli/remote.js';
import { planText, resultText } from '../../src/present/render/text.js';
import type { StampedEvent } from '../../queues/events.js';
import type { JobView } from '../../src/present/job-view.js';
import { createRuntime } from '../../src/runtime.js';
import { startServer } from '../../src/server.js';
import { expiredAccessToken, forgedAccessToken, loginAndGetToken, wrongAudienceToken } from '../support/oidc.js';
import { useRedis } from '../support/redis.js';
import { runCli } from '../support/castellan.js';
import { eventually, OTHER_RESOURCE, startHarness, type Harness } from './mcp-harness.js';

const redis = useRedis();
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ redisUrl: redis.url, nodes: 2, tokenFormat: 'jwt' });
  await h.startWorker();
});

afterAll(async () => {
  await h?.close();
});

async function remote(user: string): Promise<RemoteClient> {
  return new RemoteClient({ server: h.base, token: await h.token(user) });
}

/** What the API answers: an error, or a job (other shapes are read through the RemoteClient). */
interface ApiBody {
  readonly error: { readonly code: string; readonly message: string; readonly field?: string };
  readonly job: JobView;
}

async function api(method: string, path: string, options: { user?: string; token?: string; body?: string; headers?: Record<string, string> } = {}) {
  const token = options.token ?? (options.user !== undefined ? await h.token(options.user) : undefined);
  const response = await fetch(`${h.base}/api/v1${path}`, {
    method,
    headers: {
      ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
      ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...options.headers,
    },
    ...(options.body !== undefined ? { body: options.body } : {}),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: (text ? JSON.parse(text) : {}) as ApiBody };
}

async function rejection(promise: Promise<unknown>): Promise<CastellanError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CastellanError);
  return error as CastellanError;
}

async function jobCount(): Promise<number> {
  return (await h.runtime.service.list(h.runtime.localRequester('cli'), { limit: 200 })).length;
}

describe('RemoteClient against the API', () => {
  it('lists the tools each role may run, with schemas and whether the CLI must wait for approval', async () => {
    const viewer = await (await remote('victor')).tools();
    expect(viewer.every((t) => t.risk === 'read')).toBe(true);
    expect(viewer.map((t) => t.name)).toContain('ping');
    const operator = await (await remote('oscar')).tools();
    const exec = operator.find((t) => t.name === 'exec');
    const restart = operator.find((t) => t.name === 'service_restart');
    expect(exec).toMatchObject({ risk: 'destructive', approval_required: true });
    expect(restart).toMatchObject({ risk: 'change', approval_required: false });
    expect(exec?.input_schema).toHaveProperty('properties.targets');
  });

  it('submits ping, follows its events to the end and reads the folded result', async () => {
    const client = await remote('victor');
    const { job, duplicate } = await client.submit({ tool: 'ping', input: { targets: 'all' } });
    expect(duplicate).toBe(false);
    expect(job.requester).toMatchObject({ subject: 'victor', origin: 'cli' });
    expect(job.plan.hosts).toEqual(['node01', 'node02']);
    const seen: StampedEvent[] = [];
    const done = await client.follow(job.id, { onEvent: (e) => seen.push(e), intervalMs: 100, timeoutMs: 30_000 });
    expect(done.state).toBe('succeeded');
    expect(done.result?.folded[0]).toMatchObject({ nodeset: 'node[01-02]', count: 2, status: 'ok' });
    expect(done.result?.hosts.map((x) => x.status)).toEqual(['ok', 'ok']);
    const types = seen.map((e) => e.event.type);
    expect(types.filter((t) => t === 'host_finished')).toHaveLength(2);
    expect(seen.at(-1)?.event).toMatchObject({ type: 'state', state: 'succeeded' });

    const page = await client.output(job.id, { limit: 1 });
    expect(page).toMatchObject({ total_hosts: 2, next_offset: 1 });
    expect(page.hosts).toHaveLength(1);
    const listed = await client.list({ limit: 5 });
    expect(listed.jobs.map((j) => j.id)).toContain(job.id);
    // Filters go through the API's query to the job indexes.
    const filtered = await client.list({ filter: { tool: job.tool, host: job.plan.hosts[0], state: 'succeeded' } });
    expect(filtered.jobs.map((j) => j.id)).toContain(job.id);
    expect(filtered.jobs.every((j) => j.tool === job.tool && j.state === 'succeeded' && j.plan.hosts.includes(job.plan.hosts[0] ?? ''))).toBe(true);
    expect((await client.list({ filter: { tool: 'no_such_tool' } })).total).toBe(0);
    await expect(client.list({ filter: { state: 'runing' } })).rejects.toThrow(/unknown state 'runing'/);
  });

  it('gives the same job for the same idempotency key', async () => {
    const client = await remote('victor');
    const key = `retry-${randomBytes(4).toString('hex')}`;
    const first = await client.submit({ tool: 'uptime', input: { targets: 'node01' }, idempotencyKey: key });
    const again = await client.submit({ tool: 'uptime', input: { targets: 'node01' }, idempotencyKey: key });
    expect(again.duplicate).toBe(true);
    expect(again.job.id).toBe(first.job.id);
  });

  it('holds a destructive request until another person approves; the requester and a non-approver cannot', async () => {
    const marker = `/tmp/castellan-api-marker-${randomBytes(6).toString('hex')}`;
    // alice is an admin, so an approver too: only the self-approval rule stops her.
    const alice = await remote('alice');
    const { job } = await alice.submit({ tool: 'exec', input: { targets: 'node02', argv: ['touch', marker] } });
    try {
      expect(job.state).toBe('awaiting_approval');
      expect(job.approval).toMatchObject({ required: 1, approvals: 0 });
      expect(job.plan.batches[0]?.steps[0]?.command).toEqual(['touch', marker]);

      const self = await rejection(alice.approve(job.id));
      expect(self.code).toBe('forbidden');
      expect(self.message).toMatch(/someone else must approve/);
      const operator = await rejection((await remote('oscar')).approve(job.id));
      expect(operator.code).toBe('forbidden');
      expect(operator.message).toMatch(/needs the approver role/);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(existsSync(marker)).toBe(false);

      const april = await remote('april');
      const approved = await april.approve(job.id, 'checked');
      expect(approved.approval?.votes[0]).toMatchObject({ subject: 'april', decision: 'approve', origin: 'cli', reason: 'checked' });
      const done = await alice.follow(job.id, { intervalMs: 100, timeoutMs: 30_000 });
      expect(done.state).toBe('succeeded');
      expect(existsSync(marker)).toBe(true);
      const twice = await rejection(april.approve(job.id));
      expect(twice.code).toBe('conflict');
    } finally {
      await rm(marker, { force: true });
    }
  });

  it('a denial ends the request without running it', async () => {
    const marker = `/tmp/castellan-api-marker-${randomBytes(6).toString('hex')}`;
    const { job } = await (await remote('oscar')).submit({ tool: 'exec', input: { targets: 'node01', argv: ['touch', marker] } });
    const denied = await (await remote('april')).deny(job.id, 'not today');
    expect(denied.state).toBe('denied');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(existsSync(marker)).toBe(false);
  });

  it('names the bad field of hostile input and records nothing', async () => {
    const before = await jobCount();
    const oscar = await remote('oscar');
    const unit = await rejection(oscar.submit({ tool: 'service_status', input: { targets: 'all', unit: 'nginx; rm -rf /' } }));
    expect(unit).toMatchObject({ code: 'invalid_input', field: 'unit' });
    const targets = await rejection(oscar.submit({ tool: 'exec', input: { targets: '$(reboot)', argv: ['true'] } }));
    expect(targets).toMatchObject({ code: 'invalid_input', field: 'targets' });
    const viewer = await rejection((await remote('victor')).submit({ tool: 'service_restart', input: { targets: 'node01', unit: 'nginx' } }));
    expect(viewer.code).toBe('forbidden');
    expect(viewer.message).toMatch(/needs the operator role/);
    expect(await jobCount()).toBe(before);
  });

  it('serves the CLI as its JobClient: who the token is, submit, wait with progress, records the CLI renders', async () => {
    const client = await openRemoteJobClient({ server: h.base, token: await h.token('victor') });
    expect(client.requester).toMatchObject({ subject: 'victor', displayName: 'Victor Viewer', roles: ['viewer'], origin: 'cli' });
    const { job } = await client.submit('ping', { targets: 'all' });
    const seen: StampedEvent[] = [];
    const final = await client.wait(job.id, 30_000, (e) => seen.push(e));
    expect(final.state).toBe('succeeded');
    expect(final.summary).toMatch(/^ping on node\[01-02\] \(2 hosts\) succeeded in /);
    expect(resultText(final, { color: false })).toMatch(/node\[01-02\] \(2\)/);
    expect(planText(final.plan, { color: false })).toMatch(/^plan: 1 step on node\[01-02\] \(2 hosts\)/);
    expect((await client.events(job.id)).map((e) => e.id)).toEqual(seen.map((e) => e.id));
    await expect(openRemoteJobClient({ server: h.base, token: await forgedAccessToken(h.oidc, 'victor') })).rejects.toThrow(/log in again/);
  });

  it('reads the token from CASTELLAN_TOKEN and refuses plain http to a remote host', async () => {
    expect(await remoteToken({ env: { CASTELLAN_TOKEN: ' abc.def ' } })).toBe('abc.def');
    expect((await rejection(remoteToken({ env: {} }))).code).toBe('unauthenticated');
    expect(() => new RemoteClient({ server: 'http://castellan.example', token: 't' })).toThrow(/plain http/);
    const badToken = await rejection(new RemoteClient({ server: h.base, token: 'not-a-token' }).list());
    expect(badToken.code).toBe('unauthenticated');
  });
});

describe('HTTP API details', () => {
  it('answers malformed requests with 400 and a message naming the problem', async () => {
    const badJson = await api('POST', '/jobs', { user: 'oscar', body: '{"tool": "ping",' });
    expect(badJson.status).toBe(400);
    expect(badJson.body.error).toMatchObject({ code: 'invalid_input' });
    expect(badJson.body.error.message).toMatch(/not valid JSON/);

    const noType = await fetch(`${h.base}/api/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${await h.token('oscar')}` }, body: 'tool=ping' });
    expect(noType.status).toBe(400);
    expect(((await noType.json()) as { error: { message: string } }).error.message).toMatch(/Content-Type: application\/json/);

    const extra = await api('POST', '/jobs', { user: 'oscar', body: JSON.stringify({ tool: 'ping', inputs: {} }) });
    expect(extra.status).toBe(400);
    expect(extra.body.error.message).toMatch(/inputs/);

    const state = await api('GET', '/jobs?state=done', { user: 'oscar' });
    expect(state.status).toBe(400);
    expect(state.body.error.field).toBe('state');

    const tool = await api('POST', '/jobs', { user: 'oscar', body: JSON.stringify({ tool: 'pnig', input: {} }) });
    expect(tool.status).toBe(404);
    expect(tool.body.error).toMatchObject({ code: 'unknown_tool', field: 'tool' });
    expect(tool.body.error.message).toMatch(/ping/);

    const id = await api('GET', '/jobs/..%2F..%2Fetc', { user: 'oscar' });
    expect(id.status).toBe(400);
    expect(id.body.error.field).toBe('job_id');
    expect((await api('GET', '/jobs/jzzzzzzzzzzzz', { user: 'oscar' })).status).toBe(404);
  });

  it('records the origin of the client the token was issued to, answers 202 with a Location, and ignores an origin header', async () => {
    const cli = await api('POST', '/jobs', { user: 'victor', body: JSON.stringify({ tool: 'list_nodes', input: {} }) });
    expect(cli.status).toBe(202);
    expect(cli.body.job.requester.origin).toBe('cli');
    expect(cli.headers.get('location')).toBe(`/api/v1/jobs/${cli.body.job.id}`);
    const ai = await api('POST', '/jobs', { token: await h.token('victor', 'claude-code'), body: JSON.stringify({ tool: 'list_nodes', input: {} }), headers: { 'x-castellan-client': 'cli' } });
    expect(ai.body.job.requester.origin).toBe('mcp');
  });

  it('refuses missing, expired, wrong-audience, forged and ID tokens with 401 and the metadata pointer; a role-less user with 403', async () => {
    const { idToken } = await loginAndGetToken(h.oidc, 'oscar');
    const cases: Array<[string, string | undefined]> = [
      ['missing', undefined],
      ['expired', await expiredAccessToken(h.oidc, 'oscar')],
      ['wrong audience', await wrongAudienceToken(h.oidc, 'oscar', OTHER_RESOURCE)],
      ['forged', await forgedAccessToken(h.oidc, 'oscar')],
      ['id token', idToken],
    ];
    for (const [what, token] of cases) {
      const response = await api('GET', '/jobs', { ...(token !== undefined ? { token } : {}) });
      expect(response.status, what).toBe(401);
      expect(response.headers.get('www-authenticate'), what).toContain(`resource_metadata="${h.base}/.well-known/oauth-protected-resource"`);
    }
    const mallory = await api('GET', '/jobs', { user: 'mallory' });
    expect(mallory.status).toBe(403);
    expect(mallory.body.error.message).toMatch(/no Castellan role/);
  });

  it('refuses a foreign Host header (DNS rebinding)', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL(`${h.base}/healthz`);
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, headers: { host: 'evil.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(403);
  });

  it('serves /healthz and /metrics', async () => {
    const health = await fetch(`${h.base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', redis: 'ok' });
    const metrics = await fetch(`${h.base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/castellan_jobs_submitted_total\{[^}]*tool="ping"/);
  });

  it('without auth.oidc, refuses /mcp and the API with 503 saying why, and still serves /healthz', async () => {
    const runtime = await createRuntime({ ...h.config, auth: { ...h.config.auth, oidc: undefined } }, { mode: 'server' });
    const server = await startServer(runtime, { port: 0 });
    try {
      const mcp = await fetch(`${server.url}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(mcp.status).toBe(503);
      expect(JSON.stringify(await mcp.json())).toMatch(/OIDC is not configured/);
      const jobs = await fetch(`${server.url}/api/v1/jobs`, { headers: { authorization: `Bearer ${await h.token('oscar')}` } });
      expect(jobs.status).toBe(503);
      expect(((await jobs.json()) as { error: { message: string } }).error.message).toMatch(/auth\.oidc/);
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${server.url}/.well-known/oauth-protected-resource`)).status).toBe(404);
    } finally {
      await server.close();
      await runtime.close();
    }
  });
});

describe('castellan CLI in remote mode (--server, token from the environment or a file)', () => {
  // Seven CLI processes, each a Node start (~0.5 s quiet, several seconds on a loaded 2-core CI
  // machine, where 60 s ran out twice): the default timeout is too tight for them together.
  it('runs a tool, lists jobs, and holds exec for another person to approve', { timeout: 180_000 }, async () => {
    const oscarToken = await h.token('oscar');
    const env = { CASTELLAN_TOKEN: oscarToken, CASTELLAN_CONFIG: '/nonexistent' };
    const ping = await runCli(['--server', h.base, 'ping', 'all'], { env });
    expect(ping.stderr).toContain('succeeded');
    expect(ping.code).toBe(0);
    expect(ping.stdout).toMatch(/node\[01-02\] \(2\)/);

    const marker = `/tmp/castellan-remote-${Date.now().toString(36)}`;
    const held = await runCli(['--server', h.base, '--no-wait', 'exec', 'node01', '--', 'touch', marker], { env });
    expect(held.code).toBe(3);
    const jobId = held.stdout.trim();
    const self = await runCli(['--server', h.base, 'approve', jobId], { env });
    expect(self.code).toBe(77);
    expect(self.stderr).toMatch(/approver role/);

    const tokenFile = path.join(h.dir, 'april.token');
    await writeFile(tokenFile, await h.token('april'), { mode: 0o600 });
    const approved = await runCli(['--server', h.base, '--token-file', tokenFile, 'approve', jobId], { env: { CASTELLAN_CONFIG: '/nonexistent' } });
    expect(approved.code).toBe(0);
    await eventually(async () => (existsSync(marker) ? true : undefined), 20_000, 'the approved exec to run');

    const jobs = await runCli(['--server', h.base, 'jobs'], { env });
    expect(jobs.stdout).toContain(jobId);
  });

  it('refuses a bad token with a clear error and runs nothing', async () => {
    const before = await jobCount();
    const r = await runCli(['--server', h.base, 'ping', 'all'], { env: { CASTELLAN_TOKEN: 'not-a-token', CASTELLAN_CONFIG: '/nonexistent' } });
    expect(r.code).toBe(77);
    expect(r.stderr).toMatch(/token/i);
    expect(await jobCount()).toBe(before);
  });
});
