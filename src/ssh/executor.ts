// The SSH executor: runs argv arrays on hosts and reports one HostResult per host, in target
// order, never throwing. It knows nothing of jobs, tools or identities. Connections come from
// the pool (pinned host keys, channel budget), commands run under the remote wrapper
// (remote-run.ts) so that timeouts and cancellation really stop them on the node.
import type { Logger } from 'pino';
import type { ClientChannel } from 'ssh2';
import { DEFAULT_NODE_HELPER, type NodeHelperMode } from '../../config/schema.js';
import { slidingWindow } from './batches.js';
import { KnownHosts } from './known-hosts.js';
import type { SshObserver } from './metrics.js';
import { CappedOutput } from './output.js';
import { runOnHelper, type RunRecord } from './helper-run.js';
import { HelperUnavailable, NodeHelper } from './helper-session.js';
import { helperCommand } from './node-helper.js';
import { ConnectError, ConnectionPool, type PooledConnection } from './pool.js';
import { SideChannel, assertRunId, findCommand, killCommand, wrapCommand } from './remote-run.js';
import { quoteArgv } from './quote.js';
import { commandTooLong } from './server-limits.js';
import { SlotsClosedError } from './slots.js';
import { ChannelOpenCancelled, execChannel, onChannelExit, openRetryingRefusals } from './channel-open.js';
import { INIT_NAME_COMMAND, diagnoseFailure, diagnosisText } from './missing-prerequisite.js';
import {
  DEFAULT_MAX_TRANSFER_BYTES,
  download,
  relay,
  upload,
  type SftpAccess,
  type TransferOptions,
  type UploadOptions,
} from './transfer.js';
import type {
  ExecEvent,
  ExecLimits,
  ExecRequest,
  FanoutOptions,
  HostResult,
  HostStatus,
  SshTarget,
} from './types.js';

export const DEFAULT_LIMITS: ExecLimits = {
  connectTimeoutMs: 10_000,
  commandTimeoutMs: 5 * 60_000,
  maxOutputBytes: 1024 * 1024,
  killGraceMs: 5_000,
};
export const DEFAULT_WINDOW = 64;
/** The remote deadline trails the executor's own timeout, so the executor normally decides. */
const REMOTE_DEADLINE_MARGIN_MS = 5_000;
/** After the kill finished, how long the channel may take to report its close. */
const CLOSE_AFTER_KILL_MS = 3_000;
/** Control commands (find/kill) beyond the kill grace itself. */
const CONTROL_TIMEOUT_MS = 15_000;
/**
 * After a stop (timeout or cancel), how long beyond the kill grace a node may stay silent
 * before its connection is dropped and the host reported without waiting further. A node
 * whose sshd froze mid-command answers neither the kill nor the channel close; without this
 * the host (and the job) waited for the keepalive to give up.
 */
const UNANSWERED_STOP_MS = CLOSE_AFTER_KILL_MS;

export interface ExecutorOptions {
  readonly knownHosts: KnownHosts;
  /** Defaults for every call; a call's options override them. */
  readonly limits?: Partial<ExecLimits> | undefined;
  readonly window?: number | undefined;
  /** Config `max_channels_per_host` (default 8; OpenSSH allows 10 sessions per connection). */
  readonly maxChannelsPerHost?: number | undefined;
  readonly idleCloseMs?: number | undefined;
  readonly keepaliveIntervalMs?: number | undefined;
  readonly agentSocket?: string | undefined;
  readonly maxTransferBytes?: number | undefined;
  readonly logger?: Logger | undefined;
  readonly observer?: SshObserver | undefined;
  /** Config `ssh.node_helper` (node-helper.ts): one helper per pooled connection, or the wrapper per command. */
  readonly nodeHelper?: NodeHelperMode | undefined;
}

export type RequestFor = ExecRequest | ((target: SshTarget) => ExecRequest);

export interface RemoteProcess {
  readonly pid: number;
  readonly command: string;
}

/** What a node says about a run id (for reconciliation after a worker crash). */
export interface RemoteRunState {
  readonly host: string;
  readonly runId: string;
  /** `unknown` when the node could not be asked (see error). */
  readonly state: 'running' | 'absent' | 'unknown';
  readonly processes: readonly RemoteProcess[];
  readonly error?: string | undefined;
}

