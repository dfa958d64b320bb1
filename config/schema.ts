// The shape of castellan.yaml (snake_case, as operators write it) and of the Config object
// the rest of Castellan reads (camelCase, durations in ms, sizes in bytes, paths absolute).
// Every object is strict: an unknown key is an error, because a typo such as
// `conect_timeout` would otherwise silently fall back to the default.
import { ansibleSchema, type AnsibleSettings } from './ansible.js';
import { homedir } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { ORIGINS, ROLES, TOOLSETS, type Origin, type Risk, type Role, type Toolset } from './vocabulary.js';
import { DURATION_HINT, parseDuration, parseSize, SIZE_HINT } from './duration.js';
import type { SecretRef } from './secrets.js';
import { describeWindow, isTimeZone, parseDays, parseHours, type MaintenanceWindow } from './maintenance.js';

export interface SshSettings {
  /** Login user when the inventory gives no ansible_user. */
  readonly user: string;
  /** Default private key (absolute); hosts may override with ansible_ssh_private_key_file. */
  readonly privateKeyFile: string | undefined;
  /** `agent: true` (use $SSH_AUTH_SOCK) or a socket path; resolved to the socket at load. */
  readonly agent: boolean | string;
  readonly agentSocket: string | undefined;
  readonly port: number;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  /** Hosts in flight at once (ClusterShell's fanout). */
  readonly window: number;
  readonly maxChannelsPerHost: number;
  /** Pooled connections idle this long are closed. */
  readonly idleCloseMs: number;
  readonly keepaliveIntervalMs: number;
  readonly maxOutputBytes: number;
  readonly killGraceMs: number;
  readonly maxTransferBytes: number;
  /** `ssh.node_helper`: run commands through one Perl helper per pooled connection (`auto`) or the per-command wrapper (`off`). */
  readonly nodeHelper: NodeHelperMode;
}

/**
 * `auto`: each pooled connection starts the node helper (src/ssh/node-helper.ts) and runs its
 * commands through it, falling back to the wrapper where the node has no perl; `off`: every
 * command is its own SSH exec under the wrapper (src/ssh/remote-run.ts).
 */
export const NODE_HELPER_MODES = ['auto', 'off'] as const;
export type NodeHelperMode = (typeof NODE_HELPER_MODES)[number];
export const DEFAULT_NODE_HELPER: NodeHelperMode = 'auto';

export interface RedisSettings {
  /** Without credentials; the password comes from `password_env` / `password_file`. */
  readonly url: string;
  readonly prefix: string;
  /** ACL user (Redis 6+); the password is still a secret (`password_env` / `password_file`). */
  readonly username: string | undefined;
  readonly password: SecretRef | undefined;
  /**
   * Sentinel addresses; with them Castellan asks the sentinels which server is the primary of
   * `name` (and follows failovers), and `url` only contributes its scheme and database.
   */
  readonly sentinels: readonly { readonly host: string; readonly port: number }[];
  /** The Sentinel master name (`sentinel monitor NAME …`); set exactly when `sentinels` is. */
  readonly name: string | undefined;
  /** TLS: on for `rediss://` URLs or when a CA file is given. */
  readonly tls: { readonly caFile: string | undefined } | undefined;
  /**
   * Replicas that must hold a submission, an approval, a worker's claim and a job's ending before
   * they count (`WAIT`, queues/durable.ts): with async replication a failover loses what no
   * replica got. Default 1 with Sentinel, else 0.
   */
  readonly confirmReplicas: number;
  /** How long `WAIT` may take before the write counts as not replicated. */
  readonly confirmTimeoutMs: number;
  /**
   * How long a worker keeps re-asserting its claim on a job (before touching a host) or its
   * ending until a replica confirms it (queues/durable.ts): longer than a failover takes.
   */
  readonly confirmWithinMs: number;
  /** Sentinels that require a password (`requirepass` in sentinel.conf): from secrets only. */
  readonly sentinelPassword: SecretRef | undefined;
}

export interface ServerSettings {
  readonly listen: { readonly host: string; readonly port: number };
  /** The resource URL (token audience) for MCP. */
  readonly publicUrl: string;
  /** public_url's origin first, then the configured extra origins (deduplicated). */
  readonly allowedOrigins: readonly string[];
  /**
   * Who may read /metrics: a separate listener (`listen`, then not on the main one), a bearer
   * token (`token`), or, with neither, loopback peers of the main listener only.
   */
  readonly metrics: { readonly listen: { readonly host: string; readonly port: number } | undefined; readonly token: SecretRef | undefined };
}

