// Builds one process's Castellan from its config: Redis connection, job store, audit,
// executor, tool catalogue, policy. The CLI (local mode), `serve`, `worker` and `up` all
// start here, so every entry point runs the same pipeline.
import { readFile } from 'node:fs/promises';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config/load.js';
import { fileStamp } from '../config/file-stamp.js';
import { loadInventory } from '../config/inventory.js';
import { resolveTargets } from '../config/targets.js';
import type { Inventory } from '../config/types.js';
import { authConfigFromSettings } from '../auth/settings.js';
import type { AuthConfig } from '../auth/settings.js';
import { rolesForGroups } from '../auth/roles.js';
import type { Requester, Origin } from '../auth/types.js';
import { AuditLog } from '../queues/audit.js';
import { CancelBroadcast } from '../queues/cancel.js';
import type { InventoryProvider, JobSettings, QueueContext, ToolCatalogue } from '../queues/context.js';
import type { ApprovalPlaces } from './present/job-view.js';
import { JobEventHub } from '../queues/follow.js';
import { JobFeed } from '../queues/feed.js';
import { JobEvents } from '../queues/events.js';
import { HostLocks } from '../queues/host-locks.js';
import { keys } from '../queues/keys.js';
import { ExecutionLedger } from '../queues/ledger.js';
import { JobStore } from '../queues/records.js';
import { JobService } from '../queues/service.js';
import { startWorker, type WorkerHandle, type WorkerOptions } from '../queues/worker.js';
import { registryTiming, WorkerRegistry } from '../queues/heartbeat.js';
import { reconcileLoop, type Reconciler } from '../queues/orphans.js';
import { ShardBoard } from '../queues/shards.js';
import { catalogue } from '../tools/index.js';
import type { Risk, ToolDefinition } from '../tools/types.js';
import { CastellanError } from '../config/errors.js';
import { createLogger, type Logger } from './log.js';
import { Redactor } from '../queues/redact.js';
import { createPlanExecutor, type ClosablePlanExecutor } from './ssh/plan-executor.js';
import { closeRedis, connectRedis, type RedisKind } from './redis.js';
import { startReconciler } from '../queues/submission.js';
import { durableConnection, isRedisUnavailable } from '../queues/connections.js';
import { Durability } from '../queues/durable.js';
import type { SshTarget } from './ssh/types.js';

export type RuntimeMode = 'client' | 'server' | 'worker' | 'all';

export interface RuntimeOptions {
  readonly mode: RuntimeMode;
  readonly logger?: Logger | undefined;
  /** Override job/worker settings (tests shorten lock durations, benchmarks raise concurrency). */
  readonly jobSettings?: Partial<JobSettings> | undefined;
}

export interface Runtime {
  readonly config: Config;
  readonly auth: AuthConfig;
  readonly ctx: QueueContext;
  readonly service: JobService;
  readonly logger: Logger;
  readonly redactor: Redactor;
  readonly redis: Redis;
  /** Where people approve (public URL, Slack channel): every job view names them. */
  readonly places: ApprovalPlaces;
  /** The identity the CLI and `mcp --stdio` act as (from auth.local_identity). */
  localRequester(origin: Origin): Requester;
  /** A worker in this process; `sites`: serve only those sites' hosts (see config/sites.ts). */
  startWorker(options?: WorkerOptions): Promise<WorkerHandle>;
  close(): Promise<void>;
}

/**
 * The plan executor with pinned fingerprints for many hosts at once (queues/plan-binding.ts):
 * its per-host lookup checks known_hosts for changes on every call (a stat each, 1000 per
 * binding of a 1000-host plan, twice a job); here the first lookup checks (and reloads the
 * pins when the file changed) and the rest read the same pins from the SSH layer directly.
 */
function withPinnedBatch(executor: ClosablePlanExecutor): ClosablePlanExecutor {
  return Object.assign(executor, {
    async pinnedFingerprintsOf(targets: readonly SshTarget[]): Promise<string[][]> {
      const [first, ...rest] = targets;
      if (first === undefined) return [];
      return [await executor.pinnedFingerprints(first), ...rest.map((t) => executor.ssh.pinnedFingerprints(t))];
    },
  });
}

