// Redis over TLS with an ACL user, against a real redis-server (Debian's is built with TLS):
// the server listens only on a TLS port, the `default` user is off, and Castellan's user is
// exactly the least-privilege ACL docs/deployment.md tells operators to create. Castellan
// (server runtime, in-process worker, the CLI as a separate process) must run a job end to end
// through it, report TLS and the user in `castellan doctor` and /healthz, and Redis must have
// refused nothing (ACL LOG empty: every key under the prefix, every command allowed). Then the
// ways a first deployment gets it wrong: a wrong password, a CA that did not sign the server's
// certificate, plain redis:// against the TLS port — each a clear error, and the password
// never in any output.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { findFreePort } from '../../src/lab/net.js';
import { redisTopology } from '../../src/redis.js';
import { runCli, useCastellan } from '../support/castellan.js';
import { eventually } from './mcp-harness.js';

const PASSWORD = 'redis-acl-canary-7f3e9b21c4';
// The ACL line from docs/deployment.md ("A least-privilege ACL user for Castellan"), read from
// the document itself so the test fails when the documented line stops being enough.
const DOCUMENTED_ACL = /ACL SETUSER castellan (.+)/.exec(readFileSync(new URL('../../docs/deployment.md', import.meta.url), 'utf8'))?.[1];

let dir: string;
let tlsPort: number;
let server: ChildProcess | undefined;
const redisOverride: Record<string, unknown> = {};

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A CA and a server certificate for 127.0.0.1 signed by it; a second, unrelated CA. */
function makeCertificates(): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=castellan test CA']);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext']);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'other-ca.key', '-out', 'other-ca.pem', '-days', '2', '-subj', '/CN=some other CA']);
}

/** An admin connection (the ACL user `admin`, which only the test knows) for ACL LOG and checks. */
function admin(): Redis {
  return new Redis({ host: '127.0.0.1', port: tlsPort, username: 'admin', password: 'admin-pw', tls: { ca: readFileSync(path.join(dir, 'ca.pem')) }, maxRetriesPerRequest: 1 });
}

beforeAll(async () => {
  if (!DOCUMENTED_ACL) throw new Error('docs/deployment.md no longer has the ACL SETUSER castellan line');
  dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-redis-tls-'));
  makeCertificates();
  tlsPort = await findFreePort();
  await mkdir(path.join(dir, 'data'));
  const conf = [
    'bind 127.0.0.1',
    'port 0', // no plaintext listener at all
    `tls-port ${tlsPort}`,
    `tls-cert-file ${path.join(dir, 'server.pem')}`,
    `tls-key-file ${path.join(dir, 'server.key')}`,
    `tls-ca-cert-file ${path.join(dir, 'ca.pem')}`,
    'tls-auth-clients no',
    `dir ${path.join(dir, 'data')}`,
    `logfile ${path.join(dir, 'redis.log')}`,
    'maxmemory-policy noeviction',
    'appendonly yes',
    'save ""',
    'user default off',
    'user admin on >admin-pw ~* &* +@all',
  ].join('\n');
  await writeFile(path.join(dir, 'redis.conf'), `${conf}\n`);
  const args = ['--pdeathsig', 'SIGKILL', '--', '/usr/bin/redis-server', path.join(dir, 'redis.conf')];
  server = existsSync('/usr/bin/setpriv') ? spawn('/usr/bin/setpriv', args, { stdio: 'ignore' }) : spawn('/usr/bin/redis-server', [path.join(dir, 'redis.conf')], { stdio: 'ignore' });
  const probe = admin();
  probe.on('error', () => undefined);
  try {
    await eventually(async () => ((await probe.ping().catch(() => '')) === 'PONG' ? true : undefined), 15_000, 'redis-server with TLS to answer');
    // The documented line, applied as an operator would (`ACL SETUSER castellan …`).
    await probe.call('ACL', 'SETUSER', 'castellan', ...DOCUMENTED_ACL.replace('PASSWORD', PASSWORD).split(/\s+/));
    await probe.call('ACL', 'LOG', 'RESET');
  } finally {
    probe.disconnect();
  }
  Object.assign(redisOverride, {
    url: `rediss://127.0.0.1:${tlsPort}`,
    tls_ca_file: path.join(dir, 'ca.pem'),
    username: 'castellan',
    password_env: 'TLS_ACL_REDIS_PASSWORD',
  });
}, 60_000);