/** Bounds on what one request or one person can make Castellan do (`limits:`). */
export interface LimitSettings {
  /** Hosts one target expression may name; node sets larger than this are refused before expansion. */
  readonly maxHosts: number;
  /** Read tools' whole-job and per-step timeouts are capped at this. */
  readonly readTimeoutMs: number;
  /** Jobs one person may have queued or running at once (0: no limit). */
  readonly jobsPerRequester: number;
  /** Job creation per subject+origin: a token bucket of `burst` tokens refilled at `perMinute` (0: off). */
  readonly rate: { readonly perMinute: number; readonly burst: number };
  /** Output kept per host (stdout and stderr together) and per job; the rest is cut with a marker. */
  readonly outputPerHostBytes: number;
  readonly outputPerJobBytes: number;
  /** JSON-RPC batches on /mcp: refused, or each message counted against the rate limit. */
  readonly mcpBatches: 'refuse' | 'count';
}

export interface SlackSettings {
  /** Socket Mode (app token) instead of signed HTTP requests. */
  readonly socketMode: boolean;
  /** Channel where approval requests are posted, if any. */
  readonly approvalsChannel: string | undefined;
  readonly signingSecret: SecretRef | undefined;
  readonly botToken: SecretRef;
  readonly appToken: SecretRef | undefined;
  /** Slack's Web API base (a proxy, or the tests' stand-in); also used for apps.connections.open. */
  readonly apiUrl: string;
  /** Channel IDs where slash commands are accepted; empty: any channel. */
  readonly channels: readonly string[];
  /** How long a Slack user's link to their OIDC identity is trusted before groups are refreshed. */
  readonly linkTtlMs: number;
}

export const TOKEN_FORMATS = ['auto', 'jwt', 'opaque'] as const;
export const GROUP_SOURCES = ['token', 'userinfo'] as const;

export interface OidcSettings {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: SecretRef | undefined;
  /** Expected `aud` of access tokens; defaults to server.public_url. */
  readonly audience: string;
  readonly scopes: readonly string[];
  readonly tokenFormat: (typeof TOKEN_FORMATS)[number];
  readonly groupsFrom: (typeof GROUP_SOURCES)[number];
  /** Upper bound for trusting a verified token without asking the IdP again. */
  readonly cacheTtlMs: number;
  /** Tokens expiring further ahead than this are refused. */
  readonly maxTokenLifetimeMs: number;
  /** Clock difference tolerated with the IdP (iat in the future beyond it is refused). */
  readonly clockSkewMs: number;
}

export interface LocalIdentitySettings {
  readonly subject: string;
  readonly displayName: string;
  readonly groups: readonly string[];
}

export interface DashboardSettings {
  /** The dashboard's own confidential client at the IdP (authorization code + PKCE). */
  readonly clientId: string;
  readonly clientSecret: SecretRef | undefined;
  readonly scopes: readonly string[];
  /** A session unused this long ends. */
  readonly sessionIdleMs: number;
  /** A session ends this long after sign-in, however busy. */
  readonly sessionAbsoluteMs: number;
}

export interface AuthSettings {
  /** Absent: only the local identity works. */
  readonly oidc: OidcSettings | undefined;
  /** Absent: no web dashboard (/ui answers with how to enable it). Needs `oidc`. */
  readonly dashboard: DashboardSettings | undefined;
  /** Castellan role -> IdP groups that grant it. */
  readonly roles: Readonly<Record<Role, readonly string[]>>;
  /** Who the CLI and `mcp --stdio` run as. */
  readonly localIdentity: LocalIdentitySettings;
  /** OIDC client id -> origin of its tokens; an unlisted client is an AI client (`mcp`). */
  readonly clients: Readonly<Record<string, Origin>>;
}

export interface PolicySettings {
  readonly readOnly: boolean;
  /** Per risk, the origins whose requests wait for approval (absent: the defaults in auth/settings.ts). */
  readonly requireApproval: Partial<Record<Risk, readonly Origin[]>>;
  readonly approvals: {
    /** M of N: distinct approvers needed. */
    readonly required: number;
    readonly allowSelfApproval: boolean;
    readonly expiryMs: number;
  };
  /** Whose output people not involved in a job may read: read jobs only, all, none. */
  readonly outputForOthers: (typeof OUTPUT_FOR_OTHERS)[number];
  /** `policy.tool_risk`: an operator's explicit override of a tool's risk (e.g. run_script: change). */
  readonly toolRisk: Readonly<Record<string, Risk>>;
  /** When destructive work may touch which hosts (config/maintenance.ts). Empty: any time. */
  readonly maintenanceWindows: readonly MaintenanceWindow[];
  /** A destructive job outside its hosts' windows waits for the next opening, or is refused. */
  readonly outsideWindow: 'wait' | 'refuse';
}