export async function createRuntime(config: Config, options: RuntimeOptions): Promise<Runtime> {
  const redactor = new Redactor(config.secrets.values());
  const logger = options.logger ?? createLogger({ level: config.log.level, redactor });
  // Checked before anything connects, so a bad override leaves nothing open.
  const effective = withRiskOverrides(catalogue, config.policy.toolRisk, config.file);
  // serve's front ends fail fast when Redis is away; a worker waits it out; the CLI fails at
  // start when Redis is not there (src/redis.ts).
  const kind: RedisKind = options.mode === 'worker' ? 'worker' : options.mode === 'client' ? 'client' : 'front';
  const redis = await connectRedis(config, kind, logger);
  try {
    if (options.mode !== 'client') await checkRedisSettings(redis, logger);
  } catch (err) {
    closeRedis(redis);
    throw err;
  }
  const k = keys(config.redis.prefix);
  const queueName = 'jobs';
  const executor = withPinnedBatch(await createPlanExecutor(config, logger));
  const settings = jobSettingsFrom(config, options.jobSettings);
  const inventory = watchedInventory(config.inventory, config.ssh.port);
  // The private keys Castellan logs in with are secrets too: a node that prints one (a copied
  // key, `cat` of a shared path) must not put it into job output, events, audit or logs.
  redactor.add(await keyMaterial(config, inventory));
  const byName = new Map(effective.map((t) => [t.name, t]));
  const tools: ToolCatalogue = { get: (n) => byName.get(n), list: () => effective };
  const localRoot = config.jobs.filesRoot;

  /** The job layer on one connection: the front ends' and the worker's differ in kind. */
  const contextOn = (connection: Redis): QueueContext => {
    const events = new JobEvents(connection, k, redactor);
    const queue = new Queue(queueName, { connection, prefix: `${k.prefix}:bull` });
    // Without a listener BullMQ prints every connection error with its stack; outages are
    // already logged once per state change by the connection (src/redis.ts).
    queue.on('error', (err) => {
      if (!isRedisUnavailable(err)) logger.warn({ err: err.message }, 'job queue error');
    });
    return {
      redis: connection,
      keys: k,
      queue,
      queueName,
      store: new JobStore(connection, k),
      events,
      hub: new JobEventHub(connection, k, events),
      feed: new JobFeed(connection, k),
      // With replicas (a failover can happen) an append resent after a dropped reply must not
      // add the entry twice; standalone keeps the cheaper append (queues/audit.ts).
      audit: new AuditLog(connection, k, redactor, { file: config.audit.file, markWrites: (settings.replication?.replicas ?? 0) > 0 }),
      ledger: new ExecutionLedger(connection, k),
      durable: new Durability((closed) => durableConnection(connection, settings.replication?.timeoutMs ?? 0, closed), k, settings.replication),
      locks: new HostLocks(connection, k, settings.hostLockTtlMs),
      cancel: new CancelBroadcast(connection, k),
      tools,
      inventory,
      planContext: (inv) => ({
        inventory: inv,
        resolve: (expression) => resolveTargets(expression, inv, { maxHosts: config.limits.maxHosts }),
        defaults: { commandTimeoutMs: config.ssh.commandTimeoutMs, connectTimeoutMs: config.ssh.connectTimeoutMs },
        localRoot,
        playbooks: config.ansible.playbooks,
      }),
      targetFor: (inv, host) => targetFor(config, inv, host),
      executor,
      settings,
      redactor,
      logger,
    };
  };
  const closeContext = async (c: QueueContext): Promise<void> => {
    await c.cancel.close();
    await c.hub.close();
    await c.queue.close().catch(() => undefined);
    c.durable.close();
    closeRedis(c.redis);
  };
  const ctx = contextOn(redis);
  const auth = authConfigFromSettings(config);
  const service = new JobService(ctx, auth);
  const workers: WorkerHandle[] = [];
  // A server without a worker still ends the jobs of workers that are gone (a cancel of an
  // orphaned job must not wait for some worker to start); workers run their own loop.
  const reconciler: Reconciler | undefined =
    options.mode === 'server' ? reconcileLoop(ctx, new WorkerRegistry(redis, k, registryTiming(ctx.settings.worker)), new ShardBoard(redis, k), `server-${process.pid}`, 1000) : undefined;
  const workerContexts: QueueContext[] = [];
  // Every long-lived process ends submissions that never completed (queues/submission.ts).
  const stopReconciler = options.mode === 'client' ? undefined : startReconciler(ctx, settings.reconcileEveryMs, settings.submitGraceMs);

  return {
    config,
    auth,
    ctx,
    service,
    logger,
    redactor,
    redis,
    places: { publicUrl: config.server.publicUrl, slackChannel: config.slack?.approvalsChannel, selfApproval: ctx.settings.approvals.allowSelfApproval },
    localRequester(origin) {
      const id = config.auth.localIdentity;
      return { subject: id.subject, displayName: id.displayName, groups: [...id.groups], roles: rolesForGroups(id.groups, config.auth.roles), origin };
    },
    async startWorker(workerOptions) {
      // A worker in a front-end process gets its own connection, one that waits outages out.
      let wctx = ctx;
      if (kind !== 'worker') {
        wctx = contextOn(await connectRedis(config, 'worker', logger));
        workerContexts.push(wctx);
      }
      const w = await startWorker(wctx, wctx.redis, workerOptions);
      workers.push(w);
      return w;
    },
    async close() {
      await reconciler?.stop();
      stopReconciler?.();
      for (const w of workers.splice(0)) await w.close();
      for (const c of workerContexts.splice(0)) await closeContext(c);
      await executor.close();
      await closeContext(ctx);
    },
  };
}

