// The competitors are Debian packages. The benchmark installs them itself, and only when a
// binary is missing (apt-get update first, as a fresh machine has no package lists).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Binary → Debian package that provides it. */
export const REQUIRED_TOOLS: ReadonlyArray<{ readonly binary: string; readonly pkg: string }> = [
  { binary: '/usr/bin/parallel-ssh', pkg: 'pssh' },
  { binary: '/usr/bin/clush', pkg: 'clustershell' },
  { binary: '/usr/bin/pdsh', pkg: 'pdsh' },
  { binary: '/usr/bin/ansible', pkg: 'ansible' },
  { binary: '/usr/bin/time', pkg: 'time' },
  { binary: '/usr/bin/ssh', pkg: 'openssh-client' },
  { binary: '/usr/sbin/sshd', pkg: 'openssh-server' },
  { binary: '/usr/bin/redis-server', pkg: 'redis-server' },
];

export function missingPackages(): string[] {
  return [...new Set(REQUIRED_TOOLS.filter((t) => !existsSync(t.binary)).map((t) => t.pkg))];
}

/** Install whatever is missing; returns the packages installed (empty when all were there). */
export async function ensureTools(log: (line: string) => void): Promise<string[]> {
  const missing = missingPackages();
  if (missing.length === 0) return [];
  log(`installing ${missing.join(', ')} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await run('apt-get', ['update'], { env, timeout: 600_000 });
  await run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { env, timeout: 1_200_000 });
  const still = missingPackages();
  if (still.length > 0) throw new Error(`still missing after apt-get install: ${still.join(', ')}`);
  return missing;
}
