// `castellan doctor` against real parts: a private redis-server with a worker attached, real
// sshd lab nodes, the lab OIDC provider (introspection client), and the Slack stand-in. First
// everything healthy, then each class of problem a first deployment hits, each reported with
// the command that fixes it, and no secret in the output.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { startLabOidc, type LabOidc } from '../../src/lab/oidc.js';
import { nodeBinDir } from '../../src/lab/sshd-lab.js';
import { runCli, useCastellan } from '../support/castellan.js';
import { startSlackStandIn, type SlackStandIn } from '../support/slack-standin.js';

const c = useCastellan({ nodes: 3, lab: { nodeBinDirs: true } });
let oidc: LabOidc;
let slack: SlackStandIn;
let healthyConfig = '';

interface Finding {
  check: string;
  status: 'ok' | 'warn' | 'fail' | 'skipped';
  summary: string;
  details?: string[];
  fix?: string;
}

const env = (over: Record<string, string> = {}): Record<string, string> => ({
  DOC_OIDC_SECRET: oidc.castellanClient.clientSecret,
  DOC_SLACK_BOT: slack.botToken,
  DOC_SLACK_APP: slack.appToken,
  ...over,
});

async function doctor(config: string, over: Record<string, string> = {}, extra: string[] = []): Promise<{ code: number | null; findings: Map<string, Finding>; text: string; all: string }> {
  const json = await runCli(['--config', config, 'doctor', '--json', ...extra], { env: env(over) });
  const text = await runCli(['--config', config, 'doctor', ...extra], { env: env(over) });
  expect(text.code).toBe(json.code);
  const parsed = JSON.parse(json.stdout) as { findings: Finding[] };
  return { code: json.code, findings: new Map(parsed.findings.map((f) => [f.check, f])), text: text.stdout, all: json.stdout + json.stderr + text.stdout + text.stderr };
}

function withConfig(name: string, edit: (doc: Record<string, unknown>) => void): string {
  const doc = parse(readFileSync(healthyConfig, 'utf8')) as Record<string, unknown>;
  edit(doc);
  const file = path.join(c.dir, name);
  writeFileSync(file, stringify(doc));
  return file;
}

beforeAll(async () => {
  oidc = await startLabOidc({ resource: 'http://127.0.0.1:8080', accessTokenFormat: 'opaque' });
  slack = await startSlackStandIn();
  const doc = parse(readFileSync(c.configFile, 'utf8')) as Record<string, Record<string, unknown>>;
  doc.auth = { ...doc.auth, oidc: { issuer: oidc.issuer, client_id: oidc.castellanClient.clientId, client_secret_env: 'DOC_OIDC_SECRET', token_format: 'opaque' } };
  doc.slack = { socket_mode: true, bot_token_env: 'DOC_SLACK_BOT', app_token_env: 'DOC_SLACK_APP', api_url: slack.apiUrl };
  healthyConfig = path.join(c.dir, 'healthy.yaml');
  writeFileSync(healthyConfig, stringify(doc));
});

afterAll(async () => {
  await slack?.stop();
  await oidc?.stop();
});