function jobSettingsFrom(config: Config, overrides: Partial<JobSettings> = {}): JobSettings {
  const j = config.jobs;
  return {
    waitBudgetMs: j.waitBudgetMs,
    defaultTimeoutMs: j.defaultTimeoutMs,
    readOnly: config.policy.readOnly,
    approvals: { ...config.policy.approvals },
    retention: {
      completedAgeS: Math.max(1, Math.round(j.retention.completedAgeMs / 1000)),
      completedCount: j.retention.completedCount,
      failedAgeS: Math.max(1, Math.round(j.retention.failedAgeMs / 1000)),
      failedCount: j.retention.failedCount,
      maxBytes: j.retention.maxBytes,
    },
    worker: {
      concurrency: j.worker.concurrency,
      lockDurationMs: j.worker.lockDurationMs,
      stalledIntervalMs: j.worker.stalledIntervalMs,
      readRetries: 1,
      shutdownGraceMs: j.worker.shutdownGraceMs,
      // Unset: twice the job lock, between 4 and 10 s — long enough for a busy event loop,
      // short enough that a frozen worker's jobs are reconciled soon.
      heartbeatTtlMs: j.worker.heartbeatTtlMs ?? Math.min(10_000, Math.max(4_000, j.worker.lockDurationMs * 2)),
      goneConfirmMs: j.worker.goneConfirmMs,
    },
    maintenance: { windows: config.policy.maintenanceWindows, outside: config.policy.outsideWindow, recheckMs: 60_000 },
    window: config.ssh.window,
    hostLockTtlMs: 60_000,
    replication: { replicas: config.redis.confirmReplicas, timeoutMs: config.redis.confirmTimeoutMs, withinMs: config.redis.confirmWithinMs },
    limits: config.limits,
    localSubject: config.auth.localIdentity.subject,
    reconcileEveryMs: 10_000,
    submitGraceMs: 30_000,
    ...overrides,
  };
}

export function targetFor(config: Config, inventory: Inventory, name: string): SshTarget {
  const host = inventory.hosts.get(name);
  if (!host) throw new CastellanError('bad_target', `host '${name}' is not in the inventory`);
  return {
    name: host.name,
    address: host.address,
    port: host.port,
    user: host.user ?? config.ssh.user,
    privateKeyFile: host.privateKeyFile ?? config.ssh.privateKeyFile,
  };
}

