// The account lab clients log in as. Running as root, a lab can create a dedicated non-root
// user so tests see what operators see on real nodes (sudo, signal delivery: sshd ignores
// channel signals for root logins without privilege separation).
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Accounts the lab may create and unlock itself; anything else must already exist. */
const MANAGED_USER = /^castellan-[a-z0-9-]{1,24}$/;

export function currentUser(): string {
  return userInfo().username;
}

async function userExists(name: string): Promise<boolean> {
  try {
    await run('getent', ['passwd', name]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Make sure `name` can log in by public key. sshd without PAM refuses accounts whose shadow
 * password starts with '!' (locked), which is what useradd leaves, so managed users get '*'
 * (no password, not locked).
 */
export async function ensureLoginUser(name: string): Promise<void> {
  const me = currentUser();
  if (name === me) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`a lab started as ${me} can only log in as ${me} (sshd needs root to switch users), not ${name}`);
  }
  const managed = MANAGED_USER.test(name);
  if (!(await userExists(name))) {
    if (!managed) throw new Error(`login user ${name} does not exist (the lab only creates castellan-* users)`);
    await run('useradd', ['--create-home', '--shell', '/bin/bash', '--user-group', name]);
  }
  if (managed) await run('usermod', ['-p', '*', name]);
}

/**
 * A non-root login user must reach DIR/authorized_keys: every ancestor of DIR needs the
 * world-execute bit. Fail early with the offending directory instead of an opaque auth error.
 */
export async function assertReachableByOthers(dir: string): Promise<void> {
  let current = path.dirname(path.resolve(dir));
  for (;;) {
    const info = await stat(current);
    if ((info.mode & 0o001) === 0) {
      throw new Error(`${current} is not searchable by other users (mode ${(info.mode & 0o777).toString(8)}); ` +
        'put the lab dir elsewhere or chmod o+x it');
    }
    const parent = path.dirname(current);
    if (parent === current) return;
    current = parent;
  }
}
