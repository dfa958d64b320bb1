// Checks that talk to something: Redis, the OIDC issuer, the hosts over SSH, Slack's Web API.
// Each has a short deadline: the doctor answers in seconds even when everything is down.
import { Redis } from 'ioredis';
import { Queue } from 'bullmq';
import * as client from 'openid-client';
import type { Config } from '../../config/load.js';
import type { Inventory } from '../../config/types.js';
import { foldNodeSet } from '../../config/nodeset.js';
import { errorMessage } from '../../config/errors.js';
import { keys } from '../../queues/keys.js';
import { connectExplained, describeRedis, redisOptions, redisTopology } from '../redis.js';
import { KnownHosts } from '../ssh/known-hosts.js';
import { SshExecutor } from '../ssh/executor.js';
import type { SshTarget } from '../../queues/execution.js';
import { targetFor } from '../runtime.js';
import type { HostResult } from '../../tools/host-result.js';
import { fail, ok, skipped, warn, type Finding } from './finding.js';

const REDIS_TIMEOUT_MS = 3000;
const HTTP_TIMEOUT_MS = 5000;

/**
 * Reachable (through the same connection settings Castellan uses: Sentinel, TLS, ACL user),
 * the primary, `noeviction`, persistent, sentinels healthy, and at least one worker listening.
 */
export async function checkRedis(config: Config): Promise<Finding[]> {
  const where = describeRedis(config.redis);
  let redis: Redis;
  try {
    redis = new Redis({ ...(await redisOptions(config.redis, config.secrets.redisPassword, 'client', config.secrets.redisSentinelPassword)), connectTimeout: REDIS_TIMEOUT_MS, commandTimeout: REDIS_TIMEOUT_MS });
  } catch (err) {
    return [fail('redis', errorMessage(err), 'fix the redis settings in castellan.yaml'), skipped('workers', 'Redis is unreachable')];
  }
  redis.on('error', () => undefined);
  try {
    const failure = await connectExplained(redis, config.redis);
    if (failure) return [fail('redis', `cannot reach ${where}: ${failure.cause}`, failure.fix), skipped('workers', 'Redis is unreachable')];
    const t = await redisTopology(redis, config.redis, config.secrets.redisSentinelPassword);
    const save = await redis.config('GET', 'save').then((r) => (r as string[])[1], () => undefined);
    const replicas = t.replicas ?? 0;
    const shape =
      t.role !== 'master'
        ? `${t.role ?? 'unknown role'} at ${t.connectedTo ?? '?'}`
        : t.mode === 'sentinel'
          ? `primary ${t.connectedTo ?? '?'} via Sentinel '${t.sentinel?.name ?? ''}' (${t.sentinel?.sentinels.filter((x) => x.reachable).length ?? 0} of ${t.sentinel?.sentinels.length ?? 0} sentinels answer), ${replicas} replica${replicas === 1 ? '' : 's'}`
          : replicas === 0
            ? 'standalone primary'
            : `primary with ${replicas} replica${replicas === 1 ? '' : 's'}`;
    const head = `${where}: Redis ${t.version ?? 'unknown version'}, ${shape}${t.tls ? ', TLS' : ''}`;
    // Problems the topology names that have their own line below are not repeated.
    const others = t.problems.filter((p) => !/maxmemory-policy|appendonly|not the primary|does not answer/.test(p));
    const findings: Finding[] = [];
    if (t.role !== 'master') findings.push(fail('redis', `${head}: Castellan must write to the primary`, 'point redis.url at the primary (or use redis.sentinels)'));
    else if (t.maxmemoryPolicy !== undefined && t.maxmemoryPolicy !== 'noeviction') {
      findings.push(fail('redis', `${head}, maxmemory-policy ${t.maxmemoryPolicy}: an evicting Redis can drop jobs, approvals and audit records`, 'redis-cli CONFIG SET maxmemory-policy noeviction (and maxmemory-policy noeviction in redis.conf)'));
    } else if (t.appendonly !== 'yes' && (save === undefined || save === '')) {
      findings.push(warn('redis', `${head}, noeviction, no persistence: a Redis restart loses queued jobs, approvals and the audit stream`, 'redis-cli CONFIG SET appendonly yes (and appendonly yes in redis.conf)'));
    } else if (others.length > 0) {
      findings.push(warn('redis', `${head}: ${others[0]!}`, 'see docs/deployment.md (Redis: Sentinel, TLS, ACL)', others.slice(1)));
    } else {
      findings.push(ok('redis', `${head}, ${t.maxmemoryPolicy ?? 'maxmemory-policy unknown'}, ${t.appendonly === 'yes' ? 'appendonly' : `snapshots (save ${save ?? '?'})`}`));
    }
    findings.push(await checkWorkers(config, redis));
    return findings;
  } finally {
    redis.disconnect();
  }
}