/**
 * Re-reads the inventory when one of its files changes, so plans always use the current one.
 * A large file is parsed in a worker thread (config/yaml-tree.ts): a change never stalls the
 * event loop, so Slack acks, MCP answers and health checks stay prompt while it is read. Every
 * caller that comes while one version is being read waits for that one read, never its own;
 * callers wait rather than get the previous version, because the worker's re-check of an
 * approved plan must see the file as it is now. A version that does not load is reported to
 * every caller (one read per version, not one per call) until the file changes again.
 */
function watchedInventory(files: readonly string[], defaultPort: number): InventoryProvider {
  let latest: { stamp: string; inventory: Promise<Inventory> } | undefined;
  return {
    async current() {
      // Twice on every job's path (submission, then the worker's re-plan): see fileStamp.
      const stamp = files.map(fileStamp).join('|');
      if (latest?.stamp !== stamp) {
        const inventory = loadInventory(files, { defaultPort, offThread: true });
        inventory.catch(() => undefined); // a failed version is answered to each caller, never unhandled
        latest = { stamp, inventory };
      }
      return latest.inventory;
    },
  };
}

async function checkRedisSettings(redis: Redis, logger: Logger): Promise<void> {
  let policy: string | undefined;
  let aof: string | undefined;
  try {
    policy = ((await redis.config('GET', 'maxmemory-policy')) as string[])[1];
    aof = ((await redis.config('GET', 'appendonly')) as string[])[1];
  } catch {
    logger.warn('cannot read Redis settings (CONFIG is disabled?); make sure maxmemory-policy is noeviction');
    return;
  }
  if (policy !== undefined && policy !== 'noeviction') {
    throw new CastellanError('unavailable', `Redis maxmemory-policy is '${policy}'; Castellan needs 'noeviction' (an evicting Redis can silently drop jobs, approvals and audit records). Run: redis-cli CONFIG SET maxmemory-policy noeviction`);
  }
  if (aof === 'no') logger.warn('Redis persistence (appendonly) is off: a Redis restart loses queued jobs, approvals and the audit stream');
}

/**
 * `policy.tool_risk`: risk follows what a tool can do, and only an explicit line in the config
 * changes it (say, run_script: change on a single-operator homelab). Every front end and the
 * worker then see the same effective risk. An unknown tool name is a config error.
 */
export function withRiskOverrides(tools: readonly ToolDefinition[], overrides: Readonly<Record<string, Risk>>, file: string): ToolDefinition[] {
  const names = new Set(tools.map((t) => t.name));
  const unknown = Object.keys(overrides).filter((name) => !names.has(name));
  if (unknown.length > 0) {
    throw new CastellanError('invalid_input', `${file}: policy.tool_risk names unknown tool(s) ${unknown.join(', ')}; see 'castellan help' for the list`);
  }
  return tools.map((tool) => (Object.hasOwn(overrides, tool.name) ? { ...tool, risk: overrides[tool.name] ?? tool.risk } : tool));
}

/** Contents of ssh.private_key_file and every inventory host's key file that can be read. */
async function keyMaterial(config: Config, inventory: InventoryProvider): Promise<string[]> {
  const files = new Set<string>();
  if (config.ssh.privateKeyFile !== undefined) files.add(config.ssh.privateKeyFile);
  try {
    for (const host of (await inventory.current()).hosts.values()) if (host.privateKeyFile !== undefined) files.add(host.privateKeyFile);
  } catch {
    // An inventory that does not load yet is reported where it is used; its keys join later runs.
  }
  // Unreadable here (a CLI user without the worker's key) means this process cannot leak it either.
  const contents = await Promise.all([...files].map((f) => readFile(f, 'utf8').catch(() => undefined)));
  return contents.filter((c): c is string => c !== undefined && c.trim() !== '').map((c) => c.trim());
}
