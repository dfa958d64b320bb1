// Every Redis connection Castellan opens, in one place. Three kinds, because the processes
// want opposite things from a connection when Redis goes away:
//   front  (serve: HTTP, MCP, Slack, dashboard): no offline queue, a short command timeout, so a
//          request fails at once with "unavailable … nothing was run" instead of hanging, and
//          never runs later, after its client gave up;
//   worker (castellan worker, and serve's own worker): waits an outage out — commands queue and
//          retry forever, so a running job records its results when Redis returns;
//   client (CLI local mode, mcp --stdio): fails fast if Redis is not there at start, then
//          reconnects like front (a waiting CLI rides an outage, see src/cli/follow.ts).
// Standalone (`redis.url`) or Sentinel (`redis.sentinels` + `redis.name`), TLS (`rediss://` or
// `tls_ca_file`), ACL user + password (the password only ever from secrets). Outages are
// logged as one line per state change (lost / back), never as a stack trace per retry.
import { readFile } from 'node:fs/promises';
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config/load.js';
import type { RedisSettings } from '../config/schema.js';
import { CastellanError, errorMessage } from '../config/errors.js';
import { keepReconnecting } from '../queues/connections.js';
import type { Logger } from './log.js';

export type RedisKind = 'front' | 'worker' | 'client';

/** A front-end command that gets no answer within this long fails (the caller gets 503). */
export const FRONT_COMMAND_TIMEOUT_MS = 5000;
const CONNECT_TIMEOUT_MS = 5000;
const MAX_RECONNECT_DELAY_MS = 2000;

/** Where Castellan looks for Redis, for messages and logs (never a password). */
export function describeRedis(settings: RedisSettings): string {
  if (settings.sentinels.length > 0) {
    return `Sentinel master '${settings.name ?? ''}' via ${settings.sentinels.map((s) => `${s.host}:${s.port}`).join(', ')}`;
  }
  const url = new URL(settings.url);
  return `${url.protocol}//${url.host}${url.pathname.length > 1 ? url.pathname : ''}`;
}