async function checkWorkers(config: Config, redis: Redis): Promise<Finding> {
  const queue = new Queue('jobs', { connection: redis, prefix: `${keys(config.redis.prefix).prefix}:bull` });
  try {
    const workers = await queue.getWorkers();
    if (workers.length === 0) return warn('workers', 'no worker is connected: jobs will wait in the queue', "castellan serve (server + worker) or castellan worker");
    return ok('workers', `${workers.length} worker connection${workers.length === 1 ? '' : 's'} listening for jobs`);
  } catch (err) {
    return warn('workers', `cannot list workers (${errorMessage(err)}): CLIENT LIST may be refused by the Redis ACL`);
  } finally {
    await queue.close().catch(() => undefined);
  }
}

/** Discovery answers, names the configured issuer, and the client secret is accepted (via introspection). */
export async function checkOidc(config: Config): Promise<Finding> {
  const oidc = config.auth.oidc;
  if (oidc === undefined) return skipped('oidc', 'no auth.oidc: only the local identity (CLI, mcp --stdio) can act');
  const issuer = new URL(oidc.issuer);
  const insecure = issuer.protocol === 'http:';
  const secret = config.secrets.oidcClientSecret;
  let configuration: client.Configuration;
  try {
    configuration = await client.discovery(issuer, oidc.clientId, secret, secret !== undefined ? client.ClientSecretBasic(secret) : client.None(), {
      timeout: HTTP_TIMEOUT_MS / 1000,
      ...(insecure ? { execute: [client.allowInsecureRequests] } : {}),
    });
  } catch (err) {
    return fail('oidc', `discovery at ${new URL('.well-known/openid-configuration', issuer.href.endsWith('/') ? issuer : `${issuer.href}/`).href} failed: ${errorMessage(err)}`, 'check auth.oidc.issuer: it must equal the issuer the IdP announces (Authelia: https://auth.example.com, no trailing path)');
  }
  const meta = configuration.serverMetadata();
  if (meta.jwks_uri === undefined && oidc.tokenFormat !== 'opaque') return fail('oidc', `${oidc.issuer} publishes no jwks_uri: JWT access tokens cannot be checked`, 'set auth.oidc.token_format: opaque (introspection)');
  if (secret === undefined) return ok('oidc', `${meta.issuer}: discovery ok (no client secret: JWT access tokens only)`);
  if (meta.introspection_endpoint === undefined) return warn('oidc', `${meta.issuer}: discovery ok, but no introspection endpoint for opaque tokens`);
  try {
    // An unknown token is `active: false` for a client the issuer accepts, invalid_client otherwise.
    await client.tokenIntrospection(configuration, 'castellan-doctor-probe');
    return ok('oidc', `${meta.issuer}: discovery ok, client ${oidc.clientId} accepted for introspection`);
  } catch (err) {
    return fail('oidc', `${meta.issuer}: client ${oidc.clientId} was refused at introspection: ${errorMessage(err)}`, `check auth.oidc.client_id and the secret in ${describeSecret(config)} against the client registered at the IdP`);
  }
}

function describeSecret(config: Config): string {
  const ref = config.auth.oidc?.clientSecret;
  if (ref === undefined) return 'auth.oidc.client_secret_env';
  return ref.kind === 'env' ? `$${ref.name}` : ref.path;
}

const SSH_FIX: Partial<Record<HostResult['status'], (set: string, config: Config) => string>> = {
  unreachable: (set) => `check that ${set} is up and that ansible_host/ansible_port in the inventory are right`,
  auth_failed: (set, config) => `install the public key (${config.ssh.privateKeyFile ?? 'your key'}.pub) in ~${config.ssh.user}/.ssh/authorized_keys on ${set}, or set ansible_user / ansible_ssh_private_key_file`,
  host_key_rejected: (set) => `verify the new fingerprint out of band, then: castellan hosts trust ${set} --replace`,
  timed_out: (set) => `${set} accepted the connection but did not answer in time: check its load and sshd`,
  failed: (set) => `log in to ${set} and check that a login shell can run 'true'`,
};