export interface RemoteKillReport {
  readonly host: string;
  readonly runId: string;
  /** gone: nothing was running; terminated: TERM sufficed; killed: KILL was needed; survivors: still there. */
  readonly outcome: 'gone' | 'terminated' | 'killed' | 'survivors' | 'unknown';
  readonly error?: string | undefined;
}

export interface RemoteRunOptions {
  /** The run was started with asRoot: finding its environment and killing it needs root too. */
  readonly asRoot?: boolean | undefined;
  readonly killGraceMs?: number | undefined;
  readonly connectTimeoutMs?: number | undefined;
}

interface Lease {
  readonly connection: PooledConnection;
  readonly release: () => void;
  readonly connectMs: number;
}

interface ControlOutput {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function limitsOf(base: ExecLimits, options: Partial<ExecLimits> | undefined): ExecLimits {
  return {
    connectTimeoutMs: options?.connectTimeoutMs ?? base.connectTimeoutMs,
    commandTimeoutMs: options?.commandTimeoutMs ?? base.commandTimeoutMs,
    maxOutputBytes: options?.maxOutputBytes ?? base.maxOutputBytes,
    killGraceMs: options?.killGraceMs ?? base.killGraceMs,
  };
}

/** Builds HostResults for one attempt; `startedAt` includes the connect. */
class Attempt {
  readonly startedAt = isoNow();
  private readonly t0 = performance.now();
  connectMs = 0;

  constructor(readonly host: string) {}

  result(status: HostStatus, fields: Partial<Omit<HostResult, 'host' | 'status' | 'startedAt' | 'durationMs'>> = {}): HostResult {
    return {
      host: this.host,
      status,
      exitCode: fields.exitCode ?? null,
      signal: fields.signal ?? null,
      stdout: fields.stdout ?? '',
      stderr: fields.stderr ?? '',
      truncated: fields.truncated ?? false,
      startedAt: this.startedAt,
      durationMs: Math.round(performance.now() - this.t0),
      connectMs: fields.connectMs ?? this.connectMs,
      error: fields.error,
    };
  }
}

/**
 * `new Date().toISOString()`, the string kept for the millisecond: a fan-out starts hundreds of
 * hosts within one (each string was ~1 µs and 40 bytes of garbage, per host).
 */
export function isoNow(): string {
  const now = Date.now();
  if (now !== lastIso.ms) {
    lastIso.ms = now;
    lastIso.text = new Date(now).toISOString();
  }
  return lastIso.text;
}
const lastIso = { ms: Number.NaN, text: '' };

export class SshExecutor implements SftpAccess {
  private knownHosts: KnownHosts;
  private readonly pool: ConnectionPool;
  readonly limits: ExecLimits;
  readonly window: number;
  readonly maxTransferBytes: number;
  private readonly logger: Logger | undefined;
  private readonly observer: SshObserver | undefined;
  readonly nodeHelper: NodeHelperMode;

  constructor(options: ExecutorOptions) {
    this.nodeHelper = options.nodeHelper ?? DEFAULT_NODE_HELPER;
    this.knownHosts = options.knownHosts;
    this.limits = limitsOf(DEFAULT_LIMITS, options.limits);
    this.window = options.window ?? DEFAULT_WINDOW;
    this.maxTransferBytes = options.maxTransferBytes ?? DEFAULT_MAX_TRANSFER_BYTES;
    this.logger = options.logger;
    this.observer = options.observer;
    for (const note of this.knownHosts.notes) this.logger?.warn({ note }, 'known_hosts line skipped');
    this.pool = new ConnectionPool({
      knownHosts: () => this.knownHosts,
      maxChannelsPerHost: options.maxChannelsPerHost,
      idleCloseMs: options.idleCloseMs,
      keepaliveIntervalMs: options.keepaliveIntervalMs,
      agentSocket: options.agentSocket,
      logger: options.logger,
      observer: options.observer,
    });
  }

