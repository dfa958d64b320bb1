import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig, parseDuration, parseSize } from '../../config/load.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'castellan-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

const MINIMAL = 'inventory: ./inventory.yaml\nknown_hosts: ./known_hosts\n';

async function problemsOf(text: string, env: NodeJS.ProcessEnv = {}): Promise<ConfigError> {
  const error = await parseConfig(text, join(dir, 'castellan.yaml'), { env }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

describe('parseDuration / parseSize', () => {
  it('reads the units operators write', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('15s')).toBe(15_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration(1500)).toBe(1500);
    expect(parseDuration('1500')).toBe(1500);
    expect(parseSize('64KiB')).toBe(65_536);
    expect(parseSize('1MiB')).toBe(1_048_576);
    expect(parseSize('100MB')).toBe(100_000_000);
    expect(parseSize('100000')).toBe(100_000);
    expect(parseSize(512)).toBe(512);
  });

  it('refuses nonsense with the expected form in the message', () => {
    for (const bad of ['fast', '15', '-5s', '5 minutes', '1.5', '', 's'].filter((v) => v !== '15')) {
      expect(() => parseDuration(bad)).toThrow(/expected a duration like 250ms/);
    }
    expect(() => parseDuration(-1)).toThrow(RangeError);
    expect(() => parseSize('1 parsec')).toThrow(/expected a size like 64KiB/);
    expect(() => parseSize(1.5)).toThrow(RangeError);
  });
});