export interface JobSettings {
  /** How long a front end waits for a job before answering "still running". */
  readonly waitBudgetMs: number;
  readonly defaultTimeoutMs: number;
  readonly retention: {
    readonly completedAgeMs: number;
    readonly completedCount: number;
    readonly failedAgeMs: number;
    readonly failedCount: number;
    /** Bytes all finished jobs may hold in Redis together; the oldest are pruned beyond it. */
    readonly maxBytes: number;
  };
  readonly worker: {
    /** Jobs one worker process runs at once. */
    readonly concurrency: number;
    /** BullMQ job lock; a worker silent this long is considered crashed. */
    readonly lockDurationMs: number;
    /** How often workers look for jobs whose worker crashed. */
    readonly stalledIntervalMs: number;
    /** On SIGTERM, how long running jobs may finish before they are interrupted. */
    readonly shutdownGraceMs: number;
    /** Worker heartbeat TTL; undefined: twice lock_duration, between 4 and 10 s. */
    readonly heartbeatTtlMs: number | undefined;
    /** How long a crashed worker's Redis connection must be missing before its jobs are reconciled (0: heartbeat only). */
    readonly goneConfirmMs: number;
  };
  /** Local files named by tools (copy_file) must live under this directory (absolute). */
  readonly filesRoot: string;
}

/** `policy.visibility.output_for_others`: whose output others may read (auth/settings.ts). */
export const OUTPUT_FOR_OTHERS = ['read', 'all', 'none'] as const;
/** Used when auth.clients is absent (auth/settings.ts explains why). */
export const DEFAULT_CLIENTS = { 'castellan-cli': 'cli' } as const;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Settings as parsed from the file, before secrets are read. */
export interface Settings {
  /** Inventory files (absolute), merged in order. */
  readonly inventory: readonly string[];
  /** Pinned host keys, OpenSSH known_hosts format (absolute). */
  readonly knownHosts: string;
  readonly ssh: SshSettings;
  readonly redis: RedisSettings;
  readonly server: ServerSettings;
  readonly slack: SlackSettings | undefined;
  readonly auth: AuthSettings;
  readonly policy: PolicySettings;
  readonly jobs: JobSettings;
  readonly limits: LimitSettings;
  readonly audit: { readonly file: string | undefined };
  readonly log: { readonly level: (typeof LOG_LEVELS)[number] };
  readonly ansible: AnsibleSettings;
  readonly bmc: BmcSettings;
  readonly mcp: McpSettings;
}

/** What Castellan serves to AI clients over MCP. */
export interface McpSettings {
  /** Toolsets whose tools MCP lists and runs (the job tools always); default every one. */
  readonly toolsets: readonly Toolset[];
}

/** BMCs reached with ipmitool from the Castellan server or a node's jump host (inventory var bmc_via) (bmc_power). */
export interface BmcSettings {
  /** The ipmitool program (PATH lookup unless absolute). */
  readonly ipmitool: string;
  /** Credential name (inventory var bmc_credential) → where its password comes from. */
  readonly credentials: Readonly<Record<string, SecretRef>>;
}

/** Keys that would hold a secret in plain text: refused with a pointer to `_env` / `_file`. */
export const LITERAL_SECRET_KEYS = ['client_secret', 'password', 'signing_secret', 'bot_token', 'app_token', 'token', 'secret'];

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const durationValue = z.unknown().transform((value, ctx) => {
  try {
    if (typeof value === 'string' || typeof value === 'number') return parseDuration(value);
  } catch {
    // reported below with the value found
  }
  ctx.addIssue({ code: 'custom', message: `expected ${DURATION_HINT}`, input: value });
  return z.NEVER;
});

/** A duration (`30s`, `15m`, `7d`, or milliseconds) in ms, with a default. */
const duration = (fallback: string) => durationValue.prefault(fallback);

/** A duration whose absence means "derived from other settings" (said in its description). */
const derivedDuration = durationValue.optional();

/** `host:port` (IPv6 in brackets) -> its parts; an empty host listens on every address. */
function hostPort(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  return { host: listen.slice(0, colon).replace(/^\[(.*)\]$/, '$1') || '0.0.0.0', port: Number(listen.slice(colon + 1)) };
}

/** A whole number of at least `min`, with a default. */
const count = (min: number, fallback: number) => z.int().min(min).default(fallback);