describe('castellan doctor', () => {
  it('passes on a healthy deployment, every check ok, in one readable line each', async () => {
    const { code, findings, text } = await doctor(healthyConfig);
    expect(code).toBe(0);
    expect([...findings.values()].filter((f) => f.status !== 'ok')).toEqual([]);
    expect([...findings.keys()]).toEqual(['config', 'inventory', 'host keys', 'ssh keys', 'ssh', 'redis', 'workers', 'oidc', 'slack', 'files']);
    expect(findings.get('ssh')!.summary).toMatch(/^node\[01-03\] \(3\) logged in and ran a command in [\d.]+ s; node helper \(perl\) available on all$/);
    expect(findings.get('redis')!.summary).toMatch(/Redis \d+\.\d+\.\d+, standalone primary, .*noeviction, appendonly/);
    expect(findings.get('workers')!.summary).toMatch(/^[1-9]\d* worker connections? listening/);
    expect(findings.get('oidc')!.summary).toContain(`client ${oidc.castellanClient.clientId} accepted for introspection`);
    expect(findings.get('slack')!.summary).toContain('bot castellan in workspace Lab');
    expect(text).toMatch(/^ {2}ok {4}host keys {2}all 3 hosts pinned/m);
    expect(text.trimEnd().endsWith('everything checked is fine')).toBe(true);
    // Calls reached the stand-in with the right token kinds.
    expect(slack.callsOf('auth.test').at(-1)?.token).toBe(slack.botToken);
    expect(slack.callsOf('apps.connections.open').at(-1)?.token).toBe(slack.appToken);
  });

  it('warns about a node that cannot run the node helper, with what to do, and still passes', async () => {
    // node03 without perl: what a shell says for a program that is not installed.
    const third = c.lab.nodes[2]!;
    const bin = nodeBinDir(c.lab.dir, third.name);
    mkdirSync(bin, { recursive: true });
    writeFileSync(path.join(bin, 'perl'), '#!/bin/sh\necho "sh: 1: perl: not found" >&2\nexit 127\n', { mode: 0o755 });
    try {
      const { code, findings } = await doctor(healthyConfig);
      expect(code).toBe(0);
      const ssh = findings.get('ssh')!;
      expect(ssh.status).toBe('warn');
      expect(ssh.summary).toMatch(new RegExp(`; ${third.name} \\(1\\) cannot run the node helper: their commands use the wrapper, an sshd session each \\(slower\\)$`));
      expect(ssh.details).toEqual([`${third.name}: perl is not installed here (command not found)`]);
      expect(ssh.fix).toBe(`install perl-base on ${third.name} (Essential on Debian, Ubuntu and Raspberry Pi OS), or set ssh.node_helper: off`);
    } finally {
      rmSync(path.join(bin, 'perl'));
    }
  });

  it('names an unpinned host, a stopped node and an evicting Redis, each with its fix', async () => {
    const [, second, third] = c.lab.nodes;
    const pins = readFileSync(c.lab.knownHostsFile, 'utf8').split('\n').filter((l) => !l.startsWith(`[${second!.address}]:`)).join('\n');
    const pinsFile = path.join(c.dir, 'partial_known_hosts');
    writeFileSync(pinsFile, pins);
    const config = withConfig('broken-hosts.yaml', (doc) => {
      doc.known_hosts = pinsFile;
    });
    const redis = new Redis(c.redis.url);
    await c.lab.stopNode(third!.name);
    await redis.config('SET', 'maxmemory-policy', 'allkeys-lru');
    try {
      const { code, findings, text } = await doctor(config);
      expect(code).toBe(1);
      const keys = findings.get('host keys')!;
      expect(keys.status).toBe('fail');
      expect(keys.summary).toBe(`${second!.name} (1 of 3) has no pinned key in ${pinsFile}`);
      expect(keys.fix).toMatch(new RegExp(`^castellan hosts trust ${second!.name} `));
      const ssh = findings.get('ssh')!;
      expect(ssh.status).toBe('fail');
      expect(ssh.summary).toBe(`1 of 2 hosts cannot be used (node01 ok)`);
      expect(ssh.details).toEqual([expect.stringMatching(new RegExp(`^${third!.name} \\(1\\) unreachable: .*refused`))]);
      expect(ssh.fix).toContain(`check that ${third!.name} is up`);
      const r = findings.get('redis')!;
      expect(r.status).toBe('fail');
      expect(r.summary).toContain('maxmemory-policy allkeys-lru');
      expect(r.fix).toContain('CONFIG SET maxmemory-policy noeviction');
      expect(text).toMatch(/^ {2}FAIL {2}redis /m);
      expect(text).toMatch(/^ {19}fix: redis-cli CONFIG SET maxmemory-policy noeviction/m);
      expect(text.trimEnd()).toMatch(/3 problems$/);
    } finally {
      await redis.config('SET', 'maxmemory-policy', 'noeviction');
      redis.disconnect();
      await c.lab.startNode(third!.name);
    }
  });

  it('reports refused credentials at the issuer and at Slack without printing any secret', async () => {
    const wrongOidc = 'doctor-canary-oidc-8c1f0e';
    const wrongBot = 'xoxb-doctor-canary-51d2';
    const { code, findings, all } = await doctor(healthyConfig, { DOC_OIDC_SECRET: wrongOidc, DOC_SLACK_BOT: wrongBot }, ['--no-ssh']);
    expect(code).toBe(1);
    expect(findings.get('ssh')).toMatchObject({ status: 'skipped', summary: 'skipped (--no-ssh)' });
    const o = findings.get('oidc')!;
    expect(o.status).toBe('fail');
    expect(o.summary).toContain(`client ${oidc.castellanClient.clientId} was refused at introspection`);
    expect(o.fix).toContain('$DOC_OIDC_SECRET');
    const s = findings.get('slack')!;
    expect(s.status).toBe('fail');
    expect(s.summary).toBe('bot token: Slack answered invalid_auth');
    expect(s.fix).toContain('castellan slack manifest');
    for (const secret of [wrongOidc, wrongBot, oidc.castellanClient.clientSecret, slack.appToken]) expect(all).not.toContain(secret);
  });

  it('stops at a broken config with every problem and where it is, and fails when Redis is down', async () => {
    const bad = withConfig('bad.yaml', (doc) => {
      (doc.ssh as Record<string, unknown>).connect_timeout = 'fast';
    });
    const broken = await doctor(bad);
    expect(broken.code).toBe(1);
    expect([...broken.findings.keys()]).toEqual(['config']);
    expect(broken.findings.get('config')!.summary).toContain('ssh.connect_timeout: expected a duration');
    const noRedis = withConfig('no-redis.yaml', (doc) => {
      (doc.redis as Record<string, unknown>).url = 'redis://127.0.0.1:1';
    });
    const down = await doctor(noRedis, {}, ['--no-ssh']);
    expect(down.code).toBe(1);
    expect(down.findings.get('redis')).toMatchObject({ status: 'fail', fix: expect.stringContaining("'castellan up' starts a private one") as unknown });
    expect(down.findings.get('redis')!.summary).toMatch(/^cannot reach redis:\/\/127\.0\.0\.1:1: /);
    expect(down.findings.get('workers')!.status).toBe('skipped');
  });
});
