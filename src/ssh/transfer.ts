// File transfers over SFTP: local -> hosts, hosts -> local, host -> hosts (streamed through
// the server, never stored). Every write goes to a temporary name and is renamed into place,
// so a failed or refused transfer leaves no half file. Sizes are checked by stat first and
// enforced again while streaming (a file can grow in between). SFTP sessions use a channel
// slot, so they are always ended.
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Client, SFTPWrapper, Stats } from 'ssh2';
import { slidingWindow } from './batches.js';
import { openRetryingRefusals } from './channel-open.js';
import type { ExecEvent, ExecLimits, HostResult, HostStatus, SshTarget } from './types.js';

export const DEFAULT_MAX_TRANSFER_BYTES = 100 * 1024 * 1024;

export interface TransferOptions {
  readonly window?: number | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onEvent?: ((event: ExecEvent) => void) | undefined;
  readonly connectTimeoutMs?: number | undefined;
  readonly maxTransferBytes?: number | undefined;
}

export interface UploadOptions extends TransferOptions {
  /** Mode of the written file; default: the source file's mode. */
  readonly mode?: number | undefined;
}

interface TransferAttempt {
  connectMs: number;
  result(status: HostStatus, fields?: Partial<Omit<HostResult, 'host' | 'status' | 'startedAt' | 'durationMs'>>): HostResult;
}

/** What transfers need from the executor (kept narrow so the two files do not import each other). */
export interface SftpAccess {
  readonly limits: ExecLimits;
  readonly window: number;
  readonly maxTransferBytes: number;
  lease(target: SshTarget, connectTimeoutMs: number, signal?: AbortSignal): Promise<{ connection: { client: Client }; release: () => void; connectMs: number }>;
  attempt(host: string): TransferAttempt;
  finish(result: HostResult, onEvent: ((event: ExecEvent) => void) | undefined): HostResult;
  connectFailure(attempt: TransferAttempt, error: unknown): HostResult;
}

export class TransferRefused extends Error {}

/**
 * setuid, setgid and sticky bits never travel with a copied file's own mode: a downloaded or
 * relayed file keeps its permission bits only. An upload may set them with an explicit `mode`,
 * which makes the copy_file plan destructive (tools/copy-file.ts).
 */
export const PLAIN_MODE_BITS = 0o777;

export interface DownloadOptions extends TransferOptions {
  /**
   * Checked after `<localDir>/<host>` is created and before anything is written into it:
   * throws TransferRefused when the directory (through a symlink) lies outside where it may.
   */
  readonly checkDir?: ((dir: string) => Promise<void>) | undefined;
}

