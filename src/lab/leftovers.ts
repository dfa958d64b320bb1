// `castellan up` owns everything under its --dir. Its children die with it (parent-death
// signals), but a run from an older version, a lab started by hand, or a crash in between can
// still leave an sshd or a redis-server behind. Before starting, `castellan up` finds those by
// what ties them to the dir (sshd config paths, redis-server's working directory) and stops
// them; a live owner is never touched: the second `up` on a dir refuses instead.
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isAlive, readCommandLine, readProcessTable, stopProcessFamily } from './processes.js';
import { labDown } from './sshd-lab.js';

/** DIR/up.json: who runs the embedded default on this dir, and the ports clients remember. */
export interface UpRecord {
  readonly pid: number;
  readonly startedAt: string;
  /** The lab issuer's port: kept across restarts so connected MCP clients keep working. */
  readonly oidcPort?: number | undefined;
  readonly serverPort?: number | undefined;
}

export function upRecordFile(dir: string): string {
  return path.join(dir, 'up.json');
}

export async function readUpRecord(dir: string): Promise<UpRecord | undefined> {
  try {
    const parsed = JSON.parse(await readFile(upRecordFile(dir), 'utf8')) as Partial<UpRecord>;
    return typeof parsed.pid === 'number' ? (parsed as UpRecord) : undefined;
  } catch {
    return undefined;
  }
}

export async function writeUpRecord(dir: string, record: UpRecord): Promise<void> {
  await writeFile(upRecordFile(dir), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
}

/** The pid of a live `castellan up` recorded for this dir (not this process), if any. */
export function liveOwner(record: UpRecord | undefined): number | undefined {
  if (record === undefined || record.pid === process.pid || !isAlive(record.pid)) return undefined;
  const argv = readCommandLine(record.pid) ?? [];
  return argv.some((word) => /castellan/.test(word)) && argv.includes('up') ? record.pid : undefined;
}

function cwdOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return undefined;
  }
}

/** redis-server processes working in `redisDir` (redis chdirs to its --dir). */
function redisServersIn(redisDir: string): number[] {
  return readProcessTable()
    .filter((p) => p.state !== 'Z' && p.pid !== process.pid)
    .filter((p) => commandName(p.pid) === 'redis-server' && cwdOf(p.pid) === redisDir)
    .map((p) => p.pid);
}

/** /proc/PID/comm: Debian's redis-server binary is a link to redis-check-rdb, so exe would not say. */
function commandName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** sshd listeners started from the lab's node configs under `labDir`. */
function labSshdIn(labDir: string): number[] {
  const marker = ` -f ${path.join(labDir, 'nodes')}${path.sep}`;
  return readProcessTable()
    .filter((p) => p.state !== 'Z' && (readCommandLine(p.pid) ?? []).join(' ').includes(marker))
    .map((p) => p.pid);
}

export interface LeftoverReport {
  /** pids of the sshd listeners and redis-servers that were stopped. */
  readonly sshd: readonly number[];
  readonly redis: readonly number[];
}

/** Stop every sshd and redis-server a previous run left under `dir`. */
export async function stopLeftovers(dir: string): Promise<LeftoverReport> {
  const labDir = path.join(dir, 'lab');
  const sshd = labSshdIn(labDir);
  if (existsSync(labDir)) await labDown(labDir);
  await stopProcessFamily(sshd);
  const redis = redisServersIn(path.join(dir, 'redis'));
  await stopProcessFamily(redis);
  return { sshd, redis };
}
