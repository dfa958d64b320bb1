// `castellan cp SRC DST` with the bash CLI's `node:path` syntax, on top of the copy_file tool.
// Local files are staged in the server's files root (the only place copy_file may read or
// write locally), so in local mode the CLI must run where the worker can see that directory.
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { CastellanError } from '../../config/errors.js';
import type { JobClient } from './local.js';

interface Remote {
  readonly targets: string;
  readonly path: string;
}

/** `targets:/abs/path` is remote; anything else (./f, /f, f) is local. */
export function parseLocation(text: string): Remote | undefined {
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  const prefix = text.slice(0, colon);
  if (prefix.includes('/')) return undefined;
  return { targets: prefix, path: text.slice(colon + 1) };
}

export async function runCopy(
  client: JobClient,
  source: string,
  destination: string,
  mode: string | undefined,
  run: (tool: string, input: unknown) => Promise<number>,
): Promise<number> {
  const from = parseLocation(source);
  const to = parseLocation(destination);
  if (!from && !to) throw new CastellanError('invalid_input', 'cp: neither side is remote; write a remote side as targets:/path (e.g. node01:/etc/hosts)');
  if (from && to) {
    return run('copy_file', { targets: to.targets, direction: 'relay', from_host: from.targets, source: from.path, destination: to.path });
  }
  const root = client.filesRoot;
  if (!root) throw new CastellanError('invalid_input', 'cp with a local side needs the local mode (the server files root); use the copy_file tool with a path in the files root');
  const stage = join('cli', `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`);
  if (to) {
    const local = resolve(source);
    const info = await stat(local).catch(() => undefined);
    if (!info?.isFile()) throw new CastellanError('invalid_input', `cp: ${source} is not a readable file`);
    const dir = join(root, stage);
    await mkdir(dir, { recursive: true });
    await copyFile(local, join(dir, basename(local)));
    return run('copy_file', { targets: to.targets, direction: 'upload', source: join(stage, basename(local)), destination: to.path, ...(mode ? { mode } : {}) });
  }
  // Remote → local: download into the files root, then hand the files over.
  const remote = from as Remote;
  const code = await run('copy_file', { targets: remote.targets, direction: 'download', source: remote.path, destination: stage });
  const landed = join(root, stage);
  const hosts = await readdir(landed).catch(() => [] as string[]);
  const dest = resolve(destination);
  const destIsDir = (await stat(dest).catch(() => undefined))?.isDirectory() ?? false;
  for (const host of hosts) {
    const file = join(landed, host, basename(remote.path));
    if (hosts.length === 1 && !destIsDir) await copyFile(file, dest);
    else {
      await mkdir(join(dest, host), { recursive: true });
      await copyFile(file, join(dest, host, basename(remote.path)));
    }
  }
  if (hosts.length) process.stderr.write(`» copied to ${hosts.length === 1 && !destIsDir ? dest : `${dest}/<host>/${basename(remote.path)}`}\n`);
  return code;
}