  /** Executor with host keys pinned from an OpenSSH known_hosts file. */
  static async fromKnownHostsFile(file: string, options: Omit<ExecutorOptions, 'knownHosts'> = {}): Promise<SshExecutor> {
    return new SshExecutor({ ...options, knownHosts: await KnownHosts.load(file) });
  }

  /** Swap the pinned keys (after `hosts trust`); open connections to changed hosts are dropped. */
  replaceKnownHosts(knownHosts: KnownHosts, changedTargets: readonly SshTarget[] = []): void {
    this.knownHosts = knownHosts;
    for (const note of knownHosts.notes) this.logger?.warn({ note }, 'known_hosts line skipped');
    for (const target of changedTargets) this.pool.drop(target);
  }

  /** Fingerprints of the keys pinned for `target` now (what an approval binds to). */
  pinnedFingerprints(target: SshTarget): string[] {
    return [...this.knownHosts.pinnedFingerprints({ name: target.name, address: target.address, port: target.port })];
  }

  get openConnections(): number {
    return this.pool.size;
  }

  /** Run one request on one host. */
  async exec(target: SshTarget, request: ExecRequest, options: FanoutOptions = {}): Promise<HostResult> {
    const [result] = await this.fanout([target], request, options);
    return result as HostResult;
  }

  /** Run on every target with a sliding window; one result per target, in target order. */
  async fanout(targets: readonly SshTarget[], request: RequestFor, options: FanoutOptions = {}): Promise<HostResult[]> {
    const limits = limitsOf(this.limits, options);
    return slidingWindow(targets, options.window ?? this.window, (target) => this.runGuarded(target, request, limits, options));
  }

  /** Which processes of run `runId` exist on the node (wrapper, its session, anything carrying its tag). */
  async findRemoteRun(target: SshTarget, runId: string, options: RemoteRunOptions = {}): Promise<RemoteRunState> {
    try {
      const command = findCommand(runId, options.asRoot ?? false, target.user);
      const output = await this.control(target, command, options.connectTimeoutMs ?? this.limits.connectTimeoutMs, CONTROL_TIMEOUT_MS);
      if (output.code !== 0) throw new Error(`finder exited ${output.code}: ${output.stderr.trim()}`);
      const processes = output.stdout.split('\n').flatMap((line) => {
        const match = /^\s*(\d+)\s+(.*)$/.exec(line);
        return match ? [{ pid: Number(match[1]), command: match[2] ?? '' }] : [];
      });
      return { host: target.name, runId, state: processes.length > 0 ? 'running' : 'absent', processes };
    } catch (error) {
      return { host: target.name, runId, state: 'unknown', processes: [], error: message(error) };
    }
  }

  /** TERM every process of the run, KILL after the grace, and verify none is left. */
  async killRemoteRun(target: SshTarget, runId: string, options: RemoteRunOptions = {}): Promise<RemoteKillReport> {
    const grace = options.killGraceMs ?? this.limits.killGraceMs;
    try {
      const command = killCommand(runId, grace, options.asRoot ?? false, target.user);
      const output = await this.control(target, command, options.connectTimeoutMs ?? this.limits.connectTimeoutMs, grace + CONTROL_TIMEOUT_MS);
      const word = output.stdout.trim().split(/\s+/)[0];
      if (output.code === 0 && (word === 'gone' || word === 'terminated' || word === 'killed')) {
        return { host: target.name, runId, outcome: word };
      }
      if (output.code === 3) return { host: target.name, runId, outcome: 'survivors', error: `still running: ${output.stdout.trim()}` };
      return { host: target.name, runId, outcome: 'unknown', error: `killer exited ${output.code}: ${output.stderr.trim()}` };
    } catch (error) {
      return { host: target.name, runId, outcome: 'unknown', error: message(error) };
    }
  }

  // --- transfers (implemented in transfer.ts) ---------------------------------------------

  upload(targets: readonly SshTarget[], localPath: string, remotePath: string, options: UploadOptions = {}): Promise<HostResult[]> {
    return upload(this, targets, localPath, remotePath, options);
  }

  download(targets: readonly SshTarget[], remotePath: string, localDir: string, options: TransferOptions = {}): Promise<HostResult[]> {
    return download(this, targets, remotePath, localDir, options);
  }

