// One SSH connection per target, shared by every request to it. The handshake is the
// expensive part (~170 ms of sshd CPU here), so connections are reused, concurrent callers
// share one in-flight connect, and each connection hands out at most N channels at a time
// (OpenSSH's MaxSessions is 10; the rest wait in FIFO order). Two extra slots are kept for
// control channels (kill, find) so a cancel is never stuck behind the runs it must stop.
import { Socket } from 'node:net';
import { readFile, stat } from 'node:fs/promises';
import { Client, type ConnectConfig } from 'ssh2';
import type { Logger } from 'pino';
import type { NodeHelper } from './helper-session.js';
import type { KnownHosts } from './known-hosts.js';
import type { SshObserver } from './metrics.js';
import { ChannelSlots } from './slots.js';
import type { HostStatus, SshTarget } from './types.js';

export const DEFAULT_MAX_CHANNELS_PER_HOST = 8;
export const CONTROL_CHANNELS_PER_HOST = 2;
export const DEFAULT_IDLE_CLOSE_MS = 60_000;
export const DEFAULT_KEEPALIVE_MS = 15_000;

/** Why a connection could not be had, in the executor's status vocabulary. */
export class ConnectError extends Error {
  constructor(
    readonly status: Extract<HostStatus, 'unreachable' | 'auth_failed' | 'host_key_rejected' | 'cancelled'>,
    message: string,
  ) {
    super(message);
    this.name = 'ConnectError';
  }
}

export interface PoolOptions {
  /** Consulted on every connect, so a reloaded known_hosts applies to new connections. */
  readonly knownHosts: () => KnownHosts;
  readonly maxChannelsPerHost?: number;
  readonly idleCloseMs?: number;
  readonly keepaliveIntervalMs?: number;
  /** ssh-agent socket; default SSH_AUTH_SOCK. Used when present, alongside any key file. */
  readonly agentSocket?: string | undefined;
  readonly logger?: Logger | undefined;
  readonly observer?: SshObserver | undefined;
}

export function poolKey(target: SshTarget): string {
  return `${target.user}@${target.address}:${target.port}#${target.privateKeyFile ?? 'agent'}`;
}

/** A ready connection and its channel budget. */
export class PooledConnection {
  readonly slots: ChannelSlots;
  readonly control: ChannelSlots;
  /** Commands in flight on the node helper (as many as channels: the node's processes are the cost). */
  readonly helperRuns: ChannelSlots;
  /**
   * The node helper of this connection (helper-session.ts), once asked for: null when the node
   * cannot have one (the wrapper is used instead). It holds one of `slots` for its channel.
   */
  helper: Promise<NodeHelper | null> | undefined;
  /** Slots held for the connection's life (the helper's channel): not activity for the idle close. */
  private pinned = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** When the node last sent anything (Date.now()): tells a slow node from a frozen one. */
  lastHeardAt = Date.now();
  /** The server's software from its SSH identification (`OpenSSH_9.2p1`, `dropbear_2022.83`). */
  serverSoftware = '';

  constructor(
    readonly client: Client,
    readonly target: SshTarget,
    readonly connectMs: number,
    maxChannels: number,
    private readonly idleCloseMs: number,
  ) {
    const onChange = (): void => this.touch();
    this.slots = new ChannelSlots(maxChannels, onChange);
    this.control = new ChannelSlots(CONTROL_CHANNELS_PER_HOST, onChange);
    this.helperRuns = new ChannelSlots(maxChannels, onChange);
    this.touch();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Mark the connection dead: queued callers fail now instead of waiting on a corpse. */
  markClosed(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.idleTimer);
    const error = new ConnectError('unreachable', `connection to ${this.target.name} lost: ${reason}`);
    this.slots.close(error);
    this.control.close(error);
    this.helperRuns.close(error);
  }

  /** A slot taken (or given back) for the connection's life; see `pinned`. */
  pin(delta: 1 | -1): void {
    this.pinned += delta;
    this.touch();
  }

  end(): void {
    this.markClosed('closed by Castellan');
    this.client.end();
  }

  /**
   * Tear the connection down without a goodbye: a node that stopped answering (sshd frozen,
   * half-open TCP) never acknowledges a polite end, and everything queued on it would wait
   * for the keepalive to give up (interval × 3, a minute by default).
   */
  destroy(reason: string): void {
    this.markClosed(reason);
    this.client.destroy();
  }

  /** Idle close starts only when no channel is held or awaited. */
  private touch(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.closed) return;
    const busy = this.slots.inUse - this.pinned + this.slots.queued + this.control.inUse + this.control.queued
      + this.helperRuns.inUse + this.helperRuns.queued;
    if (busy === 0 && this.idleCloseMs > 0) {
      this.idleTimer = setTimeout(() => this.end(), this.idleCloseMs);
      this.idleTimer.unref();
    }
  }
}