/** Passes bytes through until more than `limit` have gone by, then fails the pipeline. */
class SizeLimit extends Transform {
  private seen = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) callback(new TransferRefused(`over the size limit of ${this.limit} bytes (grew while streaming)`));
    else callback(null, chunk);
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function call<T>(run: (done: (error: Error | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => run((error, value) => (error ? reject(error) : resolve(value as T))));
}

function tempName(finalPath: string, posix: boolean): string {
  const p = posix ? path.posix : path;
  return p.join(p.dirname(finalPath), `.${p.basename(finalPath)}.castellan-${randomBytes(6).toString('hex')}.tmp`);
}

/** An SFTP session, waiting out the node's refusals while it frees sessions we closed (channel-open.ts). */
async function openSftp(client: Client, budgetMs: number, signal?: AbortSignal): Promise<SFTPWrapper> {
  return openRetryingRefusals(() => call<SFTPWrapper>((done) => client.sftp(done)), { budgetMs, signal });
}

/** Rename into place, replacing an existing file (SFTP v3 rename refuses to overwrite). */
async function renameRemote(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
  try {
    await call<void>((done) => sftp.ext_openssh_rename(from, to, done));
  } catch {
    await call<void>((done) => sftp.unlink(to, done)).catch(() => undefined);
    await call<void>((done) => sftp.rename(from, to, done));
  }
}

/** Run `work` on an SFTP session of `target`, with the lease and session always given back. */
async function withSftp(
  access: SftpAccess,
  target: SshTarget,
  options: TransferOptions,
  work: (sftp: SFTPWrapper) => Promise<void>,
): Promise<HostResult> {
  options.onEvent?.({ type: 'host_started', host: target.name });
  const attempt = access.attempt(target.name);
  if (options.signal?.aborted) return access.finish(attempt.result('cancelled', { error: 'cancelled before start' }), options.onEvent);
  let lease;
  try {
    lease = await access.lease(target, options.connectTimeoutMs ?? access.limits.connectTimeoutMs, options.signal);
  } catch (error) {
    return access.finish(access.connectFailure(attempt, error), options.onEvent);
  }
  attempt.connectMs = lease.connectMs;
  let sftp: SFTPWrapper | undefined;
  try {
    sftp = await openSftp(lease.connection.client, options.connectTimeoutMs ?? access.limits.connectTimeoutMs, options.signal);
    const session = sftp;
    // Cancelling ends the session, which fails the streams in flight (their temp files are removed).
    const onAbort = (): void => session.end();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await work(session);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    return access.finish(attempt.result('ok', { exitCode: 0 }), options.onEvent);
  } catch (error) {
    const status = options.signal?.aborted ? 'cancelled' : 'failed';
    const reason = error instanceof TransferRefused ? `refused: ${error.message}` : message(error);
    return access.finish(attempt.result(status, { error: reason }), options.onEvent);
  } finally {
    sftp?.end();
    lease.release();
  }
}

/** Stream `source()` into `remotePath` on the host via a temp name; on any failure the temp file is removed. */
async function writeRemote(sftp: SFTPWrapper, source: () => NodeJS.ReadableStream, remotePath: string, mode: number, limit: number): Promise<void> {
  const temp = tempName(remotePath, true);
  try {
    await pipeline(source(), new SizeLimit(limit), sftp.createWriteStream(temp, { mode }));
    // The remote umask applied at open; set the intended mode explicitly.
    await call<void>((done) => sftp.chmod(temp, mode, done));
    await renameRemote(sftp, temp, remotePath);
  } catch (error) {
    await call<void>((done) => sftp.unlink(temp, done)).catch(() => undefined);
    throw error;
  }
}

function refuseAll(access: SftpAccess, targets: readonly SshTarget[], reason: string, options: TransferOptions): HostResult[] {
  return targets.map((target) => access.finish(access.attempt(target.name).result('failed', { error: reason }), options.onEvent));
}

/** Local file -> every target at `remotePath`; mode preserved from the local file unless given. */
export async function upload(
  access: SftpAccess,
  targets: readonly SshTarget[],
  localPath: string,
  remotePath: string,
  options: UploadOptions = {},
): Promise<HostResult[]> {
  const limit = options.maxTransferBytes ?? access.maxTransferBytes;
  let info;
  try {
    info = await stat(localPath);
  } catch (error) {
    return refuseAll(access, targets, `cannot read ${localPath}: ${message(error)}`, options);
  }
  if (!info.isFile()) return refuseAll(access, targets, `${localPath} is not a regular file`, options);
  if (info.size > limit) return refuseAll(access, targets, `refused: ${localPath} is ${info.size} bytes, over the size limit of ${limit}`, options);
  const mode = options.mode ?? info.mode & PLAIN_MODE_BITS;
  return slidingWindow(targets, options.window ?? access.window, (target) =>
    withSftp(access, target, options, (sftp) => writeRemote(sftp, () => createReadStream(localPath), remotePath, mode, limit)),
  );
}

async function statRemote(sftp: SFTPWrapper, remotePath: string, limit: number): Promise<Stats> {
  const info = await call<Stats>((done) => sftp.stat(remotePath, done));
  if (!info.isFile()) throw new TransferRefused(`${remotePath} is not a regular file`);
  if (info.size > limit) throw new TransferRefused(`${remotePath} is ${info.size} bytes, over the size limit of ${limit}`);
  return info;
}

/** Each target's `remotePath` -> `<localDir>/<host>/<basename>` (mode preserved). */
export async function download(
  access: SftpAccess,
  targets: readonly SshTarget[],
  remotePath: string,
  localDir: string,
  options: DownloadOptions = {},
): Promise<HostResult[]> {
  const limit = options.maxTransferBytes ?? access.maxTransferBytes;
  return slidingWindow(targets, options.window ?? access.window, (target) =>
    withSftp(access, target, options, async (sftp) => {
      const info = await statRemote(sftp, remotePath, limit);
      const hostDir = path.join(localDir, safeSegment(target.name));
      await mkdir(hostDir, { recursive: true });
      // `<host>` may already exist as a symlink to elsewhere: check where it really is.
      await options.checkDir?.(hostDir);
      const finalPath = path.join(hostDir, safeSegment(path.posix.basename(remotePath)));
      const temp = tempName(finalPath, false);
      const mode = info.mode & PLAIN_MODE_BITS;
      try {
        // `wx`: never through an existing file or symlink at the temporary name.
        await pipeline(sftp.createReadStream(remotePath), new SizeLimit(limit), createWriteStream(temp, { mode, flags: 'wx' }));
        await chmod(temp, mode);
        await rename(temp, finalPath);
      } catch (error) {
        await unlink(temp).catch(() => undefined);
        throw error;
      }
    }),
  );
}

/** A host or file name used as one local path segment: no separators, no `..`. */
function safeSegment(name: string): string {
  const cleaned = name.replace(/[/\\\0]/g, '_');
  return cleaned === '' || cleaned === '.' || cleaned === '..' ? `_${cleaned}` : cleaned;
}

/** `from:remotePath` -> every target's `destPath`, streamed through this process (mode preserved unless given). */
export async function relay(
  access: SftpAccess,
  from: SshTarget,
  remotePath: string,
  targets: readonly SshTarget[],
  destPath: string,
  options: UploadOptions = {},
): Promise<HostResult[]> {
  const limit = options.maxTransferBytes ?? access.maxTransferBytes;
  const failSource = (reason: string): HostResult[] => refuseAll(access, targets, `source ${from.name}:${remotePath}: ${reason}`, options);
  let lease;
  try {
    lease = await access.lease(from, options.connectTimeoutMs ?? access.limits.connectTimeoutMs, options.signal);
  } catch (error) {
    return failSource(access.connectFailure(access.attempt(from.name), error).error ?? 'unreachable');
  }
  // The source session is held for the whole relay; each destination reads its own stream.
  let sourceSftp: SFTPWrapper | undefined;
  try {
    let info: Stats;
    try {
      sourceSftp = await openSftp(lease.connection.client, options.connectTimeoutMs ?? access.limits.connectTimeoutMs, options.signal);
      info = await statRemote(sourceSftp, remotePath, limit);
    } catch (error) {
      return failSource(error instanceof TransferRefused ? `refused: ${error.message}` : message(error));
    }
    const session = sourceSftp;
    const mode = options.mode ?? info.mode & PLAIN_MODE_BITS;
    return await slidingWindow(targets, options.window ?? access.window, (target) =>
      withSftp(access, target, options, (sftp) => writeRemote(sftp, () => session.createReadStream(remotePath), destPath, mode, limit)),
    );
  } finally {
    sourceSftp?.end();
    lease.release();
  }
}