const originList = z.array(z.enum(ORIGINS));
/** A string turned into a value by `parse`, whose error message becomes the issue. */
const checked = <T>(parse: (text: string) => T) =>
  z.string().transform((text, ctx) => {
    try {
      return parse(text);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err), input: text });
      return z.NEVER;
    }
  });
const maintenanceWindow = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected a name of letters, digits and . _ -'),
    targets: z.string().min(1).describe('target expression: groups, labels (rack=left), hosts'),
    days: checked(parseDays).prefault('*'),
    hours: checked(parseHours).prefault('00:00-24:00'),
    time_zone: z.string().refine(isTimeZone, 'expected an IANA time zone such as UTC or Europe/Berlin').default('UTC'),
  })
  .transform((w): MaintenanceWindow => ({ name: w.name, targets: w.targets, days: w.days, start: w.hours.start, end: w.hours.end, timeZone: w.time_zone, text: describeWindow(w.days, w.hours.start, w.hours.end, w.time_zone) }));
/**
 * `policy`: the one schema for who waits for approval. auth/settings.ts turns its result into
 * the policy engine's shape; nothing else parses policy.
 */
const groupList = z.array(z.string().min(1)).default([]);
const roleShape = Object.fromEntries(ROLES.map((r) => [r, groupList])) as Record<Role, typeof groupList>;
/** `auth.roles`: IdP group names per Castellan role; the one schema (auth/settings.ts parses tests' role maps with it too). */
export const rolesSchema = z.strictObject(roleShape).prefault({});

export const policySchema = z
  .strictObject({
    read_only: z.boolean().default(false),
    approvals: z
      .strictObject({ required: count(1, 1), allow_self_approval: z.boolean().default(false), expiry: duration('15m') })
      .prefault({}),
    require_approval: z
      .strictObject({ read: originList.optional(), change: originList.optional(), destructive: originList.min(1, 'destructive tools always need approval from somewhere: list at least one origin').optional() })
      .prefault({}),
    visibility: z.strictObject({ output_for_others: z.enum(OUTPUT_FOR_OTHERS).default('read') }).prefault({}),
    tool_risk: z.record(z.string().regex(/^[a-z][a-z0-9_]*$/, 'expected a tool name'), z.enum(['read', 'change', 'destructive'])).default({}),
    maintenance_windows: z.array(maintenanceWindow).default([]),
    outside_window: z.enum(['wait', 'refuse']).default('wait'),
  })
  .superRefine((v, ctx) => {
    const names = v.maintenance_windows.map((w) => w.name);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice !== undefined) ctx.addIssue({ code: 'custom', path: ['maintenance_windows'], message: `window name '${twice}' is used twice` });
  })
  .transform(
    (v): PolicySettings => ({
      readOnly: v.read_only,
      requireApproval: Object.fromEntries(Object.entries(v.require_approval).filter(([, o]) => o !== undefined)),
      approvals: { required: v.approvals.required, allowSelfApproval: v.approvals.allow_self_approval, expiryMs: v.approvals.expiry },
      outputForOthers: v.visibility.output_for_others,
      toolRisk: v.tool_risk,
      maintenanceWindows: v.maintenance_windows,
      outsideWindow: v.outside_window,
    }),
  )
  .prefault({});