/** TCP connect on our own socket: NODELAY (else every handshake round trip waits ~40 ms) and a real timeout. */
export function openSocket(target: SshTarget, timeoutMs: number, signal?: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    socket.setNoDelay(true);
    const fail = (error: ConnectError): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(error);
    };
    const onAbort = (): void => fail(new ConnectError('cancelled', 'cancelled while connecting'));
    const timer = setTimeout(
      () => fail(new ConnectError('unreachable', `connect timeout: no TCP answer from ${target.address}:${target.port} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (error: NodeJS.ErrnoException) => fail(new ConnectError('unreachable', describeSocketError(error, target))));
    socket.connect({ host: target.address, port: target.port }, () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

function describeSocketError(error: NodeJS.ErrnoException, target: SshTarget): string {
  const where = `${target.address}:${target.port}`;
  switch (error.code) {
    case 'ECONNREFUSED':
      return `connection refused by ${where} (is sshd running?)`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `no route to host ${where}`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve ${target.address}`;
    case 'ETIMEDOUT':
      return `connect timeout to ${where}`;
    default:
      return `cannot connect to ${where}: ${error.message}`;
  }
}

export class ConnectionPool {
  /**
   * Private key files by path, keyed on inode, times and size so a replaced key is read again: opening
   * and reading the file on every connect cost ~0.3 ms of CPU per connection. (ssh2 parses
   * the key again on each connect; it accepts only a Buffer or string.)
   */
  private readonly keys = new Map<string, { stamp: string; key: Buffer }>();
  private readonly connections = new Map<string, PooledConnection>();
  private readonly connecting = new Map<string, Promise<PooledConnection>>();
  private readonly maxChannels: number;
  private closed = false;

  constructor(private readonly options: PoolOptions) {
    this.maxChannels = options.maxChannelsPerHost ?? DEFAULT_MAX_CHANNELS_PER_HOST;
  }

  /** Live pooled connections (one dropped a moment ago may not have reported its close yet). */
  get size(): number {
    let live = 0;
    for (const connection of this.connections.values()) if (!connection.isClosed) live += 1;
    return live;
  }

  /** The live connection to `target`, connecting once if needed (concurrent callers share it). */
  async connection(target: SshTarget, connectTimeoutMs: number, signal?: AbortSignal): Promise<PooledConnection> {
    if (this.closed) throw new ConnectError('unreachable', 'the SSH pool is closed');
    const key = poolKey(target);
    const existing = this.connections.get(key);
    if (existing && !existing.isClosed) return existing;
    let pending = this.connecting.get(key);
    if (!pending) {
      pending = this.connect(target, connectTimeoutMs).finally(() => this.connecting.delete(key));
      this.connecting.set(key, pending);
    }
    if (!signal) return pending;
    // A cancelled caller stops waiting; the shared connect carries on for the others.
    return new Promise<PooledConnection>((resolve, reject) => {
      const onAbort = (): void => reject(new ConnectError('cancelled', 'cancelled while connecting'));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      pending.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** True when a live connection to `target` is pooled (the next request skips the handshake). */
  has(target: SshTarget): boolean {
    const connection = this.connections.get(poolKey(target));
    return connection !== undefined && !connection.isClosed;
  }

  /** Forget (and end) the connection to `target`, e.g. after its host key was re-trusted. */
  drop(target: SshTarget): void {
    const connection = this.connections.get(poolKey(target));
    connection?.end();
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.connecting.values()]);
    for (const connection of this.connections.values()) connection.end();
    this.connections.clear();
    this.options.observer?.poolSize?.(0);
  }

  private async connect(target: SshTarget, timeoutMs: number): Promise<PooledConnection> {
    const started = performance.now();
    try {
      const connection = await this.handshake(target, timeoutMs, started);
      this.options.observer?.connected?.(target.name, connection.connectMs);
      return connection;
    } catch (error) {
      const status = error instanceof ConnectError ? error.status : 'unreachable';
      this.options.observer?.connectFailed?.(target.name, status);
      throw error instanceof ConnectError ? error : new ConnectError('unreachable', String(error));
    }
  }

  private async handshake(target: SshTarget, timeoutMs: number, started: number): Promise<PooledConnection> {
    const { describe, ...credentials } = await this.authConfig(target);
    const socket = await openSocket(target, timeoutMs);
    const remaining = Math.max(1, timeoutMs - (performance.now() - started));
    const knownHosts = this.options.knownHosts();
    let rejection: string | null = null;
    const client = new Client();
    const config: ConnectConfig = {
      sock: socket,
      host: target.address,
      port: target.port,
      username: target.user,
      ...credentials,
      readyTimeout: Math.ceil(remaining),
      keepaliveInterval: this.options.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_MS,
      keepaliveCountMax: 3,
      algorithms: { serverHostKey: knownHosts.preferredAlgorithms(target) },
      // Always set: without it ssh2 accepts any host key.
      hostVerifier: (key: Buffer): boolean => {
        const verdict = knownHosts.verify(target, key);
        if (!verdict.ok) rejection = verdict.message;
        return verdict.ok;
      },
    };
    return new Promise<PooledConnection>((resolve, reject) => {
      let settled = false;
      client.once('ready', () => {
        settled = true;
        const connection = new PooledConnection(
          client,
          target,
          Math.round(performance.now() - started),
          this.maxChannels,
          this.options.idleCloseMs ?? DEFAULT_IDLE_CLOSE_MS,
        );
        connection.serverSoftware = serverSoftwareOf(client);
        socket.on('data', () => {
          connection.lastHeardAt = Date.now();
        });
        this.track(connection);
        resolve(connection);
      });
      client.on('error', (error: Error & { level?: string }) => {
        if (settled) {
          this.options.logger?.warn({ host: target.name, err: error.message }, 'ssh connection error');
          return;
        }
        settled = true;
        socket.destroy();
        if (rejection !== null) reject(new ConnectError('host_key_rejected', rejection));
        else if (error.level === 'client-authentication') {
          reject(new ConnectError('auth_failed', `authentication as ${target.user} on ${target.name} failed (${describe})`));
        } else if (error.level === 'client-timeout') {
          reject(new ConnectError('unreachable', `connect timeout: SSH handshake with ${target.address}:${target.port} not done within ${timeoutMs} ms`));
        } else reject(new ConnectError('unreachable', `SSH handshake with ${target.address}:${target.port} failed: ${error.message}`));
      });
      client.on('close', () => {
        if (!settled) {
          settled = true;
          reject(new ConnectError(rejection !== null ? 'host_key_rejected' : 'unreachable',
            rejection ?? `connection to ${target.address}:${target.port} closed during the handshake`));
        }
      });
      try {
        client.connect(config);
      } catch (error) {
        settled = true;
        socket.destroy();
        // ssh2 throws synchronously for an unusable key (e.g. encrypted without passphrase).
        reject(new ConnectError('auth_failed', `cannot use the private key for ${target.name}: ${error instanceof Error ? error.message : String(error)}`));
      }
    });
  }

  private track(connection: PooledConnection): void {
    const key = poolKey(connection.target);
    this.connections.set(key, connection);
    this.options.observer?.poolSize?.(this.connections.size);
    const forget = (reason: string): void => {
      connection.markClosed(reason);
      if (this.connections.get(key) === connection) {
        this.connections.delete(key);
        this.options.observer?.poolSize?.(this.connections.size);
      }
    };
    connection.client.on('close', () => forget('connection closed'));
    connection.client.on('end', () => forget('connection ended'));
    if (this.closed) connection.end();
  }

  private async privateKey(file: string): Promise<Buffer> {
    const info = await stat(file);
    // ctime too: a chmod that makes the key unreadable must not be hidden by the cache.
    const stamp = `${info.ino}:${info.mtimeMs}:${info.ctimeMs}:${info.size}`;
    const cached = this.keys.get(file);
    if (cached?.stamp === stamp) return cached.key;
    const key = await readFile(file);
    this.keys.set(file, { stamp, key });
    return key;
  }

  private async authConfig(target: SshTarget): Promise<{ privateKey?: Buffer; agent?: string; describe: string }> {
    const agent = this.options.agentSocket ?? process.env.SSH_AUTH_SOCK;
    const result: { privateKey?: Buffer; agent?: string; describe: string } = { describe: '' };
    const methods: string[] = [];
    if (target.privateKeyFile) {
      try {
        result.privateKey = await this.privateKey(target.privateKeyFile);
      } catch (error) {
        throw new ConnectError('auth_failed', `cannot read private key ${target.privateKeyFile}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      }
      methods.push(`key ${target.privateKeyFile}`);
    }
    if (agent) {
      result.agent = agent;
      methods.push('ssh-agent');
    }
    if (methods.length === 0) {
      throw new ConnectError('auth_failed', `no private key file for ${target.name} and no ssh-agent (SSH_AUTH_SOCK unset)`);
    }
    result.describe = `tried ${methods.join(', ')}`;
    return result;
  }
}

/**
 * ssh2 keeps the identification's software field on the client (`_remoteVer`, set from the
 * server's `SSH-2.0-…` line before the key exchange) without a public accessor; '' when absent.
 */
function serverSoftwareOf(client: Client): string {
  const software = (client as unknown as { _remoteVer?: unknown })._remoteVer;
  return typeof software === 'string' ? software : '';
}