/** Log in to every pinned host and run `true`; problems folded per reason with node sets. */
export async function checkSsh(config: Config, inventory: Inventory, pinned: readonly string[], connectTimeoutMs: number): Promise<Finding> {
  if (pinned.length === 0) return skipped('ssh', 'no host has a pinned key yet');
  const known = await KnownHosts.load(config.knownHosts);
  const executor = new SshExecutor({ knownHosts: known, limits: { connectTimeoutMs, commandTimeoutMs: connectTimeoutMs * 2 }, window: config.ssh.window, agentSocket: config.ssh.agentSocket });
  try {
    const targets = pinned.map((name) => targetFor(config, inventory, name));
    const started = Date.now();
    const results = await executor.fanout(targets, { argv: ['true'], runId: `doctor-${process.pid}` });
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const good = results.filter((r) => r.status === 'ok').map((r) => r.host);
    if (good.length === results.length) {
      const summary = `${foldNodeSet(good)} (${good.length}) logged in and ran a command in ${seconds} s`;
      return config.ssh.nodeHelper === 'off' ? ok('ssh', `${summary}; node helper off`) : await withNodeHelper(executor, targets, summary);
    }
    // Grouped by status: error texts name their host, so one example per group says enough.
    const byStatus = new Map<HostResult['status'], HostResult[]>();
    for (const r of results) if (r.status !== 'ok') byStatus.set(r.status, [...(byStatus.get(r.status) ?? []), r]);
    const details = [...byStatus.entries()].map(([status, rs]) => {
      const example = rs[0]!;
      const why = firstLine(example.error ?? example.stderr) || `exit ${example.exitCode ?? '?'}`;
      return `${foldNodeSet(rs.map((r) => r.host))} (${rs.length}) ${status.replaceAll('_', ' ')}: ${rs.length > 1 ? `e.g. ${example.host}: ` : ''}${why}`;
    });
    const byReason = new Map([...byStatus.entries()].map(([status, rs]) => [status, { status, hosts: rs.map((r) => r.host) }]));
    const fixes = [...new Set([...byReason.values()].map((e) => SSH_FIX[e.status]?.(foldNodeSet(e.hosts), config)).filter((f): f is string => f !== undefined))];
    const bad = results.length - good.length;
    return fail('ssh', `${bad} of ${results.length} host${results.length === 1 ? '' : 's'} cannot be used${good.length > 0 ? ` (${foldNodeSet(good)} ok)` : ''}`, fixes.join('; '), details);
  } finally {
    await executor.close();
  }
}

/**
 * Whether each node can run the node helper (perl with the modules it uses, all in perl-base).
 * A node without it still works, under the per-command wrapper: slower, so a warning.
 */
async function withNodeHelper(executor: SshExecutor, targets: readonly SshTarget[], summary: string): Promise<Finding> {
  const probe = await executor.fanout(targets, { argv: ['perl', '-MPOSIX', '-MIO::Select', '-MFcntl', '-e', '1'], runId: `doctor-perl-${process.pid}` });
  const without = probe.filter((r) => r.status !== 'ok').map((r) => r.host);
  if (without.length === 0) return ok('ssh', `${summary}; node helper (perl) available on all`);
  const example = probe.find((r) => r.status !== 'ok');
  const why = firstLine(example?.error ?? example?.stderr ?? '') || `exit ${example?.exitCode ?? '?'}`;
  return warn(
    'ssh',
    `${summary}; ${foldNodeSet(without)} (${without.length}) cannot run the node helper: their commands use the wrapper, an sshd session each (slower)`,
    `install perl-base on ${foldNodeSet(without)} (Essential on Debian, Ubuntu and Raspberry Pi OS), or set ssh.node_helper: off`,
    [`${foldNodeSet(without)}: ${why}`],
  );
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.trim() ?? '';
}

/** The bot token (auth.test) and, in Socket Mode, the app-level token (apps.connections.open). */
export async function checkSlack(config: Config): Promise<Finding> {
  const slack = config.slack;
  if (slack === undefined) return skipped('slack', 'no slack section');
  const problems: string[] = [];
  const bot = await slackCall(slack.apiUrl, 'auth.test', config.secrets.slackBotToken);
  if (!bot.ok) problems.push(`bot token: ${bot.error}`);
  if (slack.socketMode) {
    const app = await slackCall(slack.apiUrl, 'apps.connections.open', config.secrets.slackAppToken);
    if (!app.ok) problems.push(`app-level token (Socket Mode): ${app.error}`);
  } else if (!config.server.publicUrl.startsWith('https://')) {
    problems.push(`HTTP mode needs a public https URL for Slack to call; server.public_url is ${config.server.publicUrl}`);
  }
  if (problems.length === 0) {
    const team = typeof bot.body?.team === 'string' ? ` in workspace ${bot.body.team}` : '';
    const user = typeof bot.body?.user === 'string' ? bot.body.user : '?';
    return ok('slack', `bot ${user}${team}; ${slack.socketMode ? 'Socket Mode connection can be opened' : `events at ${config.server.publicUrl}/slack/events`}`);
  }
  return fail('slack', problems.length === 1 ? problems[0]! : `${problems.length} problems`, 'create or reinstall the app from `castellan slack manifest` and copy its tokens (xoxb-… bot token, xapp-… app-level token with connections:write)', problems.length > 1 ? problems : undefined);
}

async function slackCall(apiUrl: string, method: string, token: string | undefined): Promise<{ ok: boolean; error?: string; body?: Record<string, unknown> }> {
  if (token === undefined || token === '') return { ok: false, error: 'not set' };
  try {
    const res = await fetch(new URL(method, apiUrl), { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' }, signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
    const body = (await res.json()) as Record<string, unknown>;
    if (body.ok === true) return { ok: true, body };
    return { ok: false, error: `Slack answered ${typeof body.error === 'string' ? body.error : `HTTP ${res.status}`}` };
  } catch (err) {
    return { ok: false, error: `cannot reach ${apiUrl}: ${errorMessage(err)}` };
  }
}