/** Schema for castellan.yaml; relative paths resolve against `baseDir` (the file's folder). */
export function settingsSchema(baseDir: string, env: NodeJS.ProcessEnv = process.env) {
  const path = z
    .string()
    .min(1)
    .transform((p) => (p === '~' || p.startsWith('~/') ? resolve(homedir(), p.slice(2)) : isAbsolute(p) ? p : resolve(baseDir, p)));
  const size = (fallback: string) =>
    z
      .unknown()
      .transform((value, ctx) => {
        try {
          if (typeof value === 'string' || typeof value === 'number') return parseSize(value);
        } catch {
          // reported below with the value found
        }
        ctx.addIssue({ code: 'custom', message: `expected ${SIZE_HINT}`, input: value });
        return z.NEVER;
      })
      .prefault(fallback);
  const envName = z.string().regex(ENV_NAME, 'expected an environment variable name (LIKE_THIS)');
  const httpUrl = z.string().refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), 'expected an http(s) URL');
  const secretRef = (envValue: string | undefined, fileValue: string | undefined, name: string, ctx: z.RefinementCtx): SecretRef | undefined => {
    if (envValue !== undefined && fileValue !== undefined) {
      ctx.addIssue({ code: 'custom', path: [`${name}_file`], message: `give ${name}_env or ${name}_file, not both` });
    }
    if (envValue !== undefined) return { kind: 'env', name: envValue };
    if (fileValue !== undefined) return { kind: 'file', path: fileValue };
    return undefined;
  };

  const ssh = z
    .strictObject({
      user: z.string().min(1).default('root'),
      private_key_file: path.optional(),
      agent: z.union([z.boolean(), z.string().min(1)]).default(false),
      port: z.int().min(1).max(65535).default(22),
      connect_timeout: duration('15s'),
      command_timeout: duration('5m'),
      window: count(1, 64),
      max_channels_per_host: count(1, 8),
      idle_close: duration('60s'),
      keepalive_interval: duration('15s'),
      max_output_bytes: size('1MiB'),
      kill_grace: duration('5s'),
      max_transfer_bytes: size('100MiB'),
      node_helper: z.enum(NODE_HELPER_MODES).default(DEFAULT_NODE_HELPER),
    })
    .transform((v, ctx): SshSettings => {
      const agentSocket = v.agent === true ? env.SSH_AUTH_SOCK : v.agent === false ? undefined : resolve(baseDir, v.agent);
      if (v.agent === true && !agentSocket) {
        ctx.addIssue({ code: 'custom', path: ['agent'], message: 'ssh.agent is true but SSH_AUTH_SOCK is not set (give a socket path or a private_key_file)' });
      }
      return {
        user: v.user,
        privateKeyFile: v.private_key_file,
        agent: v.agent,
        agentSocket,
        port: v.port,
        connectTimeoutMs: v.connect_timeout,
        commandTimeoutMs: v.command_timeout,
        window: v.window,
        maxChannelsPerHost: v.max_channels_per_host,
        idleCloseMs: v.idle_close,
        keepaliveIntervalMs: v.keepalive_interval,
        maxOutputBytes: v.max_output_bytes,
        killGraceMs: v.kill_grace,
        maxTransferBytes: v.max_transfer_bytes,
        nodeHelper: v.node_helper,
      };
    })
    .prefault({});

  const sentinelAddress = z
    .string()
    .regex(/^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port (e.g. 10.0.0.5:26379)')
    .transform((v) => {
      const at = v.lastIndexOf(':');
      return { host: v.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(v.slice(at + 1)) };
    });
  const redis = z
    .strictObject({
      url: z
        .string()
        .default('redis://127.0.0.1:6379')
        .refine((u) => URL.canParse(u) && /^rediss?:$/.test(new URL(u).protocol), 'expected a redis:// or rediss:// URL')
        .refine((u) => !URL.canParse(u) || new URL(u).password === '', 'the URL must not contain a password; use redis.password_env or redis.password_file'),
      prefix: z.string().regex(/^[A-Za-z0-9_.:-]+$/, 'expected a key prefix of letters, digits and . _ : -').default('castellan'),
      username: z.string().min(1).optional().describe('ACL user (Redis 6+); its password comes from password_env / password_file'),
      password_env: envName.optional(),
      password_file: path.optional(),
      sentinels: z.array(sentinelAddress).default([]).describe('Sentinel addresses (host:port); Castellan asks them for the primary of `name` and follows failovers'),
      name: z.string().min(1).optional().describe('the Sentinel master name (sentinel monitor NAME …); needed with sentinels'),
      tls_ca_file: path.optional().describe('CA certificate (PEM) for TLS to Redis; turns TLS on like a rediss:// URL'),
      confirm_replicas: z
        .int()
        .min(0)
        .optional()
        .describe("replicas that must hold a submission (before its job id is given), an approval, and a worker's claim on a job (before a step touches a host) and its ending (Redis WAIT), so a failover cannot lose them or run a job twice; unset: 1 with sentinels, else 0"),
      confirm_timeout: duration('2s').describe('how long to wait for those replicas before answering unavailable'),
      confirm_within: duration('60s').describe(
        "how long a worker keeps re-asserting its claim on a job (before it touches a host) or the job's ending until a replica confirms it; past it the step does not run (the job ends saying why), or the ending is logged as unconfirmed",
      ),
      sentinel_password_env: envName.optional().describe('environment variable holding the password of sentinels that require one (requirepass in sentinel.conf)'),
      sentinel_password_file: path.optional().describe('file holding the password of sentinels that require one'),
    })
    .transform((v, ctx): RedisSettings => {
      if (v.sentinels.length > 0 && v.name === undefined) ctx.addIssue({ code: 'custom', path: ['name'], message: 'redis.sentinels needs redis.name, the master name the sentinels monitor' });
      if (v.sentinels.length === 0 && v.name !== undefined) ctx.addIssue({ code: 'custom', path: ['sentinels'], message: 'redis.name is the Sentinel master name: give redis.sentinels too (or remove name)' });
      if (URL.canParse(v.url) && new URL(v.url).username !== '') ctx.addIssue({ code: 'custom', path: ['url'], message: 'put the ACL user in redis.username, not in the URL' });
      const tls = (URL.canParse(v.url) && new URL(v.url).protocol === 'rediss:') || v.tls_ca_file !== undefined;
      return {
        url: v.url,
        prefix: v.prefix,
        username: v.username,
        password: secretRef(v.password_env, v.password_file, 'password', ctx),
        sentinels: v.sentinels,
        name: v.name,
        tls: tls ? { caFile: v.tls_ca_file } : undefined,
        confirmReplicas: v.confirm_replicas ?? (v.sentinels.length > 0 ? 1 : 0),
        confirmTimeoutMs: v.confirm_timeout,
        confirmWithinMs: v.confirm_within,
        sentinelPassword: secretRef(v.sentinel_password_env, v.sentinel_password_file, 'sentinel_password', ctx),
      };
    })
    .prefault({});

  const server = z
    .strictObject({
      listen: z
        .string()
        .regex(/^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/, 'expected host:port (e.g. 127.0.0.1:8080 or [::1]:8080)')
        .default('127.0.0.1:8080'),
      public_url: httpUrl.optional(),
      allowed_origins: z.array(httpUrl).default([]),
      metrics: z
        .strictObject({
          listen: z
            .string()
            .regex(/^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/, 'expected host:port (e.g. 127.0.0.1:9464)')
            .optional(),
          token_env: envName.optional(),
          token_file: path.optional(),
        })
        .prefault({}),
    })
    .transform((v, ctx): ServerSettings => {
      const colon = v.listen.lastIndexOf(':');
      const host = v.listen.slice(0, colon).replace(/^\[(.*)\]$/, '$1') || '0.0.0.0';
      const port = Number(v.listen.slice(colon + 1));
      if (port < 0 || port > 65535) ctx.addIssue({ code: 'custom', path: ['listen'], message: 'expected a port 0-65535 (0: any free port)', input: v.listen });
      const publicUrl = v.public_url ?? `http://${v.listen.startsWith(':') ? `127.0.0.1${v.listen}` : v.listen}`;
      const origins = [new URL(publicUrl).origin, ...v.allowed_origins.map((o) => new URL(o).origin)];
      const metricsListen = v.metrics.listen === undefined ? undefined : hostPort(v.metrics.listen);
      const metrics = { listen: metricsListen, token: secretRef(v.metrics.token_env, v.metrics.token_file, 'token', ctx) };
      return { listen: { host, port }, publicUrl, allowedOrigins: [...new Set(origins)], metrics };
    })
    .prefault({});

  const slack = z
    .strictObject({
      socket_mode: z.boolean().default(false),
      approvals_channel: z.string().min(1).optional(),
      signing_secret_env: envName.optional(),
      signing_secret_file: path.optional(),
      bot_token_env: envName.optional(),
      bot_token_file: path.optional(),
      app_token_env: envName.optional(),
      app_token_file: path.optional(),
      api_url: httpUrl.default('https://slack.com/api/'),
      channels: z.array(z.string().regex(/^[CGD][A-Z0-9]{2,}$/, 'expected a Slack channel ID such as C0123ABCD (not a #name)')).default([]),
      link_ttl: duration('12h'),
    })
    .transform((v, ctx): SlackSettings => {
      const signingSecret = secretRef(v.signing_secret_env, v.signing_secret_file, 'signing_secret', ctx);
      const botToken = secretRef(v.bot_token_env, v.bot_token_file, 'bot_token', ctx);
      const appToken = secretRef(v.app_token_env, v.app_token_file, 'app_token', ctx);
      if (!botToken) ctx.addIssue({ code: 'custom', path: ['bot_token_env'], message: 'missing: give bot_token_env or bot_token_file' });
      if (v.socket_mode && !appToken) ctx.addIssue({ code: 'custom', path: ['app_token_env'], message: 'socket_mode needs app_token_env or app_token_file' });
      if (!v.socket_mode && !signingSecret) {
        ctx.addIssue({ code: 'custom', path: ['signing_secret_env'], message: 'HTTP mode needs signing_secret_env or signing_secret_file (or set socket_mode: true)' });
      }
      // Without a bot token an issue was added above and parsing fails; the placeholder is never seen.
      return {
        socketMode: v.socket_mode,
        approvalsChannel: v.approvals_channel,
        signingSecret,
        botToken: botToken ?? { kind: 'env', name: '' },
        appToken,
        apiUrl: v.api_url.endsWith('/') ? v.api_url : `${v.api_url}/`,
        channels: v.channels,
        linkTtlMs: v.link_ttl,
      };
    })
    .optional();

  const oidc = z
    .strictObject({
      issuer: httpUrl,
      client_id: z.string().min(1),
      client_secret_env: envName.optional(),
      client_secret_file: path.optional(),
      audience: z.string().min(1).optional(),
      scopes: z.array(z.string().min(1)).default(['openid', 'profile', 'email', 'groups']),
      token_format: z.enum(TOKEN_FORMATS).default('auto'),
      groups_from: z.enum(GROUP_SOURCES).default('token'),
      // How long a verified token is trusted before the IdP is asked again (never past its
      // exp). 0s: every request introspects, so a revoked token stops working at once.
      cache_ttl: duration('30s'),
      // Refuse tokens that claim to live longer than this from now (exp - now), so a token
      // minted with a far-future expiry by a misconfigured or compromised client is not honoured.
      max_token_lifetime: duration('24h'),
      // Tolerated clock difference with the IdP for iat/nbf/exp; a token issued further in the
      // future than this is refused.
      clock_skew: duration('60s'),
    })
    .transform((v, ctx) => ({
      issuer: v.issuer,
      clientId: v.client_id,
      clientSecret: secretRef(v.client_secret_env, v.client_secret_file, 'client_secret', ctx),
      audience: v.audience,
      scopes: v.scopes,
      tokenFormat: v.token_format,
      groupsFrom: v.groups_from,
      cacheTtlMs: v.cache_ttl,
      maxTokenLifetimeMs: v.max_token_lifetime,
      clockSkewMs: v.clock_skew,
    }))
    .optional();

  const dashboard = z
    .strictObject({
      client_id: z.string().min(1),
      client_secret_env: envName.optional(),
      client_secret_file: path.optional(),
      scopes: z.array(z.string().min(1)).default(['openid', 'profile', 'email', 'groups']),
      session_idle: duration('30m'),
      session_absolute: duration('12h'),
    })
    .transform((v, ctx): DashboardSettings => {
      const clientSecret = secretRef(v.client_secret_env, v.client_secret_file, 'client_secret', ctx);
      if (!clientSecret) ctx.addIssue({ code: 'custom', path: ['client_secret_env'], message: 'the dashboard is a confidential client: give client_secret_env or client_secret_file' });
      return { clientId: v.client_id, clientSecret, scopes: v.scopes, sessionIdleMs: v.session_idle, sessionAbsoluteMs: v.session_absolute };
    })
    .optional();

  const auth = z
    .strictObject({
      oidc,
      dashboard,
      roles: rolesSchema,
      local_identity: z
        .strictObject({
          subject: z.string().min(1).default('local-admin'),
          display_name: z.string().min(1).default('Local admin'),
          groups: groupList,
        })
        .transform((v): LocalIdentitySettings => ({ subject: v.subject, displayName: v.display_name, groups: v.groups }))
        .prefault({}),
      // The origin of a token comes from the client it was issued to, never from the request.
      clients: z.record(z.string().min(1), z.enum(ORIGINS)).default({ ...DEFAULT_CLIENTS }),
    })
    .superRefine((v, ctx) => {
      // The dashboard signs people in at the same issuer whose tokens the API accepts.
      if (v.dashboard !== undefined && v.oidc === undefined) ctx.addIssue({ code: 'custom', path: ['dashboard'], message: 'auth.dashboard needs auth.oidc (the issuer people sign in at)' });
    })
    .prefault({});

  const jobs = z
    .strictObject({
      wait_budget: duration('45s'),
      default_timeout: duration('30m'),
      retention: z
        .strictObject({ completed_age: duration('7d'), completed_count: count(0, 1000), failed_age: duration('30d'), failed_count: count(0, 5000), max_bytes: size('256MiB') })
        .prefault({}),
      worker: z
        .strictObject({
          concurrency: count(1, 16),
          lock_duration: duration('30s'),
          stalled_interval: duration('30s'),
          shutdown_grace: duration('25s'),
          heartbeat_ttl: derivedDuration.describe('worker heartbeat TTL; unset: twice lock_duration, between 4s and 10s'),
          gone_confirm: duration('2s').describe("a crashed worker's Redis connection missing this long (on a primary stable for a heartbeat TTL) gets its jobs reconciled; 0: heartbeat only"),
        })
        .prefault({}),
      files_root: path.optional(),
    })
    .transform(
      (v): JobSettings => ({
        waitBudgetMs: v.wait_budget,
        defaultTimeoutMs: v.default_timeout,
        retention: {
          completedAgeMs: v.retention.completed_age,
          completedCount: v.retention.completed_count,
          failedAgeMs: v.retention.failed_age,
          failedCount: v.retention.failed_count,
          maxBytes: v.retention.max_bytes,
        },
        worker: {
          concurrency: v.worker.concurrency,
          lockDurationMs: v.worker.lock_duration,
          stalledIntervalMs: v.worker.stalled_interval,
          shutdownGraceMs: v.worker.shutdown_grace,
          heartbeatTtlMs: v.worker.heartbeat_ttl,
          goneConfirmMs: v.worker.gone_confirm,
        },
        filesRoot: v.files_root ?? resolve(baseDir, 'files'),
      }),
    )
    .prefault({});

  const limits = z
    .strictObject({
      max_hosts: count(1, 4096),
      read_timeout: duration('5m'),
      jobs_per_requester: count(0, 16),
      rate: z.strictObject({ per_minute: count(0, 60), burst: count(1, 30) }).prefault({}),
      output_per_host: size('1MiB'),
      output_per_job: size('8MiB'),
      mcp_batches: z.enum(['refuse', 'count']).default('refuse'),
    })
    .transform(
      (v): LimitSettings => ({
        maxHosts: v.max_hosts,
        readTimeoutMs: v.read_timeout,
        jobsPerRequester: v.jobs_per_requester,
        rate: { perMinute: v.rate.per_minute, burst: v.rate.burst },
        outputPerHostBytes: v.output_per_host,
        outputPerJobBytes: v.output_per_job,
        mcpBatches: v.mcp_batches,
      }),
    )
    .prefault({});

  return z
    .strictObject({
      inventory: z.union([path, z.array(path).min(1)]),
      known_hosts: path,
      ssh,
      redis,
      server,
      slack,
      auth,
      policy: policySchema,
      jobs,
      limits,
      audit: z.strictObject({ file: path.optional() }).prefault({}),
      log: z.strictObject({ level: z.enum(LOG_LEVELS).default('info') }).prefault({}),
      ansible: ansibleSchema(path),
      bmc: z
        .strictObject({
          ipmitool: z.string().min(1).default('ipmitool').describe('The ipmitool program bmc_power runs on the Castellan server (PATH lookup unless absolute).'),
          credentials: z
            .record(
              z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, 'expected a credential name like rack-a'),
              z
                .strictObject({ password_env: envName.optional(), password_file: path.optional() })
                .transform((v, ctx): SecretRef | undefined => {
                  const ref = secretRef(v.password_env, v.password_file, 'password', ctx);
                  if (!ref) ctx.addIssue({ code: 'custom', path: ['password_env'], message: 'give password_env or password_file' });
                  return ref;
                }),
            )
            .default({})
            .describe('BMC logins by name; a node names its own with the inventory var bmc_credential. The password is read from the environment or a file, never written here.'),
        })
        .prefault({})
        .transform((v): BmcSettings => ({ ipmitool: v.ipmitool, credentials: Object.fromEntries(Object.entries(v.credentials).flatMap(([k, r]) => (r ? [[k, r]] : []))) })),
      mcp: z
        .strictObject({
          toolsets: z
            .array(z.enum(TOOLSETS))
            .min(1)
            .default([...TOOLSETS])
            .describe(`Toolsets served over MCP (${TOOLSETS.join(', ')}); the job tools always are. An assistant's tool list, and what it may run over MCP, holds only these: e.g. [inventory, health, services].`),
        })
        .prefault({}),
    })
    .transform(
      (v): Settings => ({
        inventory: Array.isArray(v.inventory) ? v.inventory : [v.inventory],
        knownHosts: v.known_hosts,
        ssh: v.ssh,
        redis: v.redis,
        server: v.server,
        slack: v.slack,
        auth: {
          oidc: v.auth.oidc ? { ...v.auth.oidc, audience: v.auth.oidc.audience ?? v.server.publicUrl } : undefined,
          dashboard: v.auth.dashboard,
          roles: v.auth.roles,
          localIdentity: v.auth.local_identity,
          clients: v.auth.clients,
        },
        policy: v.policy,
        jobs: v.jobs,
        limits: v.limits,
        audit: { file: v.audit.file },
        log: { level: v.log.level },
        ansible: v.ansible,
        bmc: v.bmc,
        mcp: { toolsets: [...new Set(v.mcp.toolsets)] },
      }),
    );
}