  relay(from: SshTarget, remotePath: string, toTargets: readonly SshTarget[], destPath: string, options: UploadOptions = {}): Promise<HostResult[]> {
    return relay(this, from, remotePath, toTargets, destPath, options);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  // --- SftpAccess ---------------------------------------------------------------------------

  /** A pooled connection plus one channel slot; retried once if the connection died while queued. */
  async lease(target: SshTarget, connectTimeoutMs: number, signal?: AbortSignal, control = false): Promise<Lease> {
    for (let attempt = 0; ; attempt++) {
      const before = performance.now();
      const pooled = this.pool.has(target);
      const connection = await this.pool.connection(target, connectTimeoutMs, signal);
      const connectMs = pooled ? 0 : Math.round(performance.now() - before);
      try {
        const release = await (control ? connection.control : connection.slots).acquire(signal);
        return { connection, release, connectMs };
      } catch (error) {
        if (signal?.aborted) throw new ConnectError('cancelled', 'cancelled while waiting for a channel');
        const lost = error instanceof ConnectError || error instanceof SlotsClosedError;
        if (attempt === 0 && lost) continue;
        throw error;
      }
    }
  }

  attempt(host: string): Attempt {
    return new Attempt(host);
  }

  finish(result: HostResult, onEvent: ((event: ExecEvent) => void) | undefined): HostResult {
    this.observer?.hostFinished?.(result);
    const level = result.status === 'ok' || result.status === 'skipped' ? 'debug' : 'info';
    this.logger?.[level]({ host: result.host, status: result.status, exitCode: result.exitCode, durationMs: result.durationMs, error: result.error }, 'host finished');
    onEvent?.({ type: 'host_finished', host: result.host, result });
    return result;
  }

  connectFailure(attempt: Attempt, error: unknown): HostResult {
    if (error instanceof ConnectError) return attempt.result(error.status, { error: error.message });
    return attempt.result('unreachable', { error: message(error) });
  }

  // --- one host -----------------------------------------------------------------------------

  private async runGuarded(target: SshTarget, request: RequestFor, limits: ExecLimits, options: FanoutOptions): Promise<HostResult> {
    const attempt = new Attempt(target.name);
    try {
      const resolved = typeof request === 'function' ? request(target) : request;
      return await this.runOnHost(target, resolved, limits, options, attempt);
    } catch (error) {
      // Defensive: a result per host, always, even if something unexpected threw.
      return this.finish(attempt.result('failed', { error: `executor error: ${message(error)}` }), options.onEvent);
    }
  }

  private async runOnHost(target: SshTarget, request: ExecRequest, limits: ExecLimits, options: FanoutOptions, attempt: Attempt): Promise<HostResult> {
    const { signal, onEvent } = options;
    onEvent?.({ type: 'host_started', host: target.name });
    const stdin = request.stdin !== undefined ? Buffer.from(request.stdin, 'utf8') : Buffer.alloc(0);
    // sudo needs a command line (and a terminal-less sudo of its own): such runs keep the wrapper.
    if (this.nodeHelper === 'auto' && !(request.asRoot === true && target.user !== 'root')) {
      const viaHelper = await this.runViaHelper(target, request, stdin, limits, options, attempt);
      if (viaHelper) return this.finish(await this.explainFailure(target, request, limits, viaHelper), onEvent);
    }
    let command: string;
    try {
      command = wrapCommand(request.argv, {
        runId: request.runId,
        asRoot: request.asRoot ?? false,
        loginUser: target.user,
        deadlineMs: limits.commandTimeoutMs + limits.killGraceMs + REMOTE_DEADLINE_MARGIN_MS,
        killGraceMs: limits.killGraceMs,
        stdinBytes: stdin.length,
      });
    } catch (error) {
      return this.finish(attempt.result('failed', { error: `refused before running: ${message(error)}` }), onEvent);
    }
    if (signal?.aborted) return this.finish(attempt.result('cancelled', { error: 'cancelled before start' }), onEvent);
    let lease: Lease;
    try {
      lease = await this.lease(target, limits.connectTimeoutMs, signal);
    } catch (error) {
      return this.finish(this.connectFailure(attempt, error), onEvent);
    }
    // A connection made for a node helper that would not start counts for the fallback run.
    attempt.connectMs = Math.max(attempt.connectMs, lease.connectMs);
    const tooLong = commandTooLong(command, lease.connection.serverSoftware);
    if (tooLong !== undefined) {
      lease.release();
      return this.finish(attempt.result('failed', { error: `refused before running: ${tooLong}` }), onEvent);
    }
    this.logger?.debug({ host: target.name, runId: request.runId, program: request.argv[0] }, 'exec');
    const result = await this.runOnChannel(target, request, command, stdin, limits, options, attempt, lease);
    // The connection's first command ran under the wrapper; the helper starts now, off the
    // path of any command, for the ones that follow (see runViaHelper).
    if (this.nodeHelper === 'auto' && !lease.connection.isClosed) void this.helperOf(lease.connection, limits.connectTimeoutMs).catch(() => undefined);
    return this.finish(await this.explainFailure(target, request, limits, result), onEvent);
  }

  /**
   * Run on the connection's node helper. Null when the node has none (no perl, the helper would
   * not start or has died): the caller then uses the wrapper, which the log says once per
   * connection. Null too while the connection has not run its first command: a connection used
   * once (a one-off command, a cold fan-out) would pay the helper's start (a round trip and
   * ~10 ms of perl start-up on the node) for nothing, so that command takes the wrapper and the
   * helper is started once it is done; later commands wait for a helper still starting.
   */
  private async runViaHelper(target: SshTarget, request: ExecRequest, stdin: Buffer, limits: ExecLimits, options: FanoutOptions, attempt: Attempt): Promise<HostResult | null> {
    const { signal, onEvent } = options;
    try {
      assertRunId(request.runId);
      // The same refusals as the wrapper's (empty argv, NUL bytes), though nothing is quoted.
      quoteArgv(request.argv);
    } catch (error) {
      return attempt.result('failed', { error: `refused before running: ${message(error)}` });
    }
    if (signal?.aborted) return attempt.result('cancelled', { error: 'cancelled before start' });
    let connection: PooledConnection;
    let release: () => void;
    try {
      if (!this.pool.has(target)) return null;
      connection = await this.pool.connection(target, limits.connectTimeoutMs, signal);
      if (connection.helper === undefined) return null;
      const helper = await this.helperOf(connection, limits.connectTimeoutMs);
      if (!helper) return null;
      release = await connection.helperRuns.acquire(signal);
      if (helper.broken) {
        release();
        return null;
      }
      this.logger?.debug({ host: target.name, runId: request.runId, program: request.argv[0] }, 'exec (node helper)');
      this.observer?.execStarted?.(target.name);
      const run = await runOnHelper({
        host: target.name,
        connection,
        helper,
        spec: { runId: request.runId, argv: request.argv, stdin, deadlineMs: limits.commandTimeoutMs + limits.killGraceMs + REMOTE_DEADLINE_MARGIN_MS, killGraceMs: limits.killGraceMs },
        limits,
        signal,
        onOutput: (stream, chunk) => onEvent?.({ type: 'output', host: target.name, stream, chunk }),
        killOverControl: () => this.killRemoteRun(target, request.runId, { killGraceMs: limits.killGraceMs, connectTimeoutMs: limits.connectTimeoutMs }),
        logger: this.logger,
        closeAfterKillMs: CLOSE_AFTER_KILL_MS,
        unansweredStopMs: UNANSWERED_STOP_MS,
      });
      release();
      return this.channelResult(attempt, attempt, run);
    } catch (error) {
      if (signal?.aborted) return attempt.result('cancelled', { error: 'cancelled before start' });
      return this.connectFailure(attempt, error);
    }
  }

  /** The connection's helper, started on first use (one per connection, shared by its callers). */
  private helperOf(connection: PooledConnection, timeoutMs: number): Promise<NodeHelper | null> {
    connection.helper ??= (async () => {
      const host = connection.target.name;
      let release: (() => void) | undefined;
      try {
        // The helper's start command is the program itself (~8.4 KB): a server that takes less
        // would drop the connection rather than refuse it.
        const tooLong = commandTooLong(helperCommand(), connection.serverSoftware);
        if (tooLong !== undefined) throw new HelperUnavailable(tooLong);
        // The helper's channel is an sshd session like any other: it holds one of the slots.
        release = await connection.slots.acquire();
        const helper = await NodeHelper.start(connection.client, timeoutMs);
        connection.pin(1);
        const held = release;
        helper.onBroken((reason) => {
          connection.pin(-1);
          held();
          if (!connection.isClosed) this.logger?.warn({ host, reason }, 'node helper stopped: this connection uses the wrapper from now on');
        });
        this.logger?.debug({ host }, 'node helper started');
        return helper;
      } catch (error) {
        release?.();
        if (!(error instanceof HelperUnavailable)) throw error;
        this.logger?.info({ host, reason: error.message }, 'node helper unavailable: this connection uses the wrapper');
        return null;
      }
    })();
    return connection.helper.then((helper) => (helper && !helper.broken ? helper : null));
  }

  private async runOnChannel(
    target: SshTarget,
    request: ExecRequest,
    command: string,
    stdin: Buffer,
    limits: ExecLimits,
    options: FanoutOptions,
    attempt: Attempt,
    lease: Lease,
  ): Promise<HostResult> {
    const { signal, onEvent } = options;
    let stream: ClientChannel;
    try {
      stream = await this.openChannel(target, lease, () => execChannel(lease.connection.client, command), limits.connectTimeoutMs, signal);
    } catch (error) {
      lease.release();
      if (error instanceof ChannelOpenCancelled) return attempt.result('cancelled', { error: 'cancelled before start' });
      return attempt.result('failed', { error: `could not open a channel on ${target.name}: ${message(error)}` });
    }
    return new Promise<HostResult>((resolve) => {
      this.observer?.execStarted?.(target.name);
      const side = new SideChannel();
      const stdout = new CappedOutput(limits.maxOutputBytes);
      const stderr = new CappedOutput(limits.maxOutputBytes);
      let exitCode: number | null = null;
      let exitSignal: string | null = null;
      let outcome: { status: 'timed_out' | 'cancelled'; reason: string } | null = null;
      let stopping: Promise<RemoteKillReport> | null = null;
      let stopped = false;
      let forceClose: NodeJS.Timeout | undefined;
      let abandonTimer: NodeJS.Timeout | undefined;
      let settled = false;

      const emit = (stream: 'stdout' | 'stderr', chunk: string): void => {
        if (chunk !== '') onEvent?.({ type: 'output', host: target.name, stream, chunk });
      };
      let killOnceSeen: NodeJS.Timeout | undefined;
      let stopAt = 0;
      const stop = (status: 'timed_out' | 'cancelled', reason: string): void => {
        if (outcome) return;
        outcome = { status, reason };
        stopAt = Date.now();
        abandonTimer = setTimeout(abandon, limits.killGraceMs + UNANSWERED_STOP_MS);
        if (side.seen) {
          startKill();
          return;
        }
        // The wrapper has not reported its session yet: a kill now can run before the command
        // exists, find nothing ("gone") and let it start right after. Kill as soon as the
        // wrapper reports (see the data handler), or after the connect timeout at the latest.
        killOnceSeen = setTimeout(startKill, limits.connectTimeoutMs);
      };
      const startKill = (): void => {
        clearTimeout(killOnceSeen);
        killOnceSeen = undefined;
        if (stopping) return;
        // The kill over a second channel is the authoritative stop and verifies that nothing
        // of the run is left. Only if it could not do its job is EOF sent on the channel's
        // stdin, which trips the remote lifeline (it would otherwise hold the kill up for a
        // whole grace period, since it outlives TERM on purpose).
        stopping = this.killRemoteRun(target, request.runId, {
          asRoot: request.asRoot ?? false,
          killGraceMs: limits.killGraceMs,
          connectTimeoutMs: limits.connectTimeoutMs,
        }).then((report) => {
          if (report.outcome === 'unknown' || report.outcome === 'survivors') {
            try {
              stream.eof();
            } catch {
              // channel already closing
            }
          }
          return report;
        });
        void stopping.finally(() => {
          stopped = true;
          forceClose = setTimeout(() => stream.close(), CLOSE_AFTER_KILL_MS);
        });
      };
      // The node has sent nothing since the stop, for the kill grace and a bit: it stopped
      // answering (sshd frozen, half-open TCP). Drop the pooled connection (other hosts have their own) and report the host now. The
      // remote deadline (`timeout` in the wrapper) and the lifeline, which sees the
      // connection drop, still end the command on the node once it runs again.
      const abandon = (): void => {
        if (settled) return;
        if (lease.connection.lastHeardAt > stopAt) {
          // The node answers: the kill is merely slow (a loaded node), or it reported and the
          // close follows (forceClose). Look again later while the kill is still under way.
          if (!stopped) abandonTimer = setTimeout(abandon, UNANSWERED_STOP_MS);
          return;
        }
        settled = true;
        clearTimeout(timer);
        clearTimeout(killOnceSeen);
        clearTimeout(forceClose);
        signal?.removeEventListener('abort', onAbort);
        const why = `${target.name} did not answer for ${Math.round((limits.killGraceMs + UNANSWERED_STOP_MS) / 1000)} s after the stop`;
        this.logger?.warn({ host: target.name, runId: request.runId }, `${why}: dropping its connection`);
        lease.connection.destroy(why);
        lease.release();
        emit('stdout', stdout.push(side.flush()));
        const report: RemoteKillReport = { host: target.name, runId: request.runId, outcome: 'unknown', error: `${why}; its connection was dropped (the remote deadline and lifeline stop the command once the node runs again)` };
        resolve(this.channelResult(attempt, attempt, { exitCode, exitSignal, outcome, report, wrapperSeen: side.seen, stdout, stderr, limits }));
      };
      const timer = setTimeout(() => stop('timed_out', `command timeout after ${limits.commandTimeoutMs} ms`), limits.commandTimeoutMs);
      const onAbort = (): void => stop('cancelled', 'cancelled');
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) onAbort();

      stream.on('data', (chunk: Buffer) => {
        emit('stdout', stdout.push(side.push(chunk)));
        if (killOnceSeen && side.seen) startKill();
      });
      stream.stderr.on('data', (chunk: Buffer) => emit('stderr', stderr.push(chunk)));
      onChannelExit(stream, (code, signalName) => {
        exitCode = typeof code === 'number' ? code : null;
        exitSignal = signalName ?? null;
      });
      stream.on('error', (streamError: Error) => this.logger?.warn({ host: target.name, err: streamError.message }, 'channel error'));
      stream.once('close', () => {
        clearTimeout(abandonTimer);
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // Closed before the wrapper reported: the command never started (nothing to kill).
        clearTimeout(killOnceSeen);
        signal?.removeEventListener('abort', onAbort);
        lease.release();
        emit('stdout', stdout.push(side.flush()));
        void (async () => {
          const report = stopping ? await stopping : null;
          clearTimeout(forceClose);
          resolve(this.channelResult(attempt, attempt, { exitCode, exitSignal, outcome, report, wrapperSeen: side.seen, stdout, stderr, limits }));
        })();
      });
      if (stdin.length > 0) writeStdin(stream, stdin);
    });
  }