/** ioredis options for one kind of connection (exported for tests and `castellan doctor`). */
export async function redisOptions(settings: RedisSettings, password: string | undefined, kind: RedisKind, sentinelPassword?: string): Promise<RedisOptions> {
  const url = new URL(settings.url);
  const db = Number(url.pathname.slice(1) || '0');
  let tls: RedisOptions['tls'];
  if (settings.tls) {
    let ca: Buffer | undefined;
    if (settings.tls.caFile !== undefined) {
      try {
        ca = await readFile(settings.tls.caFile);
      } catch (err) {
        throw new CastellanError('unavailable', `redis.tls_ca_file: cannot read ${settings.tls.caFile} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`);
      }
    }
    tls = ca ? { ca } : {};
  }
  // A `client` gives up at once if Redis is not there when it starts (the CLI says so and
  // exits); once it has been connected it keeps trying, like the others.
  let everReady = false;
  const retry = (times: number): number | null => (kind === 'client' && !everReady ? null : Math.min(times * 200, MAX_RECONNECT_DELAY_MS));
  const base: RedisOptions = {
    lazyConnect: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    db: Number.isInteger(db) ? db : 0,
    ...(settings.username !== undefined ? { username: settings.username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(tls ? { tls } : {}),
    retryStrategy: retry,
    // Only the connection that was told to stop stops: every other disconnect reconnects.
    reconnectOnError: (err) => (/^READONLY /.test(err.message) ? 2 : false),
  };
  const topology: RedisOptions =
    settings.sentinels.length > 0
      ? {
          sentinels: settings.sentinels.map((s) => ({ host: s.host, port: s.port })),
          name: settings.name ?? '',
          // Sentinels with `requirepass` (redis.sentinel_password_env/_file): a secret like the
          // ACL password, never in the config file or a log line.
          ...(sentinelPassword !== undefined ? { sentinelPassword } : {}),
          role: 'master',
          // Subscribe to the sentinels' +switch-master so a failover is noticed at once, not
          // only when the old primary's socket dies.
          failoverDetector: true,
          enableTLSForSentinelMode: settings.tls !== undefined,
          sentinelRetryStrategy: (times: number) => (kind === 'client' && !everReady && times > 2 ? null : Math.min(times * 100, 1000)),
          // A sentinel that accepts the connection but does not answer (busy, mid-failover)
          // must not hold a reconnect forever: ask the next one.
          sentinelCommandTimeout: CONNECT_TIMEOUT_MS,
        }
      : { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || '6379') };
  const behaviour: RedisOptions =
    kind === 'worker'
      ? // BullMQ workers need maxRetriesPerRequest null; queued commands wait for Redis.
        { maxRetriesPerRequest: null, enableOfflineQueue: true }
      : // Fail fast: nothing queues while disconnected; an unanswered command times out, and
        // a command in flight when the connection drops fails instead of being re-sent later.
        { maxRetriesPerRequest: 0, enableOfflineQueue: false, commandTimeout: FRONT_COMMAND_TIMEOUT_MS, autoResendUnfulfilledCommands: false };
  const options: RedisOptions = { ...base, ...topology, ...behaviour };
  Object.defineProperty(options, 'markReady', { value: () => (everReady = true), enumerable: false });
  return options;
}

const deliberate = new WeakSet<Redis>();

/** Close a connection on purpose: no "lost contact" line for it. */
export function closeRedis(redis: Redis): void {
  deliberate.add(redis);
  redis.disconnect();
}

/** The address a connection is talking to right now (the current primary under Sentinel). */
export function connectedTo(redis: Redis): string | undefined {
  const stream = (redis as unknown as { stream?: { remoteAddress?: string; remotePort?: number } }).stream;
  if (stream?.remoteAddress === undefined) return undefined;
  return `${stream.remoteAddress.includes(':') ? `[${stream.remoteAddress}]` : stream.remoteAddress}:${stream.remotePort ?? '?'}`;
}

/**
 * One log line per state change: "lost contact … reconnecting" when an open connection drops,
 * "back after N s" when it is ready again, "gave up" when it stops trying. ioredis's own
 * error events are swallowed here (they repeat on every retry); their message goes into the
 * "lost" line.
 */
function watchState(redis: Redis, kind: RedisKind, where: string, logger: Logger, onReady: () => void): void {
  let up = false;
  let lostAt: number | undefined;
  let lastError = '';
  // The CLI prints its own line for people (src/cli/follow.ts); a log line would repeat it.
  const warn = kind === 'client' ? logger.debug.bind(logger) : logger.warn.bind(logger);
  redis.on('error', (err: Error) => {
    lastError = err.message;
  });
  redis.on('ready', () => {
    onReady();
    const at = connectedTo(redis);
    if (lostAt !== undefined) {
      logger.info({ redis: kind, at, downMs: Date.now() - lostAt }, `Redis (${kind}) back at ${at ?? where} after ${((Date.now() - lostAt) / 1000).toFixed(1)} s`);
    }
    up = true;
    lostAt = undefined;
  });
  const lost = (): void => {
    if (!up || deliberate.has(redis)) return;
    up = false;
    lostAt = Date.now();
    warn({ redis: kind, err: lastError || undefined }, `lost contact with Redis (${kind}) at ${where}${lastError ? `: ${lastError}` : ''}; reconnecting`);
  };
  redis.on('close', lost);
  redis.on('reconnecting', lost);
  redis.on('end', () => {
    if (deliberate.has(redis)) return;
    if (lostAt !== undefined || up) logger.warn({ redis: kind }, `the connection to Redis (${kind}) at ${where} ended while reconnecting; starting it again`);
  });
  // ioredis can end a Sentinel connection mid-reconnect (queues/connections.ts keepReconnecting).
  keepReconnecting(redis, () => deliberate.has(redis));
}

/** Why a first connection failed, in words, and what to change. */
export interface ConnectFailure {
  readonly cause: string;
  readonly fix: string;
}

/**
 * Connect, and when that fails say why. ioredis rejects `connect()` with a bare "Connection is
 * closed." whatever happened: the real cause (a refused login, a TLS certificate the CA does
 * not vouch for, a refused TCP connection) only arrives as an 'error' event just before. That
 * event is kept and turned into the message, because "is it running?" is the wrong advice for
 * a wrong password or a wrong CA file.
 */
export async function connectExplained(redis: Redis, settings: RedisSettings): Promise<ConnectFailure | undefined> {
  let lastError: Error | undefined;
  const keep = (err: Error): void => {
    lastError = err;
  };
  redis.on('error', keep);
  try {
    await redis.connect();
    return undefined;
  } catch (err) {
    return explainConnectFailure(lastError ?? (err as Error), settings);
  } finally {
    redis.off('error', keep);
  }
}

export function explainConnectFailure(err: Error, settings: RedisSettings): ConnectFailure {
  const message = errorMessage(err);
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const user = settings.username ?? 'default';
  if (/WRONGPASS|NOAUTH|invalid password|invalid username-password/i.test(message)) {
    return { cause: `Redis refused the login of user '${user}' (${message})`, fix: 'check redis.username and the password in redis.password_env / redis.password_file (and that the ACL user is on)' };
  }
  if (/NOPERM/.test(message)) {
    return { cause: `Redis user '${user}' lacks a permission Castellan needs (${message})`, fix: 'give the ACL user the rights in docs/deployment.md (Redis: Sentinel, TLS, ACL)' };
  }
  if (/certificate|CERT_|self.signed|unable to verify|altnames|SSL|TLS|wrong version number/i.test(`${message} ${code}`)) {
    return {
      cause: `TLS with Redis failed: ${message}`,
      fix: settings.tls ? 'redis.tls_ca_file must be the CA that signed the server certificate, and the certificate must name the host in redis.url' : 'the server may speak TLS: use a rediss:// URL (and redis.tls_ca_file)',
    };
  }
  const hint = settings.sentinels.length > 0 ? 'are the sentinels running, and do they know this master name?' : "is it running? ('castellan up' starts a private one)";
  // A TLS-only port answered in plain text closes the connection without a word: say so.
  const plainToTls = !settings.tls && /Connection is closed|ECONNRESET/.test(message) ? '; if that port speaks TLS, use a rediss:// URL' : '';
  return { cause: message, fix: `${hint}${plainToTls}` };
}

/**
 * Open one connection of `kind` and wait until it is ready. A Redis that is not reachable at
 * start is a clear `unavailable` error naming where Castellan looked and why (never the password).
 */
export async function connectRedis(config: Pick<Config, 'redis' | 'secrets'>, kind: RedisKind, logger: Logger): Promise<Redis> {
  const settings = config.redis;
  const options = await redisOptions(settings, config.secrets.redisPassword, kind, config.secrets.redisSentinelPassword);
  const markReady = (options as { markReady?: () => void }).markReady ?? (() => undefined);
  const redis = new Redis(options);
  const where = describeRedis(settings);
  watchState(redis, kind, where, logger, markReady);
  const failure = await connectExplained(redis, settings);
  if (failure) {
    closeRedis(redis);
    throw new CastellanError('unavailable', `unavailable: cannot reach Redis at ${where} (${failure.cause}); nothing was run. ${failure.fix.charAt(0).toUpperCase()}${failure.fix.slice(1)}.`);
  }
  return redis;
}

export interface SentinelView {
  readonly address: string;
  readonly reachable: boolean;
  /** The primary this sentinel names for `redis.name`. */
  readonly primary?: string | undefined;
  /** Other sentinels it knows, and the quorum it is configured with. */
  readonly otherSentinels?: number | undefined;
  readonly quorum?: number | undefined;
  readonly error?: string | undefined;
}

/** What Castellan's Redis looks like from this process: for /healthz and `castellan doctor`. */
export interface RedisTopology {
  readonly mode: 'standalone' | 'sentinel';
  /** The address this process's connection talks to (the primary under Sentinel). */
  readonly connectedTo: string | undefined;
  /** master or replica (a replica would refuse writes: a problem). */
  readonly role: string | undefined;
  readonly replicas: number | undefined;
  readonly version: string | undefined;
  readonly tls: boolean;
  readonly user: string;
  readonly maxmemoryPolicy: string | undefined;
  readonly appendonly: string | undefined;
  readonly sentinel?: { readonly name: string; readonly sentinels: readonly SentinelView[] } | undefined;
  /** Things an operator should fix, in words; empty when all is well. */
  readonly problems: readonly string[];
}

function infoField(info: string, field: string): string | undefined {
  return new RegExp(`^${field}:(.*)$`, 'm').exec(info)?.[1]?.trim();
}

async function askSentinel(host: string, port: number, name: string, password: string | undefined): Promise<SentinelView> {
  const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const probe = new Redis({ host, port, ...(password !== undefined ? { password } : {}), lazyConnect: true, connectTimeout: 1000, commandTimeout: 1000, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    const addr = (await probe.call('SENTINEL', 'get-master-addr-by-name', name)) as [string, string] | null;
    const master = (await probe.call('SENTINEL', 'master', name).catch(() => [])) as string[];
    const field = (key: string): number | undefined => {
      const i = master.indexOf(key);
      return i >= 0 ? Number(master[i + 1]) : undefined;
    };
    return { address, reachable: true, primary: addr ? `${addr[0]}:${addr[1]}` : undefined, otherSentinels: field('num-other-sentinels'), quorum: field('quorum') };
  } catch (err) {
    return { address, reachable: false, error: errorMessage(err) };
  } finally {
    probe.disconnect();
  }
}

/**
 * Ask Redis (and each sentinel) what the setup looks like. Never throws: an unreachable part is
 * reported in `problems`, so a health page and `castellan doctor` can show it.
 */
export async function redisTopology(redis: Redis, settings: RedisSettings, sentinelPassword?: string): Promise<RedisTopology> {
  const problems: string[] = [];
  let info = '';
  try {
    info = await redis.info();
  } catch (err) {
    problems.push(`Redis does not answer: ${errorMessage(err)}`);
  }
  const configValue = async (key: string): Promise<string | undefined> => {
    try {
      return ((await redis.config('GET', key)) as string[])[1];
    } catch {
      return undefined;
    }
  };
  const [maxmemoryPolicy, appendonly] = info ? await Promise.all([configValue('maxmemory-policy'), configValue('appendonly')]) : [undefined, undefined];
  const role = infoField(info, 'role');
  const replicas = infoField(info, 'connected_slaves');
  if (role !== undefined && role !== 'master') problems.push(`connected to a ${role === 'slave' ? 'replica' : role}, not the primary: writes will fail`);
  if (maxmemoryPolicy !== undefined && maxmemoryPolicy !== 'noeviction') problems.push(`maxmemory-policy is '${maxmemoryPolicy}'; Castellan needs 'noeviction'`);
  if (appendonly === 'no') problems.push('appendonly is off: a Redis restart loses queued jobs, approvals and the audit stream');
  let sentinel: RedisTopology['sentinel'];
  if (settings.sentinels.length > 0) {
    const name = settings.name ?? '';
    const sentinels = await Promise.all(settings.sentinels.map((s) => askSentinel(s.host, s.port, name, sentinelPassword)));
    sentinel = { name, sentinels };
    const reachable = sentinels.filter((s) => s.reachable);
    if (reachable.length < sentinels.length) problems.push(`${sentinels.length - reachable.length} of ${sentinels.length} sentinels not reachable`);
    const named = new Set(reachable.map((s) => s.primary).filter((p) => p !== undefined));
    if (named.size > 1) problems.push(`the sentinels disagree about the primary: ${[...named].join(', ')}`);
    const quorum = reachable.find((s) => s.quorum !== undefined)?.quorum;
    if (quorum !== undefined && reachable.length < quorum) problems.push(`only ${reachable.length} sentinel(s) reachable, fewer than the quorum of ${quorum}: no failover possible`);
    if (Number(replicas ?? '0') === 0 && info && settings.confirmReplicas === 0) problems.push('the primary has no connected replica: a failover has nowhere to go');
  }
  if (info && role === 'master' && Number(replicas ?? '0') < settings.confirmReplicas) {
    problems.push(
      `the primary has ${replicas ?? '0'} connected replica(s) but redis.confirm_replicas is ${settings.confirmReplicas}: ` +
        'submissions are refused (unavailable, nothing run) until a replica is back, or set redis.confirm_replicas: 0 and accept that a failover can lose confirmed jobs',
    );
  }
  return {
    mode: settings.sentinels.length > 0 ? 'sentinel' : 'standalone',
    connectedTo: connectedTo(redis),
    role: role === 'slave' ? 'replica' : role,
    replicas: replicas === undefined ? undefined : Number(replicas),
    version: infoField(info, 'redis_version'),
    tls: settings.tls !== undefined,
    user: settings.username ?? 'default',
    maxmemoryPolicy,
    appendonly,
    sentinel,
    problems,
  };
}
