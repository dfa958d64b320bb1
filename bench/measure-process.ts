// Runs one client command and measures what an operator pays for it: wall time, CPU of the
// whole process tree (user + sys of every waited-for descendant, from GNU time's getrusage of
// children), and peak RSS of the tree (sum over the tree, sampled from /proc every 200 ms:
// parallel-ssh, clush and pdsh run one `ssh` per host, so the largest single process would
// understate them). Output is kept, bounded, for host counting.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { processFamily } from '../src/lab/processes.js';

export const GNU_TIME = '/usr/bin/time';
const SAMPLE_MS = 200; // each sample reads /proc/*/stat: keep it light on 2 cores
const MAX_KEPT_OUTPUT = 4 * 1024 * 1024;
const PAGE_KB = 4;

export interface ProcessRun {
  readonly code: number | null;
  readonly wallMs: number;
  /** user + sys of the process and its descendants. */
  readonly cpuMs: number;
  /** Largest sampled sum of RSS over the process tree, in MB. */
  readonly peakRssMb: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs: number;
  readonly cwd?: string;
}

function rssKb(pid: number): number {
  try {
    const pages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    return Number.isFinite(pages) ? pages * PAGE_KB : 0;
  } catch {
    return 0; // the process ended between listing and reading
  }
}

function treeRssKb(root: number): number {
  let total = 0;
  for (const pid of processFamily([root])) total += rssKb(pid);
  return total;
}

/** Spawn `command args` under GNU time; resolves when it exits (killed at the timeout). */
export async function runMeasured(command: string, args: readonly string[], options: RunOptions): Promise<ProcessRun> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'castellan-bench-time-'));
  const timeFile = path.join(dir, 'time');
  try {
    const started = performance.now();
    const child = spawn(GNU_TIME, ['-f', '%U %S', '-o', timeFile, command, ...args], {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      if (stdout.length < MAX_KEPT_OUTPUT) stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < MAX_KEPT_OUTPUT) stderr += chunk.toString('utf8');
    });
    let peakKb = 0;
    const sampler = setInterval(() => {
      if (child.pid !== undefined) peakKb = Math.max(peakKb, treeRssKb(child.pid));
    }, SAMPLE_MS);
    let timedOut = false;
    const killer = setTimeout(() => {
      timedOut = true;
      // GNU time forwards nothing; kill the whole family so no ssh is left behind.
      if (child.pid !== undefined) for (const pid of processFamily([child.pid])) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      }
    }, options.timeoutMs);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (exitCode) => resolve(exitCode));
    });
    const wallMs = performance.now() - started;
    clearInterval(sampler);
    clearTimeout(killer);
    const cpuMs = parseTimeFile(await readFile(timeFile, 'utf8').catch(() => ''));
    return { code, wallMs, cpuMs, peakRssMb: peakKb / 1024, stdout, stderr, timedOut };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** GNU time's last line is "%U %S" (it may prefix "Command exited with non-zero status N"). */
export function parseTimeFile(text: string): number {
  const last = text.trim().split('\n').pop() ?? '';
  const [user, sys] = last.split(' ').map(Number);
  return user !== undefined && sys !== undefined && Number.isFinite(user) && Number.isFinite(sys) ? (user + sys) * 1000 : Number.NaN;
}