  /**
   * Open a channel on a leased connection, waiting out the node's refusals while it frees
   * sessions we already closed (channel-open.ts). Nothing has run when this fails.
   */
  private openChannel<T>(target: SshTarget, lease: Lease, open: () => Promise<T>, budgetMs: number, signal?: AbortSignal): Promise<T> {
    return openRetryingRefusals(open, {
      budgetMs,
      signal,
      alive: () => !lease.connection.isClosed,
      onRefused: (error, tries) => this.logger?.debug({ host: target.name, tries, err: error.message }, 'channel open refused; retrying'),
    });
  }

  private channelResult(
    attempt: Attempt,
    lease: { readonly connectMs: number },
    run: RunRecord,
  ): HostResult {
    const fields = {
      exitCode: run.exitCode,
      signal: run.exitSignal,
      stdout: run.stdout.finish(),
      stderr: run.stderr.finish(),
      truncated: run.stdout.truncated || run.stderr.truncated,
      connectMs: lease.connectMs,
    };
    const report = run.report;
    const remote = !report ? '' : report.outcome === 'survivors' || report.outcome === 'unknown'
      ? `; remote stop NOT verified: ${report.error ?? report.outcome}`
      : `; remote run stopped (${report.outcome})`;
    if (run.outcome) return attempt.result(run.outcome.status, { ...fields, error: `${run.outcome.reason}${run.lost ? ` (${run.lost})` : ''}${remote}` });
    if (run.lost) return attempt.result('failed', { ...fields, error: `${run.lost}${remote}` });
    if (run.exitCode === 0) return attempt.result('ok', fields);
    if (run.exitCode === null && run.exitSignal === null) {
      return attempt.result('failed', { ...fields, error: 'connection lost while the command ran (the remote lifeline stops it)' });
    }
    let error = run.exitSignal ? `killed by signal ${run.exitSignal}` : `exit code ${run.exitCode}`;
    if (!run.wrapperSeen) error += ' (the remote wrapper did not start: are sh, setsid, timeout and pkill installed, and /proc mounted?)';
    else if (run.exitCode === 124 && run.remoteDeadline !== false) error += ' (the remote deadline of the command was reached)';
    return attempt.result('failed', { ...fields, error });
  }

