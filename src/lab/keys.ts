// Key generation with OpenSSH's own ssh-keygen, so every tool (OpenSSH client, ssh2, ansible)
// reads the keys without conversion. Arguments are passed as argv, never through a shell.
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type KeyType = 'ed25519' | 'ecdsa' | 'rsa';

/** Write an unencrypted key pair at `file` and `${file}.pub`, replacing any existing one. */
export async function generateKeyPair(file: string, type: KeyType, comment: string): Promise<void> {
  // ssh-keygen asks before overwriting; remove first so it never waits on a prompt.
  await rm(file, { force: true });
  await rm(`${file}.pub`, { force: true });
  await run('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', comment, '-f', file], { timeout: 30_000 });
}

/** Run `task` over `items` with at most `limit` in flight: key generation and daemon starts are CPU-bound. */
export async function forEachLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await task(item);
    }
  });
  await Promise.all(workers);
}
