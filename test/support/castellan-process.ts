// A real `castellan` process (worker, serve) for fault tests: started with the compiled CLI,
// ready once its start line appears on stderr, killed by the test (SIGKILL, SIGTERM) or at the
// end. Its stderr is kept so a test can read what it said (log lines, "lost contact …").
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI } from './castellan.js';

export interface CastellanProcess {
  readonly child: ChildProcess;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
  /** Resolves when it has exited. */
  readonly exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export function startCastellanProcess(args: readonly string[], options: { env?: Record<string, string>; ready: RegExp; timeoutMs?: number }): Promise<CastellanProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: '1', ...(options.env ?? {}) }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    let ready = false;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`castellan ${args.join(' ')} did not start: ${err}`));
    }, options.timeoutMs ?? 60_000);
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (!ready && options.ready.test(err)) {
        ready = true;
        clearTimeout(timer);
        resolve({
          child,
          stderr: () => err,
          exited,
          async stop(graceMs = 10_000) {
            if (child.exitCode !== null || child.signalCode !== null) return;
            child.kill('SIGTERM');
            const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
            await exited;
            clearTimeout(kill);
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