  /**
   * A command that failed because the node lacks what it needs gets that as its error, in one
   * line ("systemd is not running here (PID 1 is sshd)") instead of a bare exit code.
   */
  private async explainFailure(target: SshTarget, request: ExecRequest, limits: ExecLimits, result: HostResult): Promise<HostResult> {
    if (result.status !== 'failed' || result.exitCode === null || result.exitCode === 0) return result;
    const sudoLogin = request.asRoot === true && target.user !== 'root' ? target.user : undefined;
    const diagnosis = diagnoseFailure(request.argv, result.exitCode, result.stderr, { sudoLogin });
    if (diagnosis === undefined) return result;
    let initName: string | undefined;
    if (diagnosis.needsInitName) {
      initName = await this.control(target, INIT_NAME_COMMAND, limits.connectTimeoutMs, 5000).then(
        (out) => (out.code === 0 ? out.stdout : undefined),
        () => undefined,
      );
    }
    return { ...result, error: diagnosisText(diagnosis, initName) };
  }

  /** A short command on a control channel (reserved slots), e.g. find/kill of a run. */
  private async control(target: SshTarget, command: string, connectTimeoutMs: number, timeoutMs: number): Promise<ControlOutput> {
    const lease = await this.lease(target, connectTimeoutMs, undefined, true);
    return new Promise<ControlOutput>((resolve, reject) => {
      let gaveUp = false;
      // Counted from the request, not from the channel's opening: a node that stopped
      // answering never opens it, and the caller must hear so.
      const unopened = setTimeout(() => {
        gaveUp = true;
        lease.release();
        reject(new Error(`${target.name} did not open a channel within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      const opening = this.openChannel(target, lease, () => execChannel(lease.connection.client, command), timeoutMs);
      const failed = (error: unknown): void => {
        clearTimeout(unopened);
        if (gaveUp) return;
        lease.release();
        reject(error instanceof Error ? error : new Error(String(error)));
      };
      void opening.then((stream) => {
        clearTimeout(unopened);
        if (gaveUp) {
          stream.close();
          return;
        }
        const stdout: Buffer[] = [];
        const stderr: Buffer[] = [];
        let code: number | null = null;
        const timer = setTimeout(() => stream.close(), timeoutMs);
        stream.on('data', (chunk: Buffer) => stdout.push(chunk));
        stream.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
        onChannelExit(stream, (exitCode) => {
          code = typeof exitCode === 'number' ? exitCode : null;
        });
        stream.once('close', () => {
          clearTimeout(timer);
          lease.release();
          resolve({ code, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') });
        });
        stream.eof();
      }, failed);
    });
  }
}

/** Write stdin without ending it: EOF on stdin is the wrapper's cancel/lost-connection signal. */
function writeStdin(stream: ClientChannel, data: Buffer): void {
  stream.write(data);
}
