// A private Redis for tests, benchmarks and `castellan up`: Debian's redis-server on 127.0.0.1,
// on a free port, in its own dir. Never the system Redis on 6379, whose data and eviction
// policy we do not control. Settings follow what BullMQ needs to be safe: `noeviction` (an
// evicted job key is a lost job) and AOF with `everysec` (a crash loses at most ~1 s).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { findFreePort } from './net.js';

export interface RedisOptions {
  /** Data dir (AOF, log); created if missing. */
  dir: string;
  /** Default: a free port chosen by binding. */
  port?: number;
  /** Default true: AOF with appendfsync everysec. */
  appendOnly?: boolean;
  /** Default false: the server dies with this process. True: it outlives it (for `castellan up`). */
  detached?: boolean;
}

export interface PrivateRedis {
  readonly url: string;
  readonly port: number;
  /** Current server pid; changes after restart(). */
  readonly pid: number;
  readonly dir: string;
  /** Graceful shutdown (SIGTERM, AOF flushed), SIGKILL after 5 s; resolves once it has exited. */
  stop(): Promise<void>;
  /** SIGKILL, for crash tests; resolves once it has exited. */
  kill(): Promise<void>;
  /** Start again on the same port and dir (replaying the AOF); stops it first if running. */
  restart(): Promise<void>;
}

const REDIS_SERVER = '/usr/bin/redis-server';
const SETPRIV = '/usr/bin/setpriv';
const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;

function serverArgs(port: number, dir: string, appendOnly: boolean): string[] {
  return [
    '--bind', '127.0.0.1',
    '--port', String(port),
    '--protected-mode', 'yes',
    '--daemonize', 'no',
    '--dir', dir,
    '--logfile', path.join(dir, 'redis.log'),
    '--maxmemory-policy', 'noeviction',
    '--appendonly', appendOnly ? 'yes' : 'no',
    '--appendfsync', 'everysec',
    '--save', '',
  ];
}

/**
 * Spawn redis-server. Attached servers get a parent-death signal through setpriv, so a test
 * worker killed with SIGKILL does not leave a Redis behind (an 'exit' hook cannot cover that).
 */
function spawnServer(args: string[], detached: boolean): ChildProcess {
  if (detached) {
    const child = spawn(REDIS_SERVER, args, { detached: true, stdio: 'ignore' });
    child.unref();
    return child;
  }
  if (existsSync(SETPRIV)) {
    return spawn(SETPRIV, ['--pdeathsig', 'SIGKILL', '--', REDIS_SERVER, ...args], { stdio: 'ignore' });
  }
  return spawn(REDIS_SERVER, args, { stdio: 'ignore' });
}

/**
 * The pid of the Redis answering on `port`, or null while it cannot answer (not listening yet,
 * or -LOADING while it replays the AOF). Asking for the pid, not just PING, proves the answer
 * comes from the server we started and not from another one already holding the port.
 */
function serverPid(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (pid: number | null): void => {
      socket.destroy();
      resolve(pid);
    };
    socket.setTimeout(1000, () => done(null));
    socket.once('error', () => done(null));
    socket.once('connect', () => socket.write('INFO server\r\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString();
      if (reply.startsWith('-')) return done(null);
      const match = /process_id:(\d+)/.exec(reply);
      if (match) done(Number(match[1]));
    });
    socket.once('end', () => done(null));
  });
}

function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function logTail(dir: string): Promise<string> {
  try {
    return (await readFile(path.join(dir, 'redis.log'), 'utf8')).trimEnd().split('\n').slice(-10).join('\n');
  } catch {
    return '(no log)';
  }
}

class RedisStartError extends Error {
  constructor(message: string, readonly portTaken: boolean) {
    super(message);
  }
}

async function launch(port: number, dir: string, appendOnly: boolean, detached: boolean): Promise<ChildProcess> {
  const child = spawnServer(serverArgs(port, dir, appendOnly), detached);
  let exited = false;
  child.once('exit', () => (exited = true));
  child.once('error', () => (exited = true));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!exited && Date.now() < deadline) {
    if ((await serverPid(port)) === child.pid) return child;
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
  child.kill('SIGKILL');
  await exitOf(child);
  const tail = await logTail(dir);
  const reason = exited ? 'exited during start' : `not answering within ${READY_TIMEOUT_MS} ms`;
  throw new RedisStartError(`redis-server on 127.0.0.1:${port} ${reason}:\n${tail}`, /Address already in use/.test(tail));
}

export async function startRedis(options: RedisOptions): Promise<PrivateRedis> {
  const dir = path.resolve(options.dir);
  const appendOnly = options.appendOnly ?? true;
  const detached = options.detached ?? false;
  await mkdir(dir, { recursive: true });

  let port = options.port ?? (await findFreePort('127.0.0.1'));
  let child: ChildProcess;
  for (let attempt = 1; ; attempt++) {
    try {
      child = await launch(port, dir, appendOnly, detached);
      break;
    } catch (error) {
      // Someone took the probed port before redis bound it: probe again (only if we chose it).
      const retry = error instanceof RedisStartError && error.portTaken && options.port === undefined && attempt < 3;
      if (!retry) throw error;
      port = await findFreePort('127.0.0.1');
    }
  }

  // Attached servers also go away on a normal exit of this process.
  const onExit = (): void => {
    if (!detached) child.kill('SIGKILL');
  };
  process.once('exit', onExit);

  const terminate = async (signal: NodeJS.Signals): Promise<void> => {
    const current = child;
    if (current.exitCode !== null || current.signalCode !== null) return;
    current.kill(signal);
    const timer = setTimeout(() => current.kill('SIGKILL'), STOP_GRACE_MS);
    await exitOf(current);
    clearTimeout(timer);
  };

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    get pid() {
      return child.pid ?? -1;
    },
    stop: async () => {
      await terminate('SIGTERM');
      process.removeListener('exit', onExit);
    },
    kill: () => terminate('SIGKILL'),
    restart: async () => {
      await terminate('SIGTERM');
      child = await launch(port, dir, appendOnly, detached);
      process.removeListener('exit', onExit);
      process.once('exit', onExit);
    },
  };
}
