// Attack class: secrets leaving through what a node prints. The lab nodes share this host's
// filesystem, so a node can read Castellan's own SSH private key and a configured secret file
// (the metrics token here) and print them raw, hex-encoded or base64-encoded at any byte
// alignment. None of it may reach the job record, its events, the audit log, the API, MCP or
// the CLI: each is scrubbed to [REDACTED]. Typing an encoded secret into a request is refused.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { stringify } from 'yaml';
import { parseConfig } from '../../config/load.js';
import { createRuntime } from '../../src/runtime.js';
import { startServer } from '../../src/server.js';
import { runCli } from '../support/castellan.js';
import { useRedis } from '../support/redis.js';
import { startHarness, type Harness } from './mcp-harness.js';

const redis = useRedis();
let h: Harness;
let secretFile = '';
const secret = `canary-${randomBytes(16).toString('hex')}`;
let keyLines: string[] = [];

beforeAll(async () => {
  h = await startHarness({ redisUrl: redis.url, nodes: 1, tokenFormat: 'opaque', config: { policy: { tool_risk: { exec: 'change' } } } });
  await h.startWorker();
  // Written after the harness made its directory; the runtime below reads it as server.metrics.token_file.
  secretFile = path.join(h.dir, 'metrics-token');
  await writeFile(secretFile, `${secret}\n`, { mode: 0o600 });
  keyLines = (await readFile(h.lab.clientKeyFile, 'utf8')).split('\n').filter((l) => l.length >= 16 && !l.startsWith('-----'));
  expect(keyLines.length).toBeGreaterThan(0);
}, 120_000);

afterAll(async () => {
  await h?.close();
});

/** Everything that could carry the canaries: the record, events, audit, API JSON, MCP text and CLI output. */
function leaks(text: string): string[] {
  const hex = Buffer.from(secret).toString('hex');
  const found: string[] = [];
  if (text.includes(secret)) found.push('secret');
  if (text.includes(hex) || text.includes(hex.toUpperCase())) found.push('secret as hex');
  if (text.includes(Buffer.from(secret).toString('base64').slice(4, -4))) found.push('secret as base64');
  for (const line of keyLines) if (text.includes(line)) found.push('ssh key line');
  return found;
}

describe('canaries printed by a node never leave it', () => {
  it('the SSH key, a secret file, and their hex and base64 forms are scrubbed everywhere', async () => {
    // A runtime of its own with the secret configured (server.metrics.token_file) runs the job.
    const { runtime, server } = await (async () => {
      const text = stringify({
        inventory: h.lab.inventoryFile,
        known_hosts: h.lab.knownHostsFile,
        ssh: { user: h.lab.loginUser, private_key_file: h.lab.clientKeyFile, connect_timeout: '5s', command_timeout: '1m' },
        redis: { url: redis.url, prefix: `ct-secrets-${randomBytes(3).toString('hex')}` },
        server: { listen: '127.0.0.1:0', public_url: h.base, metrics: { token_file: secretFile } },
        auth: { local_identity: { subject: 'local-admin', display_name: 'Local admin', groups: ['admins'] }, roles: { admin: ['admins'], operator: [], approver: [], viewer: [] } },
        policy: { tool_risk: { exec: 'change' } },
        log: { level: 'warn' },
      });
      const config = await parseConfig(text, path.join(h.dir, 'secrets.yaml'));
      const rt = await createRuntime(config, { mode: 'server' });
      await rt.startWorker();
      return { runtime: rt, server: await startServer(rt, { port: 0 }) };
    })();
    try {
      const me = runtime.localRequester('cli');
      const script = [
        `cat ${h.lab.clientKeyFile}`,
        `cat ${secretFile}`,
        `printf %s "$(cat ${secretFile})" | od -An -tx1 -v | tr -d ' \\n'; echo`,
        `printf %s "$(cat ${secretFile})" | od -An -tx1 -v | tr -d ' \\n' | tr a-f A-F; echo`,
        `printf %s "$(cat ${secretFile})" | base64 -w0; echo`,
        `printf 'x%s' "$(cat ${secretFile})" | base64 -w0; echo`,
        `printf 'xy%s' "$(cat ${secretFile})" | base64 -w0; echo`,
        `base64 -w0 ${h.lab.clientKeyFile}; echo`,
        'echo done',
      ].join('\n');
      const { job } = await runtime.service.submit({ tool: 'exec', input: { targets: 'node01', script }, requester: me, replyTo: { kind: 'cli' } });
      const done = await runtime.service.wait(job.id, me, 30_000);
      expect(done.state).toBe('succeeded');
      const record = JSON.stringify(await runtime.ctx.store.get(job.id));
      // The run really printed something for each line, scrubbed: not a vacuous pass.
      expect(record).toContain('done');
      expect(record.split('[REDACTED]').length).toBeGreaterThan(8);
      expect(leaks(record)).toEqual([]);
      expect(leaks(JSON.stringify(await runtime.ctx.events.read(job.id)))).toEqual([]);
      expect(leaks(JSON.stringify(await runtime.ctx.audit.read({ jobId: job.id })))).toEqual([]);
      // The base64 of the whole key file is one long line: scrubbed as well.
      expect(record).not.toContain(Buffer.from(await readFile(h.lab.clientKeyFile)).toString('base64').slice(8, 80));

      // The secret file is the metrics token: it works as one, and the metrics do not echo it.
      const api = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${secret}` } });
      expect(api.status).toBe(200);
      expect(leaks(await api.text())).toEqual([]);

      // Typing the secret, encoded, into a request is refused before anything is stored.
      for (const encoded of [Buffer.from(secret).toString('base64'), Buffer.from(secret).toString('hex')]) {
        await expect(runtime.service.submit({ tool: 'exec', input: { targets: 'node01', argv: ['echo', encoded] }, requester: me, replyTo: { kind: 'cli' } })).rejects.toThrow(/configured secrets/);
      }
    } finally {
      await server.close();
      await runtime.close();
    }
  });
});

describe('the SSH key printed by a node, read through the API, MCP and the CLI', () => {
  it('shows [REDACTED] on every front end', async () => {
    const oscar = await h.token('oscar');
    const response = await fetch(`${h.base}/api/v1/jobs?wait=20s`, {
      method: 'POST',
      headers: { authorization: `Bearer ${oscar}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tool: 'exec', input: { targets: 'node01', argv: ['cat', h.lab.clientKeyFile] } }),
    });
    const { job } = (await response.json()) as { job: { id: string; state: string } };
    expect(job.state).toBe('succeeded');
    const output = await (await fetch(`${h.base}/api/v1/jobs/${job.id}/output`, { headers: { authorization: `Bearer ${oscar}` } })).text();
    expect(output).toContain('[REDACTED]');
    expect(leaks(output)).toEqual([]);
    const view = await (await fetch(`${h.base}/api/v1/jobs/${job.id}/events`, { headers: { authorization: `Bearer ${oscar}` } })).text();
    expect(leaks(view)).toEqual([]);
    const client = await h.mcp('oscar');
    const mcp = (await client.callTool({ name: 'job_output', arguments: { job_id: job.id } })) as CallToolResult;
    expect(leaks(JSON.stringify(mcp))).toEqual([]);
    const cli = await runCli(['--server', h.base, 'job', job.id, '--log'], { env: { CASTELLAN_TOKEN: oscar, CASTELLAN_CONFIG: '/nonexistent' } });
    expect(cli.stdout).toContain('[REDACTED]');
    expect(leaks(cli.stdout + cli.stderr)).toEqual([]);
  });
});