afterAll(async () => {
  if (server && server.exitCode === null && server.signalCode === null) {
    const exited = new Promise((resolve) => server!.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

// Registered after the hook above, so the TLS server is up and redis.* points at it before
// useCastellan writes the config and starts the runtime.
const c = useCastellan({ nodes: 2, config: { redis: redisOverride, policy: { approvals: { allow_self_approval: true } } }, env: { TLS_ACL_REDIS_PASSWORD: PASSWORD } });

function withRedis(name: string, edit: (redis: Record<string, unknown>) => void): string {
  const doc = parse(readFileSync(c.configFile, 'utf8')) as { redis: Record<string, unknown> };
  edit(doc.redis);
  const file = path.join(c.dir, name);
  writeFileSync(file, stringify(doc));
  return file;
}

describe('Redis over TLS with the documented ACL user', () => {
  it('runs a job end to end (CLI process, runtime, worker) and Redis refused nothing', async () => {
    const ping = await c.cli(['ping', 'all']);
    // What Redis refused, if anything (shown on failure): reason, command or key, user.
    expect(await aclRefusals()).toEqual([]);
    expect(ping.stderr).not.toMatch(/NOPERM|NOAUTH|WRONGPASS/);
    expect(ping.code).toBe(0);
    expect(ping.stdout).toMatch(/^node\[01-02\] \(2\) ok/);

    // A change job through the approval path: submitted, approved by someone else, run once.
    expect(await aclRefusals()).toEqual([]);
    const marker = path.join(c.dir, 'tls-acl-marker');
    const submitted = await c.cli(['--no-wait', 'exec', 'node01', '--', 'touch', marker]);
    expect(submitted.code).toBe(3); // awaiting approval
    const jobId = submitted.stdout.trim();
    expect(jobId).toMatch(/^j[a-z0-9]+$/);
    const approved = await c.cli(['approve', jobId, '--reason', 'over TLS']);
    expect(approved.code).toBe(0);
    const finished = await c.runtime.service.wait(jobId, c.runtime.localRequester('cli'), 30_000);
    expect(finished.state).toBe('succeeded');
    expect(existsSync(marker)).toBe(true);
    expect(await aclRefusals()).toEqual([]);

    const client = admin();
    try {
      // Every key Castellan and BullMQ wrote is under the configured prefix (the ACL allows
      // only castellan:*), and no command or channel was refused.
      const keys = (await client.call('KEYS', '*')) as string[];
      expect(keys.length).toBeGreaterThan(0);
      expect(keys.filter((k) => !k.startsWith('castellan:'))).toEqual([]);
      const clients = String(await client.call('CLIENT', 'LIST'));
      expect(clients).toMatch(/user=castellan/);
    } finally {
      client.disconnect();
    }
  }, 240_000);

  it('castellan doctor and the topology behind /healthz report TLS and the ACL user, never the password', async () => {
    const doctor = await runCli(['--config', c.configFile, 'doctor', '--json', '--no-ssh']);
    const findings = (JSON.parse(doctor.stdout) as { findings: Array<{ check: string; status: string; summary: string }> }).findings;
    const redisFinding = findings.find((f) => f.check === 'redis');
    expect(redisFinding?.status).toBe('ok');
    expect(redisFinding?.summary).toMatch(/TLS/);
    expect(doctor.stdout + doctor.stderr).not.toContain(PASSWORD);

    const topology = await redisTopology(c.runtime.redis, c.runtime.config.redis);
    expect(topology.tls).toBe(true);
    expect(topology.user).toBe('castellan');
    expect(JSON.stringify(topology)).not.toContain(PASSWORD);
    expect(c.logs.join('')).not.toContain(PASSWORD);
  });

  it('a wrong password is a clear error naming the user, and nothing is submitted', async () => {
    const before = await countJobs();
    const r = await runCli(['--config', c.configFile, 'ping', 'node01'], { env: { TLS_ACL_REDIS_PASSWORD: 'not-the-password-41d2' } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/castellan/);
    expect(r.stderr).toMatch(/Redis refused the login of user 'castellan' \(WRONGPASS/);
    expect(r.stderr).toMatch(/Check redis\.username and the password/);
    expect(r.stderr + r.stdout).not.toContain('not-the-password-41d2');
    expect(await countJobs()).toBe(before);
  });

  it('a CA that did not sign the server certificate is refused, not trusted', async () => {
    const config = withRedis('other-ca.yaml', (redis) => (redis.tls_ca_file = path.join(dir, 'other-ca.pem')));
    const r = await runCli(['--config', config, 'doctor', '--json', '--no-ssh']);
    const findings = (JSON.parse(r.stdout) as { findings: Array<{ check: string; status: string; summary: string }> }).findings;
    const redisFinding = findings.find((f) => f.check === 'redis');
    expect(redisFinding?.status).toBe('fail');
    expect(redisFinding?.summary).toMatch(/TLS with Redis failed: .*certificate/i);
    expect(r.stdout + r.stderr).not.toContain(PASSWORD);
  });

  it('plain redis:// against the TLS-only port fails clearly instead of hanging', async () => {
    const config = withRedis('plain.yaml', (redis) => {
      redis.url = `redis://127.0.0.1:${tlsPort}`;
      delete redis.tls_ca_file;
    });
    const r = await runCli(['--config', config, 'doctor', '--json', '--no-ssh']);
    const findings = (JSON.parse(r.stdout) as { findings: Array<{ check: string; status: string; summary: string }> }).findings;
    const redisFinding = findings.find((f) => f.check === 'redis') as { status: string; summary: string; fix?: string } | undefined;
    expect(redisFinding?.status).toBe('fail');
    expect(redisFinding?.fix).toMatch(/if that port speaks TLS, use a rediss:\/\/ URL/);
  });
});

async function countJobs(): Promise<number> {
  const client = admin();
  try {
    return ((await client.call('KEYS', 'castellan:job:*')) as string[]).length;
  } finally {
    client.disconnect();
  }
}

/** Redis's ACL LOG as "reason object (context) by user" lines. */
async function aclRefusals(): Promise<string[]> {
  const client = admin();
  try {
    const entries = (await client.call('ACL', 'LOG')) as unknown[][];
    return entries.map((entry) => {
      const fields = new Map<string, unknown>();
      for (let i = 0; i + 1 < entry.length; i += 2) fields.set(String(entry[i]), entry[i + 1]);
      return `${String(fields.get('reason'))} ${String(fields.get('object'))} (${String(fields.get('context'))}) by ${String(fields.get('username'))}`;
    });
  } finally {
    client.disconnect();
  }
}
