// Where `castellan login` keeps its tokens: one JSON file under the user's config directory
// ($XDG_CONFIG_HOME/castellan/credentials.json, else ~/.config/…), directory 0700, file 0600,
// written atomically, one entry per Castellan server. Only the CLI reads it; tokens never go
// into logs, argv or the environment of other processes.
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CastellanError } from '../../config/errors.js';

export interface StoredLogin {
  /** Castellan's base URL as given to `login --server` (origin + path, no trailing slash). */
  readonly server: string;
  readonly issuer: string;
  readonly clientId: string;
  /** RFC 8707 resource the tokens are for (Castellan's protected-resource identifier). */
  readonly resource: string;
  readonly accessToken: string;
  readonly refreshToken?: string | undefined;
  /** Epoch seconds; absent when the issuer did not say. */
  readonly expiresAt?: number | undefined;
  readonly scope?: string | undefined;
}

interface CredentialsFile {
  readonly version: 1;
  readonly servers: Record<string, StoredLogin>;
}

export function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(os.homedir(), '.config');
  return path.join(base, 'castellan', 'credentials.json');
}

/** The key a server is stored under: its URL without a trailing slash. */
export function serverKey(server: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new CastellanError('invalid_input', `--server: '${server}' is not a URL (expected e.g. https://castellan.example)`, 'server');
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

async function readAll(file: string): Promise<CredentialsFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, servers: {} };
    throw new CastellanError('unavailable', `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    const parsed = JSON.parse(text) as Partial<CredentialsFile>;
    if (parsed.version === 1 && parsed.servers && typeof parsed.servers === 'object') return { version: 1, servers: { ...parsed.servers } };
  } catch {
    // fall through
  }
  throw new CastellanError('invalid_input', `${file} is not a castellan credentials file: remove it and log in again`);
}

async function writeAll(file: string, data: CredentialsFile): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await chmod(path.dirname(file), 0o700);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(data, null, 2)}\n`, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

export async function loadLogin(server: string, env: NodeJS.ProcessEnv = process.env): Promise<StoredLogin | undefined> {
  return (await readAll(credentialsPath(env))).servers[serverKey(server)];
}

export async function saveLogin(login: StoredLogin, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const file = credentialsPath(env);
  const all = await readAll(file);
  all.servers[serverKey(login.server)] = login;
  await writeAll(file, all);
  return file;
}

/** Removes the server's entry (the file too when it was the last); returns whether there was one. */
export async function removeLogin(server: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const file = credentialsPath(env);
  const all = await readAll(file);
  const key = serverKey(server);
  if (!(key in all.servers)) return false;
  delete all.servers[key];
  if (Object.keys(all.servers).length === 0) await rm(file, { force: true });
  else await writeAll(file, all);
  return true;
}