describe('loadConfig', () => {
  it('applies defaults and resolves paths against the config file folder', async () => {
    const path = await write('castellan.yaml', MINIMAL);
    const config = await loadConfig(path, { env: {} });
    expect(config.file).toBe(path);
    expect(config.inventory).toEqual([join(dir, 'inventory.yaml')]);
    expect(config.knownHosts).toBe(join(dir, 'known_hosts'));
    expect(config.ssh).toMatchObject({ user: 'root', port: 22, connectTimeoutMs: 15_000, commandTimeoutMs: 300_000, window: 64, maxOutputBytes: 1_048_576 });
    expect(config.ssh.maxTransferBytes).toBe(100 * 1024 * 1024);
    expect(config.redis).toMatchObject({ url: 'redis://127.0.0.1:6379', prefix: 'castellan', password: undefined });
    expect(config.server).toEqual({ listen: { host: '127.0.0.1', port: 8080 }, publicUrl: 'http://127.0.0.1:8080', allowedOrigins: ['http://127.0.0.1:8080'], metrics: { listen: undefined, token: undefined } });
    expect(config.limits).toMatchObject({ maxHosts: 4096, readTimeoutMs: 300_000, jobsPerRequester: 16, rate: { perMinute: 60, burst: 30 }, mcpBatches: 'refuse' });
    expect(config.auth.oidc).toBeUndefined();
    expect(config.auth.roles).toEqual({ viewer: [], operator: [], approver: [], admin: [] });
    expect(config.auth.localIdentity).toEqual({ subject: 'local-admin', displayName: 'Local admin', groups: [] });
    expect(config.policy).toEqual({ readOnly: false, approvals: { required: 1, allowSelfApproval: false, expiryMs: 900_000 }, requireApproval: {}, outputForOthers: 'read', toolRisk: {}, maintenanceWindows: [], outsideWindow: 'wait' });
    expect(config.auth.clients).toEqual({ 'castellan-cli': 'cli' });
    expect(config.jobs.retention).toEqual({ completedAgeMs: 7 * 86_400_000, completedCount: 1000, failedAgeMs: 30 * 86_400_000, failedCount: 5000, maxBytes: 256 * 1024 * 1024 });
    expect(config.slack).toBeUndefined();
    expect(config.log.level).toBe('info');
  });

  it('reads the shipped example', async () => {
    const config = await loadConfig(join(import.meta.dirname, '../../config/examples/castellan.example.yaml'), { env: {} });
    expect(config.inventory[0]).toMatch(/config\/examples\/homelab-13\.yaml$/);
    expect(config.auth.roles.admin).toEqual(['admins']);
    expect(config.auth.localIdentity.groups).toEqual(['admins']);
    expect(config.audit.file).toMatch(/config\/examples\/audit\.jsonl$/);
  });

  it('names the file and every problem, with what was expected and found', async () => {
    const error = await problemsOf(
      [
        'inventory: ./inventory.yaml',
        'ssh:',
        '  connect_timeout: fast',
        '  port: 70000',
        '  window: many',
        'policy:',
        '  approvals: { required: 0 }',
        'log: { level: loud }',
      ].join('\n'),
    );
    const byPath = new Map(error.problems.map((p) => [p.path, p.message]));
    expect(byPath.get('known_hosts')).toBe('missing (expected a string)');
    expect(byPath.get('ssh.connect_timeout')).toBe('expected a duration like 250ms, 15s, 5m, 1h or 7d, found "fast"');
    expect(byPath.get('ssh.port')).toBe('expected at most 65535, found 70000');
    expect(byPath.get('ssh.window')).toMatch(/expected (a number|an integer), found "many"/);
    expect(byPath.get('policy.approvals.required')).toBe('expected at least 1, found 0');
    expect(byPath.get('log.level')).toMatch(/expected one of "fatal", .*"silent", found "loud"/);
    expect(error.message).toContain('castellan.yaml: 6 problems:');
    expect(error.message).toContain('  - ssh.connect_timeout: expected a duration');
  });

  it('treats unknown keys as errors, with a did-you-mean', async () => {
    const error = await problemsOf(`${MINIMAL}ssh:\n  conect_timeout: 5s\nlogs: {}\nauth:\n  roles:\n    admins: [a]\n`);
    const byPath = new Map(error.problems.map((p) => [p.path, p.message]));
    expect(byPath.get('ssh.conect_timeout')).toBe("unknown key (did you mean 'connect_timeout'?)");
    expect(byPath.get('logs')).toBe("unknown key (did you mean 'log'?)");
    expect(byPath.get('auth.roles.admins')).toBe("unknown key (did you mean 'admin'?)");
  });

  it('lists the accepted keys when nothing is close', async () => {
    const error = await problemsOf(`${MINIMAL}policy:\n  zzzzzz: 1\n`);
    expect(error.problems[0]).toEqual({ path: 'policy.zzzzzz', message: 'unknown key (expected one of: read_only, approvals, require_approval, visibility, tool_risk, maintenance_windows, outside_window)' });
  });

  it('refuses literal secrets and points at _env / _file', async () => {
    const error = await problemsOf(
      `${MINIMAL}redis:\n  password: hunter2\nauth:\n  oidc:\n    issuer: https://auth.example.com\n    client_id: c\n    client_secret: s3cret\n`,
    );
    const byPath = new Map(error.problems.map((p) => [p.path, p.message]));
    expect(byPath.get('redis.password')).toMatch(/use password_env .* or password_file/);
    expect(byPath.get('auth.oidc.client_secret')).toMatch(/use client_secret_env .* or client_secret_file/);
    expect(error.message).not.toContain('hunter2');
    expect(error.message).not.toContain('s3cret');
  });

  it('refuses a password inside the Redis URL without echoing it', async () => {
    const error = await problemsOf(`${MINIMAL}redis:\n  url: redis://:topsecret@10.0.0.5:6379\n`);
    expect(error.problems.map((p) => p.path)).toEqual(['redis.url']);
    expect(error.problems[0]!.message).toMatch(/must not contain a password; use redis.password_env/);
    expect(error.message).not.toContain('topsecret');
  });

  it('reads secrets from env and files into a separate, redacting object', async () => {
    const secretFile = await write('oidc-secret', 'file-secret-value\n');
    const text = `${MINIMAL}redis:\n  password_env: REDIS_PW\nauth:\n  oidc:\n    issuer: https://auth.example.com\n    client_id: castellan\n    client_secret_file: ./oidc-secret\n`;
    const config = await parseConfig(text, join(dir, 'castellan.yaml'), { env: { REDIS_PW: 'env-secret-value' } });
    expect(config.secrets.redisPassword).toBe('env-secret-value');
    expect(config.secrets.oidcClientSecret).toBe('file-secret-value');
    expect(config.auth.oidc?.clientSecret).toEqual({ kind: 'file', path: secretFile });
    expect(config.auth.oidc?.audience).toBe('http://127.0.0.1:8080');
    expect(config.secrets.values().sort()).toEqual(['env-secret-value', 'file-secret-value']);
    const serialized = JSON.stringify(config) + inspect(config, { depth: 10 });
    expect(serialized).not.toContain('env-secret-value');
    expect(serialized).not.toContain('file-secret-value');
    expect(config.secrets.redact('auth with env-secret-value failed')).toBe('auth with [redacted] failed');
  });

  it('names the missing env var and the unreadable file, all at once', async () => {
    const text = `${MINIMAL}redis:\n  password_env: NOT_SET_ANYWHERE\nauth:\n  oidc:\n    issuer: https://auth.example.com\n    client_id: c\n    client_secret_file: /nonexistent/secret\n`;
    const error = await problemsOf(text);
    expect(error.problems).toEqual([
      { path: 'auth.oidc.client_secret_file', message: 'cannot read secret file /nonexistent/secret (ENOENT)' },
      { path: 'redis.password_env', message: 'environment variable NOT_SET_ANYWHERE is not set' },
    ]);
  });

  it('refuses giving a secret both ways, and checks Slack mode needs', async () => {
    const error = await problemsOf(`${MINIMAL}redis:\n  password_env: A\n  password_file: ./b\nslack:\n  socket_mode: true\n  bot_token_env: SLACK_BOT\n`);
    const paths = error.problems.map((p) => `${p.path}: ${p.message}`);
    expect(paths).toContain('redis.password_file: give password_env or password_file, not both');
    expect(paths).toContain('slack.app_token_env: socket_mode needs app_token_env or app_token_file');
  });

  it('accepts a list of inventories, agent socket, origins and listen forms', async () => {
    const text = `inventory: [a.yaml, /abs/b.ini]\nknown_hosts: kh\nssh:\n  agent: true\nserver:\n  listen: '[::1]:9090'\n  public_url: https://castellan.lab.example\n  allowed_origins: [http://localhost:5173/]\n`;
    const config = await parseConfig(text, join(dir, 'castellan.yaml'), { env: { SSH_AUTH_SOCK: '/tmp/agent.sock' } });
    expect(config.inventory).toEqual([join(dir, 'a.yaml'), '/abs/b.ini']);
    expect(config.ssh.agentSocket).toBe('/tmp/agent.sock');
    expect(config.server.listen).toEqual({ host: '::1', port: 9090 });
    expect(config.server.allowedOrigins).toEqual(['https://castellan.lab.example', 'http://localhost:5173']);
    const noAgent = await problemsOf(`${MINIMAL}ssh:\n  agent: true\n`);
    expect(noAgent.problems[0]!.message).toMatch(/SSH_AUTH_SOCK is not set/);
  });

  it('reports YAML syntax errors with line numbers, and unreadable files', async () => {
    const error = await problemsOf('inventory: [a\nssh: {');
    expect(error.problems[0]!.path).toMatch(/^line \d+, column \d+$/);
    expect(error.problems[0]!.message).toMatch(/^invalid YAML/);
    const dup = await problemsOf(`${MINIMAL}log: {level: info}\nlog: {level: debug}\n`);
    expect(dup.problems[0]!.message).toMatch(/invalid YAML: .*unique/i);
    await expect(loadConfig(join(dir, 'missing.yaml'))).rejects.toThrow(/missing\.yaml: cannot read config file \(ENOENT\)/);
  });

  it('says what a wrong shape is', async () => {
    const error = await problemsOf('inventory: {a: 1}\nknown_hosts: [x]\nssh: 5\n');
    const byPath = new Map(error.problems.map((p) => [p.path, p.message]));
    expect(byPath.get('inventory')).toBe('expected a path or a list of paths, found a mapping');
    expect(byPath.get('known_hosts')).toBe('expected a string, found a list');
    expect(byPath.get('ssh')).toBe('expected a mapping, found 5');
  });
});
