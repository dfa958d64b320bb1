// Real `castellan` processes (worker, serve), started with the compiled CLI, ready once their
// start line appears on stderr, stopped or killed by their owner (SIGKILL, SIGTERM, SIGSTOP) or
// at the end. Their stderr is kept so the owner can read what they said (log lines, "lost
// contact …"). Every process started here is killed when the starting process exits, so a
// failed test or an interrupted benchmark leaves no worker behind to run jobs of the next one.
// Shared by the tests (test/support re-exports it) and bench/ (which must not import tests).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** bin/castellan.js of this checkout: found upwards, as this file runs from src/lab (tests) or dist/src/lab (bench). */
export const CLI = ((): string => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'bin', 'castellan.js');
    if (existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`bin/castellan.js not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
})();

export interface CastellanProcess {
  readonly child: ChildProcess;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
  /** Resolves when it has exited (its exit code, null when a signal ended it). */
  readonly exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
  /** Send a signal (SIGKILL by default) and wait until it has exited (SIGSTOP: returns at once). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** True once it has exited. */
  readonly gone: boolean;
}

export interface StartOptions {
  readonly env?: Readonly<Record<string, string>>;
  /** Ready once stderr matches this. */
  readonly ready: RegExp;
  /** Give up (and SIGKILL it) after this long; default 120 s (a loaded 2-core box starts node slowly). */
  readonly timeoutMs?: number;
}

const everyProcess = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of everyProcess) {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  }
});

export function startCastellanProcess(args: readonly string[], options: StartOptions): Promise<CastellanProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: '1', ...(options.env ?? {}) }, stdio: ['ignore', 'ignore', 'pipe'] });
    everyProcess.add(child);
    let err = '';
    let ready = false;
    const exited = new Promise<number | null>((r) =>
      child.once('exit', (code) => {
        everyProcess.delete(child);
        r(code);
      }),
    );
    const isGone = (): boolean => child.exitCode !== null || child.signalCode !== null;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`castellan ${args.join(' ')} did not start: ${err}`));
    }, options.timeoutMs ?? 120_000);
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (!ready && options.ready.test(err)) {
        ready = true;
        clearTimeout(timer);
        resolve({
          child,
          stderr: () => err,
          exited,
          get gone() {
            return isGone();
          },
          async stop(graceMs = 10_000) {
            if (isGone()) return;
            child.kill('SIGTERM');
            const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
            await exited;
            clearTimeout(kill);
          },
          async kill(signal: NodeJS.Signals = 'SIGKILL') {
            if (isGone()) return;
            child.kill(signal);
            if (signal !== 'SIGSTOP') await exited;
          },
        });
      }
    });
    child.once('exit', (code) => {
      if (!ready) {
        clearTimeout(timer);
        reject(new Error(`castellan ${args.join(' ')} exited ${code} before it was ready: ${err}`));
      }
    });
  });
}

export interface WorkerProcess extends CastellanProcess {
  /** The worker's id, as it names itself in Redis and in the ledger. */
  readonly id: string;
}

/** `castellan worker [--site S]…` with this config; resolves once it says it started. */
export async function startWorkerProcess(configFile: string, options: { sites?: readonly string[]; env?: Readonly<Record<string, string>>; timeoutMs?: number } = {}): Promise<WorkerProcess> {
  const ready = /castellan worker (\S+) started/;
  const p = await startCastellanProcess(['--config', configFile, 'worker', ...(options.sites ?? []).flatMap((s) => ['--site', s])], { ready, ...(options.env ? { env: options.env } : {}), ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) });
  return Object.assign(p, { id: ready.exec(p.stderr())![1]! });
}

export interface ServeProcess extends CastellanProcess {
  /** Where it listens, e.g. http://127.0.0.1:PORT. */
  readonly url: string;
}

/** `castellan serve --no-worker` (or with its worker) with this config; resolves once it listens. */
export async function startServeProcess(configFile: string, options: { worker?: boolean; env?: Readonly<Record<string, string>>; timeoutMs?: number } = {}): Promise<ServeProcess> {
  const ready = /castellan serving on (http:\/\/\S+)/;
  const p = await startCastellanProcess(['--config', configFile, 'serve', ...(options.worker === true ? [] : ['--no-worker'])], { ready, ...(options.env ? { env: options.env } : {}), ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) });
  return Object.assign(p, { url: ready.exec(p.stderr())![1]! });
}
