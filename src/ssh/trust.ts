// Recording host keys is an explicit act (`castellan hosts trust <targets>`), never a side
// effect of connecting. scanHostKeys connects, captures the key the host offers and hangs up
// before authenticating; trustHosts appends `[address]:port keytype base64` lines and refuses
// to overwrite a differing pinned key unless asked to replace it.
import { randomBytes } from 'node:crypto';
import { chmod, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Client, type ServerHostKeyAlgorithm } from 'ssh2';
import { slidingWindow } from './batches.js';
import { KnownHosts, fingerprint, hostFieldMatches, keyTypeOf, lookupNames } from './known-hosts.js';
import { ConnectError, openSocket } from './pool.js';
import type { SshTarget } from './types.js';

export interface ScanOptions {
  readonly connectTimeoutMs?: number | undefined;
  readonly window?: number | undefined;
  /** Ask for these host key algorithms, in order (default: ssh2's order, ed25519 first). */
  readonly algorithms?: readonly ServerHostKeyAlgorithm[] | undefined;
}

export interface ScannedHostKey {
  readonly host: string;
  readonly address: string;
  readonly port: number;
  readonly keyType?: string | undefined;
  /** Base64 of the key blob, as in known_hosts. */
  readonly key?: string | undefined;
  readonly fingerprint?: string | undefined;
  readonly error?: string | undefined;
}

export interface TrustOptions extends ScanOptions {
  /** Replace a differing pinned key (after the operator checked the new fingerprint). */
  readonly replace?: boolean | undefined;
  /** Per host name, the only fingerprint that may be pinned (an approved one): anything else is refused. */
  readonly expected?: Readonly<Record<string, string>> | undefined;
}

export interface TrustResult {
  readonly host: string;
  readonly action: 'added' | 'unchanged' | 'replaced' | 'refused' | 'failed';
  readonly fingerprint?: string | undefined;
  readonly keyType?: string | undefined;
  /** Fingerprints pinned before, when they differ. */
  readonly previous?: readonly string[] | undefined;
  readonly error?: string | undefined;
}

const DEFAULT_SCAN_TIMEOUT_MS = 10_000;

function scanOne(target: SshTarget, options: ScanOptions): Promise<ScannedHostKey> {
  const base = { host: target.name, address: target.address, port: target.port };
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_SCAN_TIMEOUT_MS;
  return openSocket(target, timeoutMs).then(
    (socket) =>
      new Promise<ScannedHostKey>((resolve) => {
        let captured: Buffer | null = null;
        const client = new Client();
        const done = (error?: string): void => {
          client.removeAllListeners();
          client.on('error', () => undefined);
          socket.destroy();
          if (captured) {
            resolve({ ...base, keyType: keyTypeOf(captured) ?? undefined, key: captured.toString('base64'), fingerprint: fingerprint(captured) });
          } else resolve({ ...base, error: error ?? 'the host offered no key' });
        };
        client.on('error', (error: Error) => done(error.message));
        client.on('close', () => done());
        client.connect({
          sock: socket,
          username: target.user,
          readyTimeout: timeoutMs,
          ...(options.algorithms ? { algorithms: { serverHostKey: [...options.algorithms] } } : {}),
          // Capture and refuse: the connection ends before any authentication is attempted.
          hostVerifier: (key: Buffer): boolean => {
            captured = Buffer.from(key);
            return false;
          },
        });
      }),
    (error: unknown) => ({ ...base, error: error instanceof ConnectError ? error.message : String(error) }),
  );
}

/** Connect to each target and capture the host key it offers (never authenticates). */
export async function scanHostKeys(targets: readonly SshTarget[], options: ScanOptions = {}): Promise<ScannedHostKey[]> {
  return slidingWindow(targets, options.window ?? 32, (target) => scanOne(target, options));
}

function hostField(target: SshTarget): string {
  return target.port === 22 ? target.address : `[${target.address}]:${target.port}`;
}

/**
 * Remove the host's own pins from the file text: hashed lines naming it are dropped, its exact
 * names are taken out of comma lists. @revoked lines are kept. Wildcard patterns are left alone.
 */
function withoutHost(text: string, target: SshTarget): string {
  const names = lookupNames(target);
  return text
    .split('\n')
    .flatMap((line) => {
      const fields = line.trim().split(/\s+/);
      if (line.trim() === '' || line.trim().startsWith('#') || fields[0]?.startsWith('@')) return [line];
      const field = fields[0] ?? '';
      if (!hostFieldMatches(field, names)) return [line];
      if (field.startsWith('|')) return [];
      const kept = field.split(',').filter((pattern) => !names.includes(pattern));
      if (kept.length === 0) return [];
      return [[kept.join(','), ...fields.slice(1)].join(' ')];
    })
    .join('\n');
}

async function writeAtomically(file: string, text: string): Promise<void> {
  let mode = 0o644;
  try {
    mode = (await stat(file)).mode & 0o777;
  } catch {
    // new file
  }
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  await writeFile(temp, text, { mode });
  await chmod(temp, mode);
  await rename(temp, file);
}

/** Scan the targets and pin their keys in `knownHostsFile`; returns what happened per host. */
export async function trustHosts(targets: readonly SshTarget[], knownHostsFile: string, options: TrustOptions = {}): Promise<TrustResult[]> {
  let text = '';
  try {
    text = await readFile(knownHostsFile, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const known = KnownHosts.parse(text, knownHostsFile);
  const scanned = await scanHostKeys(targets, options);
  const additions: string[] = [];
  const results = targets.map((target, index): TrustResult => {
    const scan = scanned[index];
    if (!scan?.key || !scan.keyType || !scan.fingerprint) return { host: target.name, action: 'failed', error: scan?.error ?? 'not scanned' };
    const found = { fingerprint: scan.fingerprint, keyType: scan.keyType };
    const expected = options.expected?.[target.name];
    if (expected !== undefined && expected !== scan.fingerprint) {
      return { host: target.name, action: 'refused', ...found, error: `${target.name} presents ${scan.fingerprint}, not the approved ${expected}` };
    }
    const blob = Buffer.from(scan.key, 'base64');
    if (known.entries.some((entry) => entry.marker === 'revoked' && entry.key.equals(blob))) {
      return { host: target.name, action: 'refused', ...found, error: `the key ${scan.fingerprint} is marked @revoked` };
    }
    const pins = known.pinnedKeys(target);
    if (pins.some((pin) => pin.key.equals(blob))) return { host: target.name, action: 'unchanged', ...found };
    const line = `${hostField(target)} ${scan.keyType} ${scan.key}`;
    if (pins.length === 0) {
      additions.push(line);
      return { host: target.name, action: 'added', ...found };
    }
    const previous = pins.map((pin) => fingerprint(pin.key));
    if (!options.replace) {
      return {
        host: target.name,
        action: 'refused',
        ...found,
        previous,
        error: `${target.name} is pinned to ${previous.join(', ')} but presents ${scan.fingerprint}; replace only after checking the new key`,
      };
    }
    text = withoutHost(text, target);
    additions.push(line);
    return { host: target.name, action: 'replaced', ...found, previous };
  });
  if (additions.length > 0) {
    const base = text === '' || text.endsWith('\n') ? text : `${text}\n`;
    await writeAtomically(knownHostsFile, `${base}${additions.map((line) => `${line}\n`).join('')}`);
  }
  return results;
}
